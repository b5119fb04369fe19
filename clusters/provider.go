// Package clusters defines how kpbench gets a cluster to measure: the
// Provider interface every provider (lab, kind, existing) implements, the
// modes it can run (Capabilities) and its shape in one record (Features)
// that a caller reads instead of guessing.
package clusters

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"time"

	"github.com/kpbench/kpbench/scenarios"
)

// ErrModeUnavailable is wrapped by SetMode when the environment cannot run
// the requested mode (e.g. ipvs on a kernel without IP_VS).
var ErrModeUnavailable = errors.New("proxy mode unavailable")

// Provider provisions or attaches to a cluster and controls its kube-proxy.
// Methods take a context; cancelling it aborts the step, and the provider
// leaves nothing half-made behind it.
type Provider interface {
	// Name is the provider's name: lab, kind or existing.
	Name() string

	// Up creates the cluster (or attaches to an existing one) with
	// kube-proxy in the given mode and returns when every component is
	// healthy. A failed Up removes what it made unless the provider was
	// asked to retain it, and its error carries the failing component's
	// log tail.
	Up(ctx context.Context, mode scenarios.Mode) error

	// Down removes everything the provider made (processes by PID,
	// namespaces, files, objects). It is safe to call twice and after a
	// crash: the state it needs is recorded on disk.
	Down(ctx context.Context) error

	// Capabilities tells what this environment can do; it may probe the
	// machine (kernel modules) but changes nothing.
	Capabilities(ctx context.Context) (Capabilities, error)

	// KubeconfigPath is the path of a kubeconfig for the cluster. The file
	// holds credentials: never copy it into results or logs.
	KubeconfigPath() string

	// SetMode switches kube-proxy to mode and returns once it runs in that
	// mode (VerifyMode passes). It wraps ErrModeUnavailable when the mode
	// cannot run here.
	SetMode(ctx context.Context, mode scenarios.Mode) error

	// VerifyMode checks that kube-proxy answers GET /proxyMode with mode
	// and that rules of that kind exist on the client node.
	VerifyMode(ctx context.Context, mode scenarios.Mode) error

	// Backends returns the endpoints of the real backend pods that every
	// synthetic Service points at.
	Backends(ctx context.Context) ([]Endpoint, error)

	// ClientNode is the node that runs kube-proxy and the load client and
	// whose CPU is measured.
	ClientNode() ClientNode

	// Versions reports the Kubernetes and kube-proxy versions in use.
	Versions(ctx context.Context) (Versions, error)

	// Features is the provider's shape: where its client node is, how it
	// is measured, what else the provider offers. It may read the
	// provider's state (whether the lab's node is a VM) but changes
	// nothing.
	Features(ctx context.Context) Features
}

// Endpoint is one backend pod's address.
type Endpoint struct {
	Addr netip.Addr
	Port uint16
}

// Capabilities are the modes an environment can run. Every provider
// judges a mode from its whole descriptor (kubeproxy.For: tools, kernel,
// IP_VS, kube-proxy version) against what it can see of the client node.
type Capabilities struct {
	// Modes maps every kube-proxy mode to the reason it cannot run here;
	// an empty reason means the mode can run.
	Modes map[scenarios.Mode]string
}

// Runnable reports whether mode can run, and why not.
func (c Capabilities) Runnable(mode scenarios.Mode) (ok bool, reason string) {
	reason, known := c.Modes[mode]
	if !known {
		return false, "this provider does not support mode " + string(mode)
	}
	return reason == "", reason
}

// Versions are the cluster's software versions.
type Versions struct {
	Kubernetes string
	KubeProxy  string
	// IPTablesBackend is "nft" or "legacy" (what `iptables --version` on
	// the client node says); empty when unknown or not applicable.
	IPTablesBackend string
}

// ClientNode is the node whose dataplane is measured.
type ClientNode interface {
	// Run runs a command on the client node (in the lab: inside its
	// network namespace, pinned to its CPUs) and waits for it. Stdout and
	// stderr may be nil.
	Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error

	// CPUs are the CPUs the node's processes run on; empty when the node
	// is a whole machine (all CPUs).
	CPUs() []int

	// ProcRoot is where the node's /proc can be read from this process.
	ProcRoot() string

	// KubeProxyPID returns kube-proxy's PID as seen in ProcRoot.
	KubeProxyPID(ctx context.Context) (int, error)

	// KubeProxyGet fetches a path from kube-proxy's metrics port (10249),
	// e.g. "/metrics" or "/proxyMode".
	KubeProxyGet(ctx context.Context, path string) ([]byte, error)
}

// LoadRequest is one load window run by in-cluster clients.
type LoadRequest struct {
	// ID names the window (a DNS label of at most 40 characters, e.g. the
	// point id in lowercase).
	ID string
	// Args are `kpbench load` arguments, after `--json - --embed-histograms`.
	Args []string
	// Clients is the number of load clients (scenario spec.load.clients);
	// they prefer distinct client nodes.
	Clients int
	// Deadline bounds each client (warmup + duration; a margin is added).
	Deadline time.Duration
}

// LoadResult is one client's outcome.
type LoadResult struct {
	Client  int
	Pod     string
	Node    string
	Summary json.RawMessage
}

// Features is a provider's shape, in one record: where its client node is
// and how kpbench reaches and measures it, and what the provider can do
// besides Provider's methods. The engine reads it in one place
// (sweep/target.go) and knows no provider by name or type; a provider
// fills only what applies to it, and a zero field means "not offered".
type Features struct {
	// Client is where the client node is and how it is reached.
	Client Client
	// SwitchModes is false where kpbench may not change kube-proxy's mode
	// (an existing cluster without --yes; a replaced kube-proxy).
	SwitchModes bool
	// Pinning, when set, gives the client node's CPUs and the CPUs
	// everything else runs on (the lab): run.json records them.
	Pinning func(ctx context.Context) (nodeCPUs, otherCPUs []int, err error)
	// Running, when set, reports whether the cluster, which outlives the
	// command that made it (the lab), is up and healthy: a run then
	// measures it as it is and leaves it up.
	Running func(ctx context.Context) bool
	// Describe, when set, gives more for run.json than Versions: the
	// cluster's name ("" when kpbench did not name it) and facts such as
	// images, node counts or the etcd version. Never credentials.
	Describe func(ctx context.Context) (cluster string, details map[string]string)
	// UserKubeconfig, when set, is how the user reaches the cluster
	// (existing): API clients use it instead of KubeconfigPath.
	UserKubeconfig *KubeconfigRef
	// Hold, when set, holds the cluster for a run (the lab): other kpbench
	// commands that would change it refuse while the hold lasts. It fails
	// when another run holds the cluster; release ends the hold. A hold
	// whose process has exited counts as none.
	Hold func(ctx context.Context, runID, runDir string) (release func(), err error)
}

// ClientWhere names where a client node is, for logs and tests; what
// kpbench does with the node follows from Client's other fields, never
// from this name.
type ClientWhere string

// The client nodes of today's providers.
const (
	// ClientNetns: a network namespace of this machine (the lab).
	ClientNetns ClientWhere = "netns"
	// ClientVM: a virtual machine on this machine (the lab's --node vm).
	ClientVM ClientWhere = "vm"
	// ClientPod: a cluster node reached through the agent pod (kind,
	// existing).
	ClientPod ClientWhere = "pod"
)

// Client says where the client node is and how kpbench runs the load
// client, observes the node and describes it there.
type Client struct {
	Where ClientWhere
	// Bin is kpbench as the node runs it through ClientNode.Run, for the
	// load client and the point agent (`kpbench cluster agent point`).
	// Empty means the node shares this machine's executable and /proc:
	// the load client is this executable and the node is observed in
	// this process, from ClientNode.ProcRoot.
	Bin string
	// Cat prints a file of the node's /proc (its path appended), for
	// run.json's environment; nil when Bin is empty (read here).
	Cat []string
	// Load, when set, runs load clients as Jobs inside the cluster
	// instead of through ClientNode.Run.
	Load LoadRunner
	// Nodes, when set, lists every client node, the measured one first:
	// load clients run on any of them, so a point's node CPU is summed
	// over all of them.
	Nodes func(ctx context.Context) ([]NamedNode, error)
	// NodeCgroup, when set, says that the client nodes are containers on
	// this machine (kind), whose /proc/stat is the whole host's: their
	// CPU is read from the container's cgroup here instead. It returns
	// the directory, on this machine, of the cgroup of the container that
	// is node (cgroup v2 or v1's cpuacct hierarchy).
	NodeCgroup func(ctx context.Context, node string) (string, error)
	// VM, when set, describes a VM client node on this machine: the
	// hypervisor process's CPU is measured beside the guest's.
	VM *VMNodeInfo
	// FlushConntrack, when set, empties the client node's connection
	// tracking table: a node kpbench owns (the lab's), which the engine
	// flushes before each point so that repetitions start alike. kind and
	// existing nodes are shared with the rest of the cluster and are left
	// alone.
	FlushConntrack func(ctx context.Context) error
}

// LoadRunner runs load clients inside the cluster (kind, existing): each
// request runs `kpbench load --json - --embed-histograms ARGS` as Clients
// Jobs pinned to client nodes and returns every client's JSON summary,
// read from its pod log.
type LoadRunner interface {
	RunLoad(ctx context.Context, req LoadRequest) ([]LoadResult, error)
}

// KubeconfigRef is a kubeconfig as the user named it: the path ("" =
// kubectl's loading rules) and the context ("" = current).
type KubeconfigRef struct {
	Path, Context string
}

// VMNodeInfo describes a VM client node.
type VMNodeInfo struct {
	// Accelerator is kvm or tcg (software emulation); AccelReason says
	// why TCG was used.
	Accelerator, AccelReason string
	// HostPID is the process on this machine that runs the guest (qemu).
	HostPID int
	// Scratch is a directory at the same path on this machine and in the
	// guest, writable by both: the load client's raw files pass through it.
	Scratch string
}

// NamedNode is a client node and its Kubernetes node name.
type NamedNode struct {
	Name string
	Node ClientNode
}
