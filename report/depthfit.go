package report

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// The cost per rule walked. In iptables mode a new connection's first
// packet walks nat KUBE-SERVICES until its Service's rule matches, so its
// cost grows with the target's depth, which kube-proxy draws at random at
// every sync. Fitting cost against the depth each point recorded gives a
// figure that does not depend on where kube-proxy put the target: two
// runs can agree on it even when their curves against the number of
// Services do not.

// FitMethod says how slopes are estimated.
const FitMethod = "within a step where targets were placed at two depths: the deep−shallow contrasts at the same step and repetition, weighted by Δrules², with a Student-t 95% CI over the independent unit; across steps otherwise: Theil–Sen (median of pairwise slopes) with a 95% percentile bootstrap CI over whole Service steps (2,000 resamples, fixed seed)"

// bootstrapResamples is the number of bootstrap resamples of a fit.
const bootstrapResamples = 2000

// LineFit is a robust straight-line fit y = Intercept + Slope·x.
type LineFit struct {
	N         int     `json:"n"`
	Slope     float64 `json:"slope"`
	Intercept float64 `json:"intercept"`
	// SlopeLo and SlopeHi bound the slope at Confidence (percentile
	// bootstrap); HasCI is false when too few resamples had two distinct
	// x values.
	SlopeLo float64 `json:"slopeLo"`
	SlopeHi float64 `json:"slopeHi"`
	HasCI   bool    `json:"hasCI"`
	// boot holds the resampled (slope, intercept) pairs, for predictions.
	boot [][2]float64
}

// TheilSen returns the median of the slopes between every pair of points
// with distinct x, and the median of y - slope·x as the intercept. ok is
// false when fewer than two distinct x values exist.
func TheilSen(xs, ys []float64) (slope, intercept float64, ok bool) {
	var slopes []float64
	for i := range xs {
		for j := i + 1; j < len(xs); j++ {
			if dx := xs[j] - xs[i]; dx != 0 {
				slopes = append(slopes, (ys[j]-ys[i])/dx)
			}
		}
	}
	if len(slopes) == 0 {
		return 0, 0, false
	}
	slope = median(slopes)
	res := make([]float64, len(xs))
	for i := range xs {
		res[i] = ys[i] - slope*xs[i]
	}
	return slope, median(res), true
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// FitLine fits y against x with TheilSen and bounds the slope with a
// percentile bootstrap over the points. The seed is fixed so that a
// report redrawn from the same points says the same thing. ok is false
// when x does not vary.
func FitLine(xs, ys []float64) (LineFit, bool) { return FitLineBlocks(xs, ys, nil) }

// FitLineBlocks is FitLine with a bootstrap that resamples whole blocks:
// points with the same block label are drawn together (nil: every point
// its own block). Points that share a block of time share its effect, so
// resampling them one by one would understate the spread.
func FitLineBlocks(xs, ys []float64, blocks []int) (LineFit, bool) {
	f := LineFit{N: len(xs)}
	s, b, ok := TheilSen(xs, ys)
	if !ok {
		return f, false
	}
	f.Slope, f.Intercept = s, b
	var members [][]int
	at := map[int]int{}
	for i := range xs {
		lbl := i
		if blocks != nil {
			lbl = blocks[i]
		}
		k, seen := at[lbl]
		if !seen {
			k = len(members)
			at[lbl] = k
			members = append(members, nil)
		}
		members[k] = append(members[k], i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var bx, by []float64
	var slopes []float64
	for range bootstrapResamples {
		bx, by = bx[:0], by[:0]
		for range members {
			for _, k := range members[rng.IntN(len(members))] {
				bx, by = append(bx, xs[k]), append(by, ys[k])
			}
		}
		if s, b, ok := TheilSen(bx, by); ok {
			slopes = append(slopes, s)
			f.boot = append(f.boot, [2]float64{s, b})
		}
	}
	if len(slopes) >= bootstrapResamples/2 {
		sort.Float64s(slopes)
		f.SlopeLo = quantileSorted(slopes, (1-Confidence)/2)
		f.SlopeHi = quantileSorted(slopes, 1-(1-Confidence)/2)
		f.HasCI = true
	}
	return f, true
}

// Predict returns the fitted value at x and its bootstrap interval.
func (f LineFit) Predict(x float64) (est, lo, hi float64, hasCI bool) {
	est = f.Intercept + f.Slope*x
	if !f.HasCI {
		return est, est, est, false
	}
	vs := make([]float64, len(f.boot))
	for i, sb := range f.boot {
		vs[i] = sb[1] + sb[0]*x
	}
	sort.Float64s(vs)
	return est, quantileSorted(vs, (1-Confidence)/2), quantileSorted(vs, 1-(1-Confidence)/2), true
}

// quantileSorted is the q-quantile of sorted values, linearly
// interpolated.
func quantileSorted(s []float64, q float64) float64 {
	if len(s) == 1 {
		return s[0]
	}
	pos := q * float64(len(s)-1)
	i := int(math.Floor(pos))
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

// depthMetric is a cost fitted against the depth, in ns per rule.
type depthMetric struct {
	name string // "connect p50"
	// optional metrics are left out of a fit when no point has them.
	optional bool
	// value returns the cost of p in nanoseconds.
	value func(p *runs.Point) (float64, bool)
}

var depthMetrics = []depthMetric{
	{"kernel time to first packet p50", true, inNs(metric("first-packet"))},
	{"kernel time to first packet p01", true, inNs(metric("first-packet-p01"))},
	// A control: the way back walks none of kube-proxy's Service rules.
	{returnDepthName, true, inNs(metric("first-packet-return"))},
	{"connect p01", false, inNs(metric("connect-p01"))},
	{"connect p50", false, inNs(metric("connect"))},
	{cpuPerRequestName, false, metric("cpu-per-request").Value},
}

// returnDepthName is how the depth fits name the way back's p50.
const returnDepthName = "kernel SYN-ACK way back p50 (control: no rule runs on it)"

// cpuPerRequestName is how the depth fits name client-node CPU per
// request.
const cpuPerRequestName = "client-node CPU per request"

// inNs reads a metric in µs as nanoseconds.
func inNs(m Metric) func(p *runs.Point) (float64, bool) {
	return func(p *runs.Point) (float64, bool) {
		v, ok := m.Value(p)
		return v * 1e3, ok
	}
}

// DepthFit is one mode's costs fitted against the rules a new connection
// walks.
type DepthFit struct {
	Mode            scenarios.Mode `json:"mode"`
	RequestsPerConn int            `json:"requestsPerConn"`
	// X names the fit's x: "rules walked", or for a mode where every
	// depth is 0 (a map or hash lookup) "Services", so that its slope
	// still says what each Service in the table adds.
	X string `json:"x"`
	// Points is how many valid points with a single depth went in; Left
	// how many valid points were left out because the chain was reordered
	// during their window.
	Points int `json:"points"`
	Left   int `json:"left"`
	// MaxX is the deepest position at the largest step: the chain's
	// length there (minus the nodeports rule), or the largest step.
	MaxX     float64 `json:"maxX"`
	Services int     `json:"services"`
	// Steps is how many Service steps the points cover: the bootstrap's
	// unit.
	Steps   int       `json:"steps"`
	Metrics []string  `json:"metrics"`
	Fits    []LineFit `json:"fits"`
	// Flat is set when no fit was possible because x did not vary; Fits
	// then hold only N.
	Flat bool `json:"flat"`
	// points are the data, for the plot: x and each metric's y in ns.
	xs [][]float64
	ys [][]float64
}

// DepthFits fits, per mode, connect p01, connect p50 and CPU per new
// connection against the rules walked, over the valid points of the
// connection variant that opens the most connections (all placements and
// steps together: the spread of depths is what the fit needs). Points
// whose depth changed during the window are left out.
func DepthFits(d *Data) []DepthFit {
	rpc, ok := connectVariant(d.groups)
	if !ok {
		return nil
	}
	byMode := map[scenarios.Mode][]*runs.Point{}
	left := map[scenarios.Mode]int{}
	var modes []scenarios.Mode
	for i := range d.Points {
		p := &d.Points[i]
		if !p.Valid || p.RequestsPerConn != rpc || p.Depth == nil || p.Connect.Count == 0 {
			continue
		}
		if _, seen := byMode[p.Mode]; !seen {
			modes = append(modes, p.Mode)
			byMode[p.Mode] = nil
		}
		if _, ok := p.RulesWalked(); !ok {
			left[p.Mode]++
			continue
		}
		byMode[p.Mode] = append(byMode[p.Mode], p)
	}
	sort.SliceStable(modes, func(i, j int) bool { return modeRank(string(modes[i])) < modeRank(string(modes[j])) })
	var out []DepthFit
	for _, m := range modes {
		pts := byMode[m]
		f := DepthFit{Mode: m, RequestsPerConn: rpc, X: "rules walked", Points: len(pts), Left: left[m]}
		if len(pts) == 0 {
			out = append(out, f)
			continue
		}
		xOf := func(p *runs.Point) float64 { w, _ := p.RulesWalked(); return w }
		var maxDepth float64
		stepSet := map[int]bool{}
		for _, p := range pts {
			stepSet[p.Services] = true
			maxDepth = math.Max(maxDepth, xOf(p))
			f.Services = max(f.Services, p.Services)
		}
		f.Steps = len(stepSet)
		if maxDepth == 0 {
			// A lookup, not a walk: fit against the table's size instead.
			f.X = "Services"
			xOf = func(p *runs.Point) float64 { return float64(p.Services) }
			f.MaxX = float64(f.Services)
		} else {
			for _, p := range pts {
				if p.Services == f.Services {
					f.MaxX = math.Max(f.MaxX, float64(deepestPosition(p)))
				}
			}
		}
		for _, dm := range depthMetrics {
			var xs, ys []float64
			var blocks []int
			for _, p := range pts {
				if y, ok := dm.value(p); ok {
					xs = append(xs, xOf(p))
					ys = append(ys, y)
					// A step's points share its block of time (order:
					// modes) and its Service count: resampled together.
					blocks = append(blocks, p.Services)
				}
			}
			if len(xs) == 0 && dm.optional {
				// Not measured in this run (no kernel probe).
				continue
			}
			lf, ok := FitLineBlocks(xs, ys, blocks)
			if !ok {
				f.Flat = true
			}
			f.Metrics = append(f.Metrics, dm.name)
			f.Fits = append(f.Fits, lf)
			f.xs, f.ys = append(f.xs, xs), append(f.ys, ys)
		}
		out = append(out, f)
	}
	return out
}

// deepestPosition is the depth of the last Service rule of p's chain: its
// length less the nodeports rule kube-proxy keeps at the end.
func deepestPosition(p *runs.Point) int {
	n := p.Depth.Before.ChainLength
	if n == 0 {
		n = p.Rules.ChainLength
	}
	if n > 1 {
		n--
	}
	return max(n, p.Depth.Before.Max)
}

// nsPer formats a slope in ns per unit with its CI.
func nsPer(f LineFit) string {
	if !f.HasCI {
		return fmt.Sprintf("%s ns (no CI)", signedNs(f.Slope))
	}
	return fmt.Sprintf("%s ns (95%% CI %s to %s)", signedNs(f.Slope), signedNs(f.SlopeLo), signedNs(f.SlopeHi))
}

func signedNs(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 1:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// fitOf returns f's fit of the named metric.
func (f DepthFit) fitOf(name string) (LineFit, bool) {
	for i, m := range f.Metrics {
		if m == name {
			return f.Fits[i], !f.Flat
		}
	}
	return LineFit{}, false
}

// Sentence is the fit's headline statement.
func (f DepthFit) Sentence() string {
	variant := describeRPC(f.RequestsPerConn)
	if f.Points == 0 {
		return fmt.Sprintf("%s: no valid point with a single recorded depth (%s) to fit.", f.Mode, variant)
	}
	p01, ok1 := f.fitOf("connect p01")
	p50, ok2 := f.fitOf("connect p50")
	cpu, ok3 := f.fitOf(cpuPerRequestName)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Sprintf("%s: every point sat at one %s (%d points, %s), so no slope can be fitted; place targets at different depths (deepest and shallowest) or measure several steps.",
			f.Mode, strings.TrimSuffix(f.X, "s"), f.Points, variant)
	}
	var b strings.Builder
	kernel := ""
	if kt, ok := f.fitOf("kernel time to first packet p50"); ok {
		kernel = nsPer(kt) + " to the kernel time to first packet (p50), "
	}
	if rt, ok := f.fitOf(returnDepthName); ok {
		kernel += nsPer(rt) + " to the kernel SYN-ACK way back (p50; a control: no rule runs on it), "
	}
	if f.X == "rules walked" {
		fmt.Fprintf(&b, "%s, across steps: each rule ahead of the target adds %s%s to connect p50, %s to connect p01 and %s of client-node CPU per request",
			f.Mode, kernel, nsPer(p50), nsPer(p01), nsPer(cpu))
		pe, plo, phi, _ := p50.Predict(f.MaxX)
		ce, clo, chi, _ := cpu.Predict(f.MaxX)
		fmt.Fprintf(&b, "; at the deepest position of the largest step (%s rules walked at %s Services) that predicts a connect p50 of %.1f µs (%.1f to %.1f) and %.1f µs (%.1f to %.1f) of client-node CPU per request",
			formatCount(int(f.MaxX)), formatCount(f.Services), pe/1e3, plo/1e3, phi/1e3, ce/1e3, clo/1e3, chi/1e3)
	} else {
		fmt.Fprintf(&b, "%s: 0 rules walked at every point (a lookup, not a walk); against the number of Services, each Service adds %s%s to connect p50, %s to connect p01 and %s of client-node CPU per request",
			f.Mode, kernel, nsPer(p50), nsPer(p01), nsPer(cpu))
	}
	fmt.Fprintf(&b, " (descriptive (confounded with the Service count and time): one placement per step, so the slope is fitted across steps, which also differ in Service count and in when they ran; CI over %d whole Service steps; %d valid points, %s", f.Steps, f.Points, variant)
	if f.Left > 0 {
		fmt.Fprintf(&b, "; %d left out: the chain was reordered during their window", f.Left)
	}
	b.WriteString(").")
	return b.String()
}

// depthFindings turns the fits into headline findings: a mode's
// within-step contrasts where its targets were placed at two depths, the
// across-step fit otherwise. Both are descriptive (their sentences say
// so): 95% intervals outside any tested family.
func depthFindings(d *Data) []Finding {
	var out []Finding
	within := map[scenarios.Mode]bool{}
	for _, c := range StepContrasts(d) {
		within[c.Mode] = true
		out = append(out, Finding{Kind: FindingDepth, Text: c.Sentence()})
	}
	for _, f := range DepthFits(d) {
		if within[f.Mode] {
			continue
		}
		out = append(out, Finding{Kind: FindingDepth, Text: f.Sentence()})
	}
	return out
}

// depthCell formats a point's depth for the tables.
func depthCell(p *runs.Point) string {
	d := p.Depth
	switch {
	case d == nil:
		return "—"
	case d.Changed:
		return fmt.Sprintf("%s→%s (reordered)", depthValue(d.Before), depthValue(d.After))
	}
	return depthValue(d.Before)
}

func depthValue(r runs.DepthReading) string {
	if r.Min != r.Max {
		return fmt.Sprintf("%s (%s–%s)", formatCount(int(math.Round(r.Mean))), formatCount(r.Min), formatCount(r.Max))
	}
	return formatCount(r.Min)
}

// groupDepth summarizes the depths of a group's valid points: "1,836",
// "6–1,998" when the repetitions differ, "—" when none was read.
func groupDepth(g *group) string {
	lo, hi, n := math.Inf(1), math.Inf(-1), 0
	changed := 0
	for _, p := range g.Valid {
		w, ok := p.RulesWalked()
		if !ok {
			if p.Depth != nil {
				changed++
			}
			continue
		}
		lo, hi, n = math.Min(lo, w), math.Max(hi, w), n+1
	}
	s := "—"
	switch {
	case n == 0:
	case lo == hi:
		s = formatCount(int(math.Round(lo)))
	default:
		s = formatCount(int(math.Round(lo))) + "–" + formatCount(int(math.Round(hi)))
	}
	if changed > 0 {
		s += fmt.Sprintf(" (+%d reordered)", changed)
	}
	return s
}

// depthMethodology says how the depth was read and what the placements
// did.
func depthMethodology(ts scenarios.Placements) string {
	var placements []string
	for _, t := range ts {
		placements = append(placements, placementMethod(t))
	}
	if len(ts) > 1 {
		placements = append(placements, fmt.Sprintf("The placements (%s) took turns, in a random order, within every repetition of every step and mode.", ts))
	}
	return "The target's depth is the number of rules a new connection walks up to and including its Service's rule: in iptables mode the 1-based index of the Service's ClusterIP rule in nat KUBE-SERVICES, which kube-proxy writes in random order at every sync; 0 in nftables mode (a verdict-map lookup) and IPVS mode (a hash lookup). It is read on the client node right before and right after every window; a point whose chain was reordered in between keeps both readings and stays out of the cost-per-rule fit. " + strings.Join(placements, " ")
}

// placementMethod says what one placement did.
func placementMethod(t scenarios.Targets) string {
	var placement string
	switch t {
	case scenarios.TargetsDeepest, scenarios.TargetsShallowest, scenarios.TargetsMedian:
		placement = fmt.Sprintf("Targets %s: after each step was programmed kpbench read the chain and sent every connection to the %s Service, picking again whenever a sync had moved it; in nftables and IPVS mode, where every depth is 0, that is the first-created Service.", t, map[scenarios.Targets]string{
			scenarios.TargetsDeepest: "deepest (the last walked: the worst case)", scenarios.TargetsShallowest: "shallowest (the first walked)", scenarios.TargetsMedian: "median-depth"}[t])
	case scenarios.TargetsRandom:
		placement = "Targets random: each new connection picked a Service uniformly; the depth recorded is the mean over the Services used, weighted by their connections, with its min and max."
	default:
		placement = "Targets one: every connection went to the first-created Service, whose depth kube-proxy draws at random at every sync (recorded, not chosen): curves against the number of Services then follow a random depth."
	}
	return placement
}

// depthNotes says where the two runs' targets sat at different depths: a
// difference there may be where kube-proxy put the target rather than
// the change under test (targets "one" draws a new depth at every sync).
func depthNotes(common []runs.Key, base, next map[runs.Key]*group) []string {
	var out []string
	med := func(g *group) (float64, bool) {
		if g == nil {
			return 0, false
		}
		var vs []float64
		for _, p := range g.Valid {
			if w, ok := p.RulesWalked(); ok {
				vs = append(vs, w)
			}
		}
		if len(vs) == 0 {
			return 0, false
		}
		return median(vs), true
	}
	for _, k := range common {
		b, ok1 := med(base[k])
		n, ok2 := med(next[k])
		if !ok1 || !ok2 || math.Abs(n-b) <= math.Max(10, 0.05*math.Max(b, n)) {
			continue
		}
		out = append(out, fmt.Sprintf("%s: the target walked %s rules in base and %s in new (median depth): part of any difference there is where the target sat, not the change",
			k, formatCount(int(math.Round(b))), formatCount(int(math.Round(n)))))
	}
	return out
}
