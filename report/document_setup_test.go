package report

import (
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
)

// TestScenarioTableSaysThePacing: the Scenario table's Pacing row comes
// from what the points recorded, so a run above 1,000 req/s says its
// requests went in batches and an older run (no tick recorded) says each
// left at its own due time.
func TestScenarioTableSaysThePacing(t *testing.T) {
	at := func(ticks ...float64) []runs.Point {
		var pts []runs.Point
		for _, tk := range ticks {
			pts = append(pts, runs.Point{Rate: runs.Rate{Target: 2000, TickSeconds: tk}})
		}
		return pts
	}
	pacing := func(pts []runs.Point) string {
		for _, row := range scenarioTable(&runs.Run{}, pts).rows {
			if row[0] == "Pacing" {
				return row[1]
			}
		}
		t.Fatal("the scenario table has no Pacing row")
		return ""
	}
	if got := pacing(at(0, 0)); got != "each request at its own due time" {
		t.Errorf("precise pacing described as %q", got)
	}
	if got := pacing(at(0.001, 0.001)); !strings.HasPrefix(got, "in batches every 1ms (") || strings.Contains(got, "points") {
		t.Errorf("1 ms batches described as %q", got)
	}
	got := pacing(at(0, 0.001, 0.001))
	if !strings.Contains(got, "each request at its own due time (1 point)") || !strings.Contains(got, "in batches every 1ms") || !strings.Contains(got, "(2 points)") {
		t.Errorf("a run with both described as %q", got)
	}
	if got := pacing(nil); got != "—" {
		t.Errorf("no points: %q, want a dash", got)
	}
}
