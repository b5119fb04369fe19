package report

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// Finding is one headline statement computed from the data.
type Finding struct {
	// Kind groups findings: FindingModes, FindingGrowth or FindingState.
	Kind string `json:"kind"`
	Text string `json:"text"`
	// Significant is true when the statement rests on a difference the
	// Mann-Whitney test finds significant at Alpha.
	Significant bool `json:"significant"`
	// Diff is the comparison behind the statement, when there is one.
	Diff *Difference `json:"diff,omitempty"`
	// Primary is true for the scenario's declared primary comparison
	// (scenarios.Primary), tested as a family of its own.
	Primary bool `json:"primary,omitempty"`
	// between says which modes a FindingModes finding compares, for the
	// summary table.
	between *modesAt
}

// modesAt is a comparison of two modes (high is the first in report
// order, Diff is high minus low) at one step and connection variant.
type modesAt struct {
	metric    findingMetric
	high, low scenarios.Mode
	services  int
	variant   string
}

// Finding kinds.
const (
	// FindingModes compares modes at the largest Service count they share.
	FindingModes = "modes"
	// FindingGrowth follows one mode from its smallest to its largest step.
	FindingGrowth = "growth"
	// FindingState states the dataplane's size and sync time.
	FindingState = "state"
	// FindingDepth states each mode's cost per rule walked (DepthFits).
	FindingDepth = "depth"
	// FindingPerConnection states each mode's CPU per new connection,
	// keepalive baseline subtracted (PerConnections).
	FindingPerConnection = "per-connection"
)

type findingMetric struct {
	name   string // "cpu", as Metrics names it
	what   string // "client-node CPU"
	unit   string
	digits int
	value  func(p *runs.Point) (float64, bool)
}

// findingMetrics are FindingMetrics from the metric table, as the
// findings word them.
var findingMetrics = func() []findingMetric {
	var out []findingMetric
	for _, name := range FindingMetrics {
		m := metric(name)
		out = append(out, findingMetric{name: m.Name, what: m.Finding, unit: m.Unit, digits: m.Digits, value: m.Value})
	}
	return out
}()

func (m findingMetric) of(g *group) []float64 {
	if g == nil {
		return nil
	}
	var out []float64
	for _, p := range g.Valid {
		if v, ok := m.value(p); ok {
			out = append(out, v)
		}
	}
	return out
}

func (m findingMetric) format(v float64) string {
	return fmt.Sprintf("%.*f %s", m.digits, v, m.unit)
}

// variant is a connection variant and target choice: the findings compare
// modes within one.
type variant struct {
	rpc     int
	targets scenarios.Targets
}

func (v variant) String(multiTargets bool) string {
	s := describeRPC(v.rpc)
	if multiTargets {
		s += ", targets " + string(v.targets)
	}
	return s
}

// Findings computes the report's headline statements: for each connection
// variant, how the modes differ at the largest Service count they all
// reached, and how each mode's costs grow from the smallest to the largest
// step. Every difference carries its confidence interval and whether the
// Mann-Whitney test finds it significant; nothing is claimed beyond that.
func Findings(d *Data) []Finding {
	byKey := map[runs.Key]*group{}
	variants := map[variant]bool{}
	targets := map[scenarios.Targets]bool{}
	for _, g := range d.groups {
		byKey[g.Key] = g
		if len(g.Valid) > 0 {
			variants[variant{g.Key.RequestsPerConn, g.Key.Targets}] = true
			targets[g.Key.Targets] = true
		}
	}
	var vlist []variant
	for v := range variants {
		vlist = append(vlist, v)
	}
	sort.Slice(vlist, func(i, j int) bool {
		if vlist[i].targets != vlist[j].targets {
			return vlist[i].targets < vlist[j].targets
		}
		return rpcLess(vlist[i].rpc, vlist[j].rpc)
	})
	multiTargets := len(targets) > 1

	// The tested findings are made in two passes: collect every
	// comparison, adjust the p-values with Holm's method over all of
	// them (about 30 findings at α=0.05 would otherwise show one or two
	// "significant" differences by chance), then word each finding by
	// its adjusted p. A primary comparison declared by the scenario is a
	// family of its own: it was chosen before the data, so it does not
	// pay for the others' multiplicity (and they do not pay for it).
	type pending struct {
		diff    Difference
		word    func(Difference) Finding
		primary bool
	}
	var primary *scenarios.Primary
	var primaryTargets scenarios.Targets
	blocked := false
	if d.Run != nil {
		primary = d.Run.Scenario.Spec.Primary
		primaryTargets = d.Run.Scenario.Spec.PrimaryTargets()
		// Under order: modes each mode, and each of its steps, ran in one
		// block of time: its repetitions are not independent units, and
		// nothing between modes or steps can be tested.
		blocked = orderOf(d.Run.Scenario.Spec.Order) != scenarios.OrderSteps
	}
	var pend []pending
	var out []Finding
	for _, v := range vlist {
		// Modes with valid points in this variant, and their steps.
		steps := map[scenarios.Mode]map[int]bool{}
		for _, g := range d.groups {
			if g.Key.RequestsPerConn == v.rpc && g.Key.Targets == v.targets && len(g.Valid) > 0 {
				if steps[g.Key.Mode] == nil {
					steps[g.Key.Mode] = map[int]bool{}
				}
				steps[g.Key.Mode][g.Key.Services] = true
			}
		}
		var modes []scenarios.Mode
		for m := range steps {
			modes = append(modes, m)
		}
		sort.Slice(modes, func(i, j int) bool { return modeRank(string(modes[i])) < modeRank(string(modes[j])) })

		// Modes against each other at the largest common step.
		if len(modes) > 1 {
			common := -1
			for s := range steps[modes[0]] {
				inAll := true
				for _, m := range modes[1:] {
					inAll = inAll && steps[m][s]
				}
				if inAll && s > common {
					common = s
				}
			}
			if common >= 0 {
				for i := 0; i < len(modes); i++ {
					for j := i + 1; j < len(modes); j++ {
						for _, fm := range findingMetrics {
							a := fm.of(byKey[runs.Key{Mode: modes[j], Services: common, RequestsPerConn: v.rpc, Targets: v.targets}])
							b := fm.of(byKey[runs.Key{Mode: modes[i], Services: common, RequestsPerConn: v.rpc, Targets: v.targets}])
							if len(a) == 0 || len(b) == 0 {
								continue
							}
							high, low, vs := modes[i], modes[j], v.String(multiTargets)
							isPrimary := primary != nil && primary.Metric == fm.name && primary.RequestsPerConn == v.rpc &&
								(primary.Services == 0 || primary.Services == common) && (primaryTargets == "" || v.targets == primaryTargets)
							dir := scenarios.DirectionTwoSided
							if isPrimary && primary.Direction != "" {
								dir = primary.Direction
							}
							pend = append(pend, pending{DiffDir(a, b, dir), func(d Difference) Finding {
								f := modeFinding(fm, d, high, low, common, vs)
								f.Primary = isPrimary
								return f
							}, isPrimary})
						}
					}
				}
			}
		}

		// Each mode's growth from its smallest to its largest step.
		for _, m := range modes {
			var ss []int
			for s := range steps[m] {
				ss = append(ss, s)
			}
			sort.Ints(ss)
			if len(ss) < 2 {
				continue
			}
			lo, hi := ss[0], ss[len(ss)-1]
			for _, fm := range findingMetrics[:2] {
				a := fm.of(byKey[runs.Key{Mode: m, Services: lo, RequestsPerConn: v.rpc, Targets: v.targets}])
				b := fm.of(byKey[runs.Key{Mode: m, Services: hi, RequestsPerConn: v.rpc, Targets: v.targets}])
				if len(a) == 0 || len(b) == 0 {
					continue
				}
				vs := v.String(multiTargets)
				pend = append(pend, pending{Diff(a, b), func(d Difference) Finding { return growthFinding(fm, d, m, lo, hi, vs) }, false})
			}
		}
	}
	primaryMade := false
	for _, pf := range pend {
		primaryMade = primaryMade || pf.primary
	}
	if primary != nil && !primaryMade {
		// The declared step and placement are the question; another
		// would be a different one.
		where := "at the largest Service count they all reached"
		if primary.Services != 0 {
			where = fmt.Sprintf("at %d Services", primary.Services)
		}
		if primaryTargets != "" {
			where += ", targets " + string(primaryTargets)
		}
		out = append(out, Finding{Kind: FindingModes, Primary: true,
			Text: fmt.Sprintf("Primary comparison not tested: not every mode has valid points %s (%s, %d requests per connection).",
				where, primary.Metric, primary.RequestsPerConn)})
	}
	for _, family := range []bool{true, false} {
		var idx []int
		var ps []float64
		for k, pf := range pend {
			if pf.primary == family {
				if blocked {
					d := pf.diff
					d.describe()
					out = append(out, pf.word(d))
					continue
				}
				idx, ps = append(idx, k), append(ps, pf.diff.P)
			}
		}
		reject, level := stepDownLevels(ps, Alpha)
		for i, adj := range Holm(ps) {
			d := pend[idx[i]].diff
			d.correct(adj, len(idx), reject[i], level[i])
			out = append(out, pend[idx[i]].word(d))
		}
	}
	out = append(out, stepFindings(d)...)
	out = append(out, depthFindings(d)...)
	out = append(out, perConnectionFindings(d)...)
	rank := map[string]int{FindingModes: 0, FindingDepth: 1, FindingPerConnection: 2, FindingGrowth: 3, FindingState: 4}
	sort.SliceStable(out, func(i, j int) bool { return rank[out[i].Kind] < rank[out[j].Kind] })
	return out
}

func modeFinding(fm findingMetric, d Difference, high, low scenarios.Mode, services int, variant string) Finding {
	// d is high minus low (b minus a).
	where := fmt.Sprintf("At %s with %s", servicesPhrase(services), variant)
	ci := shiftCI(d, fm)
	rel := ""
	if !math.IsNaN(d.Rel) {
		rel = fmt.Sprintf(", %+.0f%%", 100*d.Rel)
	}
	stats := fmt.Sprintf("p(holm)=%s, n=%d %s + %d %s, one value per block", formatP(d.PAdjusted), d.B.N, high, d.A.N, low)
	switch d.Direction {
	case scenarios.DirectionGreater:
		stats += fmt.Sprintf("; one-sided: is %s higher than %s?", high, low)
	case scenarios.DirectionLess:
		stats += fmt.Sprintf("; one-sided: is %s lower than %s?", high, low)
	}
	values := fmt.Sprintf("%s with %s vs %s with %s", fm.format(d.B.Mean), high, fm.format(d.A.Mean), low)
	var text string
	switch {
	case d.Descriptive:
		text = fmt.Sprintf("%s, %s was %s (difference %s %s%s; n=%d %s + %d %s): descriptive, each mode ran in one block of time (order: modes); not tested.",
			where, fm.what, values, signed(d.Delta, fm.digits), fm.unit, rel, d.B.N, high, d.A.N, low)
	case d.Significant:
		dir := "higher"
		if d.Delta < 0 {
			dir = "lower"
		}
		text = fmt.Sprintf("%s, %s was %s %s with %s than with %s (%s%s; %s%s).",
			where, fm.what, fm.format(math.Abs(d.Delta)), dir, high, low, values, rel, ci, stats)
	case d.Underpowered:
		text = fmt.Sprintf("%s, %s was %s (difference %s %s%s; %s%s): %s.",
			where, fm.what, values, signed(d.Delta, fm.digits), fm.unit, rel, ci, stats, underpoweredNote(d))
	default:
		text = fmt.Sprintf("%s, %s does not differ significantly between %s and %s (%s, difference %s %s; %s%s).",
			where, fm.what, high, low, values, signed(d.Delta, fm.digits), fm.unit, ci, stats)
	}
	dd := d
	return Finding{Kind: FindingModes, Text: text, Significant: d.Significant, Diff: &dd,
		between: &modesAt{metric: fm, high: high, low: low, services: services, variant: variant}}
}

// shiftCI is the interval beside a verdict: the Hodges–Lehmann shift at
// the level the verdict was taken, "" when the sizes cannot reach it.
func shiftCI(d Difference, fm findingMetric) string {
	if !d.HasCI {
		return ""
	}
	conf := confidencePct(d.CIConfidence)
	switch {
	case math.IsInf(d.CIHi, 1):
		return fmt.Sprintf("shift %s %s, one-sided %s CI above %s; ", signed(d.Shift, fm.digits), fm.unit, conf, signed(d.CILo, fm.digits))
	case math.IsInf(d.CILo, -1):
		return fmt.Sprintf("shift %s %s, one-sided %s CI below %s; ", signed(d.Shift, fm.digits), fm.unit, conf, signed(d.CIHi, fm.digits))
	}
	return fmt.Sprintf("shift %s %s, %s CI %s to %s; ", signed(d.Shift, fm.digits), fm.unit, conf, signed(d.CILo, fm.digits), signed(d.CIHi, fm.digits))
}

// confidencePct writes a confidence level: "95%", "98.3%".
func confidencePct(c float64) string {
	s := fmt.Sprintf("%.1f", 100*c)
	return strings.TrimSuffix(s, ".0") + "%"
}

func servicesPhrase(n int) string {
	if n == 1 {
		return "1 Service"
	}
	return formatCount(n) + " Services"
}

func growthFinding(fm findingMetric, d Difference, m scenarios.Mode, lo, hi int, variant string) Finding {
	rel := ""
	if !math.IsNaN(d.Rel) {
		rel = fmt.Sprintf(" (%+.0f%%)", 100*d.Rel)
	}
	stats := fmt.Sprintf("p(holm)=%s, n=%d at %s + %d at %s", formatP(d.PAdjusted), d.A.N, formatCount(lo), d.B.N, formatCount(hi))
	head := fmt.Sprintf("%s, %s: %s goes from %s at %s to %s at %s%s",
		m, variant, fm.what, fm.format(d.A.Mean), servicesPhrase(lo), fm.format(d.B.Mean), servicesPhrase(hi), rel)
	var text string
	switch {
	case d.Descriptive:
		text = fmt.Sprintf("%s; descriptive, each step ran in one block of time (order: modes); not tested.", head)
	case d.Significant:
		text = fmt.Sprintf("%s; significant (%s).", head, stats)
	case d.Underpowered:
		text = fmt.Sprintf("%s; %s (%s).", head, underpoweredNote(d), stats)
	default:
		text = fmt.Sprintf("%s; the change is not significant (%s).", head, stats)
	}
	dd := d
	return Finding{Kind: FindingGrowth, Text: text, Significant: d.Significant, Diff: &dd}
}

// stepFindings states rule counts and sync durations at the largest step
// each mode reached, over its valid points. They are kube-proxy's own state, not a sample, so they
// are reported as measured.
func stepFindings(d *Data) []Finding {
	type last struct {
		services int
		rules    []float64
		sync     []float64
	}
	lasts := map[scenarios.Mode]*last{}
	for _, g := range stepGroupsOf(d) {
		l := lasts[g.Key.Mode]
		if l == nil || g.Key.Services > l.services {
			l = &last{services: g.Key.Services}
			lasts[g.Key.Mode] = l
		} else if g.Key.Services < l.services {
			continue
		}
		for _, p := range g.Valid { // invalid points stay out of every finding
			if p.Rules.Total > 0 {
				l.rules = append(l.rules, float64(p.Rules.Total))
			}
			if p.Sync.LastDurationSeconds > 0 {
				l.sync = append(l.sync, p.Sync.LastDurationSeconds)
			}
		}
	}
	var modes []scenarios.Mode
	for m := range lasts {
		modes = append(modes, m)
	}
	sort.Slice(modes, func(i, j int) bool { return modeRank(string(modes[i])) < modeRank(string(modes[j])) })
	var parts []string
	for _, m := range modes {
		l := lasts[m]
		var bits []string
		if len(l.rules) > 0 {
			bits = append(bits, fmt.Sprintf("%s rules", formatCount(int(Summarize(l.rules).Median))))
		}
		if len(l.sync) > 0 {
			bits = append(bits, fmt.Sprintf("last sync %.3f s", Summarize(l.sync).Median))
		}
		if len(bits) > 0 {
			parts = append(parts, fmt.Sprintf("%s at %s: %s", m, servicesPhrase(l.services), strings.Join(bits, ", ")))
		}
	}
	if len(parts) == 0 {
		return nil
	}
	return []Finding{{Kind: FindingState, Text: "Dataplane size (medians over the step's points): " + strings.Join(parts, "; ") + "."}}
}

// underpoweredNote says why a difference is not established, briefly:
// the method caveat (how many repetitions the test needs after the
// correction) is stated once, below the findings, not in every bullet.
// A confidence interval that excludes zero is not offered as evidence
// here: the test, after the correction, is what decides.
func underpoweredNote(d Difference) string {
	if d.A.N == 1 && d.B.N == 1 {
		return "not established (one repetition per side)"
	}
	return "not established"
}

func signed(v float64, digits int) string {
	return fmt.Sprintf("%+.*f", digits, v)
}
