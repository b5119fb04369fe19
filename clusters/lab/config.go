package lab

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/internal/cpuset"
	"golang.org/x/sys/unix"
)

// DefaultName is the lab's name unless told otherwise.
const DefaultName = "kpbench"

// DefaultBackends is the number of backend pods, as in the published
// experiments (10 nginx pods behind each Service).
const DefaultBackends = 10

// MaxBackends bounds the number of backend namespaces.
const MaxBackends = 250

// The lab's fixed addresses. Every lab has its own namespaces, so labs
// reuse the same addresses without meeting. All are in 198.18.0.0/15, the
// RFC 2544 benchmarking range: pods (and the lab's hosts) in 198.18.0.0/16,
// Services in 198.19.0.0/16.
var (
	PodCIDR      = netip.MustParsePrefix("198.18.0.0/16")
	ServiceCIDR  = netip.MustParsePrefix("198.19.0.0/16")
	GatewayIP    = netip.MustParseAddr("198.18.0.1") // the bridge, in the net namespace
	APIServerIP  = netip.MustParseAddr("198.18.0.2") // the control-plane namespace
	NodeIP       = netip.MustParseAddr("198.18.0.3") // the client-node namespace
	KubernetesIP = netip.MustParseAddr("198.19.0.1") // the kubernetes Service
)

// Ports the lab's components listen on inside their namespaces.
const (
	APIServerPort    = 6443
	EtcdClientPort   = 2379
	EtcdPeerPort     = 2380
	KubeProxyMetrics = 10249
	KubeProxyHealthz = 10256
	BackendPort      = 80
)

// NodeName is the name of the client node's Node object.
const NodeName = "kpbench-node"

// BackendIP returns the address of backend i (0-based): 198.18.1.1,
// 198.18.1.2, ...
func BackendIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(1 + i/250), byte(1 + i%250)})
}

var nameRE = regexp.MustCompile(`^[a-z0-9]{1,20}$`)

// ErrBadConfig is wrapped by every configuration problem.
var ErrBadConfig = errors.New("bad lab configuration")

// Config describes a lab. The zero value is a valid default lab.
type Config struct {
	// Name tells labs apart: namespaces are kpb-<name>-*, state lives in
	// StateDir/<name>. Lower-case letters and digits, at most 20.
	Name string
	// K8sVersion is the Kubernetes version of the binaries built when
	// BinDir is empty (default build.DefaultVersion).
	K8sVersion string
	// BinDir holds etcd, kube-apiserver and kube-proxy to use instead of
	// building them.
	BinDir string
	// CacheDir is kpbench's cache root for built binaries (default the user
	// cache dir + "/kpbench").
	CacheDir string
	// StateDir holds every lab's state directory (default
	// $XDG_STATE_HOME/kpbench/labs, else ~/.local/state/kpbench/labs).
	StateDir string
	// Backends is the number of backend pods (default DefaultBackends).
	Backends int
	// NodeCPUs run the client node's processes (kube-proxy, the load
	// client); everything else runs on the other CPUs. Default: the last
	// CPU this process may use. Ignored on a single-CPU machine.
	NodeCPUs []int
	// KpbenchBin is the kpbench executable that runs the backends and the
	// API forwarder (default: this executable; a test binary cannot serve,
	// so tests pass the kpbench binary).
	KpbenchBin string
	// Retain keeps what a failed Up made, for debugging.
	Retain bool
	// Keep makes Down leave the lab up (kpbench run --keep).
	Keep bool
	// Reuse makes Up attach to a lab of the same name that is already up
	// (switching its mode if needed) instead of failing with ErrExists.
	Reuse bool
	// ReadyTimeout bounds each component's wait for health (default 90s).
	ReadyTimeout time.Duration
	// SyncTimeout bounds kube-proxy's wait for its rules after a start or
	// mode switch (default 10m: a first sync of 10,000 Services takes
	// minutes on a loaded 2-core machine).
	SyncTimeout time.Duration
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// BuildProgress, if set, receives the binary build's progress.
	BuildProgress func(build.Progress)
	// Node is the client node's kind: NodeNetns (default), a network
	// namespace of this machine, or NodeVM, a qemu guest (see vmnode.go).
	Node string
	// IPTablesBackend is the iptables backend kube-proxy and the client
	// node's tools use: IPTablesNFT, IPTablesLegacy, or empty for the
	// host's default (netns client node only).
	IPTablesBackend string
	// VM configures a VM client node.
	VM VMConfig
}

// DefaultStateDir is $XDG_STATE_HOME/kpbench/labs or
// ~/.local/state/kpbench/labs.
func DefaultStateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "kpbench", "labs"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the home directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "kpbench", "labs"), nil
}

// withDefaults fills the zero fields of c; it reads the machine (CPUs, the
// executable path) but changes nothing.
func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.K8sVersion == "" {
		c.K8sVersion = build.DefaultVersion
	}
	if c.StateDir == "" {
		d, err := DefaultStateDir()
		if err != nil {
			return c, err
		}
		c.StateDir = d
	}
	if c.CacheDir == "" {
		d, err := build.DefaultCacheDir()
		if err != nil {
			return c, err
		}
		c.CacheDir = d
	}
	if c.Backends == 0 {
		c.Backends = DefaultBackends
	}
	if c.KpbenchBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("finding the kpbench executable: %w", err)
		}
		c.KpbenchBin = exe
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = 90 * time.Second
	}
	if c.SyncTimeout == 0 {
		c.SyncTimeout = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Name != "" && !nameRE.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("name %q: use 1 to 20 lower-case letters and digits", c.Name))
	}
	if c.K8sVersion != "" {
		if _, err := build.StagingVersion(c.K8sVersion); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Backends < 0 || c.Backends > MaxBackends {
		errs = append(errs, fmt.Errorf("backends: %d is outside 1..%d", c.Backends, MaxBackends))
	}
	if c.ReadyTimeout < 0 {
		errs = append(errs, fmt.Errorf("ready timeout %s is negative", c.ReadyTimeout))
	}
	if c.SyncTimeout < 0 {
		errs = append(errs, fmt.Errorf("sync timeout %s is negative", c.SyncTimeout))
	}
	if err := validIPTablesBackend(c.IPTablesBackend); err != nil {
		errs = append(errs, err)
	} else if c.IPTablesBackend != "" && c.Node == NodeVM {
		errs = append(errs, fmt.Errorf("iptables backend %s: the VM node's guest uses its own iptables; choose a backend with the netns node", c.IPTablesBackend))
	}
	errs = append(errs, c.VM.validate(c.Node)...)
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrBadConfig, errors.Join(errs...))
}

// checkKpbenchBin tells whether bin can run `kpbench serve` and `kpbench
// lab forward`: a Go test binary cannot.
func checkKpbenchBin(bin string) error {
	if strings.HasSuffix(bin, ".test") {
		return fmt.Errorf("%w: kpbench binary %s is a test binary; build kpbench and pass its path (Config.KpbenchBin, KPBENCH_BIN in tests)", ErrBadConfig, bin)
	}
	st, err := os.Stat(bin)
	if err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: kpbench binary %s is not an executable file", ErrBadConfig, bin)
	}
	return nil
}

// AllowedCPUs returns the CPUs this process may run on.
func AllowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("reading CPU affinity: %w", err)
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// SplitCPUs decides the pinning: node CPUs (requested, or the last allowed
// CPU) and the others. With a single allowed CPU nothing is pinned and both
// lists are empty.
func SplitCPUs(allowed, requested []int) (node, other []int, err error) {
	if len(allowed) < 2 {
		if len(requested) > 0 {
			return nil, nil, fmt.Errorf("%w: node CPUs %s requested but only CPU %s is available", ErrBadConfig, cpuset.Format(requested), cpuset.Format(allowed))
		}
		return nil, nil, nil
	}
	if len(requested) == 0 {
		requested = []int{allowed[len(allowed)-1]}
	}
	for _, c := range requested {
		if !slices.Contains(allowed, c) {
			return nil, nil, fmt.Errorf("%w: node CPU %d is not among the available CPUs %s", ErrBadConfig, c, cpuset.Format(allowed))
		}
	}
	for _, c := range allowed {
		if !slices.Contains(requested, c) {
			other = append(other, c)
		}
	}
	if len(other) == 0 {
		return nil, nil, fmt.Errorf("%w: node CPUs %s leave no CPU for the control plane and backends", ErrBadConfig, cpuset.Format(requested))
	}
	return slices.Clone(requested), other, nil
}
