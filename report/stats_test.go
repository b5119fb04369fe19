package report

import (
	"math"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestSummarize(t *testing.T) {
	tests := []struct {
		name           string
		values         []float64
		mean, ciLo, hi float64
		hasCI          bool
	}{
		{"empty", nil, 0, 0, 0, false},
		{"one value has no interval", []float64{5}, 5, 5, 5, false},
		// mean 2, sd 1, n 3: t(0.975, 2) = 4.3027, half = 4.3027/sqrt(3) = 2.4841.
		{"three values", []float64{1, 2, 3}, 2, 2 - 2.4841, 2 + 2.4841, true},
		// sd 0: the interval collapses to the mean.
		{"identical values", []float64{7, 7, 7, 7}, 7, 7, 7, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Summarize(tc.values)
			if s.N != len(tc.values) || !near(s.Mean, tc.mean, 1e-9) || s.HasCI != tc.hasCI {
				t.Fatalf("Summarize(%v) = %+v", tc.values, s)
			}
			if !near(s.CILo, tc.ciLo, 1e-3) || !near(s.CIHi, tc.hi, 1e-3) {
				t.Errorf("CI = [%v, %v], want [%v, %v]", s.CILo, s.CIHi, tc.ciLo, tc.hi)
			}
		})
	}
}

func TestMinMannWhitneyP(t *testing.T) {
	tests := []struct {
		n1, n2 int
		want   float64
	}{
		{1, 1, 1},
		{3, 3, 0.1},
		{4, 4, 2.0 / 70},
		{4, 3, 2.0 / 35},
		{6, 6, 2.0 / 924},
	}
	for _, tc := range tests {
		if got := minMannWhitneyP(tc.n1, tc.n2); !near(got, tc.want, 1e-12) {
			t.Errorf("minMannWhitneyP(%d, %d) = %v, want %v", tc.n1, tc.n2, got, tc.want)
		}
	}
	if got := MinRepetitions(); got != 4 {
		t.Errorf("MinRepetitions() = %d, want 4", got)
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name         string
		a, b         []float64
		significant  bool
		underpowered bool
		ciExcludes0  bool
	}{
		{"clear shift, 6 each", []float64{10, 10.2, 9.9, 10.1, 10, 9.8}, []float64{12, 12.1, 11.9, 12.2, 12, 11.8}, true, false, true},
		{"same distribution", []float64{10, 10.2, 9.9, 10.1, 10, 9.8}, []float64{10.1, 9.9, 10, 10.2, 9.8, 10}, false, false, false},
		// 3+3 cannot reach p < 0.05, so there is no 95% interval that
		// inverts the test: none is printed (a Welch interval here
		// excluded 0 beside a non-significant verdict).
		{"clear shift, 3 each: underpowered", []float64{10, 10.1, 9.9}, []float64{12, 12.1, 11.9}, false, true, false},
		{"one each", []float64{10}, []float64{12}, false, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Diff(tc.a, tc.b)
			if d.Significant != tc.significant || d.Underpowered != tc.underpowered {
				t.Fatalf("Diff: significant %v underpowered %v (p=%v), want %v %v", d.Significant, d.Underpowered, d.P, tc.significant, tc.underpowered)
			}
			if excl := d.HasCI && (d.CILo > 0 || d.CIHi < 0); excl != tc.ciExcludes0 {
				t.Errorf("CI [%v, %v] excludes 0: %v, want %v", d.CILo, d.CIHi, excl, tc.ciExcludes0)
			}
			if !near(d.Delta, Summarize(tc.b).Mean-Summarize(tc.a).Mean, 1e-9) {
				t.Errorf("Delta = %v", d.Delta)
			}
		})
	}
}

func TestParseThreshold(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr string
	}{
		{"10%", 0.10, ""},
		{"10", 0.10, ""},
		{" 2.5 % ", 0.025, ""},
		{"0%", 0, ""},
		{"-5%", 0, "must not be negative"},
		{"abc", 0, "want a percentage"},
		{"", 0, "want a percentage"},
		{"NaN", 0, "want a percentage"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseThreshold(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseThreshold(%q) error = %v, want %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || !near(got, tc.want, 1e-12) {
				t.Fatalf("ParseThreshold(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestLookupMetrics(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []string
		wantErr string
	}{
		{"defaults", DefaultMetrics, []string{"latency", "cpu", "connect"}, ""},
		{"repeats collapse", []string{"cpu", " cpu", "sync"}, []string{"cpu", "sync"}, ""},
		{"unknown", []string{"latency", "throughput"}, nil, `unknown metric "throughput"`},
		{"empty", nil, nil, "no metrics"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := LookupMetrics(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(ms) != len(tc.want) {
				t.Fatalf("LookupMetrics = %v, %v", ms, err)
			}
			for i := range ms {
				if ms[i].Name != tc.want[i] {
					t.Errorf("metric %d = %s, want %s", i, ms[i].Name, tc.want[i])
				}
			}
		})
	}
}

func TestFormatting(t *testing.T) {
	for in, want := range map[int]string{0: "0", 1: "1", 999: "999", 1000: "1,000", 10000: "10,000", 1234567: "1,234,567", -5000: "-5,000"} {
		if got := formatCount(in); got != want {
			t.Errorf("formatCount(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[float64]string{0: "0", 0.05: "0.05", 2.5: "2.5", 1000: "1,000", 250: "250"} {
		if got := formatTick(in); got != want {
			t.Errorf("formatTick(%v) = %q, want %q", in, got, want)
		}
	}
}

// point builds a valid point for findings tests.
func point(mode scenarios.Mode, services, rpc, rep int, cpu float64) runs.Point {
	return runs.Point{
		ID: runs.PointID(mode, services, rpc, rep), Mode: mode, Services: services, RequestsPerConn: rpc,
		Targets: scenarios.TargetsOne, Repetition: rep, Valid: true,
		CPU:     runs.CPU{Node: runs.NodeCPU{Total: cpu}},
		Latency: runs.Latency{MeanUs: 300},
	}
}

func TestFindings(t *testing.T) {
	tests := []struct {
		name    string
		points  []runs.Point
		want    []string
		notWant []string
	}{
		{
			name: "one repetition per mode",
			points: []runs.Point{
				point("iptables", 1, 1, 1, 0.1), point("iptables", 10000, 1, 1, 0.4),
				point("nftables", 1, 1, 1, 0.1), point("nftables", 10000, 1, 1, 0.12),
			},
			want:    []string{"At 10,000 Services with a new connection per request, client-node CPU was 0.400 cores with iptables vs 0.120 cores with nftables", "not established (one repetition per side)"},
			notWant: []string{"higher with", "not significant"},
		},
		{
			name: "largest step common to the modes",
			points: []runs.Point{
				point("iptables", 1, 1, 1, 0.1), point("iptables", 1, 1, 2, 0.1), point("iptables", 1, 1, 3, 0.1), point("iptables", 1, 1, 4, 0.1),
				point("iptables", 5000, 1, 1, 0.30), point("iptables", 5000, 1, 2, 0.31), point("iptables", 5000, 1, 3, 0.29), point("iptables", 5000, 1, 4, 0.30),
				point("iptables", 10000, 1, 1, 0.5),
				point("nftables", 5000, 1, 1, 0.10), point("nftables", 5000, 1, 2, 0.11), point("nftables", 5000, 1, 3, 0.09), point("nftables", 5000, 1, 4, 0.10),
			},
			// p=0.029 on its own; Holm over the findings' tests makes it
			// too large to claim a difference.
			want:    []string{"At 5,000 Services with a new connection per request, client-node CPU was 0.300 cores with iptables vs 0.100 cores with nftables", "not established", "n=4 iptables + 4 nftables"},
			notWant: []string{"higher with"},
		},
		{
			name:   "seven repetitions: significant after the correction",
			points: reps7(),
			want:   []string{"At 5,000 Services with a new connection per request, client-node CPU was 0.200 cores higher with iptables than with nftables", "p(holm)=0.00", "n=7 iptables + 7 nftables"},
		},
		{
			name: "three repetitions, clearly apart",
			points: []runs.Point{
				point("iptables", 10000, 1, 1, 0.30), point("iptables", 10000, 1, 2, 0.31), point("iptables", 10000, 1, 3, 0.29),
				point("nftables", 10000, 1, 1, 0.10), point("nftables", 10000, 1, 2, 0.11), point("nftables", 10000, 1, 3, 0.09),
			},
			want:    []string{"not established", "p(holm)=", "n=3 iptables + 3 nftables"},
			notWant: []string{"higher with", "excludes zero"},
		},
		{
			name: "three repetitions, overlapping",
			points: []runs.Point{
				point("iptables", 10000, 1, 1, 0.10), point("iptables", 10000, 1, 2, 0.30), point("iptables", 10000, 1, 3, 0.12),
				point("nftables", 10000, 1, 1, 0.11), point("nftables", 10000, 1, 2, 0.10), point("nftables", 10000, 1, 3, 0.29),
			},
			want:    []string{"not established"},
			notWant: []string{"excludes zero", "higher with"},
		},
		{
			name: "no difference",
			points: []runs.Point{
				point("iptables", 100, 0, 1, 0.10), point("iptables", 100, 0, 2, 0.11), point("iptables", 100, 0, 3, 0.09), point("iptables", 100, 0, 4, 0.10),
				point("iptables", 100, 0, 5, 0.10), point("iptables", 100, 0, 6, 0.11), point("iptables", 100, 0, 7, 0.09),
				point("nftables", 100, 0, 1, 0.11), point("nftables", 100, 0, 2, 0.10), point("nftables", 100, 0, 3, 0.10), point("nftables", 100, 0, 4, 0.09),
				point("nftables", 100, 0, 5, 0.11), point("nftables", 100, 0, 6, 0.10), point("nftables", 100, 0, 7, 0.09),
			},
			want:    []string{"At 100 Services with persistent connections, client-node CPU does not differ significantly between iptables and nftables"},
			notWant: []string{"higher with"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			run := &runs.Run{}
			run.Scenario.Spec.Order = scenarios.OrderSteps
			d := &Data{Run: run, Points: tc.points, groups: groupPoints(tc.points)}
			var all []string
			for _, f := range Findings(d) {
				all = append(all, f.Text)
			}
			text := strings.Join(all, "\n")
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("findings lack %q:\n%s", w, text)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(text, w) {
					t.Errorf("findings claim %q:\n%s", w, text)
				}
			}
		})
	}
}

// reps7 is iptables clearly above nftables at 5,000 Services, seven
// repetitions each: enough for Holm's correction over the findings.
func reps7() []runs.Point {
	var pts []runs.Point
	for r := 1; r <= 7; r++ {
		d := 0.01 * float64(r%3-1)
		pts = append(pts, point("iptables", 5000, 1, r, 0.30+d), point("nftables", 5000, 1, r, 0.10+d))
	}
	return pts
}

// A primary comparison declared by the scenario is its own Holm family:
// the 4+4 repetitions that cannot be significant among all the findings
// (TestFindings, "largest step common to the modes") can be on their own.
func TestFindingsPrimaryFamily(t *testing.T) {
	pts := []runs.Point{
		point("iptables", 1, 1, 1, 0.1), point("iptables", 1, 1, 2, 0.1), point("iptables", 1, 1, 3, 0.1), point("iptables", 1, 1, 4, 0.1),
		point("iptables", 5000, 1, 1, 0.30), point("iptables", 5000, 1, 2, 0.31), point("iptables", 5000, 1, 3, 0.29), point("iptables", 5000, 1, 4, 0.30),
		point("nftables", 1, 1, 1, 0.10), point("nftables", 1, 1, 2, 0.11), point("nftables", 1, 1, 3, 0.09), point("nftables", 1, 1, 4, 0.10),
		point("nftables", 5000, 1, 1, 0.10), point("nftables", 5000, 1, 2, 0.11), point("nftables", 5000, 1, 3, 0.09), point("nftables", 5000, 1, 4, 0.10),
	}
	findings := func(primary *scenarios.Primary) []Finding {
		run := &runs.Run{}
		run.Scenario.Spec.Primary = primary
		run.Scenario.Spec.Order = scenarios.OrderSteps
		return Findings(&Data{Run: run, Points: pts, groups: groupPoints(pts)})
	}
	cpuModes := func(fs []Finding) *Finding {
		for i, f := range fs {
			if f.Kind == FindingModes && strings.Contains(f.Text, "client-node CPU") {
				return &fs[i]
			}
		}
		t.Fatal("no mode finding on client-node CPU")
		return nil
	}
	without := cpuModes(findings(nil))
	if without.Significant || without.Primary || without.Diff.Tests < 5 {
		t.Errorf("undeclared: %+v", without)
	}
	with := findings(&scenarios.Primary{Metric: "cpu", RequestsPerConn: 1})
	f := cpuModes(with)
	if !f.Primary || !f.Significant || f.Diff.Tests != 1 || f.Diff.PAdjusted != f.Diff.P {
		t.Errorf("declared primary: %+v", f)
	}
	if !strings.Contains(f.Text, "client-node CPU was 0.200 cores higher with iptables than with nftables") {
		t.Errorf("primary finding: %s", f.Text)
	}
	for _, g := range with {
		if g.Diff == nil || g.Primary {
			continue
		}
		if g.Diff.Tests != without.Diff.Tests-1 {
			t.Errorf("secondary family of %d tests, want %d: %s", g.Diff.Tests, without.Diff.Tests-1, g.Text)
		}
		if strings.Contains(g.Text, "client-node CPU") && g.Kind == FindingModes {
			t.Errorf("primary counted twice: %s", g.Text)
		}
	}
	// Another variant is not the primary.
	if f := cpuModes(findings(&scenarios.Primary{Metric: "cpu", RequestsPerConn: 100})); f.Primary || f.Significant {
		t.Errorf("primary of another variant applied: %+v", f)
	}
}
