package report

import (
	"slices"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// TestFailedRequestsBesideTail: failed requests have no latency, so they
// must be shown right beside the tail percentiles they would move.
func TestFailedRequestsBesideTail(t *testing.T) {
	var pts []runs.Point
	for rep := 1; rep <= 2; rep++ {
		pts = append(pts, runs.Point{Mode: scenarios.ModeIPTables, Services: 1, RequestsPerConn: 1, Targets: scenarios.TargetsOne,
			Repetition: rep, Valid: true, Requests: 15000, Errors: runs.Errors{Total: 6},
			Latency: runs.Latency{P99Us: 900, P999Us: 2100}})
	}
	tab := summaryTable(&Data{Points: pts, groups: groupPoints(pts)})
	i := slices.Index(tab.header, "latency p99 µs")
	if i < 0 || tab.header[i+1] != "latency p99.9 µs" || tab.header[i+2] != "failed requests" {
		t.Fatalf("header %q: want p99, p99.9, failed requests side by side", tab.header)
	}
	if got := tab.rows[0][i+2]; got != "12 (0.040%)" {
		t.Errorf("failed requests %q, want 12 (0.040%%)", got)
	}
	pt := pointsTable(pts)
	j := slices.Index(pt.header, "p99")
	if j < 0 || pt.header[j+1] != "p99.9" || pt.header[j+2] != "failed" || pt.rows[0][j+2] != "6" {
		t.Errorf("points table header %q row %q", pt.header, pt.rows[0])
	}
}
