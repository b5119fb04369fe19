package report

import (
	"slices"
	"testing"

	"github.com/kpbench/kpbench/runs"
)

// TestMetricTable checks the table every reader of a point's numbers uses:
// names are unique, every entry says what it is, the findings' metrics
// exist and are worded, and a point without new connections measures no
// connect-time metric.
func TestMetricTable(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range Metrics {
		if seen[m.Name] {
			t.Errorf("metric %s listed twice", m.Name)
		}
		seen[m.Name] = true
		if m.Description == "" || m.Unit == "" || m.Value == nil {
			t.Errorf("metric %s lacks a description, unit or value", m.Name)
		}
	}
	for _, n := range append(append([]string(nil), FindingMetrics...), DefaultMetrics...) {
		m, ok := lookupMetric(n)
		if !ok {
			t.Fatalf("%s is not in the table", n)
		}
		if slices.Contains(FindingMetrics, n) && m.Finding == "" {
			t.Errorf("finding metric %s has no wording", n)
		}
	}
	var p runs.Point
	p.Latency.MeanUs, p.Connect.P01Us, p.CPU.Node.Total, p.DurationSeconds = 80, 30, 0.5, 10
	for _, name := range []string{"connect-p01", "connect", "connect-p90", "connect-p99", "cpu-per-request"} {
		if _, ok := metric(name).Value(&p); ok {
			t.Errorf("%s measured on a point without new connections", name)
		}
	}
	p.Connect.Count = 5000 // 500 new connections/s
	p.Requests = 50000     // 5,000 requests/s
	if v, ok := metric("cpu-per-request").Value(&p); !ok || v != 1e5 {
		t.Errorf("cpu-per-request = %v, %v; want 0.5 cores / 5,000 per s = 100 µs", v, ok)
	}
	// The former name still resolves, to the honest metric.
	if ms, err := LookupMetrics([]string{"cpu-per-connection"}); err != nil || ms[0].Name != "cpu-per-request" {
		t.Errorf("cpu-per-connection alias: %v, %v", ms, err)
	}
	if v, ok := metric("connect-p01").Value(&p); !ok || v != 30 {
		t.Errorf("connect-p01 = %v, %v", v, ok)
	}
	if _, ok := metric("sync").Value(&p); ok {
		t.Error("a point without a programming sync measured sync")
	}
}

// TestFirstPacketMetricsNeedTheClientsConnections: the kernel time to
// first packet counts only where the probe timed the client's connections
// within 1%; a point marked incomplete, or one recorded before the mark
// whose counts differ, measures none of the first-packet metrics, and
// keeps its other measures.
func TestFirstPacketMetricsNeedTheClientsConnections(t *testing.T) {
	names := []string{"first-packet", "first-packet-p01", "first-packet-p99", "first-packet-cores"}
	point := func(timed, client int64, incomplete string) *runs.Point {
		p := &runs.Point{DurationSeconds: 5, Connect: runs.Connect{Count: client, P50Us: 40}}
		p.CPU.Node.Total = 0.3
		p.FirstPacket = &runs.FirstPacket{Connections: timed, ClientConnections: client, P01Us: 9, P50Us: 11, P99Us: 30, MeanUs: 12, Incomplete: incomplete}
		return p
	}
	for _, c := range []struct {
		name string
		p    *runs.Point
		ok   bool
	}{
		{"every connection", point(5000, 5000, ""), true},
		{"99% of them", point(4950, 5000, ""), true},
		{"marked incomplete", point(4000, 5000, "timed 4000 of the client's 5000 connections (80.0%, below 99%)"), false},
		{"98.9%, recorded before the mark", point(4945, 5000, ""), false},
		{"101.1%, recorded before the mark", point(5055, 5000, ""), false},
	} {
		for _, n := range names {
			if _, ok := metric(n).Value(c.p); ok != c.ok {
				t.Errorf("%s: %s measured %v, want %v", c.name, n, ok, c.ok)
			}
		}
		for _, n := range []string{"connect", "cpu"} {
			if _, ok := metric(n).Value(c.p); !ok {
				t.Errorf("%s: %s not measured", c.name, n)
			}
		}
	}
}
