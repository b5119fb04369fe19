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
		wantVerdct map[string]string // metric → verdict at iptables10k
		wantNote   string
	}{
		{
			name: "injected 20% regression is detected", next: "compare-regressed", threshold: 0.10,
			wantTotal:  3,
			wantVerdct: map[string]string{"latency": VerdictRegression, "cpu": VerdictRegression, "connect": VerdictRegression},
		},
		{
			name: "significant 4% shift within a 10% threshold is ignored", next: "compare-noise", threshold: 0.10,
			wantTotal:  0,
			wantVerdct: map[string]string{"latency": VerdictWithin, "cpu": VerdictWithin, "connect": VerdictWithin},
		},
		{
			name: "the same shift beyond a 1% threshold regresses", next: "compare-noise", threshold: 0.01,
			wantTotal:  3,
			wantVerdct: map[string]string{"latency": VerdictRegression, "cpu": VerdictRegression, "connect": VerdictRegression},
		},
		{
			// latency +3.8% and connect +2.8% exceed 2% as point estimates,
			// but their 95% CIs reach down to +1.8% and +1.6%: not shown
			// to be beyond the threshold. cpu's CI starts at +3.4%.
			name: "a 2% threshold is applied to the CI's near bound, not the estimate", next: "compare-noise", threshold: 0.02,
			wantTotal:  1,
			wantVerdct: map[string]string{"latency": VerdictWithin, "cpu": VerdictRegression, "connect": VerdictWithin},
		},
		{
			name: "base against itself", next: "compare-base", threshold: 0.10,
			wantTotal:  0,
			wantVerdct: map[string]string{"latency": VerdictSame, "cpu": VerdictSame, "connect": VerdictSame},
		},
		{
			name: "3+3 repetitions cannot detect the regression, and say so", next: "compare-regressed", reps: 3, threshold: 0.10,
			wantTotal:  0,
			wantVerdct: map[string]string{"latency": VerdictSame, "cpu": VerdictSame, "connect": VerdictSame},
			wantNote:   "too few valid repetitions",
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
			if c.Regressions != tc.wantTotal {
				var b bytes.Buffer
				c.WriteText(&b)
				t.Fatalf("%d regressions, want %d\n%s", c.Regressions, tc.wantTotal, b.String())
			}
			if len(c.Rows) != 12 {
				t.Errorf("%d rows, want 3 metrics × 4 conditions", len(c.Rows))
			}
			for _, r := range c.Rows {
				if r.Condition == iptables10k {
					if want := tc.wantVerdct[r.Metric]; r.Verdict != want {
						t.Errorf("%s %s: verdict %q (delta %.3f, p %.4f), want %q", r.Condition, r.Metric, r.Verdict, r.Delta, r.P, want)
					}
				} else if r.Verdict == VerdictRegression {
					t.Errorf("%s %s regresses (delta %.3f, p %.4f), but nothing changed there", r.Condition, r.Metric, r.Delta, r.P)
				}
			}
			notes := strings.Join(c.Notes, "\n")
			if tc.wantNote != "" && !strings.Contains(notes, tc.wantNote) {
				t.Errorf("notes %q lack %q", notes, tc.wantNote)
			}
			if tc.wantNote == "" && strings.Contains(notes, "too few") {
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
	_, err := Compare(base, other, CompareOptions{Metrics: Metrics, Threshold: 0.1})
	if !errors.Is(err, ErrNothingInCommon) {
		t.Fatalf("err = %v, want ErrNothingInCommon", err)
	}
}

func TestCompareOutputs(t *testing.T) {
	base, next := load(t, "compare-base"), load(t, "compare-regressed")
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
		for _, want := range []string{"iptables/services=10000/rpc=1/targets=one", "REGRESSION", "+22.26%", "[+19.7%, +24.7%]", "0.017", "2 significant regression(s) beyond 10%", "±"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks %q:\n%s", name, want, out)
			}
		}
		if strings.Contains(out, "cpu:") {
			t.Errorf("%s output has a metric that was not asked for", name)
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
	if decoded.Regressions != 2 || decoded.Threshold != 0.1 || len(decoded.Rows) != 8 {
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
