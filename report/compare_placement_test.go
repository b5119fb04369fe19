package report

import (
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// withPlacements writes a copy of src in which every point was measured
// at two placements, deepest and shallowest, and loads it.
func withPlacements(t *testing.T, src *Data, gate *scenarios.Gate) *Data {
	t.Helper()
	dir := t.TempDir()
	run := *src.Run
	run.Scenario.Spec.Load.Targets = scenarios.Placements{scenarios.TargetsDeepest, scenarios.TargetsShallowest}
	run.Scenario.Spec.Gate = gate
	if err := runs.WriteRun(dir, &run); err != nil {
		t.Fatal(err)
	}
	for _, p := range src.Points {
		for _, tg := range run.Scenario.Spec.Load.Targets {
			q := p
			q.Targets = tg
			q.ID = runs.PlacementPointID(q.Mode, q.Services, q.RequestsPerConn, tg, q.Repetition)
			if err := runs.AppendPoint(dir, &q); err != nil {
				t.Fatal(err)
			}
		}
	}
	d, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestGatePlacements: placements do not multiply the gated rows. By
// default only the first placement is gated (the reference's 8 rows stay
// 8, not 16, so 6+6 repetitions still reach Holm's level); spec.gate.targets
// can name both.
func TestGatePlacements(t *testing.T) {
	ref := reference(t)
	defaults, _ := LookupMetrics(DefaultMetrics)
	for _, tc := range []struct {
		gate *scenarios.Gate
		rows int
	}{
		{nil, 8},
		{&scenarios.Gate{Targets: []scenarios.Targets{scenarios.TargetsDeepest, scenarios.TargetsShallowest}}, 16},
		{&scenarios.Gate{Targets: []scenarios.Targets{scenarios.TargetsShallowest}}, 8},
	} {
		d := withPlacements(t, ref, tc.gate)
		c, err := Compare(d, d, CompareOptions{Metrics: defaults, Threshold: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		if c.GateTests != tc.rows {
			t.Errorf("gate %+v: %d gated rows, want %d", tc.gate, c.GateTests, tc.rows)
		}
		for _, r := range c.Rows {
			want := tc.gate == nil && r.key.Targets == scenarios.TargetsDeepest ||
				tc.gate != nil && (len(tc.gate.Targets) == 2 || r.key.Targets == tc.gate.Targets[0])
			if (r.Family == FamilyGate) != (want && r.Family != FamilyDescriptive && r.Family != "") {
				t.Errorf("gate %+v: %s %s in family %q", tc.gate, r.Condition, r.Metric, r.Family)
			}
		}
		if tc.gate == nil && c.ExitCode() != ExitPass {
			t.Errorf("A/A with placements: exit %d\n%s", c.ExitCode(), text(t, c))
		}
	}
}
