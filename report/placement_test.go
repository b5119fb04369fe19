package report

import (
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// TestPrimaryOnItsPlacement: with two placements the primary compares the
// modes on one of them (spec.primary.targets, default the first), not on
// both: one primary finding, on the placement declared.
func TestPrimaryOnItsPlacement(t *testing.T) {
	base := load(t, "compare-base")
	for _, tc := range []struct {
		declared scenarios.Targets
		want     scenarios.Targets
	}{{"", scenarios.TargetsOne}, {scenarios.TargetsShallowest, scenarios.TargetsShallowest}} {
		run := *base.Run
		run.Scenario.Spec.Order = scenarios.OrderSteps
		run.Scenario.Spec.Load.Targets = scenarios.Placements{scenarios.TargetsOne, scenarios.TargetsShallowest}
		run.Scenario.Spec.Primary = &scenarios.Primary{Metric: "connect", RequestsPerConn: 1, Services: 10000, Targets: tc.declared}
		var pts []runs.Point
		for _, p := range base.Points {
			pts = append(pts, p)
			q := p
			q.Targets = scenarios.TargetsShallowest
			q.ID = runs.PlacementPointID(q.Mode, q.Services, q.RequestsPerConn, q.Targets, q.Repetition)
			pts = append(pts, q)
		}
		d := &Data{Dir: base.Dir, Run: &run, Points: pts, groups: groupPoints(pts)}
		var primary []string
		for _, f := range Findings(d) {
			if f.Primary {
				primary = append(primary, f.Text)
			}
		}
		if len(primary) != 1 || !strings.Contains(primary[0], "targets "+string(tc.want)) {
			t.Errorf("primary declared on %q: findings %q, want one on %s", tc.declared, primary, tc.want)
		}
	}
}
