// Package lab is kpbench's local lab, the default cluster provider: a real
// etcd, kube-apiserver and kube-proxy, built from source for a pinned
// Kubernetes version, programming the real kernel inside network
// namespaces of this machine. Nothing is created in the root network
// namespace: the bridge joining the lab lives in a namespace of its own.
//
// Topology of a lab named N (every lab has its own namespaces, so labs
// reuse the same addresses without meeting):
//
//	kpb-N-net   bridge br0 (198.18.0.1/16), one veth port per namespace below
//	kpb-N-cp    etcd (127.0.0.1:2379) and kube-apiserver (198.18.0.2:6443)
//	kpb-N-node  kube-proxy (metrics 0.0.0.0:10249) and the load client, 198.18.0.3
//	kpb-N-bI    `kpbench serve` on 198.18.1.(I+1):80, one per backend pod
//
// A small forwarder process in the root namespace listens on a loopback
// port and dials the apiserver inside kpb-N-cp, so kubectl works with the
// lab's kubeconfig from anywhere on the machine. Everything the lab starts
// is recorded (PID and start time) in StateDir/N/state.json so Down works
// after a crash.
//
// Up runs a list of steps, as kind's create actions do (lab.go holds the
// list); each step is a file: step_network.go, step_controlplane.go
// (credentials, etcd, kube-apiserver, forwarder), step_backends.go,
// vmnode.go (a VM client node), step_node.go, mode.go (kube-proxy's start
// and mode switches), step_versions.go. teardown.go undoes them; pki/ makes
// the credentials, which apitest/ shares for tests that need only an
// apiserver.
package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/clusters/lab/netns"
	"github.com/kpbench/kpbench/scenarios"
)

// ErrNotRoot is wrapped when the lab is asked to change something without
// the privileges network namespaces need.
var ErrNotRoot = errors.New("the lab needs root (network namespaces, iptables, nftables)")

// ErrNotRunning is wrapped when a component the caller needs is not running.
var ErrNotRunning = errors.New("not running")

// ErrModeMismatch is wrapped by VerifyMode when kube-proxy runs another mode
// or that mode's rules are missing (the same error as kubeproxy's).
var ErrModeMismatch = kubeproxy.ErrModeMismatch

// Component names, as recorded in state and shown by status.
const (
	CompEtcd      = "etcd"
	CompAPIServer = "kube-apiserver"
	CompForwarder = "apiserver-forwarder"
	CompKubeProxy = "kube-proxy"
)

func backendComp(i int) string { return "backend-" + strconv.Itoa(i) }

// Lab is one local lab. It implements clusters.Provider.
type Lab struct {
	cfg Config
	dir string

	mu     sync.Mutex
	st     *State
	stTime time.Time // modification time of the state.json st was read from or written to
}

var _ clusters.Provider = (*Lab)(nil)

// New returns the lab described by cfg without touching the machine.
func New(cfg Config) (*Lab, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Lab{cfg: cfg, dir: filepath.Join(cfg.StateDir, cfg.Name)}, nil
}

// Open attaches to the existing lab named cfg.Name; it wraps ErrNotFound
// when there is none.
func Open(cfg Config) (*Lab, error) {
	l, err := New(cfg)
	if err != nil {
		return nil, err
	}
	st, err := readState(l.dir)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("lab %s: %w (no state in %s; bring it up with `kpbench lab up --name %s`)", l.cfg.Name, ErrNotFound, l.dir, l.cfg.Name)
	}
	if err != nil {
		return nil, err
	}
	l.st = st
	return l, nil
}

// Up makes a lab with kube-proxy in mode and returns it once every
// component is healthy.
func Up(ctx context.Context, cfg Config, mode scenarios.Mode) (*Lab, error) {
	l, err := New(cfg)
	if err != nil {
		return nil, err
	}
	if err := l.Up(ctx, mode); err != nil {
		return nil, err
	}
	return l, nil
}

// Name is the provider's name, "lab". LabName is the lab's own name.
func (l *Lab) Name() string { return "lab" }

// LabName is the name that tells this lab from others.
func (l *Lab) LabName() string { return l.cfg.Name }

// Dir is the lab's state directory (logs, credentials, state.json).
func (l *Lab) Dir() string { return l.dir }

// KubeconfigPath is the admin kubeconfig; it works from the root namespace.
func (l *Lab) KubeconfigPath() string { return filepath.Join(l.dir, "kubeconfig") }

// RESTConfig returns a client configuration for the lab's apiserver.
func (l *Lab) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.KubeconfigPath())
	if err != nil {
		return nil, fmt.Errorf("loading lab kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	return cfg, nil
}

// nsName is the full name of one of the lab's namespaces.
func (l *Lab) nsName(short string) string { return "kpb-" + l.cfg.Name + "-" + short }

// nsPrefix is the prefix of every namespace of this lab; names have no
// dashes, so no other lab's namespaces share it.
func (l *Lab) nsPrefix() string { return "kpb-" + l.cfg.Name + "-" }

func (l *Lab) logPath(comp string) string { return filepath.Join(l.dir, "logs", comp+".log") }

// state returns the lab's state, re-reading state.json when another
// process (say `kpbench lab mode`) has rewritten it since.
func (l *Lab) state() (*State, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	path := filepath.Join(l.dir, "state.json")
	if l.st != nil {
		if fi, err := os.Stat(path); err != nil || fi.ModTime().Equal(l.stTime) {
			return l.st, nil
		}
	}
	st, err := readState(l.dir)
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", l.cfg.Name, err)
	}
	l.st = st
	if fi, err := os.Stat(path); err == nil {
		l.stTime = fi.ModTime()
	}
	return l.st, nil
}

// save writes the in-memory state to disk.
func (l *Lab) save() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := writeState(l.dir, l.st); err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Join(l.dir, "state.json")); err == nil {
		l.stTime = fi.ModTime()
	}
	return nil
}

func (l *Lab) update(fn func(*State)) error {
	l.mu.Lock()
	fn(l.st)
	l.mu.Unlock()
	return l.save()
}

// Binaries returns the lab's binaries: the user's BinDir, or the cached
// build of K8sVersion, building it first if needed.
func (l *Lab) Binaries(ctx context.Context) (build.Binaries, error) {
	if l.cfg.BinDir != "" {
		return build.FromDir(l.cfg.BinDir)
	}
	return build.Ensure(ctx, build.Options{
		Version:  l.cfg.K8sVersion,
		CacheDir: l.cfg.CacheDir,
		Logger:   l.cfg.Logger,
		Progress: l.cfg.BuildProgress,
	})
}

// ownerProc is this process as a lab owner (see UpOwned).
func (l *Lab) ownerProc() *Proc {
	_, start, err := procStat("/proc", os.Getpid())
	if err != nil {
		return nil
	}
	return &Proc{Name: "owner", PID: os.Getpid(), StartTime: start}
}

// Up creates the lab with kube-proxy in mode (default iptables) and waits
// until every component is healthy. On failure it removes what it made
// (unless Config.Retain) and the error carries the failing component's log
// tail. A lab of the same name that is up makes Up fail with ErrExists
// (unless Config.Reuse); remains of a crashed lab are removed first.
func (l *Lab) Up(ctx context.Context, mode scenarios.Mode) error {
	return l.up(ctx, mode, false)
}

// UpOwned is Up for a lab that belongs to this process (tests): if the
// process dies without Down, SweepOrphans removes the lab later.
func (l *Lab) UpOwned(ctx context.Context, mode scenarios.Mode) error {
	return l.up(ctx, mode, true)
}

func (l *Lab) up(ctx context.Context, mode scenarios.Mode, owned bool) (err error) {
	if mode == "" {
		mode = scenarios.ModeIPTables
	}
	if !mode.Valid() || mode == scenarios.ModeExternal {
		return fmt.Errorf("%w: unknown proxy mode %q (want iptables, ipvs or nftables)", ErrBadConfig, mode)
	}
	caps, err := l.Capabilities(ctx)
	if err != nil {
		return err
	}
	if ok, reason := caps.Runnable(mode); !ok {
		return fmt.Errorf("lab %s cannot run kube-proxy in %s mode: %s: %w", l.cfg.Name, mode, reason, clusters.ErrModeUnavailable)
	}
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	if err := checkKpbenchBin(l.cfg.KpbenchBin); err != nil {
		return err
	}
	allowed, err := AllowedCPUs()
	if err != nil {
		return err
	}
	nodeCPUs, otherCPUs, err := SplitCPUs(allowed, l.cfg.NodeCPUs)
	if err != nil {
		return err
	}

	unlock, err := lock(ctx, l.cfg.StateDir, l.cfg.Name)
	if err != nil {
		return err
	}
	defer unlock()

	if st, err := readState(l.dir); err == nil {
		if st.Phase == PhaseUp && l.healthyProcs(st) {
			if !l.cfg.Reuse {
				return fmt.Errorf("lab %s is up (kubeconfig %s); use it, or remove it with `kpbench lab down --name %s`: %w", l.cfg.Name, st.Kubeconfig, l.cfg.Name, ErrExists)
			}
			if b := l.cfg.IPTablesBackend; b != "" && b != st.IPTablesBackend {
				return fmt.Errorf("%w: lab %s is up with the %s iptables backend, not %s; bring it down (kpbench lab down --name %s) or use another --lab-name", ErrBadConfig, l.cfg.Name, orDash(st.IPTablesBackend), b, l.cfg.Name)
			}
			l.mu.Lock()
			l.st = st
			l.mu.Unlock()
			l.cfg.Logger.Info("reusing lab", "name", l.cfg.Name, "mode", st.Mode)
			if st.Mode != mode {
				return l.setMode(ctx, mode)
			}
			return nil
		}
		l.cfg.Logger.Warn("removing the remains of an earlier lab", "name", l.cfg.Name, "phase", st.Phase)
		if err := l.teardown(ctx, st); err != nil {
			return fmt.Errorf("removing the remains of lab %s: %w", l.cfg.Name, err)
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	} else if left, _ := netns.List(l.nsPrefix()); len(left) > 0 {
		l.cfg.Logger.Warn("removing namespaces of an earlier lab", "namespaces", left)
		if err := l.teardown(ctx, &State{Name: l.cfg.Name}); err != nil {
			return err
		}
	}

	start := time.Now()
	bins, err := l.Binaries(ctx)
	if err != nil {
		return fmt.Errorf("getting Kubernetes binaries: %w", err)
	}
	l.cfg.Logger.Info("lab: binaries ready", "dir", bins.Dir, "cached", bins.Cached || l.cfg.BinDir != "", "elapsed", time.Since(start).Round(time.Millisecond))

	if err := os.MkdirAll(filepath.Join(l.dir, "logs"), 0o700); err != nil {
		return fmt.Errorf("creating lab directory: %w", err)
	}
	if err := os.Chmod(l.dir, 0o700); err != nil {
		return fmt.Errorf("securing lab directory: %w", err)
	}
	st := &State{
		Name:        l.cfg.Name,
		Phase:       PhaseCreating,
		Created:     time.Now().UTC(),
		Mode:        mode,
		K8sVersion:  bins.Version,
		BinDir:      bins.Dir,
		KpbenchBin:  l.cfg.KpbenchBin,
		NodeCPUs:    nodeCPUs,
		OtherCPUs:   otherCPUs,
		Kubeconfig:  l.KubeconfigPath(),
		EtcdVersion: bins.EtcdVersion,
	}
	if owned {
		st.Owner = l.ownerProc()
	}
	for i := 0; i < l.cfg.Backends; i++ {
		st.Backends = append(st.Backends, BackendIP(i).String())
	}
	l.mu.Lock()
	l.st = st
	l.mu.Unlock()
	if err := l.save(); err != nil {
		return err
	}

	defer func() {
		if err == nil {
			return
		}
		if l.cfg.Retain {
			_ = l.update(func(s *State) { s.Phase = PhaseFailed })
			l.cfg.Logger.Warn("lab: failed; keeping what was made (retain)", "dir", l.dir)
			return
		}
		l.cfg.Logger.Info("lab: failed; removing what was made")
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if derr := l.teardown(cctx, l.st); derr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up after the failure: %w", derr))
			return
		}
		err = fmt.Errorf("%w\n(everything the lab made was removed, logs too; to keep them for debugging, use Config.Retain / lab up --retain)", err)
	}()

	type step struct {
		name string
		fn   func(context.Context, build.Binaries) error
	}
	steps := []step{
		{"network namespaces and bridge", l.stepNetwork},
		{"credentials", l.stepCredentials},
	}
	if l.cfg.Node == NodeVM {
		steps = append(steps, step{"node VM boot started", l.stepVMStart})
	}
	steps = append(steps, []step{
		{"control plane", l.stepControlPlane},
		{"backends", l.stepBackends},
	}...)
	if l.cfg.Node == NodeVM {
		steps = append(steps, step{"node VM", l.stepVMReady})
	}
	if l.cfg.IPTablesBackend != "" {
		steps = append(steps, step{"iptables backend " + l.cfg.IPTablesBackend, l.stepIPTables})
	}
	steps = append(steps, []step{
		{"node object", l.stepNode},
		{"kube-proxy (" + string(mode) + ")", func(ctx context.Context, b build.Binaries) error { return l.startKubeProxy(ctx, mode) }},
		{"backend reachability", l.stepCheckBackends},
		{"versions", l.stepVersions},
	}...)
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("lab up interrupted: %w", err)
		}
		t := time.Now()
		if err := s.fn(ctx, bins); err != nil {
			return fmt.Errorf("lab %s: %s: %w", l.cfg.Name, s.name, err)
		}
		l.cfg.Logger.Info("lab: "+s.name+" ready", "elapsed", time.Since(t).Round(time.Millisecond))
	}
	if err := l.update(func(s *State) { s.Phase = PhaseUp }); err != nil {
		return err
	}
	l.cfg.Logger.Info("lab: up", "name", l.cfg.Name, "mode", mode, "kubeconfig", l.KubeconfigPath(), "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// healthyProcs reports whether every recorded process still runs.
func (l *Lab) healthyProcs(st *State) bool {
	if len(st.Procs) == 0 {
		return false
	}
	for _, p := range st.Procs {
		if !p.Alive() {
			return false
		}
	}
	return true
}

// Backends returns the backend pods' endpoints.
func (l *Lab) Backends(ctx context.Context) ([]clusters.Endpoint, error) {
	st, err := l.state()
	if err != nil {
		return nil, err
	}
	var eps []clusters.Endpoint
	for _, b := range st.Backends {
		a, err := netipParse(b)
		if err != nil {
			return nil, err
		}
		eps = append(eps, clusters.Endpoint{Addr: a, Port: BackendPort})
	}
	return eps, nil
}

// Versions reports the Kubernetes and kube-proxy versions in use.
func (l *Lab) Versions(ctx context.Context) (clusters.Versions, error) {
	st, err := l.state()
	if err != nil {
		return clusters.Versions{}, err
	}
	return clusters.Versions{Kubernetes: st.K8sVersion, KubeProxy: st.KubeProxyVer, IPTablesBackend: st.IPTablesBackend}, nil
}

// ClientNode is the client node: the client-node namespace, or the VM.
func (l *Lab) ClientNode() clusters.ClientNode { return l.node() }
