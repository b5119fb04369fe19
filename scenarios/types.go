// Package scenarios defines the Scenario spec that drives a kpbench run: a
// versioned YAML document, decoded strictly, defaulted, and validated in one
// pass that reports every problem with its field path. It also embeds the
// catalog of ready scenarios.
package scenarios

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// APIVersion and Kind identify a Scenario document.
const (
	APIVersion = "kpbench.io/v1alpha1"
	Kind       = "Scenario"
)

// Mode is a kube-proxy mode, spelled as kube-proxy and kind spell it.
type Mode string

// The proxy modes kpbench knows. ModeExternal stands for a kube-proxy
// replacement found on an existing cluster (Cilium, Calico eBPF, ...): it is
// measured as it is, never switched.
const (
	ModeIPTables Mode = "iptables"
	ModeIPVS     Mode = "ipvs"
	ModeNFTables Mode = "nftables"
	ModeExternal Mode = "external"
)

// Modes lists the kube-proxy modes a scenario may ask for, in report order.
var Modes = []Mode{ModeIPTables, ModeIPVS, ModeNFTables}

// Valid reports whether m is one of the kube-proxy modes a scenario may name.
func (m Mode) Valid() bool {
	for _, k := range Modes {
		if m == k {
			return true
		}
	}
	return m == ModeExternal
}

// Targets says which Service each new connection goes to.
type Targets string

// In iptables mode a new connection walks nat KUBE-SERVICES one rule per
// Service port until its Service's rule matches, and kube-proxy writes that
// chain in random (Go map) order at every sync: where the target sits —
// its depth — is a variable of every measurement. The placements by depth
// pick the target after each step is programmed, by reading the chain on
// the client node, and again after any sync. In nftables and IPVS mode
// every depth is 0 and they pick the Service "one" picks.
const (
	// TargetsOne sends every connection to the first synthetic Service:
	// its depth is drawn at random by kube-proxy (recorded, not chosen).
	TargetsOne Targets = "one"
	// TargetsRandom picks a Service uniformly among all synthetic Services
	// for each new connection (the nftables blog's method): the depths
	// used are spread over the whole chain.
	TargetsRandom Targets = "random"
	// TargetsDeepest sends every connection to the Service whose rule is
	// walked last: the worst case, what Tigera's "~20,000 rules per new
	// connection at 10,000 Services" describes.
	TargetsDeepest Targets = "deepest"
	// TargetsShallowest sends every connection to the Service whose rule
	// is walked first.
	TargetsShallowest Targets = "shallowest"
	// TargetsMedian sends every connection to the Service at the median
	// depth.
	TargetsMedian Targets = "median"
)

// AllTargets lists every targets value, for validation and help.
var AllTargets = []Targets{TargetsDeepest, TargetsShallowest, TargetsMedian, TargetsRandom, TargetsOne}

// ByDepth reports whether t picks its Service by reading the depth of the
// rules (deepest, shallowest, median).
func (t Targets) ByDepth() bool {
	return t == TargetsDeepest || t == TargetsShallowest || t == TargetsMedian
}

// Valid reports whether t is a targets value kpbench knows.
func (t Targets) Valid() bool {
	for _, k := range AllTargets {
		if t == k {
			return true
		}
	}
	return false
}

// Placements is spec.load.targets: one targets value (`targets: deepest`)
// or a list of them (`targets: [deepest, shallowest]`). Every point has one
// placement; with a list, each repetition of a step measures every
// placement, in a seeded random order, so that the depths are contrasted
// within a step: free of the Service count and of time. It is written back
// as a single value when it has one entry, as older run.json files hold it.
type Placements []Targets

// UnmarshalJSON reads a single targets value or a list of them.
func (p *Placements) UnmarshalJSON(b []byte) error {
	var one Targets
	if err := json.Unmarshal(b, &one); err == nil {
		*p = Placements{one}
		return nil
	}
	var list []Targets
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("targets must be a targets value or a list of them")
	}
	*p = list
	return nil
}

// MarshalJSON writes one placement as a single value, a list otherwise.
func (p Placements) MarshalJSON() ([]byte, error) {
	if len(p) == 1 {
		return json.Marshal(p[0])
	}
	return json.Marshal([]Targets(p))
}

// First returns the first placement ("" when there is none).
func (p Placements) First() Targets {
	if len(p) == 0 {
		return ""
	}
	return p[0]
}

// String lists the placements, comma-separated.
func (p Placements) String() string {
	s := make([]string, len(p))
	for i, t := range p {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// Order is the order in which a run visits its points.
type Order string

const (
	// OrderModes measures one mode at every Service step, then the next
	// mode, in the order spec.modes lists them; each mode climbs from the
	// first step (what the published experiments did), and within each
	// (mode, step, repetition) the connection variants and placements come
	// in a seeded random order. Each mode's repetitions share one block of
	// time, so the report's independent unit is the mode block. It is for
	// scenarios whose kube-proxy resyncs are too slow to switch often.
	OrderModes Order = "modes"
	// OrderSteps (the default) runs the scenario as a sequence of
	// repetitions (blocks): in each, the Service steps are visited in a
	// seeded random permutation, at each step the modes in a seeded random
	// order, and within each (mode, step) the connection variants and
	// placements in a seeded random order. No mode or step owns a block of
	// time; the report's independent unit is the repetition.
	OrderSteps Order = "steps"
)

// Scenario is the top-level document.
type Scenario struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
}

// Metadata names a scenario.
type Metadata struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// Spec is what a run measures.
type Spec struct {
	// Modes are the kube-proxy modes to measure, in order.
	Modes []Mode `json:"modes,omitempty"`
	// Services are the Service counts to step through, ascending.
	Services []int `json:"services,omitempty"`
	// EndpointsPerService is the size of each synthetic Service's
	// EndpointSlice; every endpoint is a real backend pod.
	EndpointsPerService int `json:"endpointsPerService,omitempty"`
	// Backends is the number of real backend pods.
	Backends    int  `json:"backends,omitempty"`
	Load        Load `json:"load"`
	Repetitions int  `json:"repetitions,omitempty"`
	// Order is the order of the points: OrderSteps (default) or
	// OrderModes.
	Order Order `json:"order,omitempty"`
	// Seed, when set, seeds the random order of the points; unset, a run
	// draws one when it starts. Either way run.json records it (its
	// design), and a resumed run continues the same plan.
	Seed     *int64   `json:"seed,omitempty"`
	Sampling Sampling `json:"sampling"`
	// Primary, when set, is the one comparison the scenario is run to
	// make, declared before any point is measured.
	Primary *Primary `json:"primary,omitempty"`
	// Gate, when set, names the rows `kpbench compare` gates on; unset,
	// the gate is DefaultGateMetrics at the largest Service step.
	Gate *Gate `json:"gate,omitempty"`
	// Churn, when set, makes every point a churn point: API writes at a
	// fixed rate during its measured window (docs/churn.md). Unset, the
	// step stands still while it is measured.
	Churn *Churn `json:"churn,omitempty"`
}

// Churn describes the API changes made during every measured window: real
// writes through the Kubernetes API to the synthetic Services and their
// EndpointSlices, so that kube-proxy programs them while the client keeps
// its rate. Each write is one change (runs.ChurnChange).
type Churn struct {
	// Rate is the API writes per second, spread evenly over the window.
	Rate float64 `json:"rate,omitempty"`
	// Kinds weighs the operations a write may make; default
	// endpointReplace alone.
	Kinds *ChurnKinds `json:"kinds,omitempty"`
	// Fraction is the share of the step's Services the endpoint changes
	// touch (at least one Service); default DefaultChurnFraction.
	Fraction float64 `json:"fraction,omitempty"`
	// Target says whether the target Service (the one the load client
	// sends to) is among the touched Services; default true. Under
	// targets random every Service carries traffic and no Service is the
	// target.
	Target *bool `json:"target,omitempty"`
	// Hold is how long a Service stays at zero endpoints, and a created
	// Service lives, before the write that undoes it; default
	// DefaultChurnHold.
	Hold Duration `json:"hold,omitempty"`
	// Grace is how long after the window the node's rules are still read
	// for the window's changes to show ("0s": not at all); default
	// DefaultChurnGrace.
	Grace *Duration `json:"grace,omitempty"`
	// SyncCosts, when true, measures once per (mode, Service step) of a
	// run, before the step's points, what programming the node costs
	// kube-proxy apart from any load: a cold full sync (kube-proxy
	// restarted on a node without its rules) and incremental syncs after
	// one API change each (run.json's syncCosts). It needs a provider that
	// can restart kube-proxy (one that switches modes).
	SyncCosts bool `json:"syncCosts,omitempty"`
	// SyncTimeout bounds the wait for that cold full sync; unset,
	// DefaultSyncTimeout. A cold sync that takes longer fails the step's
	// sync-cost measurement (a problem recorded in run.json), not the run.
	SyncTimeout Duration `json:"syncTimeout,omitempty"`
}

// ChurnKinds are the relative weights of churn's operations. Each is drawn
// with probability weight/sum for a write that is not the second half of an
// earlier operation.
type ChurnKinds struct {
	// EndpointReplace: one endpoint leaves a Service and a backend that is
	// not yet one of its endpoints joins it, in one EndpointSlice write
	// (one step of a rolling update). One write.
	EndpointReplace float64 `json:"endpointReplace,omitempty"`
	// EndpointsToZero: a Service's endpoints go to none, and Hold later
	// back to what they were. Two writes.
	EndpointsToZero float64 `json:"endpointsToZero,omitempty"`
	// ServiceCreate: a new Service and its EndpointSlice are created, and
	// Hold later deleted. Two writes (the create counts once, at its
	// EndpointSlice).
	ServiceCreate float64 `json:"serviceCreate,omitempty"`
}

// TargetOn says whether the target Service is among the touched ones.
func (c *Churn) TargetOn() bool { return c.Target == nil || *c.Target }

// GraceDuration returns the grace, zero when none.
func (c *Churn) GraceDuration() time.Duration {
	if c.Grace == nil {
		return 0
	}
	return c.Grace.D()
}

// Gate declares the rows a comparison between two runs of the scenario
// fails on. Every other row is reported as descriptive. A small gate keeps
// Holm's correction small, so that the repetitions a nightly job can
// afford can still detect a regression of the gated rows.
type Gate struct {
	// Metrics are the gated metrics, from GateMetrics; empty means
	// DefaultGateMetrics.
	Metrics []string `json:"metrics,omitempty"`
	// Services are the gated Service steps, from spec.services; empty
	// means the largest. Every mode and connection variant is gated there.
	Services []int `json:"services,omitempty"`
	// Targets are the gated placements, from spec.load.targets; empty
	// means the first placement of the list (the one a scenario measures
	// its cost at; the others exist for the within-step depth contrast),
	// so that placements do not multiply the gated rows.
	Targets []Targets `json:"targets,omitempty"`
}

// GateMetrics are the metrics a gate may name: costs whose per-point
// value is a robust statistic. The mean round-trip latency is left out:
// one slow request moves it, so it stays in the tables only.
var GateMetrics = append([]string{"connect", "cpu", "latency-p50", "latency-p99", "connect-p99", "kube-proxy-cpu",
	"first-packet", "first-packet-p01", "first-packet-p99"}, ChurnGateMetrics...)

// ChurnGateMetrics are the gate metrics only churn points measure
// (spec.churn): failed requests and stale hits per 10,000 requests, the
// programming latency's p50 and p99, and the median connect time of the
// connections started inside a kube-proxy sync. A gate may name them only
// in a scenario with spec.churn.
var ChurnGateMetrics = []string{"churn-errors", "churn-stale-hits", "churn-programming-p50", "churn-programming-p99", "churn-connect-in-sync"}

// DefaultGateMetrics are the gated metrics of a scenario without
// spec.gate: median connect time and client-node CPU.
var DefaultGateMetrics = []string{"connect", "cpu"}

// GatedMetrics returns the gate's metrics, the defaults when unset.
func (s *Spec) GatedMetrics() []string {
	if s.Gate == nil || len(s.Gate.Metrics) == 0 {
		return DefaultGateMetrics
	}
	return s.Gate.Metrics
}

// GatedServices returns the gate's Service steps: the largest step when
// unset.
func (s *Spec) GatedServices() []int {
	if s.Gate != nil && len(s.Gate.Services) > 0 {
		return s.Gate.Services
	}
	if len(s.Services) == 0 {
		return nil
	}
	return []int{slices.Max(s.Services)}
}

// GatedTargets returns the gate's placements: the first of
// spec.load.targets when unset (none when the scenario names none).
func (s *Spec) GatedTargets() []Targets {
	if s.Gate != nil && len(s.Gate.Targets) > 0 {
		return s.Gate.Targets
	}
	if len(s.Load.Targets) == 0 {
		return nil
	}
	return []Targets{s.Load.Targets.First()}
}

// Primary is a scenario's primary comparison: the modes compared on one
// metric, in one connection variant, at the largest Service count they
// all reach. The report tests it as a family of its own (Holm's
// correction over its mode pairs only) and states it first; every other
// finding is secondary, corrected over all of them. Declaring the
// question before the run is what lets a small run answer it: with two
// modes, 4 repetitions per side can reach p < 0.05, where the same
// comparison among the report's 14 would need 6.
type Primary struct {
	// Metric is one of PrimaryMetrics.
	Metric string `json:"metric"`
	// RequestsPerConn is the connection variant, one of
	// spec.load.requestsPerConn.
	RequestsPerConn int `json:"requestsPerConn"`
	// Services, when set, fixes the step of the comparison (one of
	// spec.services): a step some mode did not reach leaves the primary
	// "not tested", never moved to another step.
	Services int `json:"services,omitempty"`
	// Direction is the question asked of the first mode of each pair (in
	// report order: iptables, ipvs, nftables) minus the second:
	// DirectionTwoSided (default, also ""), DirectionGreater (the first
	// is higher) or DirectionLess (the first is lower).
	Direction Direction `json:"direction,omitempty"`
	// Targets is the placement the modes are compared on, one of
	// spec.load.targets; default the first.
	Targets Targets `json:"targets,omitempty"`
}

// PrimaryTargets returns the placement of the primary comparison: its
// own, else the first of spec.load.targets (as run.json files written
// before primary.targets existed mean it). "" without a primary.
func (s *Spec) PrimaryTargets() Targets {
	if s.Primary == nil {
		return ""
	}
	if s.Primary.Targets != "" {
		return s.Primary.Targets
	}
	return s.Load.Targets.First()
}

// Direction is the alternative hypothesis of a primary comparison.
type Direction string

// Directions of a primary comparison.
const (
	DirectionTwoSided Direction = "two-sided"
	DirectionGreater  Direction = "greater"
	DirectionLess     Direction = "less"
)

// PrimaryMetrics are the metrics a primary comparison may name: the ones
// the report's findings compare (report.FindingMetrics), as `kpbench
// compare --metrics` spells them.
var PrimaryMetrics = []string{"connect", "latency", "cpu"}

// Load describes the client's traffic for every point.
type Load struct {
	// Rate is the fixed request rate in requests per second.
	Rate float64 `json:"rate,omitempty"`
	// Duration is the measured window of one point.
	Duration Duration `json:"duration,omitempty"`
	// Warmup runs before the measured window and is excluded from it.
	// A pointer so that an explicit "0s" (no warmup) survives defaulting.
	Warmup *Duration `json:"warmup,omitempty"`
	// RequestsPerConn lists connection variants: 1 = a new TCP connection
	// per request, N = N requests per connection, 0 = persistent.
	RequestsPerConn []int `json:"requestsPerConn,omitempty"`
	// Targets is the placement, or the list of placements, of the target
	// Service (see Targets and Placements).
	Targets Placements `json:"targets,omitempty"`
	// Timeout bounds one request, connect included.
	Timeout Duration `json:"timeout,omitempty"`
	// MaxInflight bounds concurrent requests; hitting it invalidates the
	// point instead of slowing the schedule.
	MaxInflight int `json:"maxInflight,omitempty"`
	// Clients is the number of load clients (in-cluster providers only).
	Clients int `json:"clients,omitempty"`
	// Tick is how each load client spaces its requests (`kpbench load
	// --tick`): "auto" (the default) sends each request at its own due
	// time up to 1,000 req/s per client and in 1 ms batches above; a Go
	// duration batches in that tick at any rate, "0s" never batches.
	Tick string `json:"tick,omitempty"`
}

// TickAuto is spec.load.tick's default (see Load.Tick).
const TickAuto = "auto"

// TickDuration reads spec.load.tick as ParseTick does; unset is auto.
func (l Load) TickDuration() (d time.Duration, auto bool, err error) {
	if l.Tick == "" {
		return 0, true, nil
	}
	return ParseTick(l.Tick)
}

// ParseTick reads a tick as spec.load.tick and `kpbench load --tick` take
// it: auto for "auto", else a duration, which must not be negative.
func ParseTick(s string) (d time.Duration, auto bool, err error) {
	if s == TickAuto {
		return 0, true, nil
	}
	d, err = time.ParseDuration(s)
	if err != nil {
		return 0, false, fmt.Errorf("must be %q or a duration such as \"1ms\" (\"0s\": each request at its own due time), got %q", TickAuto, s)
	}
	if d < 0 {
		return 0, false, fmt.Errorf("must be %q, 0s or a positive duration, got %s", TickAuto, s)
	}
	return d, false, nil
}

// Sampling configures the /proc samplers.
type Sampling struct {
	Interval Duration `json:"interval,omitempty"`
	// FirstPacket times each new connection's kernel time to first packet
	// with the eBPF probe (collector/firstpacket) where the client node's
	// kernel is this machine's; default true. false measures without it
	// (the probe's overhead is the difference).
	FirstPacket *bool `json:"firstPacket,omitempty"`
}

// FirstPacketOn says whether the scenario asks for the kernel probe.
func (s Sampling) FirstPacketOn() bool { return s.FirstPacket == nil || *s.FirstPacket }

// Duration is a time.Duration written as a Go duration string ("30s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string such as "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// WarmupDuration returns the warmup, zero when none.
func (l Load) WarmupDuration() time.Duration {
	if l.Warmup == nil {
		return 0
	}
	return l.Warmup.D()
}

// PointsPerMode returns the number of measured points the scenario makes per
// runnable mode: every Service step, connection variant, placement and
// repetition.
func (s *Scenario) PointsPerMode() int {
	return len(s.Spec.Services) * len(s.Spec.Load.RequestsPerConn) * len(s.Spec.Load.Targets) * s.Spec.Repetitions
}
