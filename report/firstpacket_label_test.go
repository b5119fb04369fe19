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

// The way back stands beside the first packet in the summary table, only
// where a point timed it within 1% of the client's connections, labelled
// emulated like it; runs without it keep the table they had.
func TestSummaryShowsTheWayBack(t *testing.T) {
	points := func(ret func(rep int) *runs.FirstPacketReturn, emulated bool) []runs.Point {
		var pts []runs.Point
		for rep := 1; rep <= 2; rep++ {
			pts = append(pts, runs.Point{Mode: scenarios.ModeIPTables, Services: 2000, RequestsPerConn: 1, Targets: scenarios.TargetsDeepest,
				Repetition: rep, Valid: true, Requests: 5000, DurationSeconds: 5,
				FirstPacket: &runs.FirstPacket{Connections: 5000, ClientConnections: 5000, P50Us: 40, P99Us: 90, Emulated: emulated, Return: ret(rep)}})
		}
		return pts
	}
	column := func(pts []runs.Point) (table, int) {
		tab := summaryTable(&Data{Points: pts, groups: groupPoints(pts)})
		return tab, slices.IndexFunc(tab.header, func(h string) bool { return strings.HasPrefix(h, "kernel SYN-ACK way back p50") })
	}

	timed := func(rep int) *runs.FirstPacketReturn {
		return &runs.FirstPacketReturn{Connections: 5000, ClientConnections: 5000, P50Us: 12 + float64(rep), P99Us: 30}
	}
	tab, i := column(points(timed, true))
	k := slices.IndexFunc(tab.header, func(h string) bool { return strings.HasPrefix(h, "kernel first packet p99") })
	if i < 0 || k < 0 || i != k+1 {
		t.Fatalf("header %q: the way back's p50 is not beside the first packet's columns", tab.header)
	}
	if !strings.Contains(tab.header[i], "emulated") || !strings.HasPrefix(tab.header[i+1], "kernel SYN-ACK way back p99") {
		t.Errorf("headers %q", tab.header[i:])
	}
	if !strings.HasPrefix(tab.rows[0][i], "13.5") || !strings.HasPrefix(tab.rows[0][i+1], "30") || len(tab.rows[0]) != len(tab.header) {
		t.Errorf("row %q, want the way back's p50 13.5 (the mean of 13 and 14) and p99 30", tab.rows[0])
	}

	for name, ret := range map[string]func(int) *runs.FirstPacketReturn{
		"an older run": func(int) *runs.FirstPacketReturn { return nil },
		"incomplete": func(rep int) *runs.FirstPacketReturn {
			r := timed(rep)
			r.Connections = 4900
			return r
		},
		"unavailable": func(int) *runs.FirstPacketReturn {
			return &runs.FirstPacketReturn{Unavailable: "attaching to raw tracepoint netif_receive_skb: no such file"}
		},
	} {
		if tab, i := column(points(ret, false)); i >= 0 || len(tab.rows[0]) != len(tab.header) {
			t.Errorf("%s: header %q", name, tab.header)
		}
	}
}
