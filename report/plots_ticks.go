package report

// Axis ticks of the report's figures.

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"gonum.org/v1/plot"
)

// serviceTicks marks every Service count of the run on a log axis,
// labelled 10,000; when full labels would touch it switches to 10k, and it
// drops the labels that still would (the tick stays).
type serviceTicks struct {
	values []int
	// compact is set for panels in a grid: narrower axes, smaller font.
	compact bool
}

// Approximate axis length and digit width in pixels at plotDPI: enough to
// keep labels apart without measuring text.
func (t serviceTicks) geometry() (axisPx, digitPx float64) {
	if t.compact {
		return 320, 8.5
	}
	return 800, 9.3
}

func (t serviceTicks) labels(min, max float64, compact bool) (ticks []plot.Tick, dropped bool) {
	axisPx, digitPx := t.geometry()
	pxPerDecade := axisPx / math.Log10(max/min)
	width := func(label string) float64 {
		w := 0.0
		for _, r := range label {
			if r == ',' || r == '.' {
				w += digitPx / 2
			} else {
				w += digitPx
			}
		}
		return w
	}
	lastV, lastW := math.Inf(1), 0.0
	for i := len(t.values) - 1; i >= 0; i-- {
		v := float64(t.values[i])
		if v < min || v > max {
			continue
		}
		tick := plot.Tick{Value: v}
		label := formatServices(t.values[i], compact)
		if math.IsInf(lastV, 1) || (math.Log10(lastV)-math.Log10(v))*pxPerDecade >= (lastW+width(label))/2+6 {
			tick.Label = label
			lastV, lastW = v, width(label)
		} else {
			dropped = true
		}
		ticks = append(ticks, tick)
	}
	return ticks, dropped
}

func (t serviceTicks) Ticks(min, max float64) []plot.Tick {
	ticks, dropped := t.labels(min, max, false)
	if dropped {
		ticks, _ = t.labels(min, max, true)
	}
	// Unlabelled minor ticks at powers of ten help reading the log scale.
	for v := 1.0; v <= max; v *= 10 {
		if v >= min && !slices.Contains(t.values, int(v)) {
			ticks = append(ticks, plot.Tick{Value: v})
		}
	}
	return ticks
}

func formatServices(n int, compact bool) string {
	if compact && n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	if compact && n >= 1000 && n%100 == 0 {
		return fmt.Sprintf("%.1fk", float64(n)/1000)
	}
	return formatCount(n)
}

// logTicks labels 1-2-5 steps of each decade on a log axis.
type logTicks struct{}

func (logTicks) Ticks(min, max float64) []plot.Tick {
	var ticks []plot.Tick
	decades := math.Log10(max / min)
	for e := math.Floor(math.Log10(min)); math.Pow(10, e) <= max; e++ {
		base := math.Pow(10, e)
		for m := 1; m < 10; m++ {
			v := base * float64(m)
			if v < min || v > max {
				continue
			}
			label := ""
			if m == 1 || (decades < 3 && (m == 2 || m == 5)) {
				label = formatTick(v)
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: label})
		}
	}
	// A narrow range (all values within one decade, as sync times often
	// are) can hold a single labelled tick, which gives the axis no scale:
	// then label every tick.
	labelled := 0
	for _, t := range ticks {
		if t.Label != "" {
			labelled++
		}
	}
	if labelled < 2 {
		for i := range ticks {
			ticks[i].Label = formatTick(ticks[i].Value)
		}
	}
	return ticks
}

// linearTicks labels about five round steps (1, 2 or 5 × 10^k) with
// thousands separators and no exponent notation, and adds unlabelled minor
// ticks in between.
type linearTicks struct{}

func (linearTicks) Ticks(min, max float64) []plot.Tick {
	if max <= min {
		return []plot.Tick{{Value: min, Label: formatTick(min)}}
	}
	raw := (max - min) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ticks []plot.Tick
	start := math.Ceil(min/step) * step
	for i := 0; ; i++ {
		v := start + float64(i)*step
		if v > max+step*1e-9 {
			break
		}
		v = math.Round(v/step) * step
		ticks = append(ticks, plot.Tick{Value: v, Label: formatTick(v)})
		if minor := v + step/2; minor < max {
			ticks = append(ticks, plot.Tick{Value: minor})
		}
	}
	return ticks
}

// formatTick writes a tick value plainly: 0.05, 2.5, 1,000.
func formatTick(v float64) string {
	if v == 0 {
		return "0"
	}
	if math.Abs(v) >= 1000 && v == math.Trunc(v) {
		return formatCount(int(v))
	}
	s := fmt.Sprintf("%.6f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}
