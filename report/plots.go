package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// Plot sizes: wide enough for a legend beside the data.
const (
	plotWidth  = 11 * vg.Inch
	plotHeight = 5.5 * vg.Inch // one row of panels; each further row adds rowHeight
	rowHeight  = 3.5 * vg.Inch
	plotDPI    = 110
)

// Plot is one figure of the report.
type Plot struct {
	// Name is the file name without extension (latency → latency.png).
	Name    string
	Title   string
	Caption string
	// PNG and SVG are the rendered figure.
	PNG []byte
	SVG []byte
	// Skipped says why the figure was not drawn (no data); PNG and SVG are
	// then empty.
	Skipped string
}

// modeColors follow the Okabe-Ito palette, readable by colour-blind
// readers and distinct in greyscale print.
var modeColors = map[scenarios.Mode]color.Color{
	scenarios.ModeIPTables: color.RGBA{R: 0xD5, G: 0x5E, B: 0x00, A: 0xFF}, // vermillion
	scenarios.ModeIPVS:     color.RGBA{R: 0x00, G: 0x72, B: 0xB2, A: 0xFF}, // blue
	scenarios.ModeNFTables: color.RGBA{R: 0x00, G: 0x9E, B: 0x73, A: 0xFF}, // bluish green
	scenarios.ModeExternal: color.RGBA{R: 0xCC, G: 0x79, B: 0xA7, A: 0xFF}, // reddish purple
}

var otherColors = []color.Color{
	color.RGBA{R: 0xE6, G: 0x9F, B: 0x00, A: 0xFF},
	color.RGBA{R: 0x56, G: 0xB4, B: 0xE9, A: 0xFF},
	color.RGBA{R: 0x00, G: 0x00, B: 0x00, A: 0xFF},
}

func modeColor(m scenarios.Mode, i int) color.Color {
	if c, ok := modeColors[m]; ok {
		return c
	}
	return otherColors[i%len(otherColors)]
}

// Styles: dashes tell connection variants apart within one mode's
// colour; glyphs tell modes apart.
var (
	variantDashes = [][]vg.Length{
		nil,
		{vg.Points(8), vg.Points(4)},
		{vg.Points(2), vg.Points(3)},
		{vg.Points(8), vg.Points(3), vg.Points(2), vg.Points(3)},
	}
	// iptables, ipvs, nftables, anything else.
	modeGlyphs = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.PyramidGlyph{}, draw.BoxGlyph{}, draw.CrossGlyph{}}
)

// series is one line of a figure: a value (with its confidence interval)
// per Service count.
type series struct {
	label   string
	mode    scenarios.Mode
	variant int
	xs      []float64
	ys      []float64
	lo, hi  []float64 // CI bounds; equal to ys where there is none
}

func (s *series) add(x float64, sum Summary) {
	s.xs = append(s.xs, x)
	s.ys = append(s.ys, sum.Mean)
	s.lo = append(s.lo, sum.CILo)
	s.hi = append(s.hi, sum.CIHi)
}

func (s *series) hasErrorBars() bool {
	for i := range s.ys {
		if s.hi[i] > s.lo[i] {
			return true
		}
	}
	return false
}

type seriesXY struct{ s *series }

func (x seriesXY) Len() int                    { return len(x.s.xs) }
func (x seriesXY) XY(i int) (float64, float64) { return x.s.xs[i], x.s.ys[i] }
func (x seriesXY) YError(i int) (float64, float64) {
	return x.s.ys[i] - x.s.lo[i], x.s.hi[i] - x.s.ys[i]
}

// seriesKey is what separates lines in a "value vs Services" figure.
type seriesKey struct {
	mode    scenarios.Mode
	rpc     int
	targets scenarios.Targets
}

// seriesBy builds one series per mode × connection variant × targets from
// the groups, with value(g) summarizing the group (ok false to leave the
// step out). Labels name only the dimensions that vary.
func seriesBy(groups []*group, withRPC bool, value func(g *group) (Summary, bool)) []*series {
	keys := map[seriesKey]*series{}
	var order []seriesKey
	rpcs := map[int]bool{}
	targets := map[scenarios.Targets]bool{}
	for _, g := range groups {
		rpcs[g.Key.RequestsPerConn] = true
		targets[g.Key.Targets] = true
	}
	var rpcList []int
	for r := range rpcs {
		rpcList = append(rpcList, r)
	}
	sort.Slice(rpcList, func(i, j int) bool { return rpcLess(rpcList[i], rpcList[j]) })
	rpcIndex := map[int]int{}
	for i, r := range rpcList {
		rpcIndex[r] = i
	}
	var targetList []string
	for t := range targets {
		targetList = append(targetList, string(t))
	}
	sort.Strings(targetList)
	targetIndex := map[scenarios.Targets]int{}
	for i, t := range targetList {
		targetIndex[scenarios.Targets(t)] = i
	}
	for _, g := range groups {
		k := seriesKey{mode: g.Key.Mode, targets: g.Key.Targets}
		if withRPC {
			k.rpc = g.Key.RequestsPerConn
		}
		if g.Key.Services < 1 {
			continue // a log axis cannot show it; the tables still do
		}
		sum, ok := value(g)
		if !ok || sum.N == 0 {
			continue
		}
		s, ok := keys[k]
		if !ok {
			parts := []string{string(k.mode)}
			variant := targetIndex[k.targets]
			if withRPC && len(rpcList) > 1 {
				parts = append(parts, shortRPC(k.rpc))
				variant = rpcIndex[k.rpc]*len(targetList) + targetIndex[k.targets]
			}
			if len(targetList) > 1 {
				parts = append(parts, "targets "+string(k.targets))
			}
			s = &series{label: strings.Join(parts, ", "), mode: k.mode, variant: variant}
			keys[k] = s
			order = append(order, k)
		}
		s.add(float64(g.Key.Services), sum)
	}
	out := make([]*series, 0, len(order))
	for _, k := range order {
		s := keys[k]
		sortSeries(s)
		out = append(out, s)
	}
	return out
}

func sortSeries(s *series) {
	idx := make([]int, len(s.xs))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return s.xs[idx[a]] < s.xs[idx[b]] })
	perm := func(v []float64) []float64 {
		out := make([]float64, len(v))
		for i, j := range idx {
			out[i] = v[j]
		}
		return out
	}
	s.xs, s.ys, s.lo, s.hi = perm(s.xs), perm(s.ys), perm(s.lo), perm(s.hi)
}

// panel is one set of axes in a figure.
type panel struct {
	title  string
	ylabel string
	series []*series
	logY   bool
}

// figure is a titled grid of panels sharing one legend.
type figure struct {
	title    string
	services []int // x tick positions
	cols     int
	panels   []panel
}

func (f *figure) empty() bool {
	for _, p := range f.panels {
		for _, s := range p.series {
			if len(s.xs) > 0 {
				return false
			}
		}
	}
	return true
}

func lineStyle(s *series, i int) (draw.LineStyle, draw.GlyphStyle) {
	c := modeColor(s.mode, i)
	ls := draw.LineStyle{Color: c, Width: vg.Points(2), Dashes: variantDashes[s.variant%len(variantDashes)]}
	// Modes differ in glyph as well as colour, so a mode hidden under
	// another's line still shows, and greyscale prints stay readable.
	gs := draw.GlyphStyle{Color: c, Radius: vg.Points(4), Shape: modeGlyphs[modeRank(string(s.mode))%len(modeGlyphs)]}
	return ls, gs
}

// buildPanel makes the gonum plot of one panel, adding legend entries for
// series it has not seen yet.
func buildPanel(f *figure, pn panel, legend *plot.Legend, seen map[string]bool) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = pn.title
	p.Title.TextStyle.Font = sans(13)
	// Reserves the title's room; render draws the visible title.
	p.Title.TextStyle.Color = color.Transparent
	p.X.Label.Text = "Services (log scale)"
	p.Y.Label.Text = pn.ylabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = serviceTicks{values: f.services, compact: f.cols > 1}
	p.X.Label.TextStyle.Font = sans(12)
	p.Y.Label.TextStyle.Font = sans(12)
	p.X.Tick.Label.Font = sans(11)
	if f.cols > 1 {
		p.X.Tick.Label.Font = sans(10)
	}
	p.Y.Tick.Label.Font = sans(11)
	grid := plotter.NewGrid()
	grid.Vertical.Color = color.Gray{Y: 225}
	grid.Horizontal.Color = color.Gray{Y: 225}
	p.Add(grid)

	ymin, ymax := math.Inf(1), math.Inf(-1)
	for i, s := range pn.series {
		if len(s.xs) == 0 {
			continue
		}
		ls, gs := lineStyle(s, i)
		xy := seriesXY{s}
		if pn.logY {
			// A log axis cannot show zero; clamp interval ends to the data.
			for j := range s.lo {
				if s.lo[j] <= 0 {
					s.lo[j] = s.ys[j]
				}
			}
		}
		line, err := plotter.NewLine(xy)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", f.title, s.label, err)
		}
		line.LineStyle = ls
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", f.title, s.label, err)
		}
		sc.GlyphStyle = gs
		p.Add(line, sc)
		if s.hasErrorBars() {
			eb, err := plotter.NewYErrorBars(xy)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", f.title, s.label, err)
			}
			eb.LineStyle = draw.LineStyle{Color: ls.Color, Width: vg.Points(1.2)}
			eb.CapWidth = vg.Points(7)
			p.Add(eb)
		}
		for j := range s.ys {
			ymin = math.Min(ymin, s.lo[j])
			ymax = math.Max(ymax, s.hi[j])
		}
		if !seen[s.label] {
			seen[s.label] = true
			legend.Add(s.label, line, sc)
		}
	}
	// Room at both ends of the log x axis, so the first and last steps
	// do not sit on the frame.
	if len(f.services) > 0 {
		lo, hi := float64(f.services[0]), float64(f.services[len(f.services)-1])
		p.X.Min, p.X.Max = lo/1.6, hi*1.6
	}
	if pn.logY {
		if ymin > 0 && !math.IsInf(ymin, 0) {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = logTicks{}
			p.Y.Min, p.Y.Max = ymin/1.5, ymax*1.5
		}
	} else if !math.IsInf(ymin, 0) {
		// Costs start at zero, so the eye reads ratios right.
		p.Y.Min = math.Min(0, ymin)
		p.Y.Max = ymax * 1.08
		if p.Y.Max <= p.Y.Min {
			p.Y.Max = p.Y.Min + 1
		}
		p.Y.Tick.Marker = linearTicks{}
	}
	return p, nil
}

// render draws the figure to PNG and SVG: a grid of panels on the left, the
// legend in its own column on the right, so it never covers data.
func (f *figure) render() (pngData, svgData []byte, err error) {
	legend := plot.NewLegend()
	legend.TextStyle.Font = sans(11)
	legend.ThumbnailWidth = vg.Points(36)
	legend.Padding = vg.Points(5)
	legend.Top, legend.Left = true, true
	seen := map[string]bool{}
	rows := (len(f.panels) + f.cols - 1) / f.cols
	grid := make([][]*plot.Plot, rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, f.cols)
	}
	for i, pn := range f.panels {
		p, err := buildPanel(f, pn, &legend, seen)
		if err != nil {
			return nil, nil, err
		}
		grid[i/f.cols][i%f.cols] = p
	}
	for r := range grid {
		for c := range grid[r] {
			if grid[r][c] == nil {
				grid[r][c] = plot.New()
				grid[r][c].HideAxes()
			}
		}
	}

	draw1 := func(dc draw.Canvas) {
		// White background (SVG is transparent otherwise).
		dc.SetColor(color.White)
		dc.Fill(dc.Rectangle.Path())
		pad := vg.Points(10)
		titleStyle := plot.New().Title.TextStyle
		titleStyle.Font = sans(16)
		titleStyle.XAlign = draw.XCenter
		titleStyle.YAlign = draw.YTop
		titleH := titleStyle.Rectangle(f.title).Size().Y

		lr := legend.Rectangle(dc)
		legendW := lr.Size().X + 2*pad
		area := dc
		area.Max.Y -= titleH + 2*pad
		area.Max.X -= legendW
		area.Min.X += pad / 2
		area.Min.Y += pad / 2
		tiles := draw.Tiles{Rows: rows, Cols: f.cols, PadX: vg.Points(24), PadY: vg.Points(18), PadTop: vg.Points(4), PadRight: vg.Points(6)}
		canvases := plot.Align(grid, tiles, area)
		for r := range grid {
			for c := range grid[r] {
				p := grid[r][c]
				p.Draw(canvases[r][c])
				// gonum draws a title at the top of its tile, which Align
				// shifts per panel; draw it just above the data area so
				// the titles of a row line up.
				if p.Title.Text != "" {
					da := p.DataCanvas(canvases[r][c])
					sty := p.Title.TextStyle
					sty.Color = color.Black
					sty.XAlign, sty.YAlign = draw.XCenter, draw.YBottom
					da.FillText(sty, vg.Point{X: (da.Min.X + da.Max.X) / 2, Y: da.Max.Y + vg.Points(8)}, p.Title.Text)
				}
			}
		}
		lc := dc
		lc.Min.X = dc.Max.X - legendW + pad
		lc.Max.Y = area.Max.Y - vg.Points(22)
		legend.Draw(lc)
		// The title last: plots paint their own background.
		dc.FillText(titleStyle, vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: dc.Max.Y - pad}, f.title)
	}

	height := plotHeight + vg.Length(rows-1)*rowHeight
	img := vgimg.NewWith(vgimg.UseWH(plotWidth, height), vgimg.UseDPI(plotDPI))
	draw1(draw.New(img))
	var pb bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&pb); err != nil {
		return nil, nil, fmt.Errorf("encoding %s as PNG: %w", f.title, err)
	}
	// Fonts are not embedded (that would add 500 kB per file): viewers
	// without Liberation Sans substitute a similar sans-serif.
	svg := vgsvg.New(plotWidth, height)
	draw1(draw.New(svg))
	var sb bytes.Buffer
	if _, err := svg.WriteTo(&sb); err != nil {
		return nil, nil, fmt.Errorf("encoding %s as SVG: %w", f.title, err)
	}
	return pb.Bytes(), sb.Bytes(), nil
}

// buildPlots draws the report's figures from valid points.
func buildPlots(d *Data) ([]Plot, error) {
	var services []int
	for _, n := range d.Run.Scenario.Spec.Services {
		if n >= 1 {
			services = append(services, n)
		}
	}
	for _, g := range d.groups {
		if g.Key.Services >= 1 {
			services = append(services, g.Key.Services)
		}
	}
	services = sortedInts(services)
	var plots []Plot
	add := func(name, title, caption string, f *figure) error {
		pl := Plot{Name: name, Title: title, Caption: caption}
		if f.empty() {
			pl.Skipped = "no valid points measure this"
			plots = append(plots, pl)
			return nil
		}
		png, svg, err := f.render()
		if err != nil {
			return err
		}
		pl.PNG, pl.SVG = png, svg
		plots = append(plots, pl)
		return nil
	}
	// summaryOf summarizes a metric of the table over a group's valid
	// points that measure it.
	summaryOf := func(name string) func(g *group) (Summary, bool) {
		m := metric(name)
		return func(g *group) (Summary, bool) {
			vs := g.values(m)
			return Summarize(vs), len(vs) > 0
		}
	}
	ciNote := "Points are means over valid repetitions; error bars are 95% confidence intervals of the mean (Student's t) where there are several."

	// (1) The classic chart.
	lat := &figure{title: "Mean round-trip latency vs number of Services", services: services, cols: 1, panels: []panel{{
		ylabel: "mean latency (µs)",
		series: seriesBy(d.groups, true, summaryOf("latency")),
	}}}
	if err := add("latency", lat.title, "Latency is measured from each request's intended send time (open loop, coordinated omission corrected). "+ciNote, lat); err != nil {
		return nil, err
	}

	// (2) Client-node CPU.
	cpu := &figure{title: "Client-node CPU vs number of Services", services: services, cols: 1, panels: []panel{{
		ylabel: "CPU (cores)",
		series: seriesBy(d.groups, true, summaryOf("cpu")),
	}}}
	if err := add("cpu", cpu.title, "Busy time of "+nodeCPUCovers(d.Points)+", in cores. "+ciNote, cpu); err != nil {
		return nil, err
	}

	// (2b) The SYN path's CPU beside the node's, where the probe ran.
	if f, caption, ok := dataplaneFigure(d, services); ok {
		if err := add("dataplane-cpu", "The SYN path's CPU vs number of Services", caption, f); err != nil {
			return nil, err
		}
	}

	// (3) First-packet chart: connect-time percentiles, from the connection
	// variant that opens the most connections.
	connRPC, ok := connectVariant(d.groups)
	connGroups := filterGroups(d.groups, func(g *group) bool { return g.Key.RequestsPerConn == connRPC })
	conn := &figure{title: "TCP connect time (first packet) — " + describeRPC(connRPC), services: services, cols: 2}
	for _, pc := range []struct{ name, metric string }{
		{"p01", "connect-p01"}, {"p50", "connect"}, {"p90", "connect-p90"}, {"p99", "connect-p99"},
	} {
		var ss []*series
		if ok {
			ss = seriesBy(connGroups, false, summaryOf(pc.metric))
		}
		conn.panels = append(conn.panels, panel{title: pc.name + " connect time", ylabel: pc.name + " (µs)", series: ss})
	}
	if err := add("connect", "TCP connect time percentiles vs number of Services",
		"Connect time is where a new connection's first packet walks the dataplane's rules; each panel is one percentile of the per-point connect-time distribution. "+ciNote, conn); err != nil {
		return nil, err
	}

	// (4) kube-proxy's programming cost, over the step's valid points:
	// an invalid point (kube-proxy restarted, another mode in effect) may
	// have seen other rules, and the report promises invalid points stay
	// out of every plot.
	stepGroups := stepGroupsOf(d)
	sync := &figure{title: "kube-proxy sync duration and time to programmed vs number of Services", services: services, cols: 2, panels: []panel{
		{title: "last sync duration", ylabel: "seconds (log scale)", logY: true,
			series: seriesBy(stepGroups, false, summaryOf("sync"))},
		{title: "time to programmed", ylabel: "seconds (log scale)", logY: true,
			series: seriesBy(stepGroups, false, summaryOf("time-to-programmed"))},
	}}
	if err := add("sync", "kube-proxy sync duration and time to programmed",
		"Left: kube-proxy's last sync duration (its own metric) at each step. Right: time from the step's last API write until a connection to the last Service succeeds.", sync); err != nil {
		return nil, err
	}

	// (5) Rule count.
	rules := &figure{title: "Dataplane rules vs number of Services", services: services, cols: 1, panels: []panel{{
		ylabel: "rules (log scale)", logY: true,
		series: seriesBy(stepGroups, false, func(g *group) (Summary, bool) {
			var vs []float64
			for _, p := range g.Valid {
				if p.Rules.Total > 0 {
					vs = append(vs, float64(p.Rules.Total))
				}
			}
			return Summarize(vs), len(vs) > 0
		}),
	}}}
	if err := add("rules", rules.title, "iptables: rules in the nat table; nftables: rules in kube-proxy's table; IPVS: real servers.", rules); err != nil {
		return nil, err
	}

	// (6) Connect time against the target's depth, with the fits.
	dp, err := depthPlot(DepthFits(d))
	if err != nil {
		return nil, err
	}
	plots = append(plots, dp)

	// (7) One churn point's timeline, in runs measured under churn.
	tp, ok, err := churnTimelinePlot(d)
	if err != nil {
		return nil, err
	}
	if ok {
		plots = append(plots, tp)
	}
	return plots, nil
}

// connectVariant picks the connection variant that opens the most
// connections (1 before 10 before 100; persistent never).
func connectVariant(groups []*group) (int, bool) {
	best, found := 0, false
	for _, g := range groups {
		rpc := g.Key.RequestsPerConn
		if rpc == 0 {
			continue
		}
		hasConnects := false
		for _, p := range g.Valid {
			if p.Connect.Count > 0 {
				hasConnects = true
			}
		}
		if hasConnects && (!found || rpc < best) {
			best, found = rpc, true
		}
	}
	return best, found
}

func filterGroups(groups []*group, keep func(g *group) bool) []*group {
	var out []*group
	for _, g := range groups {
		if keep(g) {
			out = append(out, g)
		}
	}
	return out
}

// stepGroupsOf groups every point by mode, targets and Service count,
// across connection variants: the step-level facts (rules, syncs).
func stepGroupsOf(d *Data) []*group {
	byKey := map[runs.Key]*group{}
	var out []*group
	for i := range d.Points {
		p := &d.Points[i]
		k := runs.Key{Mode: p.Mode, Services: p.Services, Targets: p.Targets}
		g, ok := byKey[k]
		if !ok {
			g = &group{Key: k}
			byKey[k] = g
			out = append(out, g)
		}
		g.Points = append(g.Points, p)
		if p.Valid {
			g.Valid = append(g.Valid, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return keyLess(out[i].Key, out[j].Key) })
	return out
}

// writePlots writes every drawn figure to dir/plots as PNG and SVG.
func writePlots(dir string, plots []Plot) error {
	pd := filepath.Join(dir, runs.PlotsDir)
	if err := os.MkdirAll(pd, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", pd, err)
	}
	for _, p := range plots {
		if p.Skipped != "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(pd, p.Name+".png"), p.PNG, 0o644); err != nil {
			return fmt.Errorf("writing plot: %w", err)
		}
		if err := os.WriteFile(filepath.Join(pd, p.Name+".svg"), p.SVG, 0o644); err != nil {
			return fmt.Errorf("writing plot: %w", err)
		}
	}
	return nil
}

// sans is Liberation Sans (embedded in gonum/plot) at size points: easier
// to read on screen than the default serif.
func sans(size vg.Length) font.Font {
	f := font.From(plot.DefaultFont, size)
	f.Variant = "Sans"
	return f
}
