package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/internal/cpuset"
	"github.com/kpbench/kpbench/runs"
)

// This file holds what a point's node CPU covers: the client node's CPUs
// from its /proc/stat, a container node's cgroup (kind), and the sum over
// several client nodes.

// RawNodeCPUJSON is, in a point's raw directory, each client node's CPU
// when the point's node CPU is summed over several, or read from cgroups.
const RawNodeCPUJSON = "node-cpu.json"

// procStatCovers labels a node CPU figure read from the node's /proc/stat.
func procStatCovers(cpus []int) string {
	if len(cpus) > 0 {
		return "CPUs " + cpuset.Format(cpus) + " of the client node (/proc/stat)"
	}
	return "all CPUs of the client node (/proc/stat)"
}

// nodeFigure is one client node's CPU over the window, in cores.
type nodeFigure struct {
	Node     string  `json:"node"`
	Cgroup   string  `json:"cgroup,omitempty"`
	Total    float64 `json:"total"`
	User     float64 `json:"user"`
	System   float64 `json:"system"`
	MaxTotal float64 `json:"maxTotal"`
}

// nodeCPUDoc is raw/<point>/node-cpu.json.
type nodeCPUDoc struct {
	Covers string       `json:"covers"`
	Start  time.Time    `json:"start"`
	End    time.Time    `json:"end"`
	Nodes  []nodeFigure `json:"nodes"`
}

func writeNodeCPU(raw string, doc nodeCPUDoc) error {
	if raw == "" {
		return nil
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(raw, RawNodeCPUJSON), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the client nodes' CPU: %w", err)
	}
	return nil
}

// shares lists each node's total when there are several.
func shares(figs []nodeFigure) []runs.NodeShare {
	if len(figs) < 2 {
		return nil
	}
	out := make([]runs.NodeShare, len(figs))
	for i, f := range figs {
		out[i] = runs.NodeShare{Node: f.Node, Total: f.Total}
	}
	return out
}

func nodeNames(figs []nodeFigure) string {
	names := make([]string, len(figs))
	for i, f := range figs {
		names[i] = f.Node
	}
	return strings.Join(names, ", ")
}

// CgroupNode is a client node that is a container on this machine, and
// its cgroup directory here.
type CgroupNode struct {
	Name, Dir string
}

// CgroupObserver observes like Observer (kube-proxy, conntrack and syncs
// of the measured node) but takes the node CPU from the cgroups of the
// client nodes' containers on this machine, summed over the nodes: inside
// a container (a kind node), /proc/stat is the whole host's, with the
// control plane, the backends and the other nodes in it.
type CgroupObserver struct {
	Observer
	Nodes []CgroupNode
	// Every is the sampling interval (default 250 ms).
	Every time.Duration
}

type cgroupSample struct {
	at    time.Time
	usage []collector.CgroupUsage // per node, in Nodes' order
}

type cgroupWindow struct {
	sideWindow
	nodes   []CgroupNode
	every   time.Duration
	raw     string
	mu      sync.Mutex
	samples []cgroupSample
	err     error
}

// Begin implements Observer.
func (o *CgroupObserver) Begin(ctx context.Context, rawDir string) (Window, error) {
	if len(o.Nodes) == 0 {
		return nil, errors.New("no client node cgroup to observe")
	}
	every := o.Every
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	w := &cgroupWindow{nodes: o.Nodes, every: every, raw: rawDir}
	w.sample()
	if w.err != nil {
		return nil, w.err
	}
	inner, err := o.Observer.Begin(ctx, rawDir)
	if err != nil {
		return nil, err
	}
	w.Window = inner
	w.sampleEvery(every, w.sample)
	return w, nil
}

func (w *cgroupWindow) sample() {
	s := cgroupSample{at: time.Now(), usage: make([]collector.CgroupUsage, len(w.nodes))}
	var err error
	for i, n := range w.nodes {
		if s.usage[i], err = collector.ReadCgroupUsage(n.Dir); err != nil {
			err = fmt.Errorf("client node %s: %w", n.Name, err)
			break
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.err = err
		return
	}
	w.samples = append(w.samples, s)
}

// End implements Window.
func (w *cgroupWindow) End(ctx context.Context) (*Observation, error) {
	obs, err := w.finish(ctx, w.sample)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return nil, fmt.Errorf("client node cgroup CPU: %w", w.err)
	}
	cpu, doc, err := cgroupCPU(w.nodes, w.samples, w.start, w.end, w.every)
	if err != nil {
		return nil, err
	}
	if err := writeNodeCPU(w.raw, doc); err != nil {
		return nil, err
	}
	obs.NodeCPU = cpu
	return obs, nil
}

// cgroupCPU is the nodes' CPU per wall second between the samples that
// bound [start, end] most tightly (the whole series when start is zero),
// summed over the nodes.
func cgroupCPU(nodes []CgroupNode, s []cgroupSample, start, end time.Time, every time.Duration) (runs.NodeCPU, nodeCPUDoc, error) {
	if len(s) < 2 {
		return runs.NodeCPU{}, nodeCPUDoc{}, fmt.Errorf("client node cgroup CPU: %d samples", len(s))
	}
	a, b := bounding(len(s), func(i int) time.Time { return s[i].at }, start, end)
	secs := s[b].at.Sub(s[a].at).Seconds()
	if secs <= 0 {
		return runs.NodeCPU{}, nodeCPUDoc{}, errors.New("client node cgroup CPU: empty window")
	}
	doc := nodeCPUDoc{Start: s[a].at, End: s[b].at}
	var cpu runs.NodeCPU
	for n, node := range nodes {
		f := nodeFigure{Node: node.Name, Cgroup: node.Dir,
			Total:  (s[b].usage[n].Total - s[a].usage[n].Total) / secs,
			User:   (s[b].usage[n].User - s[a].usage[n].User) / secs,
			System: (s[b].usage[n].System - s[a].usage[n].System) / secs,
		}
		cpu.Total += f.Total
		cpu.User += f.User
		cpu.System += f.System
		doc.Nodes = append(doc.Nodes, f)
	}
	// The busiest full interval, of each node and of their sum.
	for i := a; i < b; i++ {
		dt := s[i+1].at.Sub(s[i].at)
		if dt < every/2 {
			continue
		}
		var sum float64
		for n := range nodes {
			c := (s[i+1].usage[n].Total - s[i].usage[n].Total) / dt.Seconds()
			sum += c
			doc.Nodes[n].MaxTotal = max(doc.Nodes[n].MaxTotal, c)
		}
		cpu.MaxTotal = max(cpu.MaxTotal, sum)
	}
	if len(nodes) == 1 {
		cpu.Covers = "the client node container's cgroup (" + nodes[0].Name + ")"
	} else {
		cpu.Covers = fmt.Sprintf("the cgroups of the %d client node containers, summed (%s)", len(nodes), nodeNames(doc.Nodes))
	}
	cpu.Nodes = shares(doc.Nodes)
	doc.Covers = cpu.Covers
	return cpu, doc, nil
}

// bounding returns the indices of the samples (times at(0..n-1), in order)
// that bound [start, end] most tightly: the last at or before start and the
// first at or after end; the first and last samples when start is zero or
// the series does not reach that far.
func bounding(n int, at func(int) time.Time, start, end time.Time) (a, b int) {
	a, b = 0, n-1
	if start.IsZero() {
		return a, b
	}
	for i := 0; i < n; i++ {
		if !at(i).After(start) {
			a = i
		}
	}
	for i := n - 1; i >= 0; i-- {
		if !at(i).Before(end) {
			b = i
		}
	}
	return a, b
}

// NamedObserver observes one client node.
type NamedObserver struct {
	Name string
	Observer
}

// MultiNodeObserver observes several client nodes (load clients run on any
// of them): the first is the measured node, whose kube-proxy, conntrack and
// syncs the point records; the node CPU is summed over all of them, and
// each node's is kept in raw/<point>/node-cpu.json (the others' own raw
// data under raw/<point>/node-<name>/).
type MultiNodeObserver struct {
	Nodes []NamedObserver
}

type multiWindow struct {
	names []string
	wins  []Window
	raw   string
}

// Begin implements Observer.
func (o *MultiNodeObserver) Begin(ctx context.Context, rawDir string) (Window, error) {
	if len(o.Nodes) == 0 {
		return nil, errors.New("no client node to observe")
	}
	w := &multiWindow{raw: rawDir}
	for i, n := range o.Nodes {
		raw := rawDir
		if i > 0 && rawDir != "" {
			raw = filepath.Join(rawDir, "node-"+n.Name)
			if err := os.MkdirAll(raw, 0o755); err != nil {
				w.abandon(ctx)
				return nil, err
			}
		}
		win, err := n.Begin(ctx, raw)
		if err != nil {
			w.abandon(ctx)
			return nil, fmt.Errorf("client node %s: %w", n.Name, err)
		}
		w.names = append(w.names, n.Name)
		w.wins = append(w.wins, win)
	}
	return w, nil
}

// abandon ends the windows begun so far.
func (w *multiWindow) abandon(ctx context.Context) {
	for _, win := range w.wins {
		_, _ = win.End(ctx)
	}
}

// Trim implements Trimmer on every node's window.
func (w *multiWindow) Trim(start, end time.Time) {
	for _, win := range w.wins {
		if t, ok := win.(Trimmer); ok {
			t.Trim(start, end)
		}
	}
}

// End implements Window.
func (w *multiWindow) End(ctx context.Context) (*Observation, error) {
	var (
		first *Observation
		errs  []error
		figs  []nodeFigure
		cpu   runs.NodeCPU
	)
	for i, win := range w.wins {
		obs, err := win.End(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("client node %s: %w", w.names[i], err))
			continue
		}
		if i == 0 {
			first = obs
		}
		n := obs.NodeCPU
		figs = append(figs, nodeFigure{Node: w.names[i], Total: n.Total, User: n.User, System: n.System, MaxTotal: n.MaxTotal})
		cpu.User += n.User
		cpu.Nice += n.Nice
		cpu.System += n.System
		cpu.IRQ += n.IRQ
		cpu.SoftIRQ += n.SoftIRQ
		cpu.Steal += n.Steal
		cpu.Total += n.Total
		// The nodes' busiest intervals need not coincide: their sum
		// bounds the busiest interval of the sum from above.
		cpu.MaxTotal += n.MaxTotal
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cpu.Covers = fmt.Sprintf("all CPUs of the %d client nodes (/proc/stat), summed (%s)", len(figs), nodeNames(figs))
	cpu.Nodes = shares(figs)
	if err := writeNodeCPU(w.raw, nodeCPUDoc{Covers: cpu.Covers, Nodes: figs}); err != nil {
		return nil, err
	}
	first.NodeCPU = cpu
	return first, nil
}

// clientNodesObserver extends the observer of the measured client node to
// what a point's node CPU must cover on a provider with client nodes that
// are containers here (their cgroups) or with several client nodes (their
// sum). When a container's cgroup cannot be found, the node CPU stays the
// agent's /proc/stat, labelled as the whole host's.
func clientNodesObserver(ctx context.Context, p clusters.Provider, first *AgentObserver, log *slog.Logger) Observer {
	nodes := []clusters.NamedNode{{Node: first.Node}}
	if l, ok := p.(clusters.ClientNodeLister); ok {
		ns, err := l.ClientNodes(ctx)
		if err != nil || len(ns) == 0 {
			log.Warn("listing the client nodes: the node CPU covers the measured node only", "err", err)
		} else {
			nodes = ns
		}
	}
	interval := first.Interval
	if cg, ok := p.(clusters.NodeCgrouper); ok {
		// What the agent's own figure is, in its raw data.
		first.Covers = "the whole host (/proc/stat inside a node container is the host's)"
		var (
			cns  []CgroupNode
			errs []error
		)
		for _, n := range nodes {
			dir, err := cg.NodeCgroup(ctx, n.Name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cns = append(cns, CgroupNode{Name: n.Name, Dir: dir})
		}
		if err := errors.Join(errs...); err != nil {
			first.Covers = "the whole host (/proc/stat inside a node container is the host's; the node container's cgroup could not be read: " + err.Error() + ")"
			log.Warn("client node CPU: reading the node containers' cgroups failed; the figure is the whole host's", "err", err)
			return first
		}
		return &CgroupObserver{Observer: first, Nodes: cns, Every: min(interval, 250*time.Millisecond)}
	}
	if len(nodes) < 2 {
		return first
	}
	m := &MultiNodeObserver{Nodes: []NamedObserver{{Name: nodes[0].Name, Observer: first}}}
	for _, n := range nodes[1:] {
		m.Nodes = append(m.Nodes, NamedObserver{Name: n.Name, Observer: &AgentObserver{Node: n.Node, Bin: first.Bin, Interval: interval, NoKubeProxy: true}})
	}
	return m
}
