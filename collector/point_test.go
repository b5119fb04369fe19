package collector

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPointMeasurement(t *testing.T) {
	fs := mustFS(t, "/proc")
	before, err := os.ReadFile("testdata/metrics/kube-proxy-before.txt")
	if err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile("testdata/metrics/kube-proxy-after.txt")
	if err != nil {
		t.Fatal(err)
	}
	var scrapes atomic.Int32
	kp := &KubeProxyScraper{Fetch: func(_ context.Context, path string) ([]byte, error) {
		if path != "/metrics" {
			return nil, errors.New("unexpected path " + path)
		}
		if scrapes.Add(1) == 1 {
			return before, nil
		}
		return after, nil
	}}
	self := os.Getpid()
	ref0, err := processCPUTime(self)
	if err != nil {
		t.Fatal(err)
	}
	w0 := time.Now()
	m, err := fs.StartPoint(context.Background(), PointConfig{
		KubeProxyPID: self, Interval: 100 * time.Millisecond, KubeProxy: kp,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Burn a little CPU in this process so the per-process figures move.
	deadline := time.Now().Add(350 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	r, err := m.Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ref1, err := processCPUTime(self)
	if err != nil {
		t.Fatal(err)
	}
	ref := (ref1 - ref0).Seconds() / time.Since(w0).Seconds()
	_, ctErr := fs.Conntrack(0)
	for _, p := range r.Problems {
		if ctErr == nil || !strings.HasPrefix(p, "conntrack") {
			t.Errorf("problem: %s", p)
		}
	}
	if n := len(r.Series.Samples); n < 2 {
		t.Errorf("%d samples over 350 ms at 100 ms", n)
	}
	// "kube-proxy" is this process, which spun for the window; its CPU
	// clock read around Start and Stop is the reference. /proc/PID/stat
	// rounds to 10 ms ticks: two of them over the 350 ms window are 0.06.
	if p := r.CPU.Processes; p.Client != 0 || !near(p.KubeProxy, ref, 0.1*ref+0.06) {
		t.Errorf("processes = %+v; this process's CPU clock says %.3f cores", p, ref)
	}
	// Both counters round to ticks: 0.06 each over the window.
	if r.CPU.Node.Total < r.CPU.Processes.KubeProxy-0.12 {
		t.Errorf("node %.3f cores < the process's %.3f", r.CPU.Node.Total, r.CPU.Processes.KubeProxy)
	}
	if r.Sync.FullSyncs != 1 || r.Sync.PartialSyncs != 3 || r.KubeProxy == nil || r.KubeProxy.Sync.Count != 4 {
		t.Errorf("sync = %+v", r.Sync)
	}
	if ctErr == nil && (r.ConntrackAfter == nil || r.Conntrack.Max == 0) {
		t.Errorf("conntrack = %+v", r.Conntrack)
	}

	dir := filepath.Join(t.TempDir(), "raw", "iptables-s00001-rpc1-r0")
	if err := r.WriteRaw(dir); err != nil {
		t.Fatal(err)
	}
	csv, err := os.ReadFile(filepath.Join(dir, RawCPUCSV))
	if err != nil || !strings.HasPrefix(string(csv), "time,seconds,user,") || strings.Count(string(csv), "\n") != len(r.Series.Samples)+1 {
		t.Errorf("cpu.csv = %q, %v", csv, err)
	}
	for name, want := range map[string][]byte{RawMetricsBefore: before, RawMetricsAfter: after} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != string(want) {
			t.Errorf("%s differs from what was scraped (%v)", name, err)
		}
	}
	var doc struct {
		SchemaVersion int `json:"schemaVersion"`
		CPU           struct {
			Node struct{ Total float64 } `json:"node"`
		} `json:"cpu"`
	}
	b, err := os.ReadFile(filepath.Join(dir, RawCollectorJSON))
	if err != nil || json.Unmarshal(b, &doc) != nil || doc.SchemaVersion != 1 || doc.CPU.Node.Total != r.CPU.Node.Total {
		t.Errorf("collector.json = %.200s (%v)", b, err)
	}
}

func TestPointMeasurementDegrades(t *testing.T) {
	fs := mustFS(t, "/proc")
	kp := &KubeProxyScraper{Fetch: func(context.Context, string) ([]byte, error) {
		return nil, errors.New("connection refused")
	}}
	m, err := fs.StartPoint(context.Background(), PointConfig{Interval: 50 * time.Millisecond, KubeProxy: kp, NetnsPID: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond)
	r, err := m.Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(r.Problems, "\n")
	for _, want := range []string{"kube-proxy metrics before: ", "kube-proxy metrics after: ", "conntrack before: ", "softnet before: "} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems lack %q:\n%s", want, joined)
		}
	}
	if len(r.Series.Samples) == 0 || r.Series.Summary.Seconds <= 0 {
		t.Errorf("CPU was not sampled: %+v", r.Series.Summary)
	}
	if _, err := fs.StartPoint(context.Background(), PointConfig{CPUs: []int{4095}}); !errors.Is(err, ErrNoSuchCPU) {
		t.Errorf("bad CPU: %v, want ErrNoSuchCPU", err)
	}
	if _, err := fs.StartPoint(context.Background(), PointConfig{KubeProxyPID: 1 << 30}); !errors.Is(err, ErrNoSuchProcess) {
		t.Errorf("bad PID: %v, want ErrNoSuchProcess", err)
	}
}
