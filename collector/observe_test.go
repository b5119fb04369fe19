package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/runs"
)

// hostObserver stands for the agent observing a kind node: its node CPU
// is the host's /proc/stat, far more than the node's own.
type hostObserver struct {
	cpu   runs.NodeCPU
	raws  []string
	loads []Span
}

type hostWindow struct{ o *hostObserver }

func (o *hostObserver) Begin(_ context.Context, raw string) (Window, error) {
	o.raws = append(o.raws, raw)
	return hostWindow{o}, nil
}
func (w hostWindow) End(_ context.Context, load Load, p *runs.Point) error {
	w.o.loads = append(w.o.loads, load.Span)
	p.CPU.Node = w.o.cpu
	p.CPU.Processes.KubeProxy = 0.05
	return nil
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

func eq(a, b float64) bool { return near(a, b, 1e-9) }

// TestWindowEdgesAgree: samples straddle both edges of the load's window;
// the node CPU and kube-proxy's CPU (the node's sampler, Series.Within)
// and the side samplers (a VM's host process, kind's cgroups:
// ratesWithin) keep the same samples by the one rule, InWindow, and so
// cover the same span.
func TestWindowEdgesAgree(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	// One reading a second, 0 s to 6 s; the load runs from 1.6 s to
	// 4.4 s: the samples [1,2] and [4,5] straddle its edges with their
	// larger part outside, so the samples inside are [2,3] and [3,4].
	// Each second's CPU differs, so a figure over another span shows.
	busy := []float64{1, 0.9, 0.2, 0.4, 0.8, 1}
	load := Span{at(1.6), at(4.4)}
	ser := &Series{IntervalSeconds: 1, Processes: []Process{{Name: ProcessKubeProxy, PID: 7}}}
	var rs []reading
	total := 0.0
	rs = append(rs, reading{at: at(0), values: []float64{0, 0, 0}})
	for i, c := range busy {
		smp := Sample{Start: at(float64(i)), End: at(float64(i + 1)), Seconds: 1, Node: Cores{Total: c, User: c},
			Processes: []ProcessCores{{Name: ProcessKubeProxy, PID: 7, Total: c / 10, User: c / 10}}}
		ser.Samples = append(ser.Samples, smp)
		total += c
		rs = append(rs, reading{at: at(float64(i + 1)), values: []float64{total, total, 0}})
	}
	want := Span{at(2), at(4)}
	const node, kp = 0.3, 0.03 // (0.2 + 0.4) / 2 s, and a tenth of it

	sum, err := ser.Within(load)
	if err != nil {
		t.Fatal(err)
	}
	if got := (Span{sum.Start, sum.End}); got != want || !eq(sum.Mean.Total, node) || !eq(sum.ProcessesCPU().KubeProxy, kp) {
		t.Errorf("node sampler: %s – %s, node %.3f, kube-proxy %.3f; want %s – %s, %.3f and %.3f",
			sum.Start, sum.End, sum.Mean.Total, sum.ProcessesCPU().KubeProxy, want.Start, want.End, node, kp)
	}
	host, err := ratesWithin(rs, load, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host.Span != want || !eq(host.Mean[0], node) {
		t.Errorf("host process sampler: %+v, want %.3f over %v", host, node, want)
	}
	cg, doc, err := cgroupCPU([]CgroupNode{{"kind-worker", "/cg"}}, rs, load, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Start != want.Start || doc.End != want.End || !eq(cg.Total, node) || !eq(cg.MaxTotal, 0.4) {
		t.Errorf("cgroup sampler: %+v over %s – %s, want %.3f over %v", cg, doc.Start, doc.End, node, want)
	}
	// And a point's figures, through the observers' own End.
	p := &runs.Point{Valid: true}
	res := &PointResult{Series: ser}
	if err := res.fill(load, "", "the node", p); err != nil {
		t.Fatal(err)
	}
	if !eq(p.CPU.Node.Total, node) || !eq(p.CPU.Processes.KubeProxy, kp) || *res.CPUWindow != want || !p.Valid {
		t.Errorf("point %+v, window %+v", p.CPU, res.CPUWindow)
	}
	// A window no sample lies inside: the whole observation, invalid.
	p = &runs.Point{Valid: true}
	if err := (&PointResult{Series: ser, CPU: ser.Summary.CPU()}).fill(Span{at(20), at(21)}, "", "the node", p); err != nil {
		t.Fatal(err)
	}
	if p.Valid || !strings.Contains(strings.Join(p.InvalidReasons, ";"), runs.ReasonNoCPUSample) {
		t.Errorf("a window past the samples: valid %v, reasons %v", p.Valid, p.InvalidReasons)
	}
	if _, err := ratesWithin(rs, Span{at(20), at(21)}, time.Second, nil); !errors.Is(err, ErrNoSampleInWindow) {
		t.Errorf("side sampler past its readings: %v", err)
	}
}

// TestCgroupCPUOverTheLoadWindow: the node CPU of container nodes is their
// cgroups' usage over the samples inside the load's window, summed over
// the nodes, each node's kept.
func TestCgroupCPUOverTheLoadWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	nodes := []CgroupNode{{"kind-worker", "/cg/a"}, {"kind-worker2", "/cg/b"}}
	// Node a: 1 core during start-up (0-1 s), 0.25 in the window (1-3 s),
	// 1 core at exit (3-4 s); node b: 0.5 throughout.
	a := []float64{0, 1, 1.25, 1.5, 2.5}
	var rs []reading
	for i := range a {
		rs = append(rs, reading{at: t0.Add(time.Duration(i) * time.Second), values: []float64{a[i], a[i] / 2, a[i] / 2, 0.5 * float64(i), 0, 0}})
	}
	cpu, doc, err := cgroupCPU(nodes, rs, Span{t0.Add(time.Second), t0.Add(3 * time.Second)}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !eq(cpu.Total, 0.75) || !eq(cpu.User, 0.125) || !eq(cpu.System, 0.125) {
		t.Errorf("node CPU %+v over the window, want 0.75 cores (0.25 + 0.5)", cpu)
	}
	if !eq(cpu.MaxTotal, 0.75) {
		t.Errorf("busiest interval %.3f, want 0.75", cpu.MaxTotal)
	}
	if len(cpu.Nodes) != 2 || cpu.Nodes[0].Node != "kind-worker" || !eq(cpu.Nodes[0].Total, 0.25) || !eq(cpu.Nodes[1].Total, 0.5) {
		t.Errorf("per node %+v", cpu.Nodes)
	}
	if want := "the cgroups of the 2 client node containers, summed (kind-worker, kind-worker2)"; cpu.Covers != want || doc.Covers != want {
		t.Errorf("covers %q, want %q", cpu.Covers, want)
	}
	if !doc.Start.Equal(t0.Add(time.Second)) || !doc.End.Equal(t0.Add(3*time.Second)) || doc.Nodes[1].Cgroup != "/cg/b" {
		t.Errorf("raw document %+v", doc)
	}
	// Untrimmed: the whole series.
	whole, _, _ := cgroupCPU(nodes[:1], rs, Span{}, time.Second)
	if !eq(whole.Total, 0.625) || whole.Covers != "the client node container's cgroup (kind-worker)" || whole.Nodes != nil {
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
	every := 20 * time.Millisecond
	o := Observers{&CgroupObserver{Nodes: []CgroupNode{{"kind-worker", dir}}, Every: every}, inner}
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
	p := &runs.Point{Valid: true}
	if err := w.End(context.Background(), Load{Span: Span{start, end}}, p); err != nil {
		t.Fatal(err)
	}
	if len(inner.loads) != 1 || !inner.loads[0].Start.Equal(start) {
		t.Errorf("the node's window was not given the load's: %v", inner.loads)
	}
	// 0.1 s over the samples inside the window: the window to within a
	// sampling interval, at most the whole observation.
	hi := 0.1 / (end.Sub(start) - 2*every).Seconds()
	lo := 0.1 / time.Since(begun).Seconds()
	n := p.CPU.Node
	if n.Total < lo || n.Total > hi {
		t.Errorf("node CPU %.3f cores, want between %.3f and %.3f (the cgroup's 0.1 s, not the host's 1.9)", n.Total, lo, hi)
	}
	if !near(n.User/n.Total, 0.6, 1e-9) {
		t.Errorf("user share %.3f, want 0.6", n.User/n.Total)
	}
	if n.Covers != "the client node container's cgroup (kind-worker)" || p.CPU.Processes.KubeProxy != 0.05 {
		t.Errorf("point CPU %+v", p.CPU)
	}
	var doc nodeCPUDoc
	b, err := os.ReadFile(filepath.Join(raw, RawNodeCPUJSON))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Nodes) != 1 || doc.Nodes[0].Cgroup != dir || !eq(doc.Nodes[0].Total, n.Total) {
		t.Errorf("raw node CPU %s (%v)", b, err)
	}
	// A cgroup that vanished (the node was deleted) fails the window.
	gone := &CgroupObserver{Nodes: []CgroupNode{{"kind-worker9", filepath.Join(root, "nope")}}}
	if _, err := gone.Begin(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "kind-worker9") {
		t.Errorf("missing cgroup: %v", err)
	}
}

// TestMultiNodeObserverSums: with several client nodes the node CPU is
// their sum, each node's kept in raw, the others observed into
// raw/node-<name>/.
func TestMultiNodeObserverSums(t *testing.T) {
	a := &hostObserver{cpu: runs.NodeCPU{User: 0.2, System: 0.1, Total: 0.3, MaxTotal: 0.4, CPUs: 1, Coverage: 0.95}}
	b := &hostObserver{cpu: runs.NodeCPU{User: 0.1, SoftIRQ: 0.1, Total: 0.2, MaxTotal: 0.25, CPUs: 2, Coverage: 1}}
	o := &MultiNodeObserver{Nodes: []NamedObserver{{"node-a", a}, {"node-b", b}}}
	raw := t.TempDir()
	w, err := o.Begin(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	p := &runs.Point{}
	if err := w.End(context.Background(), Load{Span: Span{t0, t0.Add(time.Second)}}, p); err != nil {
		t.Fatal(err)
	}
	n := p.CPU.Node
	if !eq(n.Total, 0.5) || !eq(n.User, 0.3) || !eq(n.SoftIRQ, 0.1) || !eq(n.MaxTotal, 0.65) {
		t.Errorf("summed node CPU %+v, want 0.5 cores", n)
	}
	// Each node keeps its own busiest interval, ceiling and coverage (its
	// saturation is judged on its own); the sum's ceiling is the sum, its
	// coverage the least.
	if len(n.Nodes) != 2 || n.Nodes[0] != (runs.NodeShare{Node: "node-a", Total: 0.3, MaxTotal: 0.4, CPUs: 1, Coverage: 0.95}) ||
		n.Nodes[1] != (runs.NodeShare{Node: "node-b", Total: 0.2, MaxTotal: 0.25, CPUs: 2, Coverage: 1}) {
		t.Errorf("per node %+v", n.Nodes)
	}
	if n.CPUs != 3 || n.Coverage != 0.95 {
		t.Errorf("summed ceiling %g, coverage %g; want 3 and 0.95", n.CPUs, n.Coverage)
	}
	if n.Covers != "all CPUs of the 2 client nodes (/proc/stat), summed (node-a, node-b)" {
		t.Errorf("covers %q", n.Covers)
	}
	if len(a.loads) != 1 || len(b.loads) != 1 || !a.loads[0].Start.Equal(t0) {
		t.Errorf("load windows %v and %v", a.loads, b.loads)
	}
	if a.raws[0] != raw || b.raws[0] != filepath.Join(raw, "node-node-b") {
		t.Errorf("raw dirs %v, %v", a.raws, b.raws)
	}
	if _, err := os.Stat(filepath.Join(raw, RawNodeCPUJSON)); err != nil {
		t.Error(err)
	}
}

func TestForClient(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	a, b := &fakeAgentNode{}, &fakeAgentNode{}
	nodes := []clusters.NamedNode{{Name: "kind-worker", Node: a}, {Name: "kind-worker2", Node: b}}
	list := func(ns []clusters.NamedNode) func(context.Context) ([]clusters.NamedNode, error) {
		return func(context.Context) ([]clusters.NamedNode, error) { return ns, nil }
	}
	cgroups := map[string]string{"kind-worker": "/cg/1", "kind-worker2": "/cg/2"}
	findCgroup := func(_ context.Context, node string) (string, error) {
		if d, ok := cgroups[node]; ok {
			return d, nil
		}
		return "", errors.New("no such container " + node)
	}
	setup := func(c clusters.Client) Setup {
		c.Bin = "kpbench"
		return Setup{Client: c, Node: a, Interval: time.Second, Log: log}
	}

	// Container nodes: every node's cgroup first, then the agent.
	o, ok := ForClient(ctx, setup(clusters.Client{Nodes: list(nodes), NodeCgroup: findCgroup})).(Observers)
	if !ok || len(o) != 2 {
		t.Fatalf("kind: %#v", o)
	}
	cg, _ := o[0].(*CgroupObserver)
	agent, _ := o[1].(*AgentObserver)
	if cg == nil || len(cg.Nodes) != 2 || cg.Nodes[1] != (CgroupNode{"kind-worker2", "/cg/2"}) || agent == nil || agent.Node != a {
		t.Fatalf("kind: %#v", o)
	}
	if !strings.HasPrefix(agent.Covers, "the whole host") {
		t.Errorf("the agent's own figure on a node container is labelled %q", agent.Covers)
	}
	// A cgroup that cannot be found: the host's figure, said so.
	delete(cgroups, "kind-worker2")
	agent, ok = ForClient(ctx, setup(clusters.Client{Nodes: list(nodes), NodeCgroup: findCgroup})).(*AgentObserver)
	if !ok || !strings.Contains(agent.Covers, "the whole host") || !strings.Contains(agent.Covers, "kind-worker2") {
		t.Errorf("kind without cgroups: %#v", agent)
	}
	// Machines (existing): the sum over the nodes' agents.
	m, ok := ForClient(ctx, setup(clusters.Client{Nodes: list(nodes)})).(*MultiNodeObserver)
	if !ok || len(m.Nodes) != 2 {
		t.Fatalf("existing: %#v", m)
	}
	if o := m.Nodes[1].Observer.(*AgentObserver); o.Node != b || !o.NoKubeProxy || o.Interval != time.Second {
		t.Errorf("second node's observer %+v", o)
	}
	// One client node: the agent alone.
	if o, ok := ForClient(ctx, setup(clusters.Client{Nodes: list(nodes[:1])})).(*AgentObserver); !ok || o.Covers != "" {
		t.Errorf("one node: %#v", o)
	}
	// A VM: its host process beside the guest's agent.
	o, ok = ForClient(ctx, setup(clusters.Client{VM: &clusters.VMNodeInfo{HostPID: 42}})).(Observers)
	if !ok || len(o) != 2 || o[0].(*HostProcessObserver).PID != 42 {
		t.Errorf("VM: %#v", o)
	}
	// This machine's network namespace: read in this process.
	if _, ok := ForClient(ctx, Setup{Node: a}).(*NodeObserver); !ok {
		t.Error("a node sharing this machine is not observed in process")
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

// TestWarmupLeftOutOfTheCPU: the lab's window holds 1 s of start-up and
// warm-up at a full core, 2 s of measured load at 0.2, 1 s of exit at a
// full core; the point's node CPU is the measured load's.
func TestWarmupLeftOutOfTheCPU(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 17, 0, 0, 0, time.UTC)
	var samples []Sample
	for i, total := range []float64{1, 0.2, 0.2, 1} {
		start := t0.Add(time.Duration(i) * time.Second)
		samples = append(samples, Sample{Start: start, End: start.Add(time.Second), Seconds: 1, Node: Cores{Total: total}})
	}
	res := &PointResult{Series: &Series{IntervalSeconds: 1, Samples: samples}}
	res.CPU.Node.Total = 0.6
	if err := res.narrow(Span{t0.Add(time.Second), t0.Add(3 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if !eq(res.CPU.Node.Total, 0.2) {
		t.Errorf("node CPU %.3f over the measured window, want 0.2", res.CPU.Node.Total)
	}
	if w := res.CPUWindow; w == nil || !w.Start.Equal(t0.Add(time.Second)) || !w.End.Equal(t0.Add(3*time.Second)) {
		t.Errorf("the raw result records the CPU window %+v, want the measured 1 s – 3 s", w)
	}
}

// fakeAgentNode is a client node whose `kpbench cluster agent point` runs
// in this process on /proc, with this process as kube-proxy.
type fakeAgentNode struct {
	args []string
	// noProcesses: the agent scans no processes, whose CPU would be
	// this process's, that is "kube-proxy"'s.
	noProcesses bool
}

func (f *fakeAgentNode) Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	f.args = args
	if len(args) < 4 || strings.Join(args[:4], " ") != "kpbench cluster agent point" {
		return errors.New("unexpected command " + strings.Join(args, " "))
	}
	fs, err := NewFS("/proc")
	if err != nil {
		return err
	}
	interval := time.Second
	if i := slices.Index(args, "--interval"); i > 0 {
		interval, _ = time.ParseDuration(args[i+1])
	}
	return ServeRemotePoint(ctx, fs, PointConfig{KubeProxyPID: os.Getpid(), Interval: interval, NoProcesses: f.noProcesses}, stdin, stdout, time.Minute)
}
func (f *fakeAgentNode) CPUs() []int                               { return nil }
func (f *fakeAgentNode) ProcRoot() string                          { return "/host/proc" }
func (f *fakeAgentNode) KubeProxyPID(context.Context) (int, error) { return os.Getpid(), nil }
func (f *fakeAgentNode) KubeProxyGet(context.Context, string) ([]byte, error) {
	return nil, errors.New("no metrics")
}

// spin burns cpu of this process's CPU time, however long that takes on
// a machine others are loading.
func spin(t *testing.T, cpu time.Duration) {
	t.Helper()
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for end := used() + cpu; used() < end; {
	}
}

func TestAgentObserverCoversTheLoadWindow(t *testing.T) {
	node := &fakeAgentNode{noProcesses: true}
	o := &AgentObserver{Node: node, Interval: 50 * time.Millisecond}
	measure := func(trim bool) float64 {
		t.Helper()
		raw := t.TempDir()
		w, err := o.Begin(context.Background(), raw)
		if err != nil {
			t.Fatal(err)
		}
		// The "pod start": idle; then the load: busy; then idle again,
		// at least as long as the busy part took.
		time.Sleep(400 * time.Millisecond)
		start := time.Now()
		spin(t, 300*time.Millisecond)
		end := time.Now()
		time.Sleep(max(400*time.Millisecond, end.Sub(start)))
		var load Load
		if trim {
			load = Load{Span: Span{start, end}}
		}
		p := &runs.Point{}
		if err := w.End(context.Background(), load, p); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(raw, RawCollectorJSON)); err != nil {
			t.Errorf("raw collector data: %v", err)
		}
		return p.CPU.Processes.KubeProxy
	}
	whole, trimmed := measure(false), measure(true)
	want := []string{"kpbench", "cluster", "agent", "point", "--proc", "/host/proc", "--kube-proxy-pid", strconv.Itoa(os.Getpid()), "--interval", "50ms"}
	if !slices.Equal(node.args, want) {
		t.Errorf("agent command %q, want %q", node.args, want)
	}
	// The same CPU time either way, over the busy part only when given
	// the load's window, and over at least twice as long when not:
	// then the figure is at least twice as high, less a sampling
	// interval's slack at each end.
	if trimmed < 1.5*whole {
		t.Errorf("kube-proxy (this process) %.3f cores over the load's window vs %.3f over the whole; want ≥ 1.5×", trimmed, whole)
	}
}

// TestNoCPUSampleInWindowKeepsTheWhole: a CPU sampler held up for longer
// than the load's window leaves no sample inside it. The point keeps the
// whole observation's figures and is invalid with the reason.
func TestNoCPUSampleInWindowKeepsTheWhole(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 20, 8, 52, 0, time.UTC)
	sample := func(from, to time.Duration, total float64) Sample {
		return Sample{Start: t0.Add(from), End: t0.Add(to), Seconds: (to - from).Seconds(), Node: Cores{Total: total}}
	}
	// One sample from before the window to after it, its midpoint past
	// the window's end; one after.
	ser := &Series{CPUs: []int{1}, IntervalSeconds: 1,
		Samples: []Sample{sample(time.Second, 24*time.Second, 0.2), sample(24*time.Second, 25*time.Second, 0.3)}}
	ser.Summary = Summary{Start: t0.Add(time.Second), End: t0.Add(25 * time.Second), Mean: Cores{Total: 0.21}}
	res := &PointResult{Series: ser, CPU: ser.Summary.CPU()}
	p := &runs.Point{Valid: true}
	if err := res.fill(Span{t0.Add(2 * time.Second), t0.Add(12 * time.Second)}, "", "CPUs 1", p); err != nil {
		t.Fatalf("fill: %v", err)
	}
	if p.Valid || len(p.InvalidReasons) != 1 || !strings.HasPrefix(p.InvalidReasons[0], runs.ReasonNoCPUSample+": no CPU sample inside the load window") {
		t.Errorf("invalid reasons %q", p.InvalidReasons)
	}
	if p.CPU.Node.Total != 0.21 || !strings.Contains(p.CPU.Node.Covers, "not trimmed") {
		t.Errorf("node CPU %+v, want the whole observation's 0.21, labelled untrimmed", p.CPU.Node)
	}

}
