package report

import (
	"slices"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// A VM guest's kernel times under TCG are labelled emulated in the summary
// table; a real kernel's are not.
func TestSummaryLabelsEmulatedFirstPacket(t *testing.T) {
	for _, emulated := range []bool{false, true} {
		var pts []runs.Point
		for rep := 1; rep <= 2; rep++ {
			pts = append(pts, runs.Point{Mode: scenarios.ModeIPVS, Services: 200, RequestsPerConn: 1, Targets: scenarios.TargetsDeepest,
				Repetition: rep, Valid: true, Requests: 100, DurationSeconds: 5,
				FirstPacket: &runs.FirstPacket{Connections: 100, ClientConnections: 100, P50Us: 60 + float64(rep), P99Us: 200, Emulated: emulated}})
		}
		tab := summaryTable(&Data{Points: pts, groups: groupPoints(pts)})
		i := slices.IndexFunc(tab.header, func(h string) bool { return strings.HasPrefix(h, "kernel first packet p50") })
		if i < 0 {
			t.Fatalf("header %q: no kernel first packet column", tab.header)
		}
		for _, h := range tab.header[i : i+2] {
			if strings.Contains(h, "emulated") != emulated {
				t.Errorf("emulated=%v: header %q", emulated, h)
			}
		}
		if !strings.HasPrefix(tab.rows[0][i], "61.5") {
			t.Errorf("p50 cell %q, want the mean of 61 and 62", tab.rows[0][i])
		}
	}
}
