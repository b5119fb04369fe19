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
package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
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

func ipCmd(ctx context.Context, args ...string) error {
	_, err := netns.Run(ctx, "ip", args...)
	return err
}

func (l *Lab) stepNetwork(ctx context.Context, _ build.Binaries) error {
	type member struct{ short, ns, ip string }
	members := []member{{"cp", l.nsName("cp"), APIServerIP.String()}}
	if l.cfg.Node != NodeVM { // a VM node's NIC is a tap device (stepVMStart)
		members = append(members, member{"node", l.nsName("node"), NodeIP.String()})
	}
	for i := 0; i < l.cfg.Backends; i++ {
		s := "b" + strconv.Itoa(i)
		members = append(members, member{s, l.nsName(s), BackendIP(i).String()})
	}
	netNS := l.nsName("net")
	all := []string{netNS}
	for _, m := range members {
		all = append(all, m.ns)
	}
	for _, ns := range all {
		if err := l.update(func(s *State) { s.Namespaces = append(s.Namespaces, ns) }); err != nil {
			return err
		}
		if err := netns.Add(ctx, ns); err != nil {
			return err
		}
	}
	bits := strconv.Itoa(PodCIDR.Bits())
	for _, args := range [][]string{
		{"-n", netNS, "link", "set", "lo", "up"},
		{"-n", netNS, "link", "add", "br0", "type", "bridge"},
		{"-n", netNS, "addr", "add", GatewayIP.String() + "/" + bits, "dev", "br0"},
		{"-n", netNS, "link", "set", "br0", "up"},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			return err
		}
	}
	// The bridge is the lab's switch: keep bridged frames out of netfilter.
	_ = netns.Do(netns.Path(netNS), nil, func() error {
		return os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("0"), 0o644)
	})
	for _, m := range members {
		for _, args := range [][]string{
			{"-n", netNS, "link", "add", m.short, "type", "veth", "peer", "name", "eth0", "netns", m.ns},
			{"-n", netNS, "link", "set", m.short, "master", "br0", "up"},
			{"-n", m.ns, "link", "set", "lo", "up"},
			{"-n", m.ns, "addr", "add", m.ip + "/" + bits, "dev", "eth0"},
			{"-n", m.ns, "link", "set", "eth0", "up"},
			{"-n", m.ns, "route", "add", "default", "via", GatewayIP.String()},
		} {
			if err := ipCmd(ctx, args...); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Lab) pki() pki { return pki{dir: filepath.Join(l.dir, "pki")} }

func (l *Lab) kubeProxyKubeconfig() string { return filepath.Join(l.dir, "kube-proxy.kubeconfig") }

func (l *Lab) stepCredentials(ctx context.Context, _ build.Binaries) error {
	p := l.pki()
	if err := p.generate(l.cfg.Name); err != nil {
		return err
	}
	server := "https://" + net.JoinHostPort(APIServerIP.String(), strconv.Itoa(APIServerPort))
	return p.writeKubeconfig(l.kubeProxyKubeconfig(), server, "system:kube-proxy", kubeProxyCert, kubeProxyKey)
}

// start starts a component and records it.
func (l *Lab) start(spec startSpec) (Proc, error) {
	spec.log = l.logPath(spec.name)
	p, err := startProc(spec)
	if err != nil {
		return Proc{}, err
	}
	if err := l.update(func(s *State) { s.setProc(p) }); err != nil {
		return p, err
	}
	return p, nil
}

func (l *Lab) stepControlPlane(ctx context.Context, bins build.Binaries) error {
	st, _ := l.state()
	cp := l.nsName("cp")
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(EtcdClientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(EtcdPeerPort)
	etcd, err := l.start(startSpec{
		name: CompEtcd, netns: cp, cpus: st.OtherCPUs,
		args: []string{bins.Etcd,
			"--name=kpbench",
			"--data-dir=" + filepath.Join(l.dir, "etcd"),
			"--listen-client-urls=" + etcdURL,
			"--advertise-client-urls=" + etcdURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=kpbench=" + peerURL,
			// A lab's data is disposable: skip fsync, which dominates
			// write latency when thousands of Services are created.
			"--unsafe-no-fsync",
			"--quota-backend-bytes=" + strconv.Itoa(8<<30),
			"--log-level=warn",
		},
	})
	if err != nil {
		return err
	}
	p := l.pki()
	apiserver, err := l.start(startSpec{
		name: CompAPIServer, netns: cp, cpus: st.OtherCPUs,
		args: []string{bins.KubeAPIServer,
			"--etcd-servers=" + etcdURL,
			"--bind-address=0.0.0.0",
			"--secure-port=" + strconv.Itoa(APIServerPort),
			"--advertise-address=" + APIServerIP.String(),
			"--service-cluster-ip-range=" + ServiceCIDR.String(),
			"--tls-cert-file=" + p.path(apiserverCert),
			"--tls-private-key-file=" + p.path(apiserverKey),
			"--client-ca-file=" + p.path(caCert),
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file=" + p.path(serviceAcctPub),
			"--service-account-signing-key-file=" + p.path(serviceAcctKey),
			"--authorization-mode=RBAC",
			// Nothing admits or mutates Services in the lab: skip the
			// plugins that would only add work to every write.
			"--disable-admission-plugins=ServiceAccount,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,ResourceQuota",
			"--cert-dir=" + filepath.Join(l.dir, "pki"),
			"--profiling=false",
			"--v=1",
		},
	})
	if err != nil {
		return err
	}

	cpPath := netns.Path(cp)
	etcdClient := netns.HTTPClient(cpPath, nil, 3*time.Second)
	if err := waitFor(ctx, etcd, l.cfg.ReadyTimeout, "healthy", func(ctx context.Context) error {
		body, err := get(ctx, etcdClient, etcdURL+"/health")
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), `"health":"true"`) {
			return fmt.Errorf("health: %s", body)
		}
		return nil
	}); err != nil {
		return err
	}

	tlsCfg, err := l.adminTLS()
	if err != nil {
		return err
	}
	apiClient := netns.HTTPClient(cpPath, tlsCfg, 3*time.Second)
	apiURL := "https://" + net.JoinHostPort(APIServerIP.String(), strconv.Itoa(APIServerPort))
	if err := waitFor(ctx, apiserver, l.cfg.ReadyTimeout, "ready", func(ctx context.Context) error {
		_, err := get(ctx, apiClient, apiURL+"/readyz")
		return err
	}); err != nil {
		return err
	}

	// The forwarder: a loopback port of the root namespace whose
	// connections are dialed to the apiserver inside the cp namespace. The
	// listener is made here and handed over, so its port is known at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening on loopback for the apiserver forwarder: %w", err)
	}
	lnFile, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		return fmt.Errorf("handing the forwarder its listener: %w", err)
	}
	fwd, err := l.start(startSpec{
		name: CompForwarder, cpus: st.OtherCPUs, files: []*os.File{lnFile},
		args: []string{st.KpbenchBin, "lab", "forward", "--listen-fd=3", "--netns=" + cpPath, "--to=" + net.JoinHostPort(APIServerIP.String(), strconv.Itoa(APIServerPort))},
	})
	port := ln.Addr().(*net.TCPAddr).Port
	lnFile.Close()
	if err != nil {
		return err
	}
	server := "https://127.0.0.1:" + strconv.Itoa(port)
	if err := l.update(func(s *State) { s.APIServerURL = server }); err != nil {
		return err
	}
	if err := p.writeKubeconfig(l.KubeconfigPath(), server, "kpbench-admin", adminCert, adminKey); err != nil {
		return err
	}
	rootClient := netns.HTTPClient("", tlsCfg, 3*time.Second)
	return waitFor(ctx, fwd, 20*time.Second, "forwarding to the apiserver", func(ctx context.Context) error {
		_, err := get(ctx, rootClient, server+"/readyz")
		return err
	})
}

// adminTLS is a TLS client configuration with the admin credentials.
func (l *Lab) adminTLS() (*tls.Config, error) {
	p := l.pki()
	cert, err := tls.LoadX509KeyPair(p.path(adminCert), p.path(adminKey))
	if err != nil {
		return nil, fmt.Errorf("loading admin credentials: %w", err)
	}
	caPEM, err := os.ReadFile(p.path(caCert))
	if err != nil {
		return nil, fmt.Errorf("loading lab CA: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// get fetches url and fails unless the answer is 200.
func get(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func (l *Lab) stepBackends(ctx context.Context, _ build.Binaries) error {
	st, _ := l.state()
	for i := 0; i < l.cfg.Backends; i++ {
		_, err := l.start(startSpec{
			name: backendComp(i), netns: l.nsName("b" + strconv.Itoa(i)), cpus: st.OtherCPUs,
			args: []string{st.KpbenchBin, "serve", "--listen=" + net.JoinHostPort(BackendIP(i).String(), strconv.Itoa(BackendPort))},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) clientset() (*kubernetes.Clientset, error) {
	cfg, err := l.RESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// stepNode creates the client node's Node object (kube-proxy reads its
// addresses) and waits for the apiserver's own kubernetes Service, so
// kube-proxy has a Service to program from the start.
func (l *Lab) stepNode(ctx context.Context, _ build.Binaries) error {
	cs, err := l.clientset()
	if err != nil {
		return err
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   NodeName,
			Labels: map[string]string{"kubernetes.io/hostname": NodeName, "kubernetes.io/os": "linux", "app.kubernetes.io/managed-by": "kpbench"},
		},
	}
	created, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("creating Node %s: %w", NodeName, err)
	}
	created.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: NodeIP.String()},
		{Type: corev1.NodeHostName, Address: NodeName},
	}
	created.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KpbenchLab",
		Message: "kpbench lab node (no kubelet)", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("setting Node %s addresses: %w", NodeName, err)
	}
	st, _ := l.state()
	api, _ := st.proc(CompAPIServer)
	return waitFor(ctx, api, l.cfg.ReadyTimeout, "serving the kubernetes Service", func(ctx context.Context) error {
		_, err := cs.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
		return err
	})
}

func (l *Lab) stepCheckBackends(ctx context.Context, _ build.Binaries) error {
	st, _ := l.state()
	c := nodeHTTPClient(l.node(), 2*time.Second)
	for i := range st.Backends {
		p, _ := st.proc(backendComp(i))
		url := "http://" + net.JoinHostPort(st.Backends[i], strconv.Itoa(BackendPort)) + "/"
		if err := waitFor(ctx, p, l.cfg.ReadyTimeout, "answering from the client node", func(ctx context.Context) error {
			_, err := get(ctx, c, url)
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) stepVersions(ctx context.Context, bins build.Binaries) error {
	out, err := exec.CommandContext(ctx, bins.KubeProxy, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("kube-proxy --version: %w: %s", err, out)
	}
	kpVer := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "Kubernetes"))
	cs, err := l.clientset()
	if err != nil {
		return err
	}
	info, err := cs.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("asking the apiserver its version: %w", err)
	}
	backend := iptablesBackend(ctx)
	return l.update(func(s *State) {
		s.KubeProxyVer = kpVer
		s.K8sVersion = info.GitVersion
		s.IPTablesBackend = backend
	})
}

// iptablesBackend is "nft" or "legacy", as `iptables --version` says, or ""
// when iptables is missing.
func iptablesBackend(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "iptables", "--version").CombinedOutput()
	if err != nil {
		return ""
	}
	return kubeproxy.IPTablesBackend(out)
}

// Down stops every process the lab started (unless Config.Keep) (by PID, checking start times),
// deletes its namespaces and removes its state directory. It is safe to
// call twice, for a lab that does not exist, and after a crash.
func (l *Lab) Down(ctx context.Context) error {
	if l.cfg.Keep {
		l.cfg.Logger.Info("lab left up", "name", l.cfg.Name, "kubeconfig", l.KubeconfigPath())
		return nil
	}
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	unlock, err := lock(ctx, l.cfg.StateDir, l.cfg.Name)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := readState(l.dir)
	if errors.Is(err, ErrNotFound) {
		st = &State{Name: l.cfg.Name}
	} else if err != nil {
		// Unreadable state: still remove what can be found by name.
		l.cfg.Logger.Warn("lab state unreadable; removing what can be found by name", "err", err)
		st = &State{Name: l.cfg.Name}
	}
	return l.teardown(ctx, st)
}

// teardown removes everything st records plus any namespace named like
// this lab's, and the state directory. The caller holds the lock.
func (l *Lab) teardown(ctx context.Context, st *State) error {
	var errs []error
	// Processes in reverse start order, so clients go before servers.
	for i := len(st.Procs) - 1; i >= 0; i-- {
		if err := st.Procs[i].stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	// The forwarder lives in the root namespace: if the state lost it,
	// find it by its command line, which names this lab's cp namespace.
	for _, p := range findForwarders("/proc", netns.Path(l.nsName("cp"))) {
		if err := p.stop(2 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	names := slices.Clone(st.Namespaces)
	if found, err := netns.List(l.nsPrefix()); err == nil {
		for _, n := range found {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, l.nsPrefix()) {
			continue // never touch a namespace that is not this lab's
		}
		// Whatever still runs in a namespace of this lab was started by it
		// (a process that escaped the records, e.g. after a crash).
		if pids, err := netns.PIDsIn("/proc", netns.Path(n)); err == nil {
			for _, pid := range pids {
				_, start, err := procStat("/proc", pid)
				if err != nil {
					continue
				}
				p := Proc{Name: "process in " + n, PID: pid, StartTime: start}
				if err := p.stop(2 * time.Second); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if err := netns.Delete(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", l.dir, err))
		}
		_ = os.Remove(filepath.Join(l.cfg.StateDir, l.cfg.Name+".lock"))
	}
	l.mu.Lock()
	l.st = nil
	l.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("lab %s down: %w", l.cfg.Name, errors.Join(errs...))
	}
	l.cfg.Logger.Info("lab: down", "name", l.cfg.Name)
	return nil
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
