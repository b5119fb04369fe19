package report

import (
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// The 2026-12-04 reference run (168 points, 6 repetitions; testdata) is the fixture of the
// gate's failures: each case below passed the old gate.

func reference(t *testing.T) *Data {
	t.Helper()
	d, err := Load(filepath.Join("testdata", "reference-2026-12-04"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// scaleMode multiplies the gated and descriptive costs of mode's points
// (at services, or every step when services is 0) by f.
func scaleMode(mode scenarios.Mode, services int, f float64) func(p *runs.Point) bool {
	return func(p *runs.Point) bool {
		if p.Mode == mode && (services == 0 || p.Services == services) {
			p.Connect.P01Us *= f
			p.Connect.P50Us *= f
			p.Connect.P90Us *= f
			p.Connect.P99Us *= f
			p.Latency.MeanUs *= f
			p.Latency.P50Us *= f
			p.Latency.P99Us *= f
			p.CPU.Node.Total *= f
		}
		return true
	}
}

// TestGateReferenceRegressions: every iptables point doubled used to exit
// 0 (84 tests; the smallest Holm p was 0.182). With the gate's 8 rows (connect
// and CPU at 10,000 Services, two modes, two connection variants) it
// fails on the iptables rows, and only there.
func TestGateReferenceRegressions(t *testing.T) {
	ref := reference(t)
	defaults, _ := LookupMetrics(DefaultMetrics)
	doubled := derive(t, ref, nil, scaleMode(scenarios.ModeIPTables, 0, 2))
	c, err := Compare(ref, doubled, CompareOptions{Metrics: Metrics, Threshold: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if c.ExitCode() != ExitFail || c.GateTests != 8 || c.Regressions != 4 {
		t.Fatalf("doubled: exit %d, %d gated rows, %d regressions\n%s", c.ExitCode(), c.GateTests, c.Regressions, text(t, c))
	}
	for _, r := range c.Rows {
		if r.Verdict == VerdictRegression && (r.key.Mode != scenarios.ModeIPTables || r.Family != FamilyGate) {
			t.Errorf("%s %s regresses", r.Condition, r.Metric)
		}
	}
	// The run against itself passes: every gated row can reach
	// significance with 6+6 repetitions over 12 rows.
	same, err := Compare(ref, ref, CompareOptions{Metrics: defaults, Threshold: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if same.ExitCode() != ExitPass || same.Inconclusive != 0 {
		t.Fatalf("A/A: exit %d, %d inconclusive\n%s", same.ExitCode(), same.Inconclusive, text(t, same))
	}
}

// TestGateFewerRepetitionsPlanned: a new run that planned 2 repetitions,
// iptables 3× worse, used to exit 0 (losses were counted against what it
// planned, and repetitions were no mismatch). Now the mismatch exits 2,
// and allowed, 6+2 repetitions cannot reach significance over 12 gated
// rows: inconclusive, never a pass.
func TestGateFewerRepetitionsPlanned(t *testing.T) {
	ref := reference(t)
	defaults, _ := LookupMetrics(DefaultMetrics)
	worse := scaleMode(scenarios.ModeIPTables, 0, 3)
	two := derive(t, ref, func(r *runs.Run) { r.Scenario.Spec.Repetitions = 2 },
		func(p *runs.Point) bool { return p.Repetition <= 2 && worse(p) })
	if _, err := Compare(ref, two, CompareOptions{Metrics: defaults, Threshold: 0.1}); !errors.Is(err, ErrScenarioMismatch) {
		t.Fatalf("err = %v, want a repetitions mismatch", err)
	}
	c, err := Compare(ref, two, CompareOptions{Metrics: defaults, Threshold: 0.1, AllowMismatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.ExitCode() == ExitPass || c.Inconclusive == 0 {
		t.Fatalf("exit %d, %d inconclusive\n%s", c.ExitCode(), c.Inconclusive, text(t, c))
	}
}

// TestGateTestsTheThreshold: 36 rows all truly +8% at a CV of 5%, 7+7
// repetitions, a 10% threshold. The old gate tested against zero and
// applied the threshold to an unadjusted bound: 12.1% of nights failed.
// Testing H0 new/base ≤ 1.10 directly, no row of a +8% change may be
// called a regression; the same rows at +40% must be.
func TestGateTestsTheThreshold(t *testing.T) {
	for _, tc := range []struct {
		shift   float64
		maxFail int
		minFail int
	}{{1.08, 0, 0}, {1.40, 36, 36}} {
		bad := 0
		for seed := uint64(1); seed <= 20; seed++ {
			base, next := simulatedPair(seed, 36, 7, 0.05, tc.shift)
			c, err := Compare(base, next, CompareOptions{Metrics: gateOnly(t), Threshold: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			if c.GateTests != 36 {
				t.Fatalf("%d gated rows", c.GateTests)
			}
			if c.ExitCode() == ExitFail {
				bad++
			}
			if tc.shift < 1.1 && c.Regressions > 0 {
				t.Errorf("seed %d: +8%% within a 10%% threshold: %d regressions", seed, c.Regressions)
			}
		}
		if tc.shift > 1.1 && bad < 19 {
			t.Errorf("+40%%: %d of 20 nights fail, want all but at most one", bad)
		}
	}
}

// TestGateIntervalAgreesWithVerdict: the interval printed beside every
// tested row is the one its verdict used: a gated row regresses exactly
// when its one-sided bound exceeds the threshold, and a descriptive row is
// significant exactly when its interval excludes no change.
func TestGateIntervalAgreesWithVerdict(t *testing.T) {
	ref := reference(t)
	for _, f := range []float64{1, 1.1, 1.2, 1.35, 2} {
		next := derive(t, ref, nil, scaleMode(scenarios.ModeIPTables, 0, f))
		c, err := Compare(ref, next, CompareOptions{Metrics: Metrics, Threshold: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range c.Rows {
			if !r.tested || !r.Change.OK {
				continue
			}
			switch r.Family {
			case FamilyGate:
				if (r.Verdict == VerdictRegression) != (r.Change.Lo > c.Threshold) {
					t.Errorf("×%.2f %s %s: verdict %q, bound %+.4f", f, r.Condition, r.Metric, r.Verdict, r.Change.Lo)
				}
			case FamilyDescriptive:
				excludes := r.Change.Lo > 0 || r.Change.Hi < 0
				if r.Significant != excludes && math.Abs(r.Change.Lo) > 1e-9 && math.Abs(r.Change.Hi) > 1e-9 {
					t.Errorf("×%.2f %s %s: significant %v, interval [%+.4f, %+.4f]", f, r.Condition, r.Metric, r.Significant, r.Change.Lo, r.Change.Hi)
				}
			}
		}
	}
}

// TestGateInvalidShareRise: invalid points the runner lost are
// inconclusive one by one, but a significant rise of their share fails.
func TestGateInvalidShareRise(t *testing.T) {
	ref := reference(t)
	defaults, _ := LookupMetrics(DefaultMetrics)
	n := 0
	next := derive(t, ref, nil, func(p *runs.Point) bool {
		if p.Services < 10000 && p.Repetition == 6 && n < 20 {
			n++
			p.Valid, p.InvalidReasons = false, []string{runs.ReasonScheduleBehind + ": 1 send 140 ms late"}
		}
		return true
	})
	c, err := Compare(ref, next, CompareOptions{Metrics: defaults, Threshold: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if c.InvalidRise == "" || c.ExitCode() != ExitFail {
		t.Fatalf("20 of 168 invalid: exit %d, rise %q", c.ExitCode(), c.InvalidRise)
	}
	if p := fisherGreater(1, 168, 0, 168); p < Alpha {
		t.Errorf("one invalid point against none: p = %.3f", p)
	}
}

func gateOnly(t *testing.T) []Metric {
	ms, err := LookupMetrics([]string{"connect"})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}
