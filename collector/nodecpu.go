package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/internal/cgroup"
	"github.com/kpbench/kpbench/runs"
)

// This file holds what a point's node CPU covers besides one node's
// /proc/stat: a container node's cgroup (kind), and the sum over several
// client nodes.

// RawNodeCPUJSON is, in a point's raw directory, each client node's CPU
// when the point's node CPU is summed over several, or read from cgroups.
const RawNodeCPUJSON = "node-cpu.json"

// nodeFigure is one client node's CPU over the window, in cores.
type nodeFigure struct {
	Node     string  `json:"node"`
	Cgroup   string  `json:"cgroup,omitempty"`
	Total    float64 `json:"total"`
	User     float64 `json:"user"`
	System   float64 `json:"system"`
	MaxTotal float64 `json:"maxTotal"`
	CPUs     float64 `json:"cpus,omitempty"`
	Coverage float64 `json:"coverage,omitempty"`
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
		out[i] = runs.NodeShare{Node: f.Node, Total: f.Total, MaxTotal: f.MaxTotal, CPUs: f.CPUs, Coverage: f.Coverage}
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

// CgroupObserver takes the point's node CPU from the cgroups of the client
// nodes' containers on this machine, summed over the nodes: inside a
// container (a kind node), /proc/stat is the whole host's, with the
// control plane, the backends and the other nodes in it. Listed before
// the node's own observer (Observers), it replaces that one's node CPU.
type CgroupObserver struct {
	Nodes []CgroupNode
	// Every is the sampling interval (default 250 ms).
	Every time.Duration
}

type cgroupWindow struct {
	nodes []CgroupNode
	c     *counterSampler
	raw   string
	// ceilings are the nodes' CPU ceilings (cgroup.CPULimit).
	ceilings []float64
}

// ceiling is the ceiling of the nodes' summed figure: they share this
// machine's CPUs, so the sum of their limits, at most the machine's.
func (w *cgroupWindow) ceiling() float64 {
	var sum float64
	for _, c := range w.ceilings {
		sum += c
	}
	return min(sum, float64(runtime.NumCPU()))
}

// Begin implements Observer.
func (o *CgroupObserver) Begin(ctx context.Context, rawDir string) (Window, error) {
	if len(o.Nodes) == 0 {
		return nil, errors.New("no client node cgroup to observe")
	}
	nodes := o.Nodes
	// Per node: total, user, system.
	c := newCounterSampler(o.Every, func() ([]float64, error) {
		v := make([]float64, 0, 3*len(nodes))
		for _, n := range nodes {
			u, err := cgroup.ReadUsage(n.Dir)
			if err != nil {
				return nil, fmt.Errorf("client node %s: %w", n.Name, err)
			}
			v = append(v, u.Total, u.User, u.System)
		}
		return v, nil
	})
	if err := c.Start(ctx); err != nil {
		return nil, err
	}
	w := &cgroupWindow{nodes: nodes, c: c, raw: rawDir}
	for _, n := range nodes {
		w.ceilings = append(w.ceilings, cgroup.CPULimit(n.Dir, runtime.NumCPU()))
	}
	return w, nil
}

// End implements Window.
func (w *cgroupWindow) End(_ context.Context, load Load, p *runs.Point) error {
	rs, err := w.c.Stop()
	if err != nil {
		return fmt.Errorf("client node cgroup CPU: %w", err)
	}
	cpu, doc, err := cgroupCPU(w.nodes, rs, load.Span, w.c.every)
	if errors.Is(err, ErrNoSampleInWindow) {
		Invalidate(p, fmt.Sprintf("%s: client node cgroups: %v", runs.ReasonNoCPUSample, err))
		cpu, doc, err = cgroupCPU(w.nodes, rs, Span{}, w.c.every)
	}
	if err != nil {
		return err
	}
	cpu.Coverage = Coverage(readingSpans(rs), load.Span, w.c.every)
	cpu.CPUs = w.ceiling()
	for i := range cpu.Nodes {
		cpu.Nodes[i].Coverage, cpu.Nodes[i].CPUs = cpu.Coverage, w.ceilings[i]
	}
	if err := writeNodeCPU(w.raw, doc); err != nil {
		return err
	}
	p.CPU.Node = cpu
	return nil
}

// cgroupCPU is the nodes' CPU per wall second over the samples inside load
// (InWindow), summed over the nodes.
func cgroupCPU(nodes []CgroupNode, rs []reading, load Span, every time.Duration) (runs.NodeCPU, nodeCPUDoc, error) {
	r, err := ratesWithin(rs, load, every, func(k int) bool { return k%3 == 0 })
	if err != nil {
		return runs.NodeCPU{}, nodeCPUDoc{}, fmt.Errorf("client node cgroup CPU: %w", err)
	}
	doc := nodeCPUDoc{Start: r.Span.Start, End: r.Span.End}
	cpu := runs.NodeCPU{MaxTotal: r.MaxSum}
	for n, node := range nodes {
		f := nodeFigure{Node: node.Name, Cgroup: node.Dir,
			Total: r.Mean[3*n], User: r.Mean[3*n+1], System: r.Mean[3*n+2], MaxTotal: r.Max[3*n]}
		cpu.Total += f.Total
		cpu.User += f.User
		cpu.System += f.System
		doc.Nodes = append(doc.Nodes, f)
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
		_ = win.End(ctx, Load{}, &runs.Point{})
	}
}

// End implements Window: the measured node fills the point, the others
// a scratch point each, and the node CPU is their sum.
func (w *multiWindow) End(ctx context.Context, load Load, p *runs.Point) error {
	var (
		errs []error
		figs []nodeFigure
		cpu  runs.NodeCPU
	)
	for i, win := range w.wins {
		q := p
		if i > 0 {
			q = &runs.Point{}
		}
		if err := win.End(ctx, load, q); err != nil {
			errs = append(errs, fmt.Errorf("client node %s: %w", w.names[i], err))
			continue
		}
		n := q.CPU.Node
		if i > 0 {
			// Another node's figure that could not cover the window
			// spoils the sum: its reasons go on the point.
			for _, r := range q.InvalidReasons {
				Invalidate(p, fmt.Sprintf("%s (client node %s)", r, w.names[i]))
			}
		}
		figs = append(figs, nodeFigure{Node: w.names[i], Total: n.Total, User: n.User, System: n.System, MaxTotal: n.MaxTotal,
			CPUs: n.CPUs, Coverage: n.Coverage})
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
		cpu.CPUs += n.CPUs
		if i == 0 || n.Coverage < cpu.Coverage {
			cpu.Coverage = n.Coverage
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	cpu.Covers = fmt.Sprintf("all CPUs of the %d client nodes (/proc/stat), summed (%s)", len(figs), nodeNames(figs))
	cpu.Nodes = shares(figs)
	if err := writeNodeCPU(w.raw, nodeCPUDoc{Covers: cpu.Covers, Nodes: figs}); err != nil {
		return err
	}
	p.CPU.Node = cpu
	return nil
}

// nodeCPUFor is the observers of the measured client node and of what a
// point's node CPU must cover on a provider whose client nodes are
// containers here (their cgroups, listed first so that they replace the
// node's /proc/stat) or that has several client nodes (their sum). When a
// container's cgroup cannot be found, the node CPU stays the node's
// /proc/stat, labelled as the whole host's.
func nodeCPUFor(ctx context.Context, s Setup) Observers {
	first := nodeObserverFor(s, s.Node, s.NoKubeProxy)
	nodes := []clusters.NamedNode{{Node: s.Node}}
	if s.Client.Nodes != nil {
		ns, err := s.Client.Nodes(ctx)
		if err != nil || len(ns) == 0 {
			s.Log.Warn("listing the client nodes: the node CPU covers the measured node only", "err", err)
		} else {
			nodes = ns
		}
	}
	if s.Client.NodeCgroup != nil {
		agent, _ := first.(*AgentObserver)
		// What the node's own figure is, in its raw data.
		setCovers(agent, "the whole host (/proc/stat inside a node container is the host's)")
		var (
			cns  []CgroupNode
			errs []error
		)
		for _, n := range nodes {
			dir, err := s.Client.NodeCgroup(ctx, n.Name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cns = append(cns, CgroupNode{Name: n.Name, Dir: dir})
		}
		if err := errors.Join(errs...); err != nil {
			setCovers(agent, "the whole host (/proc/stat inside a node container is the host's; the node container's cgroup could not be read: "+err.Error()+")")
			s.Log.Warn("client node CPU: reading the node containers' cgroups failed; the figure is the whole host's", "err", err)
			return Observers{first}
		}
		return Observers{&CgroupObserver{Nodes: cns, Every: min(s.Interval, 250*time.Millisecond)}, first}
	}
	if len(nodes) < 2 {
		return Observers{first}
	}
	m := &MultiNodeObserver{Nodes: []NamedObserver{{Name: nodes[0].Name, Observer: first}}}
	for _, n := range nodes[1:] {
		m.Nodes = append(m.Nodes, NamedObserver{Name: n.Name, Observer: nodeObserverFor(s, n.Node, true)})
	}
	return Observers{m}
}

func setCovers(a *AgentObserver, covers string) {
	if a != nil {
		a.Covers = covers
	}
}
