package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// Comparison verdicts.
const (
	// Gated rows (see scenarios.Gate).
	VerdictRegression   = "REGRESSION"   // worse beyond the threshold, shown by the one-sided test
	VerdictPass         = "pass"         // not shown to be worse beyond the threshold, at a size that could have
	VerdictInconclusive = "INCONCLUSIVE" // too few repetitions for the test to reach significance at all
	// Descriptive rows (not gated): they never fail a comparison.
	VerdictSame        = "~"                // no significant difference
	VerdictWithin      = "within threshold" // significant but smaller than the threshold
	VerdictWorse       = "worse"            // significantly worse beyond the threshold
	VerdictImprovement = "improvement"
	// VerdictUntested marks the mean round-trip latency: one slow request
	// moves a mean, so it is shown and never tested.
	VerdictUntested = "not tested"
)

// Row families: the gate's rows are one family under Holm's correction,
// the descriptive rows another; untested rows belong to none.
const (
	FamilyGate        = "gate"
	FamilyDescriptive = "descriptive"
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
	// Family is FamilyGate, FamilyDescriptive or "" (not tested).
	Family string `json:"family,omitempty"`
	// Change is the relative change (Hodges–Lehmann estimate) with the
	// interval that inverts the row's test at Level, the level Holm's
	// step-down procedure used for the row: the verdict and the interval
	// cannot disagree. A gated row's interval is one-sided ([Lo, +∞) for a
	// cost): it regresses exactly when Lo exceeds the threshold.
	Change ShiftCI `json:"-"`
	Level  float64 `json:"level,omitempty"`
	// P is the row's exact Mann-Whitney p-value: for a gated row the
	// one-sided test of "new/base ≤ 1 + threshold", for a descriptive row
	// the two-sided test of no change. PAdjusted is P after Holm's
	// correction within the row's family. Both are 1 when no test was
	// made.
	P           float64 `json:"p"`
	PAdjusted   float64 `json:"pAdjusted"`
	Significant bool    `json:"significant"`
	Verdict     string  `json:"verdict"`
	// Underpowered is true when the repetition counts cannot reach
	// significance at all within the family: for a gated row that makes
	// the verdict VerdictInconclusive.
	Underpowered bool `json:"underpowered"`
	key          runs.Key
	tested       bool
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
// planned: invalid or never measured. The worst regressions (every
// repetition invalid) leave nothing to test, so a loss counts on its own:
// one the dataplane caused (request errors, kube-proxy not running, the
// wrong mode) fails the comparison; one the runner caused (the schedule
// fell behind, no CPU sample, the in-flight bound, a point never measured)
// makes it inconclusive and is named.
type Lost struct {
	Condition string `json:"condition"`
	// Of is how many valid points the new run should have: the base's
	// valid points there, at most the repetitions the new run planned.
	// Lost of them are not valid (invalid, or never measured).
	Lost    int      `json:"lost"`
	Of      int      `json:"of"`
	Planned int      `json:"planned"`
	Reasons []string `json:"reasons"`
	// Cause is CauseDataplane when any lost point names a dataplane
	// reason, else CauseSync when any names a sync or reorder inside the
	// window, else CauseRunner.
	Cause string `json:"cause"`
}

func (l Lost) verdict() string {
	return fmt.Sprintf("lost %d of %d valid points (%s): %s", l.Lost, l.Of, l.Cause, strings.Join(l.Reasons, "; "))
}

// Comparison is the outcome of comparing two runs.
type Comparison struct {
	Base      string  `json:"base"`
	New       string  `json:"new"`
	BaseRun   string  `json:"baseRun"`
	NewRun    string  `json:"newRun"`
	Threshold float64 `json:"threshold"`
	Alpha     float64 `json:"alpha"`
	// Correction names the multiple-comparison correction ("holm");
	// GateTests is the size of the gate's family, Tests of the
	// descriptive one.
	Correction string `json:"correction"`
	GateTests  int    `json:"gateTests"`
	Tests      int    `json:"tests"`
	// Gate says which rows are gated, as the scenario declares them.
	Gate     string       `json:"gate"`
	Metrics  []string     `json:"metrics"`
	Rows     []CompareRow `json:"rows"`
	OnlyBase []string     `json:"onlyInBase,omitempty"`
	OnlyNew  []string     `json:"onlyInNew,omitempty"`
	// ScenarioMismatches are what the two runs measure or how they were
	// measured differently (rate, duration, repetitions, provider, what
	// the CPU figure covers, pinning, order, sampling, kpbench build,
	// ...); EnvironmentDifferences are machine and software differences
	// (kernel, CPU, kube-proxy version): expected when a nightly job tests
	// a new build, but a reader must see them first.
	ScenarioMismatches     []string `json:"scenarioMismatches,omitempty"`
	EnvironmentDifferences []string `json:"environmentDifferences,omitempty"`
	Lost                   []Lost   `json:"lost,omitempty"`
	Regressions            int      `json:"regressions"`
	// Inconclusive counts the gated rows whose repetitions cannot reach
	// significance.
	Inconclusive int `json:"inconclusive"`
	// InvalidRise, when set, says that the share of invalid points rose
	// significantly (one-sided Fisher exact test at Alpha): it fails the
	// comparison.
	InvalidRise string `json:"invalidRise,omitempty"`
	// Notes are caveats a reader must see (invalid points left out,
	// comparisons too small to detect anything).
	Notes []string `json:"notes,omitempty"`
}

// Exit statuses of a comparison (see ExitCode).
const (
	ExitPass         = 0
	ExitFail         = 1
	ExitInconclusive = 2
)

// Failed reports whether the comparison fails the gate: a gated row
// shown to be worse beyond the threshold, a condition that lost points to
// the dataplane, or a significant rise in the share of invalid points.
func (c *Comparison) Failed() bool {
	if c.Regressions > 0 || c.InvalidRise != "" {
		return true
	}
	for _, l := range c.Lost {
		if l.Cause == CauseDataplane {
			return true
		}
	}
	return false
}

// Undecided reports whether the comparison cannot pass: a gated row too
// small to test, or a condition that lost points to the runner.
func (c *Comparison) Undecided() bool {
	return c.Inconclusive > 0 || len(c.Lost) > 0
}

// ExitCode is the comparison's exit status: ExitFail when it failed,
// ExitInconclusive when it could not decide, ExitPass otherwise. A
// comparison that cannot decide never passes.
func (c *Comparison) ExitCode() int {
	switch {
	case c.Failed():
		return ExitFail
	case c.Undecided():
		return ExitInconclusive
	}
	return ExitPass
}

// ErrNothingInCommon is returned when two runs share no condition.
var ErrNothingInCommon = errors.New("the runs have no condition (mode, services, requestsPerConn, targets) in common")

// ErrScenarioMismatch is returned (with the Comparison, which lists the
// mismatches) when the runs' points measure different things and
// CompareOptions.AllowMismatch is false.
var ErrScenarioMismatch = errors.New("the runs measured different scenarios")

// errChurnMismatch says why a run with churn and one without are never
// compared, --allow-mismatch or not.
const errChurnMismatch = "churn points are never compared with points without churn, even with --allow-mismatch"

// Compare matches the points of two runs by condition (mode, Services,
// requests per connection, targets) and compares every metric over their
// valid repetitions.
//
// The gated rows (the base scenario's spec.gate: by default median
// connect time and client-node CPU at the largest Service step, for every
// mode and connection variant) are one family. Each tests the threshold
// directly: H0 new/base ≤ 1 + threshold against "worse beyond it", one
// sided, with the exact Mann-Whitney test on the repetitions, and Holm's
// correction over the family. A gated row whose repetitions cannot reach
// significance at all is inconclusive: never a pass. Every other row is
// descriptive (a two-sided test of no change, corrected over its own
// family) and never fails a comparison; the mean round-trip latency is
// shown and not tested.
//
// Before any of that, the two runs must measure the same thing in the
// same way: rate, duration, warm-up, endpoints, backends, clients,
// targets, timeout, in-flight bound, repetitions, order, sampling,
// provider, what the CPU figure covers, pinning, the kpbench build and
// spec.churn (rate, kinds, fraction, target, hold, grace) (from run.json
// and from the points themselves). Otherwise Compare returns
// ErrScenarioMismatch, unless opts.AllowMismatch, and the mismatches lead
// the output. A run with churn and one without are never compared, even
// with opts.AllowMismatch: a churn point measures what the changes cause.
//
// When both runs have churn, the churn metrics (scenarios.ChurnGateMetrics)
// are compared beside opts.Metrics, descriptive unless the gate names them;
// a point without churn has none of them.
//
// Samples are the repetitions, never the per-second values inside a
// point: those are autocorrelated (one warm cache, one conntrack table),
// and treating them as independent would make noise look significant.
func Compare(base, next *Data, opts CompareOptions) (*Comparison, error) {
	c := &Comparison{Base: base.Dir, New: next.Dir, BaseRun: base.Run.ID, NewRun: next.Run.ID,
		Threshold: opts.Threshold, Alpha: Alpha, Correction: "holm"}
	bspec := &base.Run.Scenario.Spec
	gatedMetrics, gatedServices, gatedTargets := bspec.GatedMetrics(), bspec.GatedServices(), bspec.GatedTargets()
	c.Gate = fmt.Sprintf("%s at %v Services, every mode and connection variant", strings.Join(gatedMetrics, ", "), gatedServices)
	if len(bspec.Load.Targets) > 1 {
		c.Gate += fmt.Sprintf(", placement %v", gatedTargets)
	}
	metrics := append([]Metric(nil), opts.Metrics...)
	for _, name := range gatedMetrics {
		if !slices.ContainsFunc(metrics, func(m Metric) bool { return m.Name == name }) {
			if m, ok := lookupMetric(name); ok {
				metrics = append(metrics, m)
			}
		}
	}
	bChurn, nChurn := hasChurn(base), hasChurn(next)
	if bChurn && nChurn {
		for _, name := range scenarios.ChurnGateMetrics {
			if m, ok := lookupMetric(name); ok && !slices.ContainsFunc(metrics, func(x Metric) bool { return x.Name == name }) {
				metrics = append(metrics, m)
			}
		}
	}
	for _, m := range metrics {
		c.Metrics = append(c.Metrics, m.Name)
	}
	c.ScenarioMismatches = scenarioMismatches(base, next)
	c.EnvironmentDifferences = environmentDifferences(base, next)
	if bChurn != nChurn {
		// Not even when allowed: what churn causes is what a churn point
		// measures, and a point without churn measured none of it.
		return c, fmt.Errorf("%s vs %s: %w: %s: %s", base.Dir, next.Dir, ErrScenarioMismatch, errChurnMismatch,
			strings.Join(c.ScenarioMismatches, "; "))
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
		// new run planned (planning fewer repetitions is a mismatch of
		// its own).
		if expected := min(len(g.Valid), planned); valid < expected {
			reasons, cause := lostReasons(next.Run, g.Key, pts, planned)
			lost[g.Key] = &Lost{Condition: g.Key.String(), Lost: expected - valid, Of: expected, Planned: planned,
				Reasons: reasons, Cause: cause}
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

	for _, m := range metrics {
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
			switch {
			case slices.Contains(gatedMetrics, m.Name) && slices.Contains(gatedServices, k.Services) &&
				(len(gatedTargets) == 0 || slices.Contains(gatedTargets, k.Targets)):
				row.Family = FamilyGate
			case m.Name != "latency":
				row.Family = FamilyDescriptive
			}
			if len(nv) > 0 {
				if row.Base.Median != 0 {
					row.Delta = row.New.Median/row.Base.Median - 1
				} else if row.New.Median == 0 {
					row.Delta = 0
				}
				row.tested = row.Family != ""
				if !row.tested {
					row.Change = RatioCI(bv, nv, Confidence)
				}
			}
			c.Rows = append(c.Rows, row)
		}
	}
	c.GateTests = c.testGate()
	c.Tests = c.testDescriptive()
	for i := range c.Rows {
		row := &c.Rows[i]
		if l := lost[row.key]; l != nil && row.Verdict != VerdictRegression {
			row.Verdict = l.verdict()
		}
	}
	c.Notes = append(c.Notes, c.invalidShare(common, baseGroups, nextGroups, lost)...)
	if c.Inconclusive > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d gated rows are INCONCLUSIVE: their repetitions cannot reach p < %.2f after Holm's correction over the %d gated rows (that needs %d repetitions per side); run more repetitions",
			c.Inconclusive, Alpha, c.GateTests, gateRepetitionsFor(c.GateTests)))
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
