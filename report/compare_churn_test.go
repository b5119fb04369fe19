package report

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// withChurn returns a copy of d whose scenario's spec.churn is what edit
// makes of a copy of it, and whose points carry churn (at the new rate)
// or, when edit returns nil, none.
func withChurn(d *Data, edit func(c scenarios.Churn) *scenarios.Churn) *Data {
	run := *d.Run
	var c *scenarios.Churn
	if run.Scenario.Spec.Churn != nil {
		cc := *run.Scenario.Spec.Churn
		c = edit(cc)
	}
	run.Scenario.Spec.Churn = c
	pts := slices.Clone(d.Points)
	for i := range pts {
		switch {
		case c == nil:
			pts[i].Churn = nil
		case pts[i].Churn != nil:
			pc := *pts[i].Churn
			pc.AskedPerSecond = c.Rate
			pts[i].Churn = &pc
		}
	}
	return &Data{Dir: d.Dir + "-edited", Run: &run, Points: pts, groups: groupPoints(pts)}
}

// TestCompareChurnGate: between two churn runs the churn metrics are
// compared beside the others, and the scenario's gate fails on a churn
// metric as on any other: stale hits doubled regress at the gated step in
// both modes, and nowhere else; another run of the same scenario, and the
// run against itself, pass.
func TestCompareChurnGate(t *testing.T) {
	defaults, _ := LookupMetrics(DefaultMetrics)
	for _, tc := range []struct {
		next      string
		wantExit  int
		wantRegr  int
		staleGate string // the verdict of the gated stale-hit rows
	}{
		{"churn-stale-doubled", ExitFail, 2, VerdictRegression},
		{"churn-aa", ExitPass, 0, VerdictPass},
		{"churn-base", ExitPass, 0, VerdictPass},
	} {
		t.Run(tc.next, func(t *testing.T) {
			c, err := Compare(load(t, "churn-base"), load(t, tc.next), CompareOptions{Metrics: defaults, Threshold: 0.10})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := c.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if c.ExitCode() != tc.wantExit || c.Regressions != tc.wantRegr {
				t.Fatalf("exit %d, %d regressions; want exit %d, %d\n%s", c.ExitCode(), c.Regressions, tc.wantExit, tc.wantRegr, out)
			}
			// 3 gated metrics × 2 modes at 5,000 Services.
			if c.GateTests != 6 || c.Inconclusive != 0 {
				t.Errorf("%d gated rows, %d inconclusive; want 6, 0\n%s", c.GateTests, c.Inconclusive, out)
			}
			for _, m := range scenarios.ChurnGateMetrics {
				if !slices.Contains(c.Metrics, m) {
					t.Errorf("metrics %v lack %s", c.Metrics, m)
				}
				desc, unit := describeMetric(m)
				if head := m + ": " + desc + " (" + unit + ")"; !strings.Contains(out, head) {
					t.Errorf("output lacks the table %q:\n%s", head, out)
				}
			}
			staleGated := 0
			for _, r := range c.Rows {
				changed := tc.wantRegr > 0 && r.Metric == "churn-stale-hits"
				switch {
				case r.Metric == "churn-stale-hits" && r.key.Services == 5000:
					staleGated++
					if r.Family != FamilyGate || r.Verdict != tc.staleGate {
						t.Errorf("%s %s: family %s, verdict %q; want gate, %q", r.Condition, r.Metric, r.Family, r.Verdict, tc.staleGate)
					}
				case changed && r.Verdict != VerdictWorse:
					t.Errorf("%s: doubled stale hits, descriptive verdict %q, want %q", r.Condition, r.Verdict, VerdictWorse)
				case !changed && (r.Verdict == VerdictRegression || r.Verdict == VerdictWorse):
					t.Errorf("%s %s: %s (delta %.3f), but nothing changed there", r.Condition, r.Metric, r.Verdict, r.Delta)
				}
			}
			if staleGated != 2 {
				t.Errorf("%d gated stale-hit rows, want 2 (one per mode)", staleGated)
			}
		})
	}
}

// TestCompareChurnMismatch: runs whose spec.churn differs are a scenario
// mismatch naming each field, compared only when allowed; defaults left
// unset are the defaults; a churn run and one without are never compared,
// allowed or not, and the refusal names every field.
func TestCompareChurnMismatch(t *testing.T) {
	defaults, _ := LookupMetrics(DefaultMetrics)
	base := load(t, "churn-base")
	faster := withChurn(base, func(c scenarios.Churn) *scenarios.Churn {
		c.Rate, c.Hold = 20, scenarios.Duration(2*time.Second)
		return &c
	})
	_, err := Compare(base, faster, CompareOptions{Metrics: defaults, Threshold: 0.1})
	if !errors.Is(err, ErrScenarioMismatch) {
		t.Fatalf("err = %v, want ErrScenarioMismatch", err)
	}
	for _, want := range []string{"spec.churn.rate: base 10/s, new 20/s", "spec.churn.hold: base 5s, new 2s", "points' churn rate (writes/s): base 10, new 20"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err lacks %q: %v", want, err)
		}
	}
	for _, not := range []string{"spec.churn.kinds", "spec.churn.fraction", "spec.churn.target", "spec.churn.grace"} {
		if strings.Contains(err.Error(), not) {
			t.Errorf("err names %s, which did not change: %v", not, err)
		}
	}
	c, err := Compare(base, faster, CompareOptions{Metrics: defaults, Threshold: 0.1, AllowMismatch: true})
	if err != nil {
		t.Fatalf("allowed: %v", err)
	}
	var b bytes.Buffer
	c.WriteText(&b)
	if !strings.Contains(b.String(), "SCENARIO MISMATCH: spec.churn.rate: base 10/s, new 20/s") {
		t.Errorf("the mismatch does not lead the output:\n%s", b.String())
	}

	// Unset fields are their defaults.
	implicit := withChurn(base, func(c scenarios.Churn) *scenarios.Churn {
		c.Kinds, c.Fraction, c.Target, c.Hold = nil, 0, nil, 0
		return &c
	})
	if _, err := Compare(base, implicit, CompareOptions{Metrics: defaults, Threshold: 0.1}); err != nil {
		t.Errorf("defaults left unset: %v", err)
	}

	none := withChurn(base, func(scenarios.Churn) *scenarios.Churn { return nil })
	for _, pair := range []struct {
		name       string
		base, next *Data
		b, n       string
	}{{"churn vs none", base, none, "10/s", "none"}, {"none vs churn", none, base, "none", "10/s"}} {
		for _, allow := range []bool{false, true} {
			c, err := Compare(pair.base, pair.next, CompareOptions{Metrics: defaults, Threshold: 0.1, AllowMismatch: allow})
			if !errors.Is(err, ErrScenarioMismatch) || c == nil || len(c.Rows) != 0 {
				t.Fatalf("%s (allowed %v): err = %v, want ErrScenarioMismatch and no row", pair.name, allow, err)
			}
			msg := err.Error()
			for _, want := range []string{
				"churn points are never compared with points without churn",
				"spec.churn.rate: base " + pair.b + ", new " + pair.n,
				"spec.churn.kinds:", "spec.churn.fraction:", "spec.churn.target:", "spec.churn.hold:", "spec.churn.grace:",
				"points' churn rate (writes/s):",
			} {
				if !strings.Contains(msg, want) {
					t.Errorf("%s (allowed %v): err lacks %q: %v", pair.name, allow, want, msg)
				}
			}
		}
	}
}

// TestChurnMetrics: the churn metrics of a point, and none on a point
// without churn (absent, not zero), whatever else it measured.
func TestChurnMetrics(t *testing.T) {
	p := runs.Point{Requests: 30000, DurationSeconds: 30, Connect: runs.Connect{Count: 30000, P50Us: 60}}
	p.CPU.Node.Total = 0.4
	for _, name := range scenarios.ChurnGateMetrics {
		if v, ok := metric(name).Value(&p); ok {
			t.Errorf("%s = %v on a point without churn", name, v)
		}
	}
	p.Churn = &runs.Churn{Programming: runs.DurationSummary{Count: 300, P50: 0.25, P99: 0.8, Max: 1.1},
		Traffic: &runs.ChurnTraffic{Requests: 30000, Errors: map[string]int64{"refused": 4, "timeout": 2},
			StaleUnprogrammed: 12, StaleProgrammed: 3, ConnectInSync: runs.Percentiles{Count: 400, P50: 95}}}
	for name, want := range map[string]float64{"churn-errors": 2, "churn-stale-hits": 5, "churn-programming-p50": 0.25,
		"churn-programming-p99": 0.8, "churn-connect-in-sync": 95} {
		if v, ok := metric(name).Value(&p); !ok || v != want {
			t.Errorf("%s = %v, %v; want %v", name, v, ok, want)
		}
	}
	// No error is a measured zero; nothing programmed, no traffic, or no
	// connection inside a sync measures nothing.
	p.Churn.Traffic.Errors = nil
	if v, ok := metric("churn-errors").Value(&p); !ok || v != 0 {
		t.Errorf("churn-errors without errors = %v, %v; want 0, true", v, ok)
	}
	p.Churn.Programming = runs.DurationSummary{}
	p.Churn.Traffic.ConnectInSync = runs.Percentiles{}
	for _, name := range []string{"churn-programming-p50", "churn-programming-p99", "churn-connect-in-sync"} {
		if _, ok := metric(name).Value(&p); ok {
			t.Errorf("%s measured with nothing behind it", name)
		}
	}
	p.Churn.Traffic = nil
	for _, name := range []string{"churn-errors", "churn-stale-hits"} {
		if _, ok := metric(name).Value(&p); ok {
			t.Errorf("%s measured without traffic", name)
		}
	}
}

// TestGateMetricsAreMetrics: every metric a gate may name is in the
// table, so that compare can test it.
func TestGateMetricsAreMetrics(t *testing.T) {
	for _, n := range scenarios.GateMetrics {
		if _, ok := lookupMetric(n); !ok {
			t.Errorf("gate metric %s is not in report.Metrics", n)
		}
	}
}
