package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/runs"
)

// hostObserver stands for the agent observing a kind node: its node CPU
// is the host's /proc/stat, far more than the node's own.
type hostObserver struct {
	cpu     runs.NodeCPU
	raws    []string
	trimmed []time.Time
}

type hostWindow struct{ o *hostObserver }

func (o *hostObserver) Begin(_ context.Context, raw string) (Window, error) {
	o.raws = append(o.raws, raw)
	return hostWindow{o}, nil
}
func (w hostWindow) Trim(start, end time.Time) { w.o.trimmed = append(w.o.trimmed, start, end) }
func (w hostWindow) End(context.Context) (*Observation, error) {
	return &Observation{NodeCPU: w.o.cpu, KubeProxy: 0.05}, nil
}

func writeCPUStat(t *testing.T, dir string, usage, user, system time.Duration) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("usage_usec %d\nuser_usec %d\nsystem_usec %d\n", usage.Microseconds(), user.Microseconds(), system.Microseconds())
	// Atomically, as the kernel's cgroup files read: the observer samples
	// the file while the test rewrites it, and must never see it empty.
	tmp := filepath.Join(dir, ".cpu.stat.tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "cpu.stat")); err != nil {
		t.Fatal(err)
	}
}

// TestCgroupCPUOverTheLoadWindow: the node CPU of container nodes is their
// cgroups' usage between the samples that bound the load's window, summed
// over the nodes, each node's kept.
func TestCgroupCPUOverTheLoadWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	nodes := []CgroupNode{{"kind-worker", "/cg/a"}, {"kind-worker2", "/cg/b"}}
	// Node a: 1 core during start-up (0-1 s), 0.25 in the window (1-3 s),
	// 1 core at exit (3-4 s); node b: 0.5 throughout.
	a := []float64{0, 1, 1.25, 1.5, 2.5}
	var s []cgroupSample
	for i := range a {
		s = append(s, cgroupSample{at: t0.Add(time.Duration(i) * time.Second), usage: []collector.CgroupUsage{
			{Total: a[i], User: a[i] / 2, System: a[i] / 2}, {Total: 0.5 * float64(i)}}})
	}
	cpu, doc, err := cgroupCPU(nodes, s, t0.Add(time.Second), t0.Add(3*time.Second), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !near(cpu.Total, 0.75) || !near(cpu.User, 0.125) || !near(cpu.System, 0.125) {
		t.Errorf("node CPU %+v over the window, want 0.75 cores (0.25 + 0.5)", cpu)
	}
	if !near(cpu.MaxTotal, 0.75) {
		t.Errorf("busiest interval %.3f, want 0.75", cpu.MaxTotal)
	}
	if len(cpu.Nodes) != 2 || cpu.Nodes[0].Node != "kind-worker" || !near(cpu.Nodes[0].Total, 0.25) || !near(cpu.Nodes[1].Total, 0.5) {
		t.Errorf("per node %+v", cpu.Nodes)
	}
	if want := "the cgroups of the 2 client node containers, summed (kind-worker, kind-worker2)"; cpu.Covers != want || doc.Covers != want {
		t.Errorf("covers %q, want %q", cpu.Covers, want)
	}
	if !doc.Start.Equal(t0.Add(time.Second)) || !doc.End.Equal(t0.Add(3*time.Second)) || doc.Nodes[1].Cgroup != "/cg/b" {
		t.Errorf("raw document %+v", doc)
	}
	// Untrimmed: the whole series.
	whole, _, _ := cgroupCPU(nodes[:1], s, time.Time{}, time.Time{}, time.Second)
	if !near(whole.Total, 0.625) || whole.Covers != "the client node container's cgroup (kind-worker)" || whole.Nodes != nil {
		t.Errorf("whole series %+v, want 0.625 cores of kind-worker", whole)
	}
}

// TestCgroupObserverReplacesTheHostFigure: on a kind node the point's node
// CPU is the container's cgroup, not the agent's /proc/stat (the host's),
// labelled so, and the node's figures land in raw.
func TestCgroupObserverReplacesTheHostFigure(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "system.slice", "docker-0123.scope")
	writeCPUStat(t, dir, 0, 0, 0)
	inner := &hostObserver{cpu: runs.NodeCPU{Total: 1.9, Covers: "the whole host"}}
	o := &CgroupObserver{Observer: inner, Nodes: []CgroupNode{{"kind-worker", dir}}, Every: 20 * time.Millisecond}
	raw := t.TempDir()
	w, err := o.Begin(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	begun := time.Now()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	// The node's processes use 100 ms of CPU during a window of ~200 ms.
	time.Sleep(100 * time.Millisecond)
	writeCPUStat(t, dir, 100*time.Millisecond, 60*time.Millisecond, 40*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	end := time.Now()
	time.Sleep(100 * time.Millisecond)
	w.(Trimmer).Trim(start, end)
	obs, err := w.End(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(inner.trimmed) != 2 || !inner.trimmed[0].Equal(start) {
		t.Errorf("the inner window was not trimmed: %v", inner.trimmed)
	}
	// 0.1 s over the bounding samples: at least the window, at most the
	// whole observation.
	hi := 0.1 / end.Sub(start).Seconds()
	lo := 0.1 / time.Since(begun).Seconds()
	if obs.NodeCPU.Total < lo || obs.NodeCPU.Total > hi*1.01 {
		t.Errorf("node CPU %.3f cores, want between %.3f and %.3f (the cgroup's 0.1 s, not the host's 1.9)", obs.NodeCPU.Total, lo, hi)
	}
	if !near(obs.NodeCPU.User/obs.NodeCPU.Total, 0.6) {
		t.Errorf("user share %.3f, want 0.6", obs.NodeCPU.User/obs.NodeCPU.Total)
	}
	if obs.NodeCPU.Covers != "the client node container's cgroup (kind-worker)" || obs.KubeProxy != 0.05 {
		t.Errorf("observation %+v", obs)
	}
	var doc nodeCPUDoc
	b, err := os.ReadFile(filepath.Join(raw, RawNodeCPUJSON))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Nodes) != 1 || doc.Nodes[0].Cgroup != dir || !near(doc.Nodes[0].Total, obs.NodeCPU.Total) {
		t.Errorf("raw node CPU %s (%v)", b, err)
	}
	// A cgroup that vanished (the node was deleted) fails the window.
	gone := &CgroupObserver{Observer: inner, Nodes: []CgroupNode{{"kind-worker9", filepath.Join(root, "nope")}}}
	if _, err := gone.Begin(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "kind-worker9") {
		t.Errorf("missing cgroup: %v", err)
	}
}

// TestMultiNodeObserverSums: with several client nodes the node CPU is
// their sum, each node's kept in raw, the others observed without
// kube-proxy into raw/node-<name>/.
func TestMultiNodeObserverSums(t *testing.T) {
	a := &hostObserver{cpu: runs.NodeCPU{User: 0.2, System: 0.1, Total: 0.3, MaxTotal: 0.4}}
	b := &hostObserver{cpu: runs.NodeCPU{User: 0.1, SoftIRQ: 0.1, Total: 0.2, MaxTotal: 0.25}}
	o := &MultiNodeObserver{Nodes: []NamedObserver{{"node-a", a}, {"node-b", b}}}
	raw := t.TempDir()
	w, err := o.Begin(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	w.(Trimmer).Trim(t0, t0.Add(time.Second))
	obs, err := w.End(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := obs.NodeCPU
	if !near(n.Total, 0.5) || !near(n.User, 0.3) || !near(n.SoftIRQ, 0.1) || !near(n.MaxTotal, 0.65) {
		t.Errorf("summed node CPU %+v, want 0.5 cores", n)
	}
	if len(n.Nodes) != 2 || n.Nodes[0] != (runs.NodeShare{Node: "node-a", Total: 0.3}) || n.Nodes[1] != (runs.NodeShare{Node: "node-b", Total: 0.2}) {
		t.Errorf("per node %+v", n.Nodes)
	}
	if n.Covers != "all CPUs of the 2 client nodes (/proc/stat), summed (node-a, node-b)" {
		t.Errorf("covers %q", n.Covers)
	}
	if len(a.trimmed) != 2 || len(b.trimmed) != 2 {
		t.Errorf("trimmed %v and %v", a.trimmed, b.trimmed)
	}
	if a.raws[0] != raw || b.raws[0] != filepath.Join(raw, "node-node-b") {
		t.Errorf("raw dirs %v, %v", a.raws, b.raws)
	}
	if _, err := os.Stat(filepath.Join(raw, RawNodeCPUJSON)); err != nil {
		t.Error(err)
	}
}

// nodesProvider is a provider with several client nodes, maybe containers
// here.
type nodesProvider struct {
	clusters.Provider
	nodes   []clusters.NamedNode
	cgroups map[string]string
}

func (p nodesProvider) ClientNodes(context.Context) ([]clusters.NamedNode, error) {
	return p.nodes, nil
}

type cgroupProvider struct{ nodesProvider }

func (p cgroupProvider) NodeCgroup(_ context.Context, node string) (string, error) {
	if d, ok := p.cgroups[node]; ok {
		return d, nil
	}
	return "", errors.New("no such container " + node)
}

func TestClientNodesObserver(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	a, b := &fakeAgentNode{}, &fakeAgentNode{}
	nodes := []clusters.NamedNode{{Name: "kind-worker", Node: a}, {Name: "kind-worker2", Node: b}}
	agent := func() *AgentObserver { return &AgentObserver{Node: a, Bin: "kpbench", Interval: time.Second} }

	// Container nodes: every node's cgroup, the agent for the rest.
	kind := cgroupProvider{nodesProvider{nodes: nodes, cgroups: map[string]string{"kind-worker": "/cg/1", "kind-worker2": "/cg/2"}}}
	first := agent()
	cg, ok := clientNodesObserver(ctx, kind, first, log).(*CgroupObserver)
	if !ok || len(cg.Nodes) != 2 || cg.Nodes[1] != (CgroupNode{"kind-worker2", "/cg/2"}) || cg.Observer != first {
		t.Fatalf("kind: %#v", cg)
	}
	if !strings.HasPrefix(first.Covers, "the whole host") {
		t.Errorf("the agent's own figure on a node container is labelled %q", first.Covers)
	}
	// A cgroup that cannot be found: the host's figure, said so.
	kind.cgroups = map[string]string{"kind-worker": "/cg/1"}
	first = agent()
	if o := clientNodesObserver(ctx, kind, first, log); o != Observer(first) ||
		!strings.Contains(first.Covers, "the whole host") || !strings.Contains(first.Covers, "kind-worker2") {
		t.Errorf("kind without cgroups: %#v, covers %q", o, first.Covers)
	}
	// Machines (existing): the sum over the nodes' agents.
	first = agent()
	m, ok := clientNodesObserver(ctx, nodesProvider{nodes: nodes}, first, log).(*MultiNodeObserver)
	if !ok || len(m.Nodes) != 2 || m.Nodes[0].Observer != Observer(first) {
		t.Fatalf("existing: %#v", m)
	}
	if o := m.Nodes[1].Observer.(*AgentObserver); o.Node != b || !o.NoKubeProxy || o.Interval != time.Second {
		t.Errorf("second node's observer %+v", o)
	}
	// One client node: the agent alone.
	first = agent()
	if o := clientNodesObserver(ctx, nodesProvider{nodes: nodes[:1]}, first, log); o != Observer(first) || first.Covers != "" {
		t.Errorf("one node: %#v", o)
	}
}

func TestProcStatCovers(t *testing.T) {
	if got := procStatCovers([]int{1}); got != "CPUs 1 of the client node (/proc/stat)" {
		t.Error(got)
	}
	if got := procStatCovers(nil); got != "all CPUs of the client node (/proc/stat)" {
		t.Error(got)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// summaryNode answers `kpbench load` with a fixed summary.
type summaryNode struct {
	fakeAgentNode
	summary loadgen.Summary
}

func (n *summaryNode) Run(_ context.Context, _ io.Reader, stdout, _ io.Writer, args ...string) error {
	if len(args) < 2 || args[1] != "load" {
		return errors.New("unexpected command " + strings.Join(args, " "))
	}
	return n.summary.WriteJSON(stdout)
}

// TestNodeLoadKeepsItsSummary: the load client's own summary (its start,
// warm-up and measured window) is kept in the point's raw directory, and
// its window is the measured one, after the warm-up.
func TestNodeLoadKeepsItsSummary(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	n := &summaryNode{summary: loadgen.Summary{SchemaVersion: runs.SchemaVersion, StartedAt: t0, DurationSeconds: 4,
		Requests: 800, Warmup: loadgen.Warmup{Seconds: 2, Requests: 400}, Valid: true}}
	raw := t.TempDir()
	res, err := (&NodeLoad{Node: n, Bin: "kpbench"}).Run(context.Background(), LoadRequest{ID: "p", Rate: 200, RawDir: raw})
	if err != nil {
		t.Fatal(err)
	}
	if !res.WindowStart.Equal(t0.Add(2*time.Second)) || !res.WindowEnd.Equal(t0.Add(6*time.Second)) || res.Requests != 800 {
		t.Errorf("window %s – %s, %d requests", res.WindowStart, res.WindowEnd, res.Requests)
	}
	f, err := os.Open(filepath.Join(raw, RawLoadJSON))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kept, err := loadgen.ReadSummary(f)
	if err != nil || kept.Warmup.Requests != 400 || !kept.StartedAt.Equal(t0) {
		t.Errorf("kept summary %+v (%v)", kept, err)
	}
}
