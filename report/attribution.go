package report

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// This file is the report's section "Where the client node's CPU goes":
// at the largest Service count, per mode, the node CPU split as
// /proc/stat splits it, the SYN path's cores derived from the kernel
// probe, the busiest processes (kernel threads included), and how each
// mode differs from the first.

// attributionTopN is how many processes the section lists.
const attributionTopN = 8

// childrenSuffix labels the CPU of the children a process reaped.
const childrenSuffix = ": its reaped children"

// modeCPU is one group's CPU, averaged over its valid points.
type modeCPU struct {
	g *group
	// Split columns, means over the valid points.
	total, user, system, softirq, irq, rest Summary
	// walk is first-packet-cores (the SYN path), where the probe ran.
	walk Summary
	// procs are process (or role) → mean cores over the points with a
	// process list; procN counts those points.
	procs                 map[string]float64
	kthr                  map[string]bool
	shared                map[string]bool
	counted, unattributed Summary
	procN                 int
	covers                string
	why                   string // why no point has a process list
	// cgroup: the node CPU is a container's cgroup, which has no irq,
	// softirq or steal split.
	cgroup bool
}

// attributionGroups picks, per mode and targets, the group of the
// connection variant that opens the most connections at the largest
// Service count every such group reached.
func attributionGroups(d *Data) []*group {
	rpc, ok := connectVariant(d.groups)
	if !ok {
		for _, g := range d.groups {
			if !ok || rpcLess(g.Key.RequestsPerConn, rpc) {
				rpc, ok = g.Key.RequestsPerConn, true
			}
		}
	}
	var gs []*group
	top := map[string]int{}
	for _, g := range d.groups {
		if g.Key.RequestsPerConn != rpc || len(g.Valid) == 0 {
			continue
		}
		gs = append(gs, g)
		k := string(g.Key.Mode) + "/" + string(g.Key.Targets)
		top[k] = max(top[k], g.Key.Services)
	}
	// The largest step all of them reached.
	step := math.MaxInt
	for _, s := range top {
		step = min(step, s)
	}
	var out []*group
	for _, g := range gs {
		if g.Key.Services == step {
			out = append(out, g)
		}
	}
	return out
}

// processLabel names a process across repetitions: its role when kpbench
// knows it, else its command name (or group pattern).
func processLabel(p runs.ProcessShare) string {
	if p.Role != "" {
		return p.Role + " (" + p.Name + ")"
	}
	return p.Name
}

func modeCPUOf(g *group) modeCPU {
	m := modeCPU{g: g, procs: map[string]float64{}, kthr: map[string]bool{}, shared: map[string]bool{}}
	var total, user, system, softirq, irq, rest, counted, unattr []float64
	for _, p := range g.Valid {
		n := p.CPU.Node
		m.cgroup = m.cgroup || strings.Contains(n.Covers, "cgroup")
		total = append(total, n.Total)
		user = append(user, n.User+n.Nice)
		system = append(system, n.System)
		softirq = append(softirq, n.SoftIRQ)
		irq = append(irq, n.IRQ)
		rest = append(rest, n.Steal)
		top := p.CPU.Processes.Top
		switch {
		case top == nil:
			if m.why == "" {
				m.why = "the run's points have no per-process CPU (measured before kpbench recorded it)"
			}
			continue
		case top.Unavailable != "":
			m.why = top.Unavailable
			continue
		}
		m.procN++
		m.covers = top.Covers
		counted = append(counted, top.Total)
		unattr = append(unattr, n.Total-top.Total)
		for _, sh := range top.Processes {
			l := processLabel(sh)
			m.procs[l] += sh.Cores
			m.kthr[l] = sh.KernelThread
			m.shared[l] = m.shared[l] || sh.Shared
			if sh.Children > 0 {
				m.procs[l+childrenSuffix] += sh.Children
			}
		}
		m.procs["(other processes)"] += top.Other
	}
	for l := range m.procs {
		m.procs[l] /= float64(max(m.procN, 1))
	}
	m.total, m.user, m.system = Summarize(total), Summarize(user), Summarize(system)
	m.softirq, m.irq, m.rest = Summarize(softirq), Summarize(irq), Summarize(rest)
	m.counted, m.unattributed = Summarize(counted), Summarize(unattr)
	m.walk = Summarize(g.values(metric("first-packet-cores")))
	return m
}

func (m modeCPU) label(multiTargets bool) string {
	if multiTargets {
		return string(m.g.Key.Mode) + ", targets " + string(m.g.Key.Targets)
	}
	return string(m.g.Key.Mode)
}

func diffCell(v float64, digits int) string {
	if math.Abs(v) < 0.5*math.Pow(10, -float64(digits)) {
		v = 0
	}
	return fmt.Sprintf("%+.*f", digits, v)
}

// cpuAttribution writes the section, or nothing when no valid point
// exists.
func (doc *document) cpuAttribution(d *Data) {
	gs := attributionGroups(d)
	if len(gs) == 0 {
		return
	}
	ms := make([]modeCPU, len(gs))
	targets := map[scenarios.Targets]bool{}
	for i, g := range gs {
		ms[i] = modeCPUOf(g)
		targets[g.Key.Targets] = true
	}
	multi := len(targets) > 1
	key := gs[0].Key
	doc.h(2, "Where the client node's CPU goes")
	doc.p("At %s Services with %s: the busy time of %s, split as /proc/stat splits it; "+
		"means over valid repetitions ± half the 95%% CI; rows \"B − A\" are differences of means. "+
		"\"SYN path\" is the kernel time to first packet × new connections per second: the CPU the SYN's trip from SYN_SENT to the device queue takes "+
		"(routing and netfilter's LOCAL_OUT and POST_ROUTING hooks, where the Service lookup runs). It is spent in connect(2), in the load client's own context, "+
		"so it is part of the load client's system time; it holds none of the reply's path.",
		formatCount(key.Services), describeRPC(key.RequestsPerConn), nodeCPUCovers(d.Points))
	walk := false
	for _, m := range ms {
		walk = walk || m.walk.N > 0
	}
	t := table{header: []string{"mode", "n", "node total", "user", "system", "softirq", "irq", "steal"},
		numeric: []bool{false, true, true, true, true, true, true, true}}
	if walk {
		t.header = append(t.header, "SYN path")
		t.numeric = append(t.numeric, true)
	}
	t.header = append(t.header, "processes counted", "not attributed")
	t.numeric = append(t.numeric, true, true)
	for _, m := range ms {
		row := []string{m.label(multi), fmt.Sprint(m.total.N), pm(m.total, 3), pm(m.user, 3), pm(m.system, 3), pm(m.softirq, 3), pm(m.irq, 3), pm(m.rest, 3)}
		if m.cgroup {
			row[5], row[6], row[7] = "–", "–", "–"
		}
		if walk {
			row = append(row, pm(m.walk, 4))
		}
		row = append(row, pm(m.counted, 3), pm(m.unattributed, 3))
		t.rows = append(t.rows, row)
	}
	for _, m := range ms[1:] {
		a := ms[0]
		row := []string{m.label(multi) + " − " + a.label(multi), "",
			diffCell(m.total.Mean-a.total.Mean, 3), diffCell(m.user.Mean-a.user.Mean, 3), diffCell(m.system.Mean-a.system.Mean, 3),
			diffCell(m.softirq.Mean-a.softirq.Mean, 3), diffCell(m.irq.Mean-a.irq.Mean, 3), diffCell(m.rest.Mean-a.rest.Mean, 3)}
		if m.cgroup || a.cgroup {
			row[5], row[6], row[7] = "–", "–", "–"
		}
		if walk {
			row = append(row, diffCellIf(m.walk, a.walk, 4))
		}
		row = append(row, diffCellIf(m.counted, a.counted, 3), diffCellIf(m.unattributed, a.unattributed, 3))
		t.rows = append(t.rows, row)
	}
	doc.table(t)
	for _, m := range ms {
		if m.cgroup {
			doc.p("A container's cgroup counts user and system time only: its irq, softirq and steal are shown as –.")
			break
		}
	}
	doc.p("\"User\" includes nice time. \"Processes counted\" sums every listed process's utime+stime (/proc/PID/stat) over the same window, and \"not attributed\" is the node total less that sum. " +
		"Interrupt and softirq work is charged to the task it interrupted, so when it interrupts an idle CPU it belongs to the idle task, which /proc does not list; " +
		"a kernel built with CONFIG_IRQ_TIME_ACCOUNTING charges none of it to any task, except what ksoftirqd runs. " +
		"The rest of \"not attributed\" is processes that exited between two scans; processes also allowed on other CPUs lower it, since their time there is in the sum but not in the node's.")
	doc.processTable(ms, multi)
	if walk {
		doc.synPathTable(d, key.RequestsPerConn)
	}
}

func diffCellIf(b, a Summary, digits int) string {
	if a.N == 0 || b.N == 0 {
		return "–"
	}
	return diffCell(b.Mean-a.Mean, digits)
}

// processTable lists the busiest processes of every mode, with each
// mode's difference from the first.
func (doc *document) processTable(ms []modeCPU, multi bool) {
	var (
		with []modeCPU
		why  []string
		per  []string
	)
	for _, m := range ms {
		switch {
		case m.procN == 0:
			if m.why != "" {
				why = append(why, m.label(multi)+": "+m.why)
			}
		case m.procN < len(m.g.Valid):
			why = append(why, fmt.Sprintf("%s: %d of %d repetitions have none (%s)", m.label(multi), len(m.g.Valid)-m.procN, len(m.g.Valid), m.why))
			fallthrough
		default:
			with = append(with, m)
			per = append(per, fmt.Sprintf("%s %d", m.label(multi), m.procN))
		}
	}
	if len(with) == 0 {
		if len(why) > 0 {
			doc.p("No per-process CPU: %s.", strings.Join(why, "; "))
		}
		return
	}
	// The busiest processes of any mode, by their largest mean.
	peak := map[string]float64{}
	for _, m := range with {
		for l, c := range m.procs {
			peak[l] = max(peak[l], c)
		}
	}
	var labels []string
	for l := range peak {
		if l != "(other processes)" {
			labels = append(labels, l)
		}
	}
	sort.Slice(labels, func(i, j int) bool {
		if peak[labels[i]] != peak[labels[j]] {
			return peak[labels[i]] > peak[labels[j]]
		}
		return labels[i] < labels[j]
	})
	if len(labels) > attributionTopN {
		labels = labels[:attributionTopN]
	}
	labels = append(labels, "(other processes)")
	t := table{header: []string{"process", "notes"}, numeric: []bool{false, false}}
	for _, m := range with {
		t.header = append(t.header, m.label(multi))
		t.numeric = append(t.numeric, true)
	}
	for _, m := range with[1:] {
		t.header = append(t.header, m.label(multi)+" − "+with[0].label(multi))
		t.numeric = append(t.numeric, true)
	}
	for _, l := range labels {
		var kthr, shared bool
		for _, m := range with {
			kthr = kthr || m.kthr[l]
			shared = shared || m.shared[l]
		}
		var notes []string
		if kthr {
			notes = append(notes, "kernel thread")
		}
		if shared {
			notes = append(notes, "also allowed on other CPUs")
		}
		row := []string{l, strings.Join(notes, "; ")}
		for _, m := range with {
			row = append(row, fmt.Sprintf("%.3f", m.procs[l]))
		}
		for _, m := range with[1:] {
			row = append(row, diffCell(m.procs[l]-with[0].procs[l], 3))
		}
		t.rows = append(t.rows, row)
	}
	doc.p("The busiest processes of the client node in these points, in cores: the mean over the repetitions with a process list (%s); a process outside a repetition's %d busiest counts as 0 there, its CPU in \"other processes\". A role names the process kpbench started as such; \"its reaped children\" is the CPU of the children a process waited for in the window (cutime+cstime: kube-proxy's iptables-restore and ipset runs, too short-lived for a scan to see), which is not in \"processes counted\". Counted: %s.",
		strings.Join(per, ", "), runs.TopProcessesPerPoint, with[0].covers)
	doc.table(t)
	if len(why) > 0 {
		doc.p("Missing process lists: %s.", strings.Join(why, "; "))
	}
}

// synPathTable is the SYN path's CPU at every step of the connection
// variant the section shows, beside the node CPU of the same points.
func (doc *document) synPathTable(d *Data, rpc int) {
	t := table{header: []string{"mode", "targets", "Services", "n", "kernel mean µs", "new connections/s", "SYN path cores", "node CPU cores", "share of node CPU"},
		numeric: []bool{false, false, true, true, true, true, true, true, true}}
	for _, g := range d.groups {
		if g.Key.RequestsPerConn != rpc {
			continue
		}
		var mean, rate, cores, node []float64
		for _, p := range g.Valid {
			c, ok := firstPacketCores(p)
			if !ok {
				continue
			}
			mean = append(mean, p.FirstPacket.MeanUs)
			rate = append(rate, float64(p.FirstPacket.Connections)/p.DurationSeconds)
			cores = append(cores, c)
			node = append(node, p.CPU.Node.Total)
		}
		if len(cores) == 0 {
			continue
		}
		share := "–"
		if n := Summarize(node).Mean; n > 0 {
			share = fmt.Sprintf("%.1f%%", 100*Summarize(cores).Mean/n)
		}
		t.rows = append(t.rows, []string{string(g.Key.Mode), string(g.Key.Targets), formatCount(g.Key.Services), fmt.Sprint(len(cores)),
			pm(Summarize(mean), 2), fmt.Sprintf("%.0f", Summarize(rate).Mean), pm(Summarize(cores), 4), pm(Summarize(node), 3), share})
	}
	if len(t.rows) == 0 {
		return
	}
	doc.p("The SYN path's CPU at every Service step (%s): the mean kernel time to first packet × the timed new connections per second, over the valid points the probe timed, beside their node CPU.", describeRPC(rpc))
	doc.table(t)
}
