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
