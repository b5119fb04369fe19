package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kpbench/kpbench/runs"
)

// Comparison verdicts.
const (
	VerdictSame        = "~"                // no significant difference
	VerdictWithin      = "within threshold" // significant but smaller than the threshold
	VerdictRegression  = "REGRESSION"
	VerdictImprovement = "improvement"
)

// ErrBadThreshold is returned for a threshold that is not a non-negative
// percentage.
var ErrBadThreshold = errors.New("invalid threshold")

// ParseThreshold reads a threshold written as a percentage, "10%" or "10";
// it returns the fraction (0.10).
func ParseThreshold(s string) (float64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w %q: want a percentage such as 10%%", ErrBadThreshold, s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%w %q: must not be negative", ErrBadThreshold, s)
	}
	return v / 100, nil
}

// CompareOptions configure Compare.
type CompareOptions struct {
	Metrics []Metric
	// Threshold is the relative change (0.10 = 10%) beyond which a
	// significant change in the worse direction is a regression.
	Threshold float64
	// AllowMismatch compares runs of different scenarios (rate, duration,
	// endpoints, ...) instead of refusing with ErrScenarioMismatch.
	AllowMismatch bool
}

// Stat is benchstat's summary of one side: the median of the valid
// repetitions with a distribution-free 95% confidence interval (infinite
// bounds with fewer than 6 values).
type Stat struct {
	N      int       `json:"n"`
	Median float64   `json:"median"`
	Lo     float64   `json:"lo"`
	Hi     float64   `json:"hi"`
	Values []float64 `json:"values"`
}

func newStat(values []float64) Stat {
	s := Stat{N: len(values), Values: values}
	if len(values) == 0 {
		return s
	}
	sum := medianSummary(values)
	s.Median, s.Lo, s.Hi = sum.Center, sum.Lo, sum.Hi
	return s
}

// pctRange is the CI's half width relative to the median, as benchstat
// prints it ("±2%", "±∞").
func (s Stat) pctRange() string {
	if s.N == 0 {
		return ""
	}
	if math.IsInf(s.Lo, 0) || math.IsInf(s.Hi, 0) {
		return "±∞"
	}
	if s.Median == 0 {
		return "±0%"
	}
	v := math.Max(s.Hi/s.Median-1, 1-s.Lo/s.Median)
	return fmt.Sprintf("±%.0f%%", 100*math.Abs(v))
}

// MarshalJSON writes infinite bounds as null.
func (s Stat) MarshalJSON() ([]byte, error) {
	type out struct {
		N      int       `json:"n"`
		Median float64   `json:"median"`
		Lo     *float64  `json:"lo"`
		Hi     *float64  `json:"hi"`
		Values []float64 `json:"values"`
	}
	o := out{N: s.N, Median: s.Median, Values: s.Values, Lo: finite(s.Lo), Hi: finite(s.Hi)}
	return json.Marshal(o)
}

// finite returns &v, or nil (null in JSON) for an infinite or NaN v.
func finite(v float64) *float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil
	}
	return &v
}

// CompareRow is one metric at one condition.
type CompareRow struct {
	Condition string `json:"condition"`
	Metric    string `json:"metric"`
	Unit      string `json:"unit"`
	Base      Stat   `json:"base"`
	New       Stat   `json:"new"`
	// Delta is the relative change of the medians (0.2 = +20%); NaN (null
	// in JSON) when the base median is 0.
	Delta float64 `json:"-"`
	// Change is the relative change with its distribution-free 95%
	// confidence interval (Hodges–Lehmann, see RatioCI). The threshold is
	// applied to the interval's bound nearest to no change, never to the
	// point estimate: a regression is a change the data show to be beyond
	// the threshold, not one that might be.
	Change ShiftCI `json:"-"`
	// P is the Mann-Whitney U test's p-value; PAdjusted is P after Holm's
	// correction over every test of the comparison (what the verdict
	// uses). Both are 1 when no test could be made.
	P           float64 `json:"p"`
	PAdjusted   float64 `json:"pAdjusted"`
	Significant bool    `json:"significant"`
	Verdict     string  `json:"verdict"`
	// Underpowered is true when the repetition counts cannot reach
	// significance at all after the correction: a regression here would go
	// unnoticed.
	Underpowered bool `json:"underpowered"`
	key          runs.Key
	tested       bool
	pIndex       int
}

// MarshalJSON adds delta and the change's interval, null when undefined.
func (r CompareRow) MarshalJSON() ([]byte, error) {
	type plain CompareRow
	return json.Marshal(struct {
		plain
		Delta    *float64 `json:"delta"`
		ChangeLo *float64 `json:"changeLo"`
		ChangeHi *float64 `json:"changeHi"`
	}{plain(r), finite(r.Delta), finite(r.Change.Lo), finite(r.Change.Hi)})
}

// Lost is a condition whose new run has fewer valid points than it
// planned: invalid or never measured. It fails the comparison on its own,
// because the worst regressions (every repetition invalid) leave nothing
// to test.
type Lost struct {
	Condition string `json:"condition"`
	// Of is how many valid points the new run should have: the base's
	// valid points there, at most the repetitions the new run planned.
	// Lost of them are not valid (invalid, or never measured).
	Lost    int      `json:"lost"`
	Of      int      `json:"of"`
	Planned int      `json:"planned"`
	Reasons []string `json:"reasons"`
}

func (l Lost) verdict() string {
	return fmt.Sprintf("lost %d of %d valid points: %s", l.Lost, l.Of, strings.Join(l.Reasons, "; "))
}

// Comparison is the outcome of comparing two runs.
type Comparison struct {
	Base      string  `json:"base"`
	New       string  `json:"new"`
	BaseRun   string  `json:"baseRun"`
	NewRun    string  `json:"newRun"`
	Threshold float64 `json:"threshold"`
	Alpha     float64 `json:"alpha"`
	// Correction names the multiple-comparison correction ("holm") and
	// Tests how many tests it covered.
	Correction string       `json:"correction"`
	Tests      int          `json:"tests"`
	Metrics    []string     `json:"metrics"`
	Rows       []CompareRow `json:"rows"`
	OnlyBase   []string     `json:"onlyInBase,omitempty"`
	OnlyNew    []string     `json:"onlyInNew,omitempty"`
	// ScenarioMismatches are what each point measures differently in the
	// two runs (rate, duration, endpoints, ...); EnvironmentDifferences
	// are machine and software differences (kernel, CPU, kube-proxy
	// version): expected when a nightly job tests a new build, but a
	// reader must see them first.
	ScenarioMismatches     []string `json:"scenarioMismatches,omitempty"`
	EnvironmentDifferences []string `json:"environmentDifferences,omitempty"`
	Lost                   []Lost   `json:"lost,omitempty"`
	Regressions            int      `json:"regressions"`
	// Notes are caveats a reader must see (invalid points left out,
	// comparisons too small to detect anything).
	Notes []string `json:"notes,omitempty"`
}

// Failed reports whether the comparison fails the gate: a significant
// regression beyond the threshold, or a condition that lost valid points.
func (c *Comparison) Failed() bool { return c.Regressions > 0 || len(c.Lost) > 0 }

// ErrNothingInCommon is returned when two runs share no condition.
var ErrNothingInCommon = errors.New("the runs have no condition (mode, services, requestsPerConn, targets) in common")

// ErrScenarioMismatch is returned (with the Comparison, which lists the
// mismatches) when the runs' points measure different things and
// CompareOptions.AllowMismatch is false.
var ErrScenarioMismatch = errors.New("the runs measured different scenarios")

// Compare matches the points of two runs by condition (mode, Services,
// requests per connection, targets) and compares every metric over their
// valid repetitions the way benchstat does: medians with 95% confidence
// intervals, and the Mann-Whitney U test. The p-values of all the tests
// are adjusted with Holm's method (see Holm). A metric regresses when the
// adjusted p is below Alpha and the 95% confidence interval of its
// relative change lies entirely beyond the threshold in the worse
// direction. A condition whose new run lost valid points fails on its own
// (see Lost).
//
// Before any of that, the two runs must measure the same thing: the same
// rate, duration, warm-up, endpoints, backends, clients, targets, timeout
// and in-flight bound (from run.json and from the points themselves).
// Otherwise Compare returns ErrScenarioMismatch, unless
// opts.AllowMismatch, and the mismatches lead the output.
//
// Samples are the repetitions, never the per-second values inside a
// point: those are autocorrelated (one warm cache, one conntrack table),
// and treating them as independent would make noise look significant. So
// detecting a change needs at least MinRepetitions() repetitions per side
// before the correction, more after it (RepetitionsFor).
func Compare(base, next *Data, opts CompareOptions) (*Comparison, error) {
	c := &Comparison{Base: base.Dir, New: next.Dir, BaseRun: base.Run.ID, NewRun: next.Run.ID,
		Threshold: opts.Threshold, Alpha: Alpha, Correction: "holm"}
	for _, m := range opts.Metrics {
		c.Metrics = append(c.Metrics, m.Name)
	}
	c.ScenarioMismatches = scenarioMismatches(base, next)
	c.EnvironmentDifferences = environmentDifferences(base.Run, next.Run)
	if b, n := nodeCPUCovers(base.Points), nodeCPUCovers(next.Points); b != n {
		// A kind run read from the node's cgroup against one read from
		// the host's /proc/stat: the cpu rows compare different things.
		c.EnvironmentDifferences = append(c.EnvironmentDifferences, fmt.Sprintf("client-node CPU covers: %s → %s", b, n))
	}
	for _, side := range []struct {
		name string
		d    *Data
	}{{"base", base}, {"new", next}} {
		if m := mixedPoints(side.d.Points); m != "" {
			c.EnvironmentDifferences = append(c.EnvironmentDifferences, side.name+" "+m)
		}
	}
	if len(c.ScenarioMismatches) > 0 && !opts.AllowMismatch {
		return c, fmt.Errorf("%s vs %s: %w: %s (pass --allow-mismatch to compare anyway)",
			base.Dir, next.Dir, ErrScenarioMismatch, strings.Join(c.ScenarioMismatches, "; "))
	}
	baseGroups := map[runs.Key]*group{}
	for _, g := range base.groups {
		baseGroups[g.Key] = g
	}
	nextGroups := map[runs.Key]*group{}
	for _, g := range next.groups {
		nextGroups[g.Key] = g
	}
	// A condition is compared when both runs measured it, or when the new
	// run planned it (its scenario names it) and the base has valid
	// points there: a mode that failed or was skipped in the new run is
	// lost, not "only in base".
	var common []runs.Key
	lost := map[runs.Key]*Lost{}
	for _, g := range base.groups {
		ng, inNew := nextGroups[g.Key]
		planned := plannedReps(next.Run, g.Key)
		if !inNew && planned == 0 {
			c.OnlyBase = append(c.OnlyBase, g.Key.String())
			continue
		}
		common = append(common, g.Key)
		if planned == 0 || len(g.Valid) == 0 {
			continue
		}
		var valid int
		var pts []*runs.Point
		if ng != nil {
			valid, pts = len(ng.Valid), ng.Points
		}
		// Measured against what the base had valid (a base that lost a
		// point itself is not held against the new run), within what the
		// new run planned (fewer repetitions are a choice, not a loss).
		if expected := min(len(g.Valid), planned); valid < expected {
			l := &Lost{Condition: g.Key.String(), Lost: expected - valid, Of: expected, Planned: planned,
				Reasons: lostReasons(next.Run, g.Key, pts, planned)}
			lost[g.Key] = l
		}
	}
	for _, g := range next.groups {
		if _, ok := baseGroups[g.Key]; !ok {
			c.OnlyNew = append(c.OnlyNew, g.Key.String())
		}
	}
	if len(common) == 0 {
		return nil, fmt.Errorf("%s vs %s: %w", base.Dir, next.Dir, ErrNothingInCommon)
	}
	sort.SliceStable(common, func(i, j int) bool { return keyLess(common[i], common[j]) })
	for _, k := range common {
		if l := lost[k]; l != nil {
			c.Lost = append(c.Lost, *l)
		}
	}

	var ps []float64
	for _, m := range opts.Metrics {
		for _, k := range common {
			var bv, nv []float64
			if g := baseGroups[k]; g != nil {
				bv = g.values(m)
			}
			if g := nextGroups[k]; g != nil {
				nv = g.values(m)
			}
			if len(bv) == 0 || (len(nv) == 0 && lost[k] == nil) {
				continue // not measured here (no connections, no sync)
			}
			row := CompareRow{key: k, Condition: k.String(), Metric: m.Name, Unit: m.Unit, Base: newStat(bv), New: newStat(nv),
				P: 1, PAdjusted: 1, Delta: math.NaN(), Change: ShiftCI{Est: math.NaN(), Lo: math.Inf(-1), Hi: math.Inf(1)}}
			if len(nv) > 0 {
				if row.Base.Median != 0 {
					row.Delta = row.New.Median/row.Base.Median - 1
				} else if row.New.Median == 0 {
					row.Delta = 0
				}
				row.P = compareSamples(bv, nv).P
				row.Change = RatioCI(bv, nv, Confidence)
				row.tested, row.pIndex = true, len(ps)
				ps = append(ps, row.P)
			}
			c.Rows = append(c.Rows, row)
		}
	}
	c.Tests = len(ps)
	adj := Holm(ps)
	underpowered := 0
	for i := range c.Rows {
		row := &c.Rows[i]
		m, _ := lookupMetric(row.Metric)
		k := row.key
		if row.tested {
			row.PAdjusted = adj[row.pIndex]
			row.Significant = row.PAdjusted < Alpha
			row.Underpowered = !row.Significant && float64(c.Tests)*minMannWhitneyP(row.Base.N, row.New.N) >= Alpha
			if row.Underpowered {
				underpowered++
			}
		}
		worse, better := row.Change.Lo > c.Threshold, row.Change.Hi < -c.Threshold
		if !m.HigherIsWorse {
			worse, better = better, worse
		}
		switch {
		case lost[k] != nil:
			row.Verdict = lost[k].verdict()
		case !row.Significant:
			row.Verdict = VerdictSame
		case worse:
			row.Verdict = VerdictRegression
			c.Regressions++
		case better:
			row.Verdict = VerdictImprovement
		default:
			row.Verdict = VerdictWithin
		}
	}
	invalid := 0
	for _, k := range common {
		if g := baseGroups[k]; g != nil {
			invalid += g.Invalid
		}
		if g := nextGroups[k]; g != nil && lost[k] == nil {
			invalid += g.Invalid
		}
	}
	if invalid > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d invalid points (outside the lost conditions) were left out of the comparison", invalid))
	}
	if underpowered > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d comparisons have too few valid repetitions to reach significance at α=%.2f after Holm's correction over %d tests (that needs %d repetitions per side): a regression there cannot be detected; run more repetitions",
			underpowered, Alpha, c.Tests, RepetitionsFor(c.Tests)))
	}
	c.Notes = append(c.Notes, depthNotes(common, baseGroups, nextGroups)...)
	if len(c.OnlyBase) > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d conditions only in base, not compared", len(c.OnlyBase)))
	}
	if len(c.OnlyNew) > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d conditions only in new, not compared", len(c.OnlyNew)))
	}
	return c, nil
}

// plannedReps is how many repetitions run's scenario plans at k, 0 when it
// does not measure k.
func plannedReps(run *runs.Run, k runs.Key) int {
	sp := run.Scenario.Spec
	if sp.Load.Targets != k.Targets || !slices.Contains(sp.Modes, k.Mode) ||
		!slices.Contains(sp.Services, k.Services) || !slices.Contains(sp.Load.RequestsPerConn, k.RequestsPerConn) {
		return 0
	}
	return sp.Repetitions
}

// lostReasons says why the new run has no valid point for some of the
// planned repetitions at k: each invalid reason once with its count, and
// the repetitions never measured (with the mode's skip reason, or the
// run's status).
func lostReasons(run *runs.Run, k runs.Key, pts []*runs.Point, planned int) []string {
	counts := map[string]int{}
	var order []string
	measured := 0
	for _, p := range pts {
		measured++
		if p.Valid {
			continue
		}
		reasons := p.InvalidReasons
		if len(reasons) == 0 {
			reasons = []string{"invalid"}
		}
		for _, r := range reasons {
			r = reasonKind(r)
			if counts[r] == 0 {
				order = append(order, r)
			}
			counts[r]++
		}
	}
	var out []string
	for _, r := range order {
		out = append(out, fmt.Sprintf("%d× %s", counts[r], r))
	}
	if missing := planned - measured; missing > 0 {
		why := "run " + run.Status
		for _, s := range run.SkippedModes {
			if s.Mode == k.Mode {
				why = "mode skipped: " + s.Reason
			}
		}
		out = append(out, fmt.Sprintf("%d not measured (%s)", missing, why))
	}
	return out
}

// reasonKind shortens an invalid reason to its kind (the runs.Reason*
// prefix), dropping the point's own numbers.
func reasonKind(r string) string {
	if i := strings.IndexAny(r, ":("); i > 0 {
		return strings.TrimSpace(r[:i])
	}
	return r
}

// scenarioMismatches lists what the two runs' points measure differently:
// the scenario's load and cluster shape from run.json, and the rate,
// duration and endpoints the points themselves recorded.
func scenarioMismatches(base, next *Data) []string {
	var out []string
	add := func(field string, b, n any) {
		if fmt.Sprint(b) != fmt.Sprint(n) {
			out = append(out, fmt.Sprintf("%s: base %v, new %v", field, b, n))
		}
	}
	bs, ns := base.Run.Scenario.Spec, next.Run.Scenario.Spec
	add("spec.load.rate", bs.Load.Rate, ns.Load.Rate)
	add("spec.load.duration", bs.Load.Duration, ns.Load.Duration)
	add("spec.load.warmup", bs.Load.WarmupDuration(), ns.Load.WarmupDuration())
	add("spec.load.clients", max(bs.Load.Clients, 1), max(ns.Load.Clients, 1))
	add("spec.load.targets", bs.Load.Targets, ns.Load.Targets)
	add("spec.load.timeout", bs.Load.Timeout, ns.Load.Timeout)
	add("spec.load.maxInflight", bs.Load.MaxInflight, ns.Load.MaxInflight)
	add("spec.endpointsPerService", bs.EndpointsPerService, ns.EndpointsPerService)
	add("spec.backends", bs.Backends, ns.Backends)
	pointSet := func(d *Data, f func(p *runs.Point) string) string {
		set := map[string]bool{}
		for i := range d.Points {
			set[f(&d.Points[i])] = true
		}
		vals := slices.Sorted(maps.Keys(set))
		return strings.Join(vals, ",")
	}
	for _, pf := range []struct {
		name string
		f    func(p *runs.Point) string
	}{
		{"points' target rate", func(p *runs.Point) string { return strconv.FormatFloat(p.Rate.Target, 'f', -1, 64) }},
		{"points' duration (s)", func(p *runs.Point) string { return strconv.FormatFloat(p.DurationSeconds, 'f', -1, 64) }},
		{"points' endpoints per Service", func(p *runs.Point) string { return strconv.Itoa(p.EndpointsPerService) }},
	} {
		if len(base.Points) > 0 && len(next.Points) > 0 {
			add(pf.name, pointSet(base, pf.f), pointSet(next, pf.f))
		}
	}
	return out
}

// environmentDifferences lists how the machines and software differ.
func environmentDifferences(b, n *runs.Run) []string {
	out := runs.EnvironmentDifferences(b.Provider.Name, b.Environment, n.Provider.Name, n.Environment)
	if b.KpbenchVersion != n.KpbenchVersion {
		out = append(out, fmt.Sprintf("kpbench: %s → %s", b.KpbenchVersion, n.KpbenchVersion))
	}
	return out
}

// mixedPoints says when a run's points were measured by more than one
// kpbench version or in more than one environment (a resume forced past
// the difference), "" otherwise.
func mixedPoints(points []runs.Point) string {
	versions, envs := map[string]bool{}, map[string]bool{}
	for _, p := range points {
		if p.KpbenchVersion != "" {
			versions[p.KpbenchVersion] = true
		}
		if p.Environment != "" {
			envs[p.Environment] = true
		}
	}
	var parts []string
	if len(versions) > 1 {
		parts = append(parts, fmt.Sprintf("%d kpbench versions (%s)", len(versions), strings.Join(slices.Sorted(maps.Keys(versions)), ", ")))
	}
	if len(envs) > 1 {
		parts = append(parts, fmt.Sprintf("%d environments (fingerprints %s)", len(envs), strings.Join(slices.Sorted(maps.Keys(envs)), ", ")))
	}
	if len(parts) == 0 {
		return ""
	}
	return "mixes points of " + strings.Join(parts, " and ") + " (a resume forced past the difference)"
}

func lookupMetric(name string) (Metric, bool) {
	for _, m := range Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{Name: name, HigherIsWorse: true}, false
}

func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		// Three significant digits, trailing zeros kept (0.110).
		return strconv.FormatFloat(v, 'f', 2-int(math.Floor(math.Log10(a))), 64)
	}
}

func (r CompareRow) deltaString() string {
	if math.IsNaN(r.Delta) {
		return "?"
	}
	return fmt.Sprintf("%+.2f%%", 100*r.Delta)
}

// ciString is the change's 95% interval, "[+18%, +27%]".
func (r CompareRow) ciString() string {
	if !r.tested {
		return ""
	}
	pct := func(v float64) string {
		switch {
		case math.IsInf(v, 1):
			return "+∞"
		case math.IsInf(v, -1):
			return "-∞"
		}
		return fmt.Sprintf("%+.1f%%", 100*v)
	}
	return "[" + pct(r.Change.Lo) + ", " + pct(r.Change.Hi) + "]"
}

func (r CompareRow) pString() string {
	if !r.tested {
		return ""
	}
	return formatP(r.PAdjusted)
}

func (r CompareRow) newString() (string, string) {
	if r.New.N == 0 {
		return "—", ""
	}
	return formatValue(r.New.Median), r.New.pctRange()
}

func (r CompareRow) nString() string {
	if r.Base.N == r.New.N {
		return fmt.Sprint(r.Base.N)
	}
	return fmt.Sprintf("%d+%d", r.Base.N, r.New.N)
}

// method says how verdicts are reached, in one line.
func (c *Comparison) method() string {
	return fmt.Sprintf("regression: worse by more than %s at the near bound of the change's 95%% CI, with p < %.2f after Holm's correction over %d tests (Mann-Whitney U over repetitions; medians ± 95%% CI; change: Hodges–Lehmann ratio); a condition that lost valid points fails on its own",
		formatThreshold(c.Threshold), c.Alpha, c.Tests)
}

// preamble is what a reader must see before any number: the runs, and how
// they differ in what was measured and where.
func (c *Comparison) preamble(bullet string) string {
	var b strings.Builder
	for _, m := range c.ScenarioMismatches {
		fmt.Fprintf(&b, "%sSCENARIO MISMATCH: %s\n", bullet, m)
	}
	for _, m := range c.EnvironmentDifferences {
		fmt.Fprintf(&b, "%senvironment differs: %s\n", bullet, m)
	}
	return b.String()
}

func (c *Comparison) header() string {
	return fmt.Sprintf("base: %s (%s)\nnew:  %s (%s)\n%s%s",
		c.Base, c.BaseRun, c.New, c.NewRun, c.preamble(""), c.method())
}

func formatThreshold(t float64) string {
	return strconv.FormatFloat(100*t, 'f', -1, 64) + "%"
}

// Summary is the comparison's outcome in one line.
func (c *Comparison) Summary() string {
	var parts []string
	if c.Regressions > 0 {
		parts = append(parts, fmt.Sprintf("%d significant regression(s) beyond %s", c.Regressions, formatThreshold(c.Threshold)))
	}
	if len(c.Lost) > 0 {
		lost := 0
		for _, l := range c.Lost {
			lost += l.Lost
		}
		parts = append(parts, fmt.Sprintf("%d condition(s) lost %d valid point(s)", len(c.Lost), lost))
	}
	if len(parts) == 0 {
		return "no significant regression beyond the threshold"
	}
	return strings.Join(parts, "; ")
}

// WriteText writes a benchstat-like table per metric.
func (c *Comparison) WriteText(w io.Writer) error {
	var b strings.Builder
	b.WriteString(c.header() + "\n")
	for _, m := range c.Metrics {
		rows := c.rowsOf(m)
		if len(rows) == 0 {
			continue
		}
		desc, unit := describeMetric(m)
		fmt.Fprintf(&b, "\n%s: %s (%s)\n", m, desc, unit)
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "condition\tbase\t\tnew\t\tdelta\t95% CI\tp(holm)\tn\tverdict")
		for _, r := range rows {
			nv, nr := r.newString()
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Condition,
				formatValue(r.Base.Median), r.Base.pctRange(), nv, nr,
				r.deltaString(), r.ciString(), r.pString(), r.nString(), r.Verdict)
		}
		tw.Flush()
	}
	c.writeFooter(&b, "")
	_, err := io.WriteString(w, b.String())
	return err
}

func (c *Comparison) writeFooter(b *strings.Builder, bullet string) {
	b.WriteString("\n")
	for _, l := range c.Lost {
		fmt.Fprintf(b, "%sLOST: %s: %s\n", bullet, l.Condition, l.verdict())
	}
	for _, n := range c.Notes {
		fmt.Fprintf(b, "%snote: %s\n", bullet, n)
	}
	for _, k := range c.OnlyBase {
		fmt.Fprintf(b, "%sonly in base: %s\n", bullet, k)
	}
	for _, k := range c.OnlyNew {
		fmt.Fprintf(b, "%sonly in new: %s\n", bullet, k)
	}
	if len(c.Lost)+len(c.Notes)+len(c.OnlyBase)+len(c.OnlyNew) > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "%s\n", c.Summary())
}

// WriteMarkdown writes the tables as GitHub-flavoured Markdown (for CI job
// summaries).
func (c *Comparison) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("## kpbench compare\n\n")
	fmt.Fprintf(&b, "- base: `%s` (%s)\n- new: `%s` (%s)\n%s- %s\n",
		c.Base, c.BaseRun, c.New, c.NewRun, c.preamble("- "), c.method())
	for _, m := range c.Metrics {
		rows := c.rowsOf(m)
		if len(rows) == 0 {
			continue
		}
		desc, unit := describeMetric(m)
		fmt.Fprintf(&b, "\n### %s: %s (%s)\n\n", m, desc, unit)
		b.WriteString("| condition | base | new | delta | 95% CI | p(holm) | n | verdict |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
		for _, r := range rows {
			verdict := r.Verdict
			if verdict == VerdictRegression || strings.HasPrefix(verdict, "lost ") {
				verdict = "**" + verdict + "**"
			}
			nv, nr := r.newString()
			fmt.Fprintf(&b, "| %s | %s %s | %s %s | %s | %s | %s | %s | %s |\n", r.Condition,
				formatValue(r.Base.Median), r.Base.pctRange(), nv, nr,
				r.deltaString(), r.ciString(), r.pString(), r.nString(), verdict)
		}
	}
	c.writeFooter(&b, "- ")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the comparison as one JSON document.
func (c *Comparison) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

func (c *Comparison) rowsOf(metric string) []CompareRow {
	var out []CompareRow
	for _, r := range c.Rows {
		if r.Metric == metric {
			out = append(out, r)
		}
	}
	return out
}

func describeMetric(name string) (string, string) {
	for _, m := range Metrics {
		if m.Name == name {
			return m.Description, m.Unit
		}
	}
	return name, ""
}
