package report

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// referenceRun loads the 2026-12-04 reference run (tigera-2019, 168 points,
// deepest target, order modes), kept in testdata as the fixture the
// statistics were reviewed on.
func referenceRun(t *testing.T) *Data {
	t.Helper()
	d, err := Load(filepath.Join("testdata", "reference-2026-12-04"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestIntervalAgreesWithVerdict: on the reference run's points, read as
// if measured under order: steps, every interval printed beside a
// verdict excludes 0 exactly when the verdict is significant. The old
// report printed a Welch interval of +0.040 to +0.163 cores for CPU at
// 10,000 Services beside "no significant difference".
func TestIntervalAgreesWithVerdict(t *testing.T) {
	d := derive(t, referenceRun(t), func(r *runs.Run) { r.Scenario.Spec.Order = scenarios.OrderSteps }, nil)
	checked := 0
	for _, f := range Findings(d) {
		if f.Diff == nil || !f.Diff.HasCI {
			continue
		}
		checked++
		excludes := f.Diff.CILo > 0 || f.Diff.CIHi < 0
		if excludes != f.Diff.Significant {
			t.Errorf("interval [%g, %g] at %.4f beside significant=%v (p(holm)=%.3f): %s",
				f.Diff.CILo, f.Diff.CIHi, f.Diff.CIConfidence, f.Diff.Significant, f.Diff.PAdjusted, f.Text)
		}
		if f.Diff.CIConfidence < Confidence {
			t.Errorf("interval drawn at %.4f, below the unadjusted 95%%: %s", f.Diff.CIConfidence, f.Text)
		}
	}
	if checked < 6 {
		t.Errorf("only %d findings with an interval", checked)
	}
	h, ok := headlineTable(Findings(d))
	if !ok {
		t.Fatal("no summary table")
	}
	for _, row := range h.table.rows {
		v := row[len(row)-1]
		if strings.HasPrefix(v, "no significant difference") && strings.Contains(v, " CI ") {
			// The printed interval must contain 0.
			i := strings.Index(v, " CI ")
			var lo, hi float64
			if _, err := fmt.Sscanf(v[i+4:], "%g to %g", &lo, &hi); err == nil && (lo > 0 || hi < 0) {
				t.Errorf("summary row %q: interval excludes 0 beside no significant difference", row)
			}
		}
	}
}

// TestOrderModesIsDescriptive: the reference run measured under order:
// modes; its comparisons between modes and steps are described, not
// tested, and say why.
func TestOrderModesIsDescriptive(t *testing.T) {
	d := referenceRun(t)
	n := 0
	for _, f := range Findings(d) {
		if f.Diff == nil {
			continue
		}
		n++
		if !f.Diff.Descriptive || f.Significant || !math.IsNaN(f.Diff.P) || !strings.Contains(f.Text, "one block of time") || strings.Contains(f.Text, "p(holm)") {
			t.Errorf("order modes finding tested: %s", f.Text)
		}
	}
	if n == 0 {
		t.Fatal("no comparisons")
	}
	text := reportMarkdown(t, derive(t, d, nil, nil))
	if !strings.Contains(text, "not tested: each mode ran in one block of time (order: modes)") ||
		!strings.Contains(text, "descriptive (means and n) and not tested") {
		t.Errorf("report does not say the comparisons are descriptive")
	}
}

// directionPoints: iptables above nftables at 5,000 Services, 4
// repetitions, at two placements; at shallowest the two modes are equal.
func directionPoints() []runs.Point {
	var pts []runs.Point
	for r := 1; r <= 4; r++ {
		d := 0.01 * float64(r%3-1)
		for _, tg := range []scenarios.Targets{scenarios.TargetsDeepest, scenarios.TargetsShallowest} {
			ipt, nft := point("iptables", 5000, 1, r, 0.30+d), point("nftables", 5000, 1, r, 0.10+d)
			if tg == scenarios.TargetsShallowest {
				ipt.CPU.Node.Total = 0.10 - d
			}
			ipt.Targets, nft.Targets = tg, tg
			pts = append(pts, ipt, nft)
		}
	}
	return pts
}

// TestPrimaryDirection: a one-sided primary tests the first mode (report
// order: iptables) minus the second (nftables) in its direction, with the
// exact one-sided p and a one-sided bound; the other direction finds
// nothing; spec.primary.targets picks the placement.
func TestPrimaryDirection(t *testing.T) {
	pts := directionPoints()
	primary := func(dir scenarios.Direction, tg scenarios.Targets) *Finding {
		run := &runs.Run{}
		run.Scenario.Spec.Order = scenarios.OrderSteps
		run.Scenario.Spec.Load.Targets = scenarios.Placements{scenarios.TargetsDeepest}
		run.Scenario.Spec.Primary = &scenarios.Primary{Metric: "cpu", RequestsPerConn: 1, Direction: dir, Targets: tg}
		var found *Finding
		for _, f := range Findings(&Data{Run: run, Points: pts, groups: groupPoints(pts)}) {
			if f.Primary {
				if found != nil {
					t.Fatalf("two primary findings: %s\n%s", found.Text, f.Text)
				}
				found = &f
			}
		}
		if found == nil || found.Diff == nil {
			t.Fatalf("%s %s: no primary finding", dir, tg)
		}
		return found
	}
	two := primary("", "")
	if two.Diff.Direction != scenarios.DirectionTwoSided || !near(two.Diff.P, 2.0/70, 1e-12) || !two.Significant {
		t.Errorf("two-sided: %+v", two.Diff)
	}
	g := primary(scenarios.DirectionGreater, "")
	if !near(g.Diff.P, 1.0/70, 1e-12) || !g.Significant || !math.IsInf(g.Diff.CIHi, 1) || g.Diff.CILo <= 0 ||
		!strings.Contains(g.Text, "one-sided: is iptables higher than nftables?") || !strings.Contains(g.Text, "one-sided 95% CI above") {
		t.Errorf("greater: %+v\n%s", g.Diff, g.Text)
	}
	l := primary(scenarios.DirectionLess, "")
	if l.Significant || l.Diff.P < 0.5 || !math.IsInf(l.Diff.CILo, -1) || l.Diff.CIHi < 0 {
		t.Errorf("less, the wrong direction: %+v", l.Diff)
	}
	s := primary(scenarios.DirectionGreater, scenarios.TargetsShallowest)
	if s.Significant || !strings.Contains(s.Text, "targets shallowest") {
		t.Errorf("shallowest, where the modes are equal: %s", s.Text)
	}
	// A placement the run did not measure: not tested, never another.
	run := &runs.Run{}
	run.Scenario.Spec.Order = scenarios.OrderSteps
	run.Scenario.Spec.Primary = &scenarios.Primary{Metric: "cpu", RequestsPerConn: 1, Targets: scenarios.TargetsMedian}
	var texts []string
	for _, f := range Findings(&Data{Run: run, Points: pts, groups: groupPoints(pts)}) {
		if f.Primary {
			texts = append(texts, f.Text)
		}
	}
	if len(texts) != 1 || !strings.HasPrefix(texts[0], "Primary comparison not tested") || !strings.Contains(texts[0], "targets median") {
		t.Errorf("primary at an unmeasured placement: %q", texts)
	}
}

// TestPerConnection: CPU per new connection with the keepalive baseline
// subtracted, against client-node CPU per request.
func TestPerConnection(t *testing.T) {
	var pts []runs.Point
	for r := 1; r <= 4; r++ {
		for _, rpc := range []int{1, 0} {
			p := point("iptables", 1000, rpc, r, 0.10+0.001*float64(r))
			p.DurationSeconds, p.Requests, p.Rate.Target = 10, 10_000, 1000
			if rpc == 1 {
				// 1,000 new connections/s add 0.05 cores: 50 µs each.
				p.CPU.Node.Total += 0.05 + 0.002*float64(r%2)
				p.Connect.Count = 10_000
			}
			pts = append(pts, p)
		}
	}
	d := &Data{Run: &runs.Run{}, Points: pts, groups: groupPoints(pts)}
	pcs := PerConnections(d)
	if len(pcs) != 1 {
		t.Fatalf("per-connection figures %+v", pcs)
	}
	pc := pcs[0]
	if pc.Baseline != 0 || pc.Ns.N != 4 || !pc.Ns.HasCI || pc.Ns.CILo > 51e3 || pc.Ns.CIHi < 51e3 || math.Abs(pc.Ns.Mean-51e3) > 1 ||
		math.Abs(pc.PerRequestNs-153.5e3) > 1 {
		t.Errorf("per connection %+v", pc)
	}
	for _, w := range []string{"CPU per new connection, keepalive baseline subtracted, 51.0 µs", "n = 4 blocks", "minus at persistent connections",
		"client-node CPU per request, baseline included, was 153.5 µs"} {
		if !strings.Contains(pc.Sentence(), w) {
			t.Errorf("sentence lacks %q: %s", w, pc.Sentence())
		}
	}
	// Not at the same rate: no figure.
	for i := range pts {
		if pts[i].RequestsPerConn == 0 {
			pts[i].Rate.Target = 500
		}
	}
	if pcs := PerConnections(&Data{Run: &runs.Run{}, Points: pts, groups: groupPoints(pts)}); len(pcs) != 0 {
		t.Errorf("variants at different rates subtracted: %+v", pcs)
	}
}
