package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
)

func load(t *testing.T, name string) *Data {
	t.Helper()
	d, err := Load(fixtureDir(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// firstReps keeps the first n repetitions of every condition.
func firstReps(d *Data, n int) *Data {
	var pts []runs.Point
	for _, p := range d.Points {
		if p.Repetition <= n {
			pts = append(pts, p)
		}
	}
	return &Data{Dir: d.Dir, Run: d.Run, Points: pts, groups: groupPoints(pts)}
}

func TestCompare(t *testing.T) {
	const iptables10k = "iptables/services=10000/rpc=1/targets=one"
	defaults, _ := LookupMetrics(DefaultMetrics)
	tests := []struct {
		name       string
		next       string
		reps       int // 0: all
		threshold  float64
		wantRegr   map[string]bool // metric → regresses at iptables10k
		wantTotal  int
		wantExit   int
		wantVerdct map[string]string // metric → verdict at iptables10k
		wantNote   string
	}{
		{
			// Mean latency is shown, never tested; connect and cpu are the
			// gated rows at the top step.
			name: "injected 20% regression is detected", next: "compare-regressed", threshold: 0.10,
			wantTotal: 2, wantExit: ExitFail,
			wantVerdct: map[string]string{"latency": VerdictUntested, "cpu": VerdictRegression, "connect": VerdictRegression},
		},
		{
			name: "significant 4% shift within a 10% threshold passes", next: "compare-noise", threshold: 0.10,
			wantTotal: 0, wantExit: ExitPass,
			wantVerdct: map[string]string{"latency": VerdictUntested, "cpu": VerdictPass, "connect": VerdictPass},
		},
		{
			name: "the same shift beyond a 1% threshold regresses", next: "compare-noise", threshold: 0.01,
			wantTotal: 2, wantExit: ExitFail,
			wantVerdct: map[string]string{"latency": VerdictUntested, "cpu": VerdictRegression, "connect": VerdictRegression},
		},
		{
			name: "base against itself", next: "compare-base", threshold: 0.10,
			wantTotal: 0, wantExit: ExitPass,
			wantVerdct: map[string]string{"latency": VerdictUntested, "cpu": VerdictPass, "connect": VerdictPass},
		},
		{
			// 3+3: the smallest one-sided p is 1/20, above α/4. The
			// regression cannot be seen, and that is not a pass.
			name: "3+3 repetitions cannot detect the regression: inconclusive, not a pass", next: "compare-regressed", reps: 3, threshold: 0.10,
			wantTotal: 0, wantExit: ExitInconclusive,
			wantVerdct: map[string]string{"latency": VerdictUntested, "cpu": VerdictInconclusive, "connect": VerdictInconclusive},
			wantNote:   "INCONCLUSIVE",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base, next := load(t, "compare-base"), load(t, tc.next)
			if tc.reps > 0 {
				base, next = firstReps(base, tc.reps), firstReps(next, tc.reps)
			}
			c, err := Compare(base, next, CompareOptions{Metrics: defaults, Threshold: tc.threshold})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			c.WriteText(&b)
			if c.Regressions != tc.wantTotal || c.ExitCode() != tc.wantExit {
				t.Fatalf("%d regressions, exit %d; want %d, exit %d\n%s", c.Regressions, c.ExitCode(), tc.wantTotal, tc.wantExit, b.String())
			}
			if len(c.Rows) != 12 || c.GateTests != 4 {
				t.Errorf("%d rows, %d gated; want 3 metrics × 4 conditions, 2 metrics × 2 modes gated", len(c.Rows), c.GateTests)
			}
			for _, r := range c.Rows {
				if r.Condition == iptables10k {
					if want := tc.wantVerdct[r.Metric]; r.Verdict != want {
						t.Errorf("%s %s: verdict %q (delta %.3f, p %.4f), want %q", r.Condition, r.Metric, r.Verdict, r.Delta, r.P, want)
					}
				} else if r.Verdict == VerdictRegression || r.Verdict == VerdictWorse {
					t.Errorf("%s %s regresses (delta %.3f, p %.4f), but nothing changed there", r.Condition, r.Metric, r.Delta, r.P)
				}
			}
			notes := strings.Join(c.Notes, "\n")
			if tc.wantNote != "" && !strings.Contains(notes, tc.wantNote) {
				t.Errorf("notes %q lack %q", notes, tc.wantNote)
			}
			if tc.wantNote == "" && strings.Contains(notes, "INCONCLUSIVE") {
				t.Errorf("unexpected note: %s", notes)
			}
		})
	}
}

func TestCompareNothingInCommon(t *testing.T) {
	base := load(t, "compare-base")
	other := load(t, "sweep")
	var pts []runs.Point
	for _, p := range other.Points {
		if p.Services == 100 {
			pts = append(pts, p)
		}
	}
	run := *other.Run
	run.Scenario.Spec.Services = []int{100} // a run that planned only this step
	other = &Data{Dir: "x", Run: &run, Points: pts, groups: groupPoints(pts)}
	_, err := Compare(base, other, CompareOptions{Metrics: Metrics, Threshold: 0.1, AllowMismatch: true})
	if !errors.Is(err, ErrNothingInCommon) {
		t.Fatalf("err = %v, want ErrNothingInCommon", err)
	}
}

func TestCompareOutputs(t *testing.T) {
	base, next := load(t, "compare-base"), load(t, "compare-regressed")
	// cpu is not asked for, but it is gated: it is compared all the same.
	ms, _ := LookupMetrics([]string{"latency", "connect"})
	c, err := Compare(base, next, CompareOptions{Metrics: ms, Threshold: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	var text, md, js bytes.Buffer
	if err := c.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": text.String(), "markdown": md.String()} {
		for _, want := range []string{"iptables/services=10000/rpc=1/targets=one", "REGRESSION", "+22.26%", "[+17.0%, +∞) @98.75%", "0.004", "FAIL: 2 significant regression(s) beyond 10%", "±", "cpu:", "not tested"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks %q:\n%s", name, want, out)
			}
		}
		if strings.Contains(out, "latency-p50") {
			t.Errorf("%s output has a metric that was neither asked for nor gated", name)
		}
	}
	if !strings.Contains(md.String(), "|---|") {
		t.Error("markdown output has no table")
	}
	var decoded struct {
		Regressions int
		Threshold   float64
		Rows        []struct {
			Condition, Metric, Verdict string
			Delta                      *float64
			P                          float64
			Base, New                  struct {
				N      int
				Median float64
				Lo, Hi *float64
				Values []float64
			}
		}
	}
	if err := json.Unmarshal(js.Bytes(), &decoded); err != nil {
		t.Fatalf("JSON output does not decode: %v\n%s", err, js.String())
	}
	if decoded.Regressions != 2 || decoded.Threshold != 0.1 || len(decoded.Rows) != 12 {
		t.Fatalf("JSON = %+v", decoded)
	}
	for _, r := range decoded.Rows {
		if r.Delta == nil || r.Base.N != 6 || len(r.New.Values) != 6 || r.Base.Lo == nil || r.New.Hi == nil {
			t.Errorf("JSON row %+v incomplete", r)
		}
		if r.Verdict == VerdictRegression && (math.Abs(*r.Delta) < 0.1 || r.P >= Alpha) {
			t.Errorf("JSON row %+v is a regression without cause", r)
		}
	}
}
