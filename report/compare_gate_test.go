package report

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// derive writes a copy of the results directory src with its run and
// points changed, and loads it.
func derive(t *testing.T, src *Data, editRun func(r *runs.Run), editPoint func(p *runs.Point) (keep bool)) *Data {
	t.Helper()
	dir := t.TempDir()
	run := *src.Run
	run.Scenario.Spec.Load.Warmup = src.Run.Scenario.Spec.Load.Warmup
	if editRun != nil {
		editRun(&run)
	}
	if err := runs.WriteRun(dir, &run); err != nil {
		t.Fatal(err)
	}
	for _, p := range src.Points {
		p := p
		if editPoint != nil && !editPoint(&p) {
			continue
		}
		if err := runs.AppendPoint(dir, &p); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func text(t *testing.T, c *Comparison) string {
	t.Helper()
	var b bytes.Buffer
	if err := c.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestCompareLostPointsFail(t *testing.T) {
	base := load(t, "compare-base")
	defaults, _ := LookupMetrics(DefaultMetrics)
	const cond = "iptables/services=10000/rpc=1/targets=one"

	t.Run("every repetition invalid", func(t *testing.T) {
		next := derive(t, base, nil, func(p *runs.Point) bool {
			if p.Mode == scenarios.ModeIPTables && p.Services == 10000 {
				p.Valid = false
				p.InvalidReasons = []string{runs.ReasonErrors + ": 812 of 30000 requests failed"}
			}
			return true
		})
		c, err := Compare(base, next, CompareOptions{Metrics: defaults, Threshold: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		out := text(t, c)
		if c.ExitCode() != ExitFail || len(c.Lost) != 1 || c.Lost[0].Condition != cond || c.Lost[0].Lost != 6 || c.Lost[0].Of != 6 {
			t.Fatalf("lost = %+v, exit %d\n%s", c.Lost, c.ExitCode(), out)
		}
		want := "lost 6 of 6 valid points (dataplane): 6× " + runs.ReasonErrors
		for _, w := range []string{"LOST: " + cond + ": " + want, "1 condition(s) lost 6 valid point(s) to the dataplane"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
		rows := 0
		for _, r := range c.Rows {
			if r.Condition == cond {
				rows++
				if r.Verdict != want || r.New.N != 0 {
					t.Errorf("%s %s: verdict %q, new n %d", r.Condition, r.Metric, r.Verdict, r.New.N)
				}
			}
		}
		if rows != 3 {
			t.Errorf("%d rows for the lost condition, want one per metric", rows)
		}
	})
	// The runner's faults are not the dataplane's: they make the
	// comparison inconclusive (exit 2) and are named, where any lost point
	// used to fail it.
	for _, reason := range []string{runs.ReasonScheduleBehind + ": 1 send 212 ms late", runs.ReasonNoCPUSample, runs.ReasonInflightBound + " (1000)"} {
		t.Run("some repetitions invalid: "+reasonKind(reason), func(t *testing.T) {
			next := derive(t, base, nil, func(p *runs.Point) bool {
				if p.Mode == scenarios.ModeIPTables && p.Services == 10000 && p.Repetition > 4 {
					p.Valid = false
					p.InvalidReasons = []string{reason}
				}
				return true
			})
			c, err := Compare(base, next, CompareOptions{Metrics: defaults, Threshold: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			if c.Failed() || c.ExitCode() != ExitInconclusive || len(c.Lost) != 1 || c.Lost[0].Lost != 2 || c.Lost[0].Cause != CauseRunner {
				t.Fatalf("lost = %+v, exit %d\n%s", c.Lost, c.ExitCode(), text(t, c))
			}
			if !strings.Contains(text(t, c), "lost 2 of 6 valid points (runner): 2× "+reasonKind(reason)) {
				t.Error(text(t, c))
			}
		})
	}
	// The window's own validity rules: a saturated client node, CPU
	// samples that cover too little of the window and a stall are the
	// runner's; a sync or a chain reorder inside the window is
	// kube-proxy's doing but no cost per connection: named apart, and
	// inconclusive too.
	for _, c := range []struct{ reason, cause string }{
		{runs.ReasonCPUSaturated + ": a sampling interval reached 1.00 of 1 CPU (bound 0.98)", CauseRunner},
		{runs.ReasonCPUCoverage + ": 85.0%", CauseRunner},
		{runs.ReasonScheduleBehind + ": a send started 31.0 ms late (bound 20ms, 0.4% of the 5s window: x)", CauseRunner},
		{runs.ReasonSynced + ": 1 full, 0 partial", CauseSync},
		{runs.ReasonReordered + ": depth 2001→1", CauseSync},
	} {
		t.Run("lost to "+reasonKind(c.reason), func(t *testing.T) {
			next := derive(t, base, nil, func(p *runs.Point) bool {
				if p.Mode == scenarios.ModeIPTables && p.Services == 10000 && p.Repetition > 4 {
					p.Valid = false
					p.InvalidReasons = []string{c.reason}
				}
				return true
			})
			cmp, err := Compare(base, next, CompareOptions{Metrics: defaults, Threshold: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			if cmp.Failed() || cmp.ExitCode() != ExitInconclusive || len(cmp.Lost) != 1 || cmp.Lost[0].Cause != c.cause {
				t.Fatalf("lost = %+v, exit %d\n%s", cmp.Lost, cmp.ExitCode(), text(t, cmp))
			}
			out := text(t, cmp)
			for _, w := range []string{"lost 2 of 6 valid points (" + c.cause + "): 2× " + reasonKind(c.reason),
				"1 condition(s) lost 2 valid point(s) to the " + c.cause} {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("a sync and a dataplane fault: the dataplane's fails", func(t *testing.T) {
		next := derive(t, base, nil, func(p *runs.Point) bool {
			if p.Mode == scenarios.ModeIPTables && p.Services == 10000 && p.Repetition > 4 {
				p.Valid = false
				p.InvalidReasons = []string{runs.ReasonSynced + ": 0 full, 1 partial", runs.ReasonErrors + ": 40 of 30000 requests failed"}
			}
			return true
		})
		cmp, err := Compare(base, next, CompareOptions{Metrics: defaults, Threshold: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		if cmp.ExitCode() != ExitFail || cmp.Lost[0].Cause != CauseDataplane {
			t.Fatalf("lost = %+v, exit %d", cmp.Lost, cmp.ExitCode())
		}
	})
	t.Run("kube-proxy not running and a runner fault: the dataplane's fails", func(t *testing.T) {
		next := derive(t, base, nil, func(p *runs.Point) bool {
			if p.Mode == scenarios.ModeIPTables && p.Services == 10000 && p.Repetition > 4 {
				p.Valid = false
				p.InvalidReasons = []string{runs.ReasonScheduleBehind, runs.ReasonKubeProxyDied}
			}
			return true
		})
		c, err := Compare(base, next, CompareOptions{Metrics: defaults, Threshold: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		if c.ExitCode() != ExitFail || c.Lost[0].Cause != CauseDataplane {
			t.Fatalf("lost = %+v, exit %d", c.Lost, c.ExitCode())
		}
	})
	t.Run("a mode skipped in the new run", func(t *testing.T) {
		next := derive(t, base, func(r *runs.Run) {
			r.SkippedModes = []runs.SkippedMode{{Mode: scenarios.ModeNFTables, Reason: "nft binary missing"}}
		}, func(p *runs.Point) bool { return p.Mode != scenarios.ModeNFTables })
		c, err := Compare(base, next, CompareOptions{Metrics: defaults, Threshold: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Lost) != 2 || len(c.OnlyBase) != 0 || c.ExitCode() != ExitInconclusive {
			t.Fatalf("lost = %+v, only in base %v, exit %d", c.Lost, c.OnlyBase, c.ExitCode())
		}
		if !strings.Contains(text(t, c), "lost 6 of 6 valid points (runner): 6 not measured (mode skipped: nft binary missing)") {
			t.Error(text(t, c))
		}
	})
	t.Run("a base that lost a point does not fail an equal new run", func(t *testing.T) {
		both := func(p *runs.Point) bool {
			if p.ID == runs.PointID(scenarios.ModeIPTables, 1, 1, 2) {
				p.Valid, p.InvalidReasons = false, []string{runs.ReasonRateShort}
			}
			return true
		}
		b2 := derive(t, base, nil, both)
		n2 := derive(t, base, nil, both)
		c, err := Compare(b2, n2, CompareOptions{Metrics: defaults, Threshold: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		if c.ExitCode() != ExitPass {
			t.Fatalf("exit %d:\n%s", c.ExitCode(), text(t, c))
		}
	})
}

func TestCompareScenarioMismatch(t *testing.T) {
	base := load(t, "compare-base")
	defaults, _ := LookupMetrics(DefaultMetrics)
	fast := derive(t, base, func(r *runs.Run) { r.Scenario.Spec.Load.Rate *= 5 },
		func(p *runs.Point) bool { p.Rate.Target *= 5; p.Rate.Achieved *= 5; return true })
	c, err := Compare(base, fast, CompareOptions{Metrics: defaults, Threshold: 0.1})
	if !errors.Is(err, ErrScenarioMismatch) {
		t.Fatalf("err = %v, want ErrScenarioMismatch", err)
	}
	for _, w := range []string{"spec.load.rate: base 1000, new 5000", "points' target rate: base 1000, new 5000", "--allow-mismatch"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	c, err = Compare(base, fast, CompareOptions{Metrics: defaults, Threshold: 0.1, AllowMismatch: true})
	if err != nil {
		t.Fatal(err)
	}
	out := text(t, c)
	if i := strings.Index(out, "SCENARIO MISMATCH: spec.load.rate: base 1000, new 5000"); i < 0 || i > strings.Index(out, "latency:") {
		t.Errorf("the mismatch is not printed at the top:\n%s", out)
	}

	for name, edit := range map[string]func(r *runs.Run){
		"spec.load.duration":       func(r *runs.Run) { r.Scenario.Spec.Load.Duration *= 2 },
		"spec.endpointsPerService": func(r *runs.Run) { r.Scenario.Spec.EndpointsPerService = 100 },
		"spec.backends":            func(r *runs.Run) { r.Scenario.Spec.Backends = 3 },
		"spec.load.clients":        func(r *runs.Run) { r.Scenario.Spec.Load.Clients = 3 },
		"spec.load.targets":        func(r *runs.Run) { r.Scenario.Spec.Load.Targets = scenarios.Placements{scenarios.TargetsRandom} },
		// How the points were measured: each of these moved numbers with
		// no change of the dataplane, and a comparison across them exited
		// 0 (a kind run against a lab run, +50% CPU, passed).
		"spec.repetitions":       func(r *runs.Run) { r.Scenario.Spec.Repetitions = 5 },
		"provider":               func(r *runs.Run) { r.Provider.Name = "kind" },
		"pinning":                func(r *runs.Run) { r.Pinning = nil },
		"spec.order":             func(r *runs.Run) { r.Scenario.Spec.Order = scenarios.OrderSteps },
		"spec.sampling.interval": func(r *runs.Run) { r.Scenario.Spec.Sampling.Interval = scenarios.Duration(100 * time.Millisecond) },
		"kpbench build":          func(r *runs.Run) { r.KpbenchVersion = "v0.2.0" },
		"spec.gate":              func(r *runs.Run) { r.Scenario.Spec.Gate = &scenarios.Gate{Metrics: []string{"latency-p99"}} },
	} {
		d := derive(t, base, edit, nil)
		if _, err := Compare(base, d, CompareOptions{Metrics: defaults, Threshold: 0.1}); !errors.Is(err, ErrScenarioMismatch) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s changed: err = %v", name, err)
		}
	}
	d := derive(t, base, nil, func(p *runs.Point) bool { p.DurationSeconds = 10; p.EndpointsPerService = 3; return true })
	_, err = Compare(base, d, CompareOptions{Metrics: defaults, Threshold: 0.1})
	if err == nil || !strings.Contains(err.Error(), "points' duration (s): base 30, new 10") || !strings.Contains(err.Error(), "points' endpoints per Service: base 10, new 3") {
		t.Errorf("points changed: err = %v", err)
	}
	// The load client sent in 1 ms batches in the new run (and each
	// request at its own due time in the base, which recorded no tick).
	d = derive(t, base, nil, func(p *runs.Point) bool { p.Rate.TickSeconds = 0.001; return true })
	_, err = Compare(base, d, CompareOptions{Metrics: defaults, Threshold: 0.1})
	if !errors.Is(err, ErrScenarioMismatch) || !strings.Contains(err.Error(), "points' load tick (s): base 0, new 0.001") {
		t.Errorf("load tick changed: err = %v", err)
	}
}

func TestCompareEnvironmentAtTop(t *testing.T) {
	base := load(t, "compare-base")
	defaults, _ := LookupMetrics(DefaultMetrics)
	next := derive(t, base, func(r *runs.Run) {
		r.Environment.Kernel = "6.19.0"
		r.Environment.CPUModel = "Other CPU"
		r.Environment.KubeProxyVersion = "v1.37.0"
	}, nil)
	c, err := Compare(base, next, CompareOptions{Metrics: defaults, Threshold: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	out := text(t, c)
	top := out[:strings.Index(out, "latency:")]
	for _, w := range []string{"environment differs: kernel:", "environment differs: CPU model:", "environment differs: kube-proxy: " + base.Run.Environment.KubeProxyVersion + " → v1.37.0"} {
		if !strings.Contains(top, w) {
			t.Errorf("top lacks %q:\n%s", w, top)
		}
	}
	if c.ExitCode() != ExitPass {
		t.Errorf("an environment difference alone: exit %d", c.ExitCode())
	}
}

// TestCompareHolm: twelve conditions that each move a little would, tested
// one by one at α=0.05, raise alarms by chance; after Holm's correction a
// single borderline p does not.
func TestHolm(t *testing.T) {
	got := Holm([]float64{0.01, 0.04, math.NaN(), 0.03, 0.005})
	want := []float64{0.03, 0.06, math.NaN(), 0.06, 0.02}
	for i := range want {
		if math.IsNaN(want[i]) != math.IsNaN(got[i]) || (!math.IsNaN(want[i]) && math.Abs(got[i]-want[i]) > 1e-12) {
			t.Fatalf("Holm = %v, want %v", got, want)
		}
	}
	if r := RepetitionsFor(1); r != MinRepetitions() {
		t.Errorf("RepetitionsFor(1) = %d, want %d", r, MinRepetitions())
	}
	// 36 tests (3 metrics × 12 conditions): 2/C(12,6)·36 = 0.078, 2/C(14,7)·36 = 0.021.
	if r := RepetitionsFor(36); r != 7 {
		t.Errorf("RepetitionsFor(36) = %d, want 7", r)
	}
}

// TestCompareCorrected: every metric shown must not dilute the gate. The
// +20% fixture used to pass when all 13 metrics were compared (Holm over
// 52 tests made six repetitions unable to reach significance); the gate's
// family is its 4 rows whatever is shown, and the fixture fails.
func TestCompareCorrected(t *testing.T) {
	base, next := load(t, "compare-base"), load(t, "compare-regressed")
	c, err := Compare(base, next, CompareOptions{Metrics: Metrics, Threshold: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if c.Tests < 28 || c.GateTests != 4 || c.Correction != "holm" {
		t.Fatalf("tests = %d, gated %d, correction %q", c.Tests, c.GateTests, c.Correction)
	}
	if c.ExitCode() != ExitFail || c.Regressions != 2 {
		t.Fatalf("exit %d with %d regressions, want a failure on connect and cpu:\n%s", c.ExitCode(), c.Regressions, text(t, c))
	}
	for _, r := range c.Rows {
		if r.Verdict == VerdictRegression && r.Family != FamilyGate {
			t.Errorf("%s %s: a descriptive row counted as a regression", r.Condition, r.Metric)
		}
		if r.Metric == "latency" && r.Family != "" {
			t.Errorf("mean latency is in family %q", r.Family)
		}
		if r.tested && r.PAdjusted < r.P {
			t.Errorf("adjusted p %.4f below raw %.4f", r.PAdjusted, r.P)
		}
	}
}

func TestRatioCI(t *testing.T) {
	a := []float64{100, 102, 98, 101, 99, 100.5}
	b := make([]float64, len(a))
	for i, v := range a {
		b[i] = 1.2 * v
	}
	ci := RatioCI(a, b, Confidence)
	if !ci.OK || math.Abs(ci.Est-0.2) > 0.005 || ci.Lo > 0.2 || ci.Hi < 0.2 || ci.Lo < 0.1 {
		t.Errorf("RatioCI = %+v, want about +20%% with a CI around it", ci)
	}
	if ci := RatioCI(a[:3], b[:3], Confidence); ci.OK || !math.IsInf(ci.Lo, -1) {
		t.Errorf("3+3: %+v, want no finite interval", ci)
	}
}

// TestMannWhitneyCDF checks the exact distribution against enumeration of
// every arrangement for small samples.
func TestMannWhitneyCDF(t *testing.T) {
	for _, sz := range [][2]int{{1, 1}, {2, 3}, {3, 3}, {4, 2}, {5, 5}} {
		n, m := sz[0], sz[1]
		counts := make([]float64, n*m+1)
		total := 0.0
		// Each subset of n positions among n+m holds the x's; U counts
		// (x, y) pairs with x above y.
		for mask := 0; mask < 1<<(n+m); mask++ {
			if popcount(mask) != n {
				continue
			}
			u, ys := 0, 0
			for pos := 0; pos < n+m; pos++ {
				if mask&(1<<pos) != 0 {
					u += ys
				} else {
					ys++
				}
			}
			counts[u]++
			total++
		}
		cdf := mannWhitneyCDF(n, m)
		acc := 0.0
		for u := range counts {
			acc += counts[u]
			if math.Abs(cdf[u]-acc/total) > 1e-12 {
				t.Fatalf("%d,%d: P(U<=%d) = %v, want %v", n, m, u, cdf[u], acc/total)
			}
		}
	}
}

func popcount(x int) int {
	c := 0
	for ; x > 0; x &= x - 1 {
		c++
	}
	return c
}

func TestSyncMetricOnlyMeasuredSyncs(t *testing.T) {
	sync, _ := LookupMetrics([]string{"sync"})
	mk := func(secs ...float64) *Data {
		var pts []runs.Point
		for i, s := range secs {
			pts = append(pts, runs.Point{Mode: scenarios.ModeIPTables, Services: 1000, RequestsPerConn: 1, Targets: scenarios.TargetsOne,
				Repetition: i + 1, Valid: true, Sync: runs.Sync{LastDurationSeconds: s}})
		}
		run := &runs.Run{Scenario: scenarios.Scenario{Spec: scenarios.Spec{Modes: []scenarios.Mode{scenarios.ModeIPTables},
			Services: []int{1000}, Repetitions: len(secs), Load: scenarios.Load{RequestsPerConn: []int{1}, Targets: scenarios.Placements{scenarios.TargetsOne}}}}}
		return &Data{Run: run, Points: pts, groups: groupPoints(pts)}
	}
	// Only the first repetition measured the step's programming sync: 2 s
	// before, 20 s after. With zeros counted both medians were 0.
	c, err := Compare(mk(2, 0, 0, 0, 0), mk(20, 0, 0, 0, 0), CompareOptions{Metrics: sync, Threshold: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rows) == 0 || c.Rows[0].Metric != "sync" || c.Rows[0].Base.Median != 2 || c.Rows[0].New.Median != 20 || c.Rows[0].Base.N != 1 {
		t.Fatalf("rows = %+v", c.Rows)
	}
	// The gated cpu rows are all zero here: no ratio to test, so
	// inconclusive, never a pass.
	for _, r := range c.Rows[1:] {
		if r.Family != FamilyGate || r.Verdict != VerdictInconclusive {
			t.Errorf("%s %s: family %q, verdict %q", r.Condition, r.Metric, r.Family, r.Verdict)
		}
	}
}

func TestCompareShowsMixedPoints(t *testing.T) {
	base := load(t, "compare-base")
	defaults, _ := LookupMetrics(DefaultMetrics)
	mixed := derive(t, base, nil, func(p *runs.Point) bool {
		p.KpbenchVersion, p.Environment = "v0.1.0", "aaaaaaaaaaaa"
		if p.Repetition > 3 {
			p.KpbenchVersion, p.Environment = "v0.2.0", "bbbbbbbbbbbb"
		}
		return true
	})
	// Builds that measured the points differ: a mismatch.
	if _, err := Compare(base, mixed, CompareOptions{Metrics: defaults, Threshold: 0.1}); !errors.Is(err, ErrScenarioMismatch) {
		t.Fatalf("err = %v, want a mismatch", err)
	}
	c, err := Compare(base, mixed, CompareOptions{Metrics: defaults, Threshold: 0.1, AllowMismatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if out := text(t, c); !strings.Contains(out, "SCENARIO MISMATCH: points' kpbench builds: base , new v0.1.0,v0.2.0") ||
		!strings.Contains(out, "environment differs: new mixes points of 2 kpbench versions (v0.1.0, v0.2.0) and 2 environments") {
		t.Errorf("output:\n%s", out)
	}
}
