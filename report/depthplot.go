package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// depthPlot draws connect p01 and p50 against the rules walked: every
// valid point with a single depth, one series per mode, with the fitted
// line. Modes that walk no rules sit at 0 with their median drawn across.
func depthPlot(fits []DepthFit) (Plot, error) {
	pl := Plot{Name: "depth", Title: "Connect time vs rules walked to the target",
		Caption: "Each marker is one valid point at the depth it recorded (rules a new connection walks up to its Service's rule); lines are the across-step Theil–Sen fits (descriptive: confounded with the Service count and time); where targets were placed at two depths in each step, the headline's cost per rule is the within-step estimate instead. Modes that look Services up in a map or hash walk 0 rules: their points sit at 0, and the dashed line is their median."}
	var maxX float64
	has := false
	for _, f := range fits {
		for _, xs := range f.xs {
			for _, x := range xs {
				maxX = math.Max(maxX, x)
				has = true
			}
		}
		if f.X == "rules walked" {
			maxX = math.Max(maxX, f.MaxX)
		}
	}
	if !has {
		pl.Skipped = "no valid point recorded a depth"
		return pl, nil
	}
	if maxX == 0 {
		maxX = 1
	}
	var panels []*plot.Plot
	for _, metric := range []string{"connect p01", "connect p50"} {
		p := plot.New()
		p.Title.Text = metric
		p.Title.TextStyle.Font = sans(13)
		p.X.Label.Text = "rules walked to the target"
		p.Y.Label.Text = metric + " (µs)"
		p.X.Label.TextStyle.Font = sans(12)
		p.Y.Label.TextStyle.Font = sans(12)
		p.X.Tick.Label.Font = sans(11)
		p.Y.Tick.Label.Font = sans(11)
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.TextStyle.Font = sans(11)
		grid := plotter.NewGrid()
		grid.Vertical.Color = color.Gray{Y: 225}
		grid.Horizontal.Color = color.Gray{Y: 225}
		p.Add(grid)
		ymax := 0.0
		for i, f := range fits {
			k := -1
			for j, m := range f.Metrics {
				if m == metric {
					k = j
				}
			}
			if k < 0 || len(f.ys[k]) == 0 {
				continue
			}
			c := modeColor(f.Mode, i)
			pts := make(plotter.XYs, len(f.ys[k]))
			walks := f.X == "rules walked"
			for j := range pts {
				pts[j].X, pts[j].Y = 0, f.ys[k][j]/1e3
				if walks {
					pts[j].X = f.xs[k][j]
				}
				ymax = math.Max(ymax, pts[j].Y)
			}
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return pl, fmt.Errorf("depth plot: %w", err)
			}
			sc.GlyphStyle = draw.GlyphStyle{Color: c, Radius: vg.Points(3.5), Shape: modeGlyphs[modeRank(string(f.Mode))%len(modeGlyphs)]}
			var line plotter.XYs
			label := string(f.Mode)
			ls := draw.LineStyle{Color: c, Width: vg.Points(2)}
			switch {
			case walks && !f.Flat:
				lf := f.Fits[k]
				line = plotter.XYs{{X: 0, Y: lf.Intercept / 1e3}, {X: maxX, Y: (lf.Intercept + lf.Slope*maxX) / 1e3}}
				label = fmt.Sprintf("%s: %s ns/rule", f.Mode, signedNs(lf.Slope))
			default:
				m := median(f.ys[k]) / 1e3
				line = plotter.XYs{{X: 0, Y: m}, {X: maxX, Y: m}}
				ls.Dashes = []vg.Length{vg.Points(6), vg.Points(4)}
				if !walks {
					label = fmt.Sprintf("%s: 0 rules walked (median)", f.Mode)
				}
			}
			for _, q := range line {
				ymax = math.Max(ymax, q.Y)
			}
			l, err := plotter.NewLine(line)
			if err != nil {
				return pl, fmt.Errorf("depth plot: %w", err)
			}
			l.LineStyle = ls
			p.Add(l, sc)
			p.Legend.Add(label, l, sc)
		}
		p.X.Min, p.X.Max = -maxX*0.03, maxX*1.03
		p.Y.Min, p.Y.Max = 0, math.Max(ymax*1.25, 1)
		p.X.Tick.Marker = linearTicks{}
		p.Y.Tick.Marker = linearTicks{}
		panels = append(panels, p)
	}
	render := func(dc draw.Canvas) {
		dc.SetColor(color.White)
		dc.Fill(dc.Rectangle.Path())
		tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Points(24), PadY: vg.Points(12), PadTop: vg.Points(8), PadRight: vg.Points(10), PadLeft: vg.Points(4), PadBottom: vg.Points(4)}
		cs := plot.Align([][]*plot.Plot{panels}, tiles, dc)
		for i, p := range panels {
			p.Draw(cs[0][i])
		}
	}
	img := vgimg.NewWith(vgimg.UseWH(plotWidth, plotHeight), vgimg.UseDPI(plotDPI))
	render(draw.New(img))
	var pb bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&pb); err != nil {
		return pl, fmt.Errorf("encoding the depth plot as PNG: %w", err)
	}
	svg := vgsvg.New(plotWidth, plotHeight)
	render(draw.New(svg))
	var sb bytes.Buffer
	if _, err := svg.WriteTo(&sb); err != nil {
		return pl, fmt.Errorf("encoding the depth plot as SVG: %w", err)
	}
	pl.PNG, pl.SVG = pb.Bytes(), sb.Bytes()
	return pl, nil
}
