// Package runs holds the results schema shared by every part of kpbench —
// run.json, the lines of points.jsonl, and the summaries they embed — and
// the layout of a results directory. Every JSON document carries
// schemaVersion; readers reject versions they do not know.
package runs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/kpbench/kpbench/scenarios"
)

// SchemaVersion is the version of the results schema this build writes.
// Bump it on any incompatible change to the types below.
const SchemaVersion = 1

// Run is run.json: what was run, where, and what could not be.
type Run struct {
	SchemaVersion int                `json:"schemaVersion"`
	ID            string             `json:"id"`
	Scenario      scenarios.Scenario `json:"scenario"`
	Provider      Provider           `json:"provider"`
	Environment   Environment        `json:"environment"`
	Pinning       *Pinning           `json:"pinning,omitempty"`
	SkippedModes  []SkippedMode      `json:"skippedModes,omitempty"`
	StartedAt     time.Time          `json:"startedAt"`
	FinishedAt    *time.Time         `json:"finishedAt,omitempty"`
	// Status is running, complete, interrupted or failed.
	Status string `json:"status"`
	// Problems are run-level events a reader must know about (kube-proxy
	// died, a mode check failed), in the order they happened.
	Problems []string `json:"problems,omitempty"`
	// KpbenchVersion is the version of the binary that wrote the run.
	KpbenchVersion string `json:"kpbenchVersion"`
	// Command is the command line that started the run (credentials never
	// appear in it: kubeconfig paths only).
	Command []string `json:"command,omitempty"`
	// Resumes are the times the run was continued (kpbench run --resume),
	// oldest first: StartedAt and Command stay those of the first start.
	Resumes []Resume `json:"resumes,omitempty"`
	// Design is how the run orders its points and what the report's
	// independent unit is; absent in runs of older kpbench versions
	// (DesignOf infers it).
	Design *Design `json:"design,omitempty"`
	// SyncCosts are kube-proxy's cold and incremental sync times per
	// (mode, Service step), where the scenario asked for them.
	SyncCosts []SyncCost `json:"syncCosts,omitempty"`
}

// Run statuses.
const (
	StatusRunning     = "running"
	StatusComplete    = "complete"
	StatusInterrupted = "interrupted"
	StatusFailed      = "failed"
)

// Provider says which cluster the run measured.
type Provider struct {
	// Name is lab, kind or existing.
	Name string `json:"name"`
	// Cluster names the cluster (lab name, kind cluster, kubeconfig context).
	Cluster string `json:"cluster,omitempty"`
	// Details are provider-specific facts (node names, image, ...).
	Details map[string]string `json:"details,omitempty"`
}

// Environment describes the machine and the cluster software.
type Environment struct {
	Kernel            string `json:"kernel"`
	CPUModel          string `json:"cpuModel"`
	Cores             int    `json:"cores"`
	MemoryBytes       uint64 `json:"memoryBytes,omitempty"`
	Hostname          string `json:"hostname,omitempty"`
	KubernetesVersion string `json:"kubernetesVersion"`
	KubeProxyVersion  string `json:"kubeProxyVersion"`
	// IPTablesBackend is legacy or nft (what `iptables --version` says).
	IPTablesBackend string `json:"iptablesBackend,omitempty"`
	GoVersion       string `json:"goVersion,omitempty"`
	// Accelerator is how a VM client node ran: kvm, or tcg (software
	// emulation: its figures are valid for function and for comparisons
	// within the run, not as absolute cost). Empty for other nodes; then
	// Kernel is the node's kernel, else the guest's and HostKernel this
	// machine's.
	Accelerator string `json:"accelerator,omitempty"`
	HostKernel  string `json:"hostKernel,omitempty"`
}

// Pinning records how CPUs were split between the client node and the rest.
type Pinning struct {
	// NodeCPUs run the client node's processes (kube-proxy, load client);
	// node CPU figures are the /proc/stat lines of these CPUs.
	NodeCPUs []int `json:"nodeCPUs"`
	// OtherCPUs run everything else (apiserver, etcd, backends).
	OtherCPUs []int `json:"otherCPUs"`
}

// SkippedMode is a mode the scenario asked for that the provider cannot run.
type SkippedMode struct {
	Mode   scenarios.Mode `json:"mode"`
	Reason string         `json:"reason"`
}

// Point is one line of points.jsonl: one measured load window.
type Point struct {
	SchemaVersion int    `json:"schemaVersion"`
	ID            string `json:"id"`

	Mode                scenarios.Mode `json:"mode"`
	Services            int            `json:"services"`
	EndpointsPerService int            `json:"endpointsPerService"`
	RequestsPerConn     int            `json:"requestsPerConn"`
	// Targets is the point's placement: one of spec.load.targets.
	Targets    scenarios.Targets `json:"targets"`
	Repetition int               `json:"repetition"`
	// Sequence is the point's position in the run's plan, from 1 (see
	// Design); 0 in runs of older kpbench versions. Points of skipped
	// modes leave gaps.
	Sequence int `json:"sequence,omitempty"`

	Rate            Rate      `json:"rate"`
	StartedAt       time.Time `json:"startedAt"`
	DurationSeconds float64   `json:"durationSeconds"`
	Requests        int64     `json:"requests"`

	// Latency is measured from each request's intended send time
	// (coordinated omission corrected); ServiceTime from the actual send.
	Latency     Latency `json:"latency"`
	ServiceTime Latency `json:"serviceTime"`
	Connect     Connect `json:"connect"`
	Lag         Lag     `json:"lag"`
	Errors      Errors  `json:"errors"`

	CPU       CPU       `json:"cpu"`
	Conntrack Conntrack `json:"conntrack"`
	Rules     Rules     `json:"rules"`
	Sync      Sync      `json:"sync"`
	// TimeToProgrammedSeconds is the time from the last API write of this
	// Service step to the rules being active (a connect to the last Service
	// succeeds). Zero when the step was already programmed (repetitions,
	// later variants).
	TimeToProgrammedSeconds float64 `json:"timeToProgrammedSeconds"`
	// Depth is where the target sits in the rules a new connection walks,
	// read on the client node right before and right after the window;
	// absent where it was not read (a kube-proxy replacement, runs of
	// older kpbench versions).
	Depth *Depth `json:"depth,omitempty"`
	// FirstPacket is the kernel's own time for the client's new
	// connections in the window; absent where no probe was asked for
	// (keepalive points, runs of older kpbench versions).
	FirstPacket *FirstPacket `json:"firstPacket,omitempty"`
	// Churn is what the point measured while the API changed under it
	// (spec.churn); absent on points without churn.
	Churn *Churn `json:"churn,omitempty"`

	Valid          bool     `json:"valid"`
	InvalidReasons []string `json:"invalidReasons,omitempty"`

	// KpbenchVersion is the version of the kpbench that measured the
	// point, and Environment the fingerprint of where (Fingerprint), so
	// that points of a resumed run show what they were measured with.
	KpbenchVersion string `json:"kpbenchVersion,omitempty"`
	Environment    string `json:"environment,omitempty"`
}

// Fingerprint identifies the environment a run measures: the provider and
// what changes a measurement — kernel, CPU model and count, Kubernetes and
// kube-proxy versions, iptables backend. Host name, memory and the Go
// version are left out (the first changes on every CI runner, the others
// are either irrelevant or part of the kpbench version). Two runs with the
// same fingerprint ran on comparable machines with the same software.
func Fingerprint(provider string, e Environment) string {
	h := sha256.New()
	for _, f := range []string{provider, e.Kernel, e.CPUModel, strconv.Itoa(e.Cores), e.KubernetesVersion, e.KubeProxyVersion, e.IPTablesBackend} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// EnvironmentDifferences lists how b differs from a in what Fingerprint
// covers, as "field: a → b".
func EnvironmentDifferences(aProvider string, a Environment, bProvider string, b Environment) []string {
	var out []string
	for _, f := range []struct{ name, a, b string }{
		{"provider", aProvider, bProvider},
		{"kernel", a.Kernel, b.Kernel},
		{"CPU model", a.CPUModel, b.CPUModel},
		{"cores", strconv.Itoa(a.Cores), strconv.Itoa(b.Cores)},
		{"Kubernetes", a.KubernetesVersion, b.KubernetesVersion},
		{"kube-proxy", a.KubeProxyVersion, b.KubeProxyVersion},
		{"iptables backend", a.IPTablesBackend, b.IPTablesBackend},
	} {
		if f.a != f.b {
			out = append(out, fmt.Sprintf("%s: %s → %s", f.name, orNone(f.a), orNone(f.b)))
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// Rate is the target and achieved request rate in requests per second.
type Rate struct {
	Target   float64 `json:"target"`
	Achieved float64 `json:"achieved"`
	// TickSeconds is the tick the load client sent its requests in
	// (`kpbench load --tick`; auto batches in 1 ms ticks above 1,000
	// req/s); absent when each request left at its own due time, as in
	// every run of older kpbench versions.
	TickSeconds float64 `json:"tickSeconds,omitempty"`
}

// Latency summarizes a latency distribution in microseconds.
type Latency struct {
	MeanUs float64 `json:"meanUs"`
	P50Us  float64 `json:"p50Us"`
	P90Us  float64 `json:"p90Us"`
	P99Us  float64 `json:"p99Us"`
	P999Us float64 `json:"p999Us"`
	MaxUs  float64 `json:"maxUs"`
}

// Connect summarizes TCP connect times (the first packet, where the
// dataplane's rules run) in microseconds.
type Connect struct {
	Count int64   `json:"count"`
	P01Us float64 `json:"p01Us"`
	P50Us float64 `json:"p50Us"`
	P90Us float64 `json:"p90Us"`
	P99Us float64 `json:"p99Us"`
}

// FirstPacket is the time to first packet of the client's new connections,
// timed in the kernel (collector/firstpacket): from connect(2) setting the
// socket to SYN_SENT to its SYN reaching the egress device's queue. Span
// says so in words. When the probe could not time the point, Unavailable
// says why and the figures are zero.
type FirstPacket struct {
	Span        string `json:"span,omitempty"`
	Unavailable string `json:"unavailable,omitempty"`
	// Connections counts the client's connections timed in the window;
	// ClientConnections those the client itself opened there (its
	// Connect.Count), so that a probe that missed some shows it.
	Connections       int64   `json:"connections"`
	ClientConnections int64   `json:"clientConnections"`
	P01Us             float64 `json:"p01Us"`
	P10Us             float64 `json:"p10Us"`
	P50Us             float64 `json:"p50Us"`
	P90Us             float64 `json:"p90Us"`
	P99Us             float64 `json:"p99Us"`
	MeanUs            float64 `json:"meanUs"`
	// ProbeCores is the probe's own CPU over the observation (warm-up
	// included), in cores: its BPF programs' run time from the kernel's
	// BPF statistics; ProbeRunNs their mean run time per invocation. Zero
	// where the statistics were off.
	ProbeCores float64 `json:"probeCores,omitempty"`
	ProbeRunNs float64 `json:"probeRunNs,omitempty"`
	// Incomplete says why the figures above must not be used although
	// the probe ran: it timed a share of the client's connections outside
	// 99–101% (FirstPacketIncomplete). The point's other measures stand.
	Incomplete string `json:"incomplete,omitempty"`
	// Emulated says the spans were timed in a guest kernel under software
	// emulation (a VM client node under qemu's TCG): its times are the
	// emulator's, good for comparing modes and steps within the run, not
	// as a real node's.
	Emulated bool `json:"emulated,omitempty"`
	// Return is the way back, timed by the same probe in the same window
	// (the SYN-ACK's arrival to ESTABLISHED); absent where the probe did
	// not run and in runs of older kpbench versions.
	Return *FirstPacketReturn `json:"return,omitempty"`
}

// MinFirstPacketCoverage and MaxFirstPacketCoverage bound the share of
// the client's connections the probe must time for a point's kernel time
// to first packet to count: the probe and the client count the same
// connections in the same window, and on the lab they agree within 0.1%.
const (
	MinFirstPacketCoverage = 0.99
	MaxFirstPacketCoverage = 1.01
)

// FirstPacketIncomplete says why f's figures do not describe the
// client's connections ("" when they do, or when the probe did not time
// the point at all: Unavailable says that).
func FirstPacketIncomplete(f *FirstPacket) string {
	if f == nil || f.Unavailable != "" {
		return ""
	}
	return coverageIncomplete(f.Connections, f.ClientConnections)
}

// coverageIncomplete says why timed connections of the client's do not
// describe them ("" when they do, within 1%).
func coverageIncomplete(timed, client int64) string {
	if client <= 0 {
		if timed > 0 {
			return fmt.Sprintf("timed %d connections, the client reported none", timed)
		}
		return ""
	}
	c := float64(timed) / float64(client)
	switch {
	case c < MinFirstPacketCoverage:
		return fmt.Sprintf("timed %d of the client's %d connections (%.1f%%, below %.0f%%)", timed, client, 100*c, 100*MinFirstPacketCoverage)
	case c > MaxFirstPacketCoverage:
		return fmt.Sprintf("timed %d connections, the client opened %d (%.1f%%, above %.0f%%)", timed, client, 100*c, 100*MaxFirstPacketCoverage)
	}
	return ""
}

// Usable reports whether f's figures are the kernel time to first packet
// of the point's connections: the probe timed the window, timed some
// connections, and timed the client's within 1% (checked here as well as
// by Incomplete, so that points recorded before the mark are judged
// alike).
func (f *FirstPacket) Usable() bool {
	return f != nil && f.Unavailable == "" && f.Incomplete == "" && f.Connections > 0 && FirstPacketIncomplete(f) == ""
}

// Lag summarizes how far behind schedule sends started, in microseconds.
type Lag struct {
	P50Us float64 `json:"p50Us"`
	P99Us float64 `json:"p99Us"`
	MaxUs float64 `json:"maxUs"`
}

// Errors counts failed requests, by kind (connect_refused, timeout, reset,
// http_5xx, ...).
type Errors struct {
	Total  int64            `json:"total"`
	ByKind map[string]int64 `json:"byKind,omitempty"`
}

// CPU is what the client node spent over the measured window, in cores
// (busy CPU-seconds per wall-clock second).
type CPU struct {
	Node      NodeCPU      `json:"node"`
	Processes ProcessesCPU `json:"processes"`
}

// NodeCPU splits the client node's CPUs' busy time.
type NodeCPU struct {
	// Covers says what the figure is the busy time of, e.g. "CPUs 1 of
	// the client node (/proc/stat)" or "the client node container's
	// cgroup (kind-worker)"; figures that cover different things do not
	// compare.
	Covers  string  `json:"covers,omitempty"`
	User    float64 `json:"user"`
	Nice    float64 `json:"nice"`
	System  float64 `json:"system"`
	IRQ     float64 `json:"irq"`
	SoftIRQ float64 `json:"softirq"`
	Steal   float64 `json:"steal"`
	Total   float64 `json:"total"`
	// MaxTotal is the busiest sampling interval's total.
	MaxTotal float64 `json:"maxTotal"`
	// CPUs is the figure's ceiling in cores: how many CPUs it covers
	// (the pinned CPUs, all of the node's, a VM guest's vCPUs, a
	// cgroup's quota or cpuset). MaxTotal at 0.98 of it or more makes the
	// point invalid (ReasonCPUSaturated); 0 where unknown (runs of older
	// kpbench versions).
	CPUs float64 `json:"cpus,omitempty"`
	// Coverage is the share of the load's window covered by CPU samples
	// that resolve it: the union of the sampling intervals no longer than
	// twice the sampling interval, intersected with the window, over the
	// window. Below 0.9 the point is invalid (ReasonCPUCoverage); 0 in
	// runs of older kpbench versions.
	Coverage float64 `json:"coverage,omitempty"`
	// Nodes is the figure of each client node when it is summed over
	// several (per node as in raw/<point>/node-cpu.json).
	Nodes []NodeShare `json:"nodes,omitempty"`
}

// NodeShare is one client node's part of a node CPU figure summed over
// several client nodes.
type NodeShare struct {
	Node  string  `json:"node"`
	Total float64 `json:"total"`
	// MaxTotal, CPUs and Coverage are the node's own (see NodeCPU): each
	// node's saturation and coverage are judged on their own.
	MaxTotal float64 `json:"maxTotal,omitempty"`
	CPUs     float64 `json:"cpus,omitempty"`
	Coverage float64 `json:"coverage,omitempty"`
}

// ProcessesCPU is the CPU of the client node's own processes.
type ProcessesCPU struct {
	KubeProxy float64 `json:"kubeProxy"`
	Client    float64 `json:"client"`
	// VMHost is this machine's CPU for the qemu process of a VM client
	// node (the node's own CPU is the guest's /proc/stat).
	VMHost float64 `json:"vmHost,omitempty"`
	// Top attributes the client node's CPU to its processes, kernel
	// threads included; absent in runs of older kpbench versions.
	Top *ProcessTop `json:"top,omitempty"`
}

// TopProcessesPerPoint is how many processes (or groups) a point's
// ProcessTop lists by name.
const TopProcessesPerPoint = 8

// ProcessTop is the client node's CPU per process over the measured
// window (/proc/PID/stat utime+stime deltas, per thread group), the
// busiest first, the rest summed as Other. When it could not be measured
// Unavailable says why and the figures are zero.
type ProcessTop struct {
	// Covers says which processes the figures are of (those allowed on
	// the node's CPUs, every process of the node's PID namespace, ...).
	Covers      string `json:"covers,omitempty"`
	Unavailable string `json:"unavailable,omitempty"`
	// Processes are the busiest processes (or groups: the kworkers of
	// one pool), in descending CPU.
	Processes []ProcessShare `json:"processes,omitempty"`
	// Other is the rest: OtherCount processes.
	Other      float64 `json:"other"`
	OtherCount int     `json:"otherCount"`
	// Total sums every process counted, Processes and Other.
	Total float64 `json:"total"`
}

// ProcessShare is one process's (or group's) CPU over the window, in
// cores.
type ProcessShare struct {
	// Name is the command name (comm), or a group's pattern
	// ("kworker/1:*").
	Name string `json:"name"`
	// PID is 0 for a group; Count is the number of processes in it.
	PID   int `json:"pid,omitempty"`
	Count int `json:"count,omitempty"`
	// Role is what kpbench knows the process as: kube-proxy, load client.
	Role         string  `json:"role,omitempty"`
	KernelThread bool    `json:"kernelThread,omitempty"`
	User         float64 `json:"user"`
	System       float64 `json:"system"`
	Cores        float64 `json:"cores"`
	// Children is the CPU of the children it reaped in the window
	// (cutime+cstime), such as kube-proxy's iptables-restore: not part
	// of Cores nor of ProcessTop.Total (a child that lived across a scan
	// is counted as a process of its own as well).
	Children float64 `json:"children,omitempty"`
	// Shared marks a process that may also run on CPUs that are not the
	// node's: part of its CPU may have been spent there.
	Shared bool `json:"shared,omitempty"`
	// Started and Exited mark a process that began or ended inside the
	// window; an exited process's CPU after its last scan is missing.
	Started bool `json:"started,omitempty"`
	Exited  bool `json:"exited,omitempty"`
}

// Conntrack is the client node's connection tracking table.
type Conntrack struct {
	// FlushedBefore is true when kpbench emptied the node's table before
	// the point's warm-up (the lab's nodes, which kpbench owns); then
	// EntriesBefore counts what the warm-up left.
	FlushedBefore bool  `json:"flushedBefore,omitempty"`
	EntriesBefore int64 `json:"entriesBefore"`
	EntriesAfter  int64 `json:"entriesAfter"`
	Max           int64 `json:"max,omitempty"`
	// Drops and InsertFailed are deltas over the window.
	Drops        int64 `json:"drops"`
	InsertFailed int64 `json:"insertFailed"`
}

// Rules counts the dataplane's rules at this Service step.
type Rules struct {
	// Total is the number of rules of the mode's kind: iptables nat rules,
	// nftables rules in the kube-proxy table, or IPVS real servers.
	Total int `json:"total"`
	// ChainLength is what a new connection walks before its Service's rule:
	// rules in KUBE-SERVICES for iptables; 0 where lookup is a map or hash.
	ChainLength int `json:"chainLength"`
	// MapElements counts nftables map/set elements.
	MapElements int `json:"mapElements,omitempty"`
	// VirtualServers counts IPVS virtual services.
	VirtualServers int `json:"virtualServers,omitempty"`
}

// Depth is how many rules a new connection walks to find its Service, up
// to and including the Service's own rule: in iptables mode the 1-based
// index of the target's ClusterIP rule in nat KUBE-SERVICES (kube-proxy
// writes that chain in random order at every sync); 0 in nftables mode (a
// verdict-map lookup) and IPVS mode (a hash lookup).
type Depth struct {
	// Before and After are read right before and right after the
	// measured window.
	Before DepthReading `json:"before"`
	After  DepthReading `json:"after"`
	// Changed is set when kube-proxy rewrote the chain during the window,
	// so that Before and After differ: the point has no single depth, and
	// the cost-per-rule fit leaves it out.
	Changed bool `json:"changed,omitempty"`
	// Via says what a new connection traverses: the rule it walks to
	// (iptables), the map lookup and the Service chain it jumps to
	// (nftables), the hash lookup (IPVS). For several targets, the lookup.
	Via string `json:"via,omitempty"`
	// Target names the Service port (namespace/name:port) when every
	// connection went to one; Targets counts the Services used.
	Target  string `json:"target,omitempty"`
	Targets int    `json:"targets"`
	// Repicks counts how often a placement by depth picked its target
	// again before the window because a sync had moved it.
	Repicks int `json:"repicks,omitempty"`
}

// DepthReading is one reading of the depth.
type DepthReading struct {
	// Mean is the rules walked; over several targets (targets random),
	// the mean weighted by the connections each received in the window.
	Mean float64 `json:"mean"`
	// Min and Max bound the depths of the targets used.
	Min int `json:"min"`
	Max int `json:"max"`
	// ChainLength is the length of nat KUBE-SERVICES (iptables; 0
	// elsewhere) at this reading.
	ChainLength int `json:"chainLength"`
}

// RulesWalked returns the point's depth for fits and tables: the mean
// rules walked, when the depth was read and did not change during the
// window.
func (p *Point) RulesWalked() (float64, bool) {
	if p.Depth == nil || p.Depth.Changed {
		return 0, false
	}
	return p.Depth.Before.Mean, true
}

// Sync is kube-proxy's own account of programming the rules.
type Sync struct {
	LastDurationSeconds float64 `json:"lastDurationSeconds"`
	// Full and partial syncs during the window (counts and mean seconds).
	FullSyncs           int64   `json:"fullSyncs"`
	FullSyncMeanSeconds float64 `json:"fullSyncMeanSeconds"`
	PartialSyncs        int64   `json:"partialSyncs"`
	PartialMeanSeconds  float64 `json:"partialMeanSeconds"`
	// NetworkProgrammingP50Seconds is kube-proxy's own network-programming
	// latency for the step's changes, where it reports it.
	NetworkProgrammingP50Seconds float64 `json:"networkProgrammingP50Seconds,omitempty"`
}

// Validity reasons. Readers match on these prefixes.
const (
	ReasonRateShort      = "achieved rate below 99% of target"
	ReasonErrors         = "error rate above 0.1%"
	ReasonModeMismatch   = "mode mismatch"
	ReasonInflightBound  = "inflight bound hit"
	ReasonKubeProxyDied  = "kube-proxy not running"
	ReasonInterrupted    = "interrupted"
	ReasonScheduleBehind = "schedule fell behind"
	// ReasonNotSent: the run stopped at its duration with requests the
	// schedule asked for never sent (the client could not keep the rate).
	ReasonNotSent = "requests not sent"
	// ReasonAborted: load --abort-when-behind ended the run early.
	ReasonAborted = "aborted: the client fell behind its schedule"
	// ReasonNoCPUSample: the node's CPU sampler took no sample inside the
	// load's window (it was held up for longer than the window), so the
	// point has no CPU figure of its own.
	ReasonNoCPUSample = "no CPU sample in the load window"
	// ReasonCPUSaturated: a client-node CPU sampling interval inside the
	// window reached MaxCPUShare of the CPUs its figure covers: the load
	// client, kube-proxy and the kernel queued for CPU, and the point
	// measures that queue (the runner's fault).
	ReasonCPUSaturated = "client-node CPU saturated"
	// ReasonCPUCoverage: the CPU samples that resolve the window cover
	// less than MinCPUCoverage of it (NodeCPU.Coverage; the runner's).
	ReasonCPUCoverage = "CPU samples cover less than 90% of the window"
	// ReasonSynced: kube-proxy ran a sync (full or partial) inside the
	// window, so the window measured rules being rewritten, not the
	// step's rules (the dataplane's doing, not a regression).
	ReasonSynced = "kube-proxy synced during the window"
	// ReasonReordered: the target's depth differed before and after the
	// window (kube-proxy rewrote the chain in another order).
	ReasonReordered = "the chain was reordered during the window"
)

// Validity bounds of the client node's CPU figure.
const (
	// MaxCPUShare: a sampling interval at or above this share of the
	// figure's CPUs is saturated.
	MaxCPUShare = 0.98
	// MinCPUCoverage: the share of the window the CPU samples must
	// cover.
	MinCPUCoverage = 0.90
)

// Resume is one continuation of a run.
type Resume struct {
	At             time.Time `json:"at"`
	Command        []string  `json:"command"`
	KpbenchVersion string    `json:"kpbenchVersion"`
	// Measured is how many of the run's points were measured before it.
	Measured int `json:"measured"`
}
