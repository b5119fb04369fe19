package collector

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/internal/cgroup"
	"github.com/kpbench/kpbench/runs"
)

// TestCoverage: the share of the window that samples no longer than
// twice the interval cover. A held-up sampler's one long sample, whose
// midpoint used to be enough, covers nothing.
func TestCoverage(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	win := Span{at(0), at(10_000)}
	every := time.Second
	contiguous := func(from, to, step int) []Span {
		var out []Span
		for s := from; s < to; s += step {
			out = append(out, Span{at(s), at(min(s+step, to))})
		}
		return out
	}
	for _, c := range []struct {
		name    string
		samples []Span
		want    float64
	}{
		{"every second across the window", contiguous(-500, 10_500, 1000), 1},
		{"a held-up sample over the whole window", []Span{{at(-1000), at(12_000)}}, 0},
		// 1.1 s of the 10 s window in one 3.1 s sample: 89% covered.
		{"held up for 3.1 s at the start: 89%", append([]Span{{at(-2000), at(1100)}}, contiguous(1100, 10_500, 1000)...), 0.89},
		// 0.9 s in one 2.9 s sample: 91%.
		{"held up for 2.9 s at the start: 91%", append([]Span{{at(-2000), at(900)}}, contiguous(900, 10_500, 1000)...), 0.91},
		{"a late tick (1.9 s) still resolves", append(contiguous(-500, 4500, 1000), append([]Span{{at(4500), at(6400)}}, contiguous(6400, 10_500, 1000)...)...), 1},
		{"the sampler stopped early", contiguous(-500, 8500, 1000), 0.85},
		{"overlapping intervals count once", []Span{{at(0), at(1000)}, {at(500), at(1500)}}, 0.15},
	} {
		got := Coverage(c.samples, win, every)
		if d := got - c.want; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: coverage %v, want %v", c.name, got, c.want)
		}
	}
	if got := Coverage(nil, Span{}, every); got != 1 {
		t.Errorf("no window: %v, want 1 (the whole observation)", got)
	}
}

// TestFillRecordsCeilingAndCoverage: a node's figure carries the CPUs it
// sums (the ceiling of its saturation) and the coverage of the load's
// window.
func TestFillRecordsCeilingAndCoverage(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	var samples []Sample
	for s := 0; s < 7; s++ {
		samples = append(samples, Sample{Start: t0.Add(time.Duration(s) * time.Second), End: t0.Add(time.Duration(s+1) * time.Second),
			Seconds: 1, Node: Cores{Total: 0.5 + 0.1*float64(s%2)}})
	}
	ser := &Series{CPUs: []int{2, 3}, IntervalSeconds: 1, Samples: samples}
	res := &PointResult{Series: ser}
	p := &runs.Point{Valid: true}
	if err := res.fill(Span{t0.Add(time.Second), t0.Add(6 * time.Second)}, "", "CPUs 2-3", p); err != nil {
		t.Fatal(err)
	}
	if n := p.CPU.Node; n.CPUs != 2 || n.Coverage != 1 || n.MaxTotal != 0.6 || !p.Valid {
		t.Errorf("node CPU %+v, valid %v; want 2 CPUs, coverage 1, busiest 0.6", n, p.Valid)
	}
}

// TestSyncsWithinTheWindow: kube-proxy's syncs are counted from before
// the warm-up; those that ended before the window, or the one that began
// after it, are not the window's.
func TestSyncsWithinTheWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	load := Span{t0.Add(5 * time.Second), t0.Add(10 * time.Second)}
	unix := func(d time.Duration) float64 { return float64(t0.Add(d).UnixNano()) / 1e9 }
	for _, c := range []struct {
		name          string
		full, partial int64
		last          float64
		lastSecs      float64
		wantFull      int64
		wantPartial   int64
	}{
		{"one in the warm-up", 1, 0, unix(3 * time.Second), 0.5, 0, 0},
		{"one ending inside", 0, 1, unix(6 * time.Second), 0.2, 0, 1},
		{"one straddling the start", 1, 0, unix(5200 * time.Millisecond), 0.5, 1, 0},
		{"one after the window", 0, 1, unix(11 * time.Second), 0.5, 0, 0},
		{"two, the last after the window: the first may be inside", 1, 1, unix(11 * time.Second), 0.5, 1, 1},
		{"no timestamp: counted", 1, 0, 0, 0, 1, 0},
	} {
		r := &PointResult{Sync: runs.Sync{FullSyncs: c.full, PartialSyncs: c.partial},
			KubeProxy: &KubeProxyWindow{LastSyncTimestamp: c.last, LastSyncSeconds: c.lastSecs}}
		s := r.syncsWithin(load)
		if s.FullSyncs != c.wantFull || s.PartialSyncs != c.wantPartial {
			t.Errorf("%s: %d full, %d partial; want %d, %d", c.name, s.FullSyncs, s.PartialSyncs, c.wantFull, c.wantPartial)
		}
	}
}

// TestMultiNodeKeepsAnotherNodesReasons: a node other than the measured
// one whose figure could not cover the window spoils the sum; its reason
// reaches the point, naming the node.
func TestMultiNodeKeepsAnotherNodesReasons(t *testing.T) {
	a := &hostObserver{cpu: runs.NodeCPU{Total: 0.3, CPUs: 1, Coverage: 1}}
	o := &MultiNodeObserver{Nodes: []NamedObserver{{"node-a", a}, {"node-b", invalidNode{}}}}
	w, err := o.Begin(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	p := &runs.Point{Valid: true}
	if err := w.End(t.Context(), Load{}, p); err != nil {
		t.Fatal(err)
	}
	want := runs.ReasonNoCPUSample + ": x (client node node-b)"
	if p.Valid || len(p.InvalidReasons) != 1 || p.InvalidReasons[0] != want {
		t.Errorf("valid %v, reasons %q; want %q", p.Valid, p.InvalidReasons, want)
	}
}

type invalidNode struct{}

func (invalidNode) Begin(_ context.Context, _ string) (Window, error) { return invalidNode{}, nil }
func (invalidNode) End(_ context.Context, _ Load, p *runs.Point) error {
	p.CPU.Node = runs.NodeCPU{Total: 0.2, CPUs: 1}
	Invalidate(p, runs.ReasonNoCPUSample+": x")
	return nil
}

// TestCgroupCPULimit: a node container's ceiling is its quota or its
// cpuset, else every CPU of the machine.
func TestCgroupCPULimit(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  float64
	}{
		{"no limit", map[string]string{"cpu.max": "max 100000\n"}, 8},
		{"a quota of 1.5 CPUs", map[string]string{"cpu.max": "150000 100000\n"}, 1.5},
		{"a cpuset of 2", map[string]string{"cpu.max": "max 100000\n", "cpuset.cpus.effective": "2-3\n"}, 2},
		{"quota under cpuset", map[string]string{"cpu.max": "50000 100000\n", "cpuset.cpus.effective": "0,2-3\n"}, 0.5},
		{"cgroup v1", map[string]string{"cpu.cfs_quota_us": "200000\n", "cpu.cfs_period_us": "100000\n", "cpuset.cpus": "0-5\n"}, 2},
		{"nothing readable", nil, 8},
	} {
		dir := t.TempDir()
		for name, body := range c.files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := cgroup.CPULimit(dir, 8); got != c.want {
			t.Errorf("%s: %g CPUs, want %g", c.name, got, c.want)
		}
	}
}

// TestFirstPacketIncomplete: a probe that timed another share of the
// client's connections than 99–101% marks the figure incomplete; the
// point stays valid.
func TestFirstPacketIncomplete(t *testing.T) {
	for _, c := range []struct {
		timed, client int64
		want          string
	}{
		{4950, 5000, ""},
		{4949, 5000, "timed 4949 of the client's 5000 connections (99.0%, below 99%)"},
		{4000, 5000, "timed 4000 of the client's 5000 connections (80.0%, below 99%)"},
		{5050, 5000, ""},
		{5051, 5000, "timed 5051 connections, the client opened 5000 (101.0%, above 101%)"},
		{49, 49, ""},
		{48, 49, "timed 48 of the client's 49 connections (98.0%, below 99%)"},
		{0, 0, ""},
		{3, 0, "timed 3 connections, the client reported none"},
	} {
		fp := runs.FirstPacket{Connections: c.timed, ClientConnections: c.client, P50Us: 12}
		got := runs.FirstPacketIncomplete(&fp)
		if got != c.want {
			t.Errorf("%d of %d: %q, want %q", c.timed, c.client, got, c.want)
		}
		if fp.Incomplete = got; fp.Usable() != (got == "" && c.timed > 0) {
			t.Errorf("%d of %d: usable %v", c.timed, c.client, fp.Usable())
		}
	}
	if !strings.HasPrefix(runs.FirstPacketIncomplete(&runs.FirstPacket{Connections: 1, ClientConnections: 1000}), "timed 1 of") {
		t.Error("1 of 1000 is complete")
	}
}
