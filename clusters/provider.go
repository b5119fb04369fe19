// Package clusters defines how kpbench gets a cluster to measure: the
// Provider interface every provider (lab, kind, existing) implements, and
// the capability flags a caller asks about instead of guessing.
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
}

// Endpoint is one backend pod's address.
type Endpoint struct {
	Addr netip.Addr
	Port uint16
}

// Capabilities are the facts about an environment a caller can ask for.
type Capabilities struct {
	// Modes maps every kube-proxy mode to the reason it cannot run here;
	// an empty reason means the mode can run.
	Modes map[scenarios.Mode]string
	// CanSwitchMode is false where kube-proxy is replaced by something
	// else (mode "external") or the user did not allow switching.
	CanSwitchMode bool
	// CPUPinning is true when the client node's processes run on CPUs of
	// their own, so node CPU is exactly the node's.
	CPUPinning bool
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

// LoadRunner is implemented by providers whose load clients run inside the
// cluster (kind, existing) instead of on this machine: each request runs
// `kpbench load --json - --embed-histograms ARGS` as Clients Jobs pinned to
// client nodes and returns every client's JSON summary, read from its pod
// log. A caller that finds a Provider implementing it runs load this way
// rather than through ClientNode().Run.
type LoadRunner interface {
	RunLoad(ctx context.Context, req LoadRequest) ([]LoadResult, error)
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

// What a provider may offer beyond Provider. The engine (package sweep)
// asks for each with a type assertion, so a new provider implements only
// what applies to it.

// Reuser is implemented by providers whose cluster outlives the command
// that made it (the lab): when it is already up and healthy, a run
// measures it as it is and leaves it up.
type Reuser interface {
	Running(ctx context.Context) bool
}

// Describer is implemented by providers with more to record in run.json
// than Versions: the cluster's name ("" when kpbench did not name it) and
// facts such as images, node counts or the etcd version. Never
// credentials.
type Describer interface {
	Describe(ctx context.Context) (cluster string, details map[string]string)
}

// Pinner is implemented by providers whose client node runs on CPUs of its
// own (the lab): run.json records the node's CPUs and the others.
type Pinner interface {
	Pinning(ctx context.Context) (nodeCPUs, otherCPUs []int, err error)
}

// UserKubeconfig is implemented by providers that reach a cluster through
// the user's kubeconfig (existing): the path as the user gave it ("" =
// kubectl's loading rules) and the context ("" = current). Other
// providers' clients use KubeconfigPath.
type UserKubeconfig interface {
	UserKubeconfig() (path, context string)
}

// VMNode is implemented by providers whose client node may be a virtual
// machine on this one (the lab with --node vm). Its load client and point
// agent run in the guest through ClientNode().Run; the node's CPU is the
// guest's /proc/stat and the hypervisor process's CPU is measured beside it.
type VMNode interface {
	// VMNode describes the VM; ok is false when the node is not one.
	VMNode(ctx context.Context) (info VMNodeInfo, ok bool)
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

// ClientNodeLister is implemented by providers that may have several client
// nodes (kind, existing): load clients run on any of them, so the node CPU
// of a point is summed over all of them.
type ClientNodeLister interface {
	// ClientNodes returns every client node with its name, the one
	// ClientNode measures (kube-proxy, conntrack, syncs) first.
	ClientNodes(ctx context.Context) ([]NamedNode, error)
}

// NamedNode is a client node and its Kubernetes node name.
type NamedNode struct {
	Name string
	Node ClientNode
}

// NodeCgrouper is implemented by providers whose client nodes are
// containers on this machine (kind). /proc/stat inside a container is the
// whole host's, so such a node's CPU is read from its container's cgroup
// here instead.
type NodeCgrouper interface {
	// NodeCgroup returns the directory, on this machine, of the cgroup of
	// the container that is node (cgroup v2 or v1's cpuacct hierarchy).
	NodeCgroup(ctx context.Context, node string) (string, error)
}
