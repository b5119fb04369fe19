package report

import (
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// TestKernelTableLeadsTheSummary: the kernel time to first packet has a
// table of its own in the Summary, before the headline findings, with
// one row per condition the probe timed (the keepalive condition without
// a probe has none), its p01/p50/p99 means over the valid repetitions,
// and none when no point has the kernel time.
func TestKernelTableLeadsTheSummary(t *testing.T) {
	var pts []runs.Point
	for rep := 1; rep <= 3; rep++ {
		for _, m := range []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables} {
			base := 20.0
			if m == scenarios.ModeIPTables {
				base = 38
			}
			pts = append(pts,
				runs.Point{Mode: m, Services: 3000, RequestsPerConn: 1, Targets: scenarios.TargetsDeepest, Repetition: rep,
					Valid: true, Requests: 5000, DurationSeconds: 5, Rate: runs.Rate{Target: 1000, Achieved: 1000},
					FirstPacket: &runs.FirstPacket{Connections: 5000, ClientConnections: 5000,
						P01Us: base - 4, P50Us: base + float64(rep), P99Us: 3 * base, MeanUs: base + 2}},
				runs.Point{Mode: m, Services: 3000, RequestsPerConn: 100, Targets: scenarios.TargetsDeepest, Repetition: rep,
					Valid: true, Requests: 5000, DurationSeconds: 5, Rate: runs.Rate{Target: 1000, Achieved: 1000}})
		}
	}
	d := &Data{Run: &runs.Run{ID: "t"}, Points: pts, groups: groupPoints(pts)}
	tab, ok := kernelTable(d)
	if !ok || len(tab.rows) != 2 {
		t.Fatalf("kernel table: ok=%v, %d rows, want 2 (the two new-connection conditions)", ok, len(tab.rows))
	}
	want := map[string][3]string{"iptables": {"34.00", "40.00", "114.00"}, "nftables": {"16.00", "22.00", "60.00"}}
	for _, row := range tab.rows {
		w := want[row[0]]
		if row[2] != "1" || row[4] != "3" {
			t.Errorf("%s: req/conn %s, n %s", row[0], row[2], row[4])
		}
		for i, cell := range row[6:9] {
			if !strings.HasPrefix(cell, w[i]) {
				t.Errorf("%s: column %q = %q, want %s", row[0], tab.header[6+i], cell, w[i])
			}
		}
	}
	doc := newDocument(d, nil, nil)
	md, err := doc.markdown()
	if err != nil {
		t.Fatal(err)
	}
	s := string(md)
	k, h := strings.Index(s, "| p01 µs"), strings.Index(s, "## Headline findings")
	if k < 0 || h < 0 || k > h {
		t.Fatalf("the kernel table is not in the Summary before the headline findings (at %d, headline at %d)", k, h)
	}
	for i := range pts {
		pts[i].FirstPacket = nil
	}
	if _, ok := kernelTable(&Data{Points: pts, groups: groupPoints(pts)}); ok {
		t.Error("a kernel table without any kernel time")
	}
}
