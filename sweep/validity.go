package sweep

import (
	"fmt"
	"strings"

	"github.com/kpbench/kpbench/runs"
)

// This file is the engine's judgement of a point's window, beside the load
// client's own (loadgen judges the schedule, the rate and the errors) and
// the observers' (a figure that could not cover the window): what the
// collector recorded about the client node's CPU and kube-proxy, and the
// depth read around the window, each make the point invalid with a reason
// that names what happened (runs.Reason*).

// judgeWindow adds to p the reasons its window does not measure the
// step's steady dataplane: a saturated client-node CPU, CPU samples that
// do not resolve the window, a kube-proxy sync or a chain reorder inside
// it.
func judgeWindow(p *runs.Point) {
	for _, r := range windowReasons(p) {
		p.Valid = false
		p.InvalidReasons = append(p.InvalidReasons, r)
	}
}

// windowReasons lists why p's window is not a steady measurement.
func windowReasons(p *runs.Point) []string {
	var out []string
	out = append(out, saturation(p.CPU.Node)...)
	if r := coverageReason(p); r != "" {
		out = append(out, r)
	}
	if s := p.Sync; s.FullSyncs+s.PartialSyncs > 0 {
		out = append(out, fmt.Sprintf("%s: %d full, %d partial", runs.ReasonSynced, s.FullSyncs, s.PartialSyncs))
	}
	if d := p.Depth; d != nil && d.Changed {
		out = append(out, fmt.Sprintf("%s: depth %s→%s", runs.ReasonReordered, depthFigure(d.Before.Mean), depthFigure(d.After.Mean)))
	}
	return out
}

// saturation says which client-node figure reached runs.MaxCPUShare of its
// CPUs in its busiest sampling interval: each node's own where the figure
// is summed over several (their busiest intervals need not coincide),
// else the figure's. A figure whose ceiling is unknown is not judged.
func saturation(n runs.NodeCPU) []string {
	type fig struct {
		node      string
		max, cpus float64
	}
	figs := []fig{{max: n.MaxTotal, cpus: n.CPUs}}
	if len(n.Nodes) > 0 {
		figs = figs[:0]
		for _, s := range n.Nodes {
			figs = append(figs, fig{node: s.Node, max: s.MaxTotal, cpus: s.CPUs})
		}
	}
	var out []string
	for _, f := range figs {
		if f.cpus <= 0 || f.max < runs.MaxCPUShare*f.cpus {
			continue
		}
		where := ""
		if f.node != "" {
			where = " on " + f.node
		}
		out = append(out, fmt.Sprintf("%s: a sampling interval%s reached %.2f of %s (bound %.2f)",
			runs.ReasonCPUSaturated, where, f.max/f.cpus, cpusOf(f.cpus), runs.MaxCPUShare))
	}
	return out
}

// coverageReason says when p's CPU samples cover too little of the window
// (runs.MinCPUCoverage). A point whose observer found no sample inside the
// window already says so (runs.ReasonNoCPUSample); one whose figure has
// no ceiling was not measured by the collector that records coverage
// with it (an observer of another kind), and is not judged.
func coverageReason(p *runs.Point) string {
	c := p.CPU.Node.Coverage
	if c >= runs.MinCPUCoverage || p.CPU.Node.CPUs <= 0 {
		return ""
	}
	for _, r := range p.InvalidReasons {
		if strings.HasPrefix(r, runs.ReasonNoCPUSample) {
			return ""
		}
	}
	return fmt.Sprintf("%s: %.1f%%", runs.ReasonCPUCoverage, 100*c)
}

func cpusOf(n float64) string {
	if n == 1 {
		return "1 CPU"
	}
	return fmt.Sprintf("%g CPUs", n)
}

// depthFigure prints a depth reading: whole rules as such, a mean over
// several targets with one decimal.
func depthFigure(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}
