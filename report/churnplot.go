package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"sort"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/kpbench/kpbench/runs"
)

// churnTimelineTitle is the timeline plot's title, which the churn
// section refers to.
const churnTimelineTitle = "Timeline of one point under churn"

// timeSpan, timeMark, countMark and timeValue are what the timeline draws,
// in seconds from the first request of the point's traffic.
type timeSpan struct {
	From, To float64
	Full     bool
}

type timeMark struct {
	At             float64
	Target, Failed bool
}

type countMark struct {
	At float64 // the middle of its bin
	N  int64
}

type timeValue struct{ At, Us float64 }

// churnTimeline is one point's timeline on one time axis: kube-proxy's
// syncs as spans, the API writes and their programming on the node as
// marks, the errors and stale hits of each bin as marks, and the connect
// time of the connections opened in each bin.
type churnTimeline struct {
	Point string
	// End is the end of the last bin.
	End        float64
	Syncs      []timeSpan
	Writes     []timeMark
	Programmed []timeMark
	// Errors by kind, per bin with any.
	Errors                             map[string][]countMark
	StaleUnprogrammed, StaleProgrammed []countMark
	ConnectP50, ConnectMax             []timeValue
}

// churnTimelineOf builds p's timeline; ok is false when p has no traffic
// timeline. Syncs are clipped to the traffic's time; writes and
// programming outside it are left out.
func churnTimelineOf(p *runs.Point) (churnTimeline, bool) {
	c := p.Churn
	if c == nil || c.Traffic == nil || c.Traffic.Timeline == nil || len(c.Traffic.Timeline.Bins) == 0 || c.Traffic.Timeline.BinSeconds <= 0 {
		return churnTimeline{}, false
	}
	tl := c.Traffic.Timeline
	w := tl.BinSeconds
	ct := churnTimeline{Point: p.ID, End: float64(len(tl.Bins)) * w, Errors: map[string][]countMark{}}
	sec := func(t time.Time) float64 { return t.Sub(tl.Start).Seconds() }
	inside := func(x float64) bool { return x >= 0 && x <= ct.End }
	for _, s := range c.Syncs {
		from, to := math.Max(sec(s.Start), 0), math.Min(sec(s.End), ct.End)
		if to >= from && sec(s.End) >= 0 && sec(s.Start) <= ct.End {
			ct.Syncs = append(ct.Syncs, timeSpan{From: from, To: to, Full: s.Full})
		}
	}
	sort.Slice(ct.Syncs, func(i, j int) bool { return ct.Syncs[i].From < ct.Syncs[j].From })
	for _, ch := range c.Changes {
		if !ch.WrittenAt.IsZero() {
			if x := sec(ch.WrittenAt); inside(x) {
				ct.Writes = append(ct.Writes, timeMark{At: x, Target: ch.Target, Failed: ch.Error != ""})
			}
		}
		if ch.ProgrammedAt != nil {
			if x := sec(*ch.ProgrammedAt); inside(x) {
				ct.Programmed = append(ct.Programmed, timeMark{At: x, Target: ch.Target})
			}
		}
	}
	for i, b := range tl.Bins {
		mid := (float64(i) + 0.5) * w
		for _, e := range []struct {
			kind string
			n    int64
		}{{"refused", b.Refused}, {"reset", b.Reset}, {"timeout", b.Timeout}, {"other", b.Other}} {
			if e.n > 0 {
				ct.Errors[e.kind] = append(ct.Errors[e.kind], countMark{At: mid, N: e.n})
			}
		}
		if b.StaleUnprogrammed > 0 {
			ct.StaleUnprogrammed = append(ct.StaleUnprogrammed, countMark{At: mid, N: b.StaleUnprogrammed})
		}
		if b.StaleProgrammed > 0 {
			ct.StaleProgrammed = append(ct.StaleProgrammed, countMark{At: mid, N: b.StaleProgrammed})
		}
		if b.Connects > 0 {
			ct.ConnectP50 = append(ct.ConnectP50, timeValue{At: mid, Us: b.ConnectP50Us})
			ct.ConnectMax = append(ct.ConnectMax, timeValue{At: mid, Us: b.ConnectMaxUs})
		}
	}
	return ct, true
}

// churnTimelinePoint is the point whose timeline the report draws: among
// the valid points with a traffic timeline, one that opened connections
// (its connect time is drawn) before one that did not, then the one whose
// traffic met the most (errors and stale hits), then the largest step,
// then report order and the first repetition. Nil when there is none.
func churnTimelinePoint(d *Data) *runs.Point {
	var best *runs.Point
	var bestConnects bool
	var bestScore int64
	for _, g := range d.groups {
		for _, p := range g.Valid {
			if _, ok := churnTimelineOf(p); !ok {
				continue
			}
			tr := p.Churn.Traffic
			connects := tr.ConnectInSync.Count+tr.ConnectOutOfSync.Count > 0
			score := tr.StaleUnprogrammed + tr.StaleProgrammed
			for _, n := range tr.Errors {
				score += n
			}
			var better bool
			switch {
			case best == nil:
				better = true
			case connects != bestConnects:
				better = connects
			case score != bestScore:
				better = score > bestScore
			case p.Services != best.Services:
				better = p.Services > best.Services
			default:
				better = p.Key() == best.Key() && p.Repetition < best.Repetition
			}
			if better {
				best, bestConnects, bestScore = p, connects, score
			}
		}
	}
	return best
}

// The rows of the timeline's lower panel, bottom to top.
var churnRows = []string{"stale, after programmed", "stale, before programmed", "other errors", "timeouts", "resets", "refused",
	"programmed on the node", "API writes"}

func churnRow(label string) float64 {
	for i, r := range churnRows {
		if r == label {
			return float64(i)
		}
	}
	panic("no timeline row " + label)
}

var (
	targetColor = color.RGBA{R: 0xD5, G: 0x5E, B: 0x00, A: 0xFF} // vermillion
	otherColor  = color.Gray{Y: 140}
	afterColor  = color.RGBA{R: 0x00, G: 0x72, B: 0xB2, A: 0xFF} // blue
	syncColor   = color.NRGBA{R: 0x56, G: 0xB4, B: 0xE9, A: 0x40}
	fullColor   = color.NRGBA{R: 0x56, G: 0xB4, B: 0xE9, A: 0x90}
)

// churnTimelinePlot draws the timeline of churnTimelinePoint; ok is false
// when the run has no churn point to draw.
func churnTimelinePlot(d *Data) (Plot, bool, error) {
	p := churnTimelinePoint(d)
	if p == nil {
		return Plot{}, false, nil
	}
	ct, _ := churnTimelineOf(p)
	pl := Plot{Name: "churn-timeline", Title: churnTimelineTitle,
		Caption: fmt.Sprintf("Point %s (%s), chosen as the valid churn point that opened connections and whose traffic met the most errors and stale hits. "+
			"One time axis, in seconds from its first request: shaded spans are kube-proxy's syncs (darker: full syncs); "+
			"above, the median and the maximum connect time of the connections opened in each %.1f s bin; below, each API write "+
			"(vermillion: the target Service; grey: others; a cross: the write failed), when the node's rules first showed it, "+
			"and the bins with errors or stale hits (a larger mark for more). See docs/churn-traffic.md.",
			p.ID, churnCondition(p.Key(), false), p.Churn.Traffic.Timeline.BinSeconds)}
	png, svg, err := ct.render()
	if err != nil {
		return pl, false, err
	}
	pl.PNG, pl.SVG = png, svg
	return pl, true, nil
}

func timelineAxes(title, ylabel string, end float64) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(13)
	p.X.Label.Text = "seconds from the first request"
	p.Y.Label.Text = ylabel
	p.X.Label.TextStyle.Font = sans(12)
	p.Y.Label.TextStyle.Font = sans(12)
	p.X.Tick.Label.Font = sans(11)
	p.Y.Tick.Label.Font = sans(11)
	p.X.Min, p.X.Max = 0, end
	p.X.Tick.Marker = linearTicks{}
	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{Y: 225}
	grid.Horizontal.Color = color.Gray{Y: 225}
	p.Add(grid)
	return p
}

// spans shades the syncs from y0 to y1; it returns a full and an
// incremental sync's polygon for the legend (nil when none).
func (ct *churnTimeline) spans(p *plot.Plot, y0, y1 float64) (full, incr *plotter.Polygon, err error) {
	for _, s := range ct.Syncs {
		to := math.Max(s.To, s.From+ct.End/1000) // an instant sync stays visible
		pg, err := plotter.NewPolygon(plotter.XYs{{X: s.From, Y: y0}, {X: to, Y: y0}, {X: to, Y: y1}, {X: s.From, Y: y1}})
		if err != nil {
			return nil, nil, err
		}
		pg.LineStyle = draw.LineStyle{Color: color.Transparent}
		pg.Color = syncColor
		if s.Full {
			pg.Color = fullColor
			full = pg
		} else {
			incr = pg
		}
		p.Add(pg)
	}
	return full, incr, nil
}

func markRadius(n int64) vg.Length {
	return vg.Points(2.5 + 1.5*math.Log10(float64(max(n, 1))))
}

func (ct *churnTimeline) render() (pngData, svgData []byte, err error) {
	legend := plot.NewLegend()
	legend.TextStyle.Font = sans(11)
	legend.ThumbnailWidth = vg.Points(30)
	legend.Padding = vg.Points(5)
	legend.Top, legend.Left = true, true

	// Upper panel: connect time.
	top := timelineAxes("connect time of the connections opened in each bin", "connect (µs)", ct.End)
	ymax := 1.0
	for _, v := range ct.ConnectMax {
		ymax = math.Max(ymax, v.Us)
	}
	full, incr, err := ct.spans(top, 0, ymax*1.1)
	if err != nil {
		return nil, nil, err
	}
	if incr != nil {
		legend.Add("kube-proxy sync", incr)
	}
	if full != nil {
		legend.Add("full sync", full)
	}
	for _, l := range []struct {
		label string
		vs    []timeValue
		style draw.LineStyle
	}{
		{"connect max per bin", ct.ConnectMax, draw.LineStyle{Color: otherColor, Width: vg.Points(1)}},
		{"connect p50 per bin", ct.ConnectP50, draw.LineStyle{Color: color.Black, Width: vg.Points(1.5)}},
	} {
		if len(l.vs) == 0 {
			continue
		}
		xy := make(plotter.XYs, len(l.vs))
		for i, v := range l.vs {
			xy[i].X, xy[i].Y = v.At, v.Us
		}
		line, err := plotter.NewLine(xy)
		if err != nil {
			return nil, nil, err
		}
		line.LineStyle = l.style
		top.Add(line)
		legend.Add(l.label, line)
	}
	if len(ct.ConnectP50) == 0 {
		top.Title.Text += " (none opened)"
	}
	top.Y.Min, top.Y.Max = 0, ymax*1.1
	top.Y.Tick.Marker = linearTicks{}

	// Lower panel: events, one row each.
	bottom := timelineAxes("API writes, programming, errors and stale hits", "", ct.End)
	if _, _, err := ct.spans(bottom, -0.5, float64(len(churnRows))-0.5); err != nil {
		return nil, nil, err
	}
	var ticks plot.ConstantTicks
	for i, r := range churnRows {
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: r})
	}
	bottom.Y.Tick.Marker = ticks
	bottom.Y.Min, bottom.Y.Max = -0.5, float64(len(churnRows))-0.5
	addMarks := func(row string, xs []float64, style func(i int) draw.GlyphStyle) (*plotter.Scatter, error) {
		if len(xs) == 0 {
			return nil, nil
		}
		xy := make(plotter.XYs, len(xs))
		for i, x := range xs {
			xy[i].X, xy[i].Y = x, churnRow(row)
		}
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyleFunc = style
		bottom.Add(sc)
		return sc, nil
	}
	writeStyle := func(ms []timeMark) func(int) draw.GlyphStyle {
		return func(i int) draw.GlyphStyle {
			gs := draw.GlyphStyle{Color: otherColor, Radius: vg.Points(3), Shape: draw.CircleGlyph{}}
			if ms[i].Target {
				gs.Color = targetColor
			}
			if ms[i].Failed {
				gs.Shape = draw.CrossGlyph{}
				gs.Color = color.Black
			}
			return gs
		}
	}
	at := func(ms []timeMark) []float64 {
		xs := make([]float64, len(ms))
		for i, m := range ms {
			xs[i] = m.At
		}
		return xs
	}
	if _, err := addMarks("API writes", at(ct.Writes), writeStyle(ct.Writes)); err != nil {
		return nil, nil, err
	}
	if _, err := addMarks("programmed on the node", at(ct.Programmed), writeStyle(ct.Programmed)); err != nil {
		return nil, nil, err
	}
	counted := func(row string, ms []countMark, c color.Color, shape draw.GlyphDrawer) error {
		xs := make([]float64, len(ms))
		for i, m := range ms {
			xs[i] = m.At
		}
		_, err := addMarks(row, xs, func(i int) draw.GlyphStyle {
			return draw.GlyphStyle{Color: c, Radius: markRadius(ms[i].N), Shape: shape}
		})
		return err
	}
	for _, e := range []struct{ kind, row string }{{"refused", "refused"}, {"reset", "resets"}, {"timeout", "timeouts"}, {"other", "other errors"}} {
		if err := counted(e.row, ct.Errors[e.kind], color.Black, draw.BoxGlyph{}); err != nil {
			return nil, nil, err
		}
	}
	if err := counted("stale, before programmed", ct.StaleUnprogrammed, targetColor, draw.PyramidGlyph{}); err != nil {
		return nil, nil, err
	}
	if err := counted("stale, after programmed", ct.StaleProgrammed, afterColor, draw.PyramidGlyph{}); err != nil {
		return nil, nil, err
	}
	for _, e := range []struct {
		label string
		gs    draw.GlyphStyle
	}{
		{"write, target Service", draw.GlyphStyle{Color: targetColor, Radius: vg.Points(3), Shape: draw.CircleGlyph{}}},
		{"write, other Service", draw.GlyphStyle{Color: otherColor, Radius: vg.Points(3), Shape: draw.CircleGlyph{}}},
		{"write failed", draw.GlyphStyle{Color: color.Black, Radius: vg.Points(3), Shape: draw.CrossGlyph{}}},
	} {
		sc, err := plotter.NewScatter(plotter.XYs{{}})
		if err != nil {
			return nil, nil, err
		}
		sc.GlyphStyle = e.gs
		legend.Add(e.label, sc)
	}

	panels := [][]*plot.Plot{{top}, {bottom}}
	draw1 := func(dc draw.Canvas) {
		dc.SetColor(color.White)
		dc.Fill(dc.Rectangle.Path())
		pad := vg.Points(10)
		lr := legend.Rectangle(dc)
		legendW := lr.Size().X + 2*pad
		area := dc
		area.Max.X -= legendW
		area.Min.X += pad / 2
		area.Min.Y += pad / 2
		area.Max.Y -= pad
		tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Points(24), PadY: vg.Points(18), PadTop: vg.Points(4), PadRight: vg.Points(6)}
		cs := plot.Align(panels, tiles, area)
		top.Draw(cs[0][0])
		bottom.Draw(cs[1][0])
		lc := dc
		lc.Min.X = dc.Max.X - legendW + pad
		lc.Max.Y = area.Max.Y - vg.Points(22)
		legend.Draw(lc)
	}
	height := plotHeight + rowHeight
	img := vgimg.NewWith(vgimg.UseWH(plotWidth, height), vgimg.UseDPI(plotDPI))
	draw1(draw.New(img))
	var pb bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&pb); err != nil {
		return nil, nil, fmt.Errorf("encoding the churn timeline as PNG: %w", err)
	}
	svg := vgsvg.New(plotWidth, height)
	draw1(draw.New(svg))
	var sb bytes.Buffer
	if _, err := svg.WriteTo(&sb); err != nil {
		return nil, nil, fmt.Errorf("encoding the churn timeline as SVG: %w", err)
	}
	return pb.Bytes(), sb.Bytes(), nil
}
