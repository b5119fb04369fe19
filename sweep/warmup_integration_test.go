package sweep_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/sweep"
)

// TestWarmupAndCPUWindowOnLab measures one point on a real lab and checks
// what the point's numbers cover: the warm-up ran inside the measured load
// process (its requests went through the dataplane after the conntrack
// flush, but are not in the point's counts), and the node's CPU figure
// covers the load's measured window, not the observer's whole window from
// before the load process started to after it exited.
func TestWarmupAndCPUWindowOnLab(t *testing.T) {
	const (
		rate     = 200.0
		warmup   = 2 * time.Second
		duration = 4 * time.Second
		interval = 250 * time.Millisecond
	)
	spec := filepath.Join(t.TempDir(), "warmup.yaml")
	if err := os.WriteFile(spec, []byte(`apiVersion: kpbench.io/v1alpha1
kind: Scenario
metadata:
  name: warmup-window
spec:
  modes: [iptables]
  services: [1]
  endpointsPerService: 1
  backends: 1
  load:
    rate: 200
    duration: 4s
    warmup: 2s
    requestsPerConn: [1]
    targets: one
  repetitions: 1
  sampling:
    interval: 250ms
`), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, logs := runOnLab(t, "warmup-window", "-f", spec)
	pts, err := runs.ReadPoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 1 {
		t.Fatalf("%d points, want 1\n%s", len(pts), logs)
	}
	p := pts[0]
	raw := filepath.Join(dir, runs.RawDir, p.ID)
	var load loadgen.Summary
	readJSON(t, filepath.Join(raw, sweep.RawLoadJSON), &load)
	var col collector.PointResult
	readJSON(t, filepath.Join(raw, collector.RawCollectorJSON), &col)

	// The warm-up ran in the measured process: its requests are counted
	// as the warm-up's, and the point counts the measured window only.
	ws := load.StartedAt.Add(time.Duration(load.Warmup.Seconds * float64(time.Second)))
	we := ws.Add(time.Duration(load.DurationSeconds * float64(time.Second)))
	if load.Warmup.Seconds != warmup.Seconds() {
		t.Errorf("the load process warmed up %.3f s, want %v", load.Warmup.Seconds, warmup)
	}
	if floor := 0.8 * rate * warmup.Seconds(); float64(load.Warmup.Requests) < floor {
		t.Errorf("%d warm-up requests in the measured process, want at least %.0f", load.Warmup.Requests, floor)
	}
	want := rate * duration.Seconds()
	if r := float64(p.Requests); r < 0.8*want || r > 1.05*want {
		t.Errorf("the point counts %d requests, want about %.0f (rate × the measured window; the warm-up's %d are not in it)",
			p.Requests, want, load.Warmup.Requests)
	}
	if rows := timelineSeconds(t, filepath.Join(raw, "timeline.csv")); rows != int(duration.Seconds()) {
		t.Errorf("the timeline has %d seconds, want the measured window's %d", rows, int(duration.Seconds()))
	}
	// Each request opened its own connection through the Service: the
	// node's conntrack table, flushed before the point, tracked the
	// warm-up's connections as well as the measured ones.
	if !p.Conntrack.FlushedBefore {
		t.Error("the point does not record the conntrack flush")
	}
	tracked := p.Conntrack.EntriesAfter - p.Conntrack.EntriesBefore
	if sent := load.Warmup.Requests + p.Requests; float64(tracked) < 0.9*float64(sent) {
		t.Errorf("conntrack gained %d entries over the window for %d connections (warm-up and measured)", tracked, sent)
	}

	// The node's samples span the whole observation: they start before
	// the load process started and end after its window.
	s := col.Series
	if s == nil || len(s.Samples) == 0 {
		t.Fatal("no CPU samples kept in raw")
	}
	if first := s.Samples[0].Start; !first.Before(load.StartedAt) {
		t.Errorf("the first CPU sample starts at %s, not before the load process's start %s", first, load.StartedAt)
	}
	if last := s.Samples[len(s.Samples)-1].End; !last.After(we) {
		t.Errorf("the last CPU sample ends at %s, not after the measured window's end %s", last, we)
	}
	// The CPU figure covers the measured window, to within a sample.
	if col.CPUWindow == nil {
		t.Fatal("the collector's result records no CPU window: the figure was not trimmed to the load")
	}
	t.Logf("load window %s – %s; CPU window %s – %s; samples %s – %s",
		ws.Format(time.StampMilli), we.Format(time.StampMilli),
		col.CPUWindow.Start.Format(time.StampMilli), col.CPUWindow.End.Format(time.StampMilli),
		s.Samples[0].Start.Format(time.StampMilli), s.Samples[len(s.Samples)-1].End.Format(time.StampMilli))
	if d := col.CPUWindow.Start.Sub(ws).Abs(); d > interval {
		t.Errorf("the CPU window starts %v from the measured window's start (more than one %v sample)", d, interval)
	}
	if d := col.CPUWindow.End.Sub(we).Abs(); d > interval {
		t.Errorf("the CPU window ends %v from the measured window's end (more than one %v sample)", d, interval)
	}
	// The figure says what it covers: the lab node's pinned CPUs.
	if c := p.CPU.Node.Covers; !strings.HasPrefix(c, "CPUs ") || !strings.HasSuffix(c, " of the client node (/proc/stat)") {
		t.Errorf("node CPU covers %q, want the node's pinned CPUs", c)
	}
	// And the point's node CPU is the mean over exactly those samples.
	var busy, secs float64
	for _, smp := range s.Samples {
		if mid := smp.Start.Add(smp.End.Sub(smp.Start) / 2); !mid.Before(ws) && !mid.After(we) {
			busy += smp.Node.Total * smp.Seconds
			secs += smp.Seconds
		}
	}
	if secs == 0 {
		t.Fatal("no sample inside the measured window")
	}
	t.Logf("requests: %d measured, %d in the warm-up; conntrack %d → %d; node CPU %.3f over the window, %.3f over the whole observation (%s)",
		p.Requests, load.Warmup.Requests, p.Conntrack.EntriesBefore, p.Conntrack.EntriesAfter, p.CPU.Node.Total, s.Summary.Mean.Total, p.CPU.Node.Covers)
	if mean := busy / secs; math.Abs(mean-p.CPU.Node.Total) > 1e-6 {
		t.Errorf("the point's node CPU is %.6f cores; the samples inside the measured window average %.6f (the whole observation %.6f)",
			p.CPU.Node.Total, mean, s.Summary.Mean.Total)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// timelineSeconds counts the seconds of a load timeline.
func timelineSeconds(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, err := loadgen.ReadTimelineCSV(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return len(lines)
}
