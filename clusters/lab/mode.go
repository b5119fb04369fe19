package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/scenarios"
)

func netipParse(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("lab state: bad address %q: %w", s, err)
	}
	return a, nil
}

// machine is what Capabilities looks at, so tests can fake it.
type machine struct {
	lookPath func(string) (string, error)
	// ipvs tells whether the node's kernel has IP_VS, and why not.
	ipvs          func() (bool, string)
	kernelRelease string
	cpus          int
}

func realMachine() machine {
	var uts unix.Utsname
	release := ""
	if unix.Uname(&uts) == nil {
		release = unix.ByteSliceToString(uts.Release[:])
	}
	cpus, err := AllowedCPUs()
	n := len(cpus)
	if err != nil {
		n = runtime.NumCPU()
	}
	ipvs := func() (bool, string) { return kubeproxy.IPVSAvailable("/proc", "/") }
	return machine{lookPath: exec.LookPath, ipvs: ipvs, kernelRelease: release, cpus: n}
}

// Capabilities tells which kube-proxy modes can run on this machine and why
// not; it looks at the kernel and the tools but changes nothing.
func (l *Lab) Capabilities(ctx context.Context) (clusters.Capabilities, error) {
	m, err := l.machine()
	if err != nil {
		return clusters.Capabilities{}, err
	}
	return capabilities(m), nil
}

func capabilities(m machine) clusters.Capabilities {
	caps := clusters.Capabilities{
		Modes: map[scenarios.Mode]string{},
	}
	host := kubeproxy.Host{
		LookPath:      m.lookPath,
		KernelRelease: m.kernelRelease,
		IPVS:          m.ipvs,
	}
	for _, mode := range scenarios.Modes {
		d, _ := kubeproxy.For(mode)
		caps.Modes[mode] = d.Unavailable(host)
	}
	return caps
}

// kubeProxyConfiguration is the part of kube-proxy's
// KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) the lab sets;
// field names follow k8s.io/kube-proxy/config/v1alpha1.
type kubeProxyConfiguration struct {
	APIVersion       string `json:"apiVersion"`
	Kind             string `json:"kind"`
	ClientConnection struct {
		Kubeconfig string `json:"kubeconfig"`
	} `json:"clientConnection"`
	HostnameOverride   string   `json:"hostnameOverride"`
	BindAddress        string   `json:"bindAddress"`
	MetricsBindAddress string   `json:"metricsBindAddress"`
	HealthzBindAddress string   `json:"healthzBindAddress"`
	Mode               string   `json:"mode"`
	ClusterCIDR        string   `json:"clusterCIDR"`
	NodePortAddresses  []string `json:"nodePortAddresses"`
	Conntrack          struct {
		MaxPerCore *int32 `json:"maxPerCore"`
		Min        *int32 `json:"min"`
	} `json:"conntrack"`
}

// kubeProxyConfig renders kube-proxy's configuration file for mode.
func kubeProxyConfig(mode scenarios.Mode, kubeconfig string) ([]byte, error) {
	zero := int32(0)
	cfg := kubeProxyConfiguration{
		APIVersion:         "kubeproxy.config.k8s.io/v1alpha1",
		Kind:               "KubeProxyConfiguration",
		HostnameOverride:   NodeName,
		BindAddress:        "0.0.0.0",
		MetricsBindAddress: fmt.Sprintf("0.0.0.0:%d", KubeProxyMetrics),
		HealthzBindAddress: fmt.Sprintf("0.0.0.0:%d", KubeProxyHealthz),
		Mode:               string(mode),
		ClusterCIDR:        PodCIDR.String(),
		// NodePorts only on the node's own address, as kube-proxy advises.
		NodePortAddresses: []string{"primary"},
	}
	// The global conntrack table size is not writable from a namespace:
	// leave it alone.
	cfg.Conntrack.MaxPerCore, cfg.Conntrack.Min = &zero, &zero
	cfg.ClientConnection.Kubeconfig = kubeconfig
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding kube-proxy configuration: %w", err)
	}
	return data, nil
}

func (l *Lab) kubeProxyConfigPath() string { return filepath.Join(l.dir, "kube-proxy.yaml") }

// startKubeProxy writes kube-proxy's configuration for mode, starts it in
// the client-node namespace on the node CPUs and waits until it runs in
// mode with its rules in place.
func (l *Lab) startKubeProxy(ctx context.Context, mode scenarios.Mode) error {
	st, err := l.state()
	if err != nil {
		return err
	}
	kpCfg, err := kubeProxyConfig(mode, l.kubeProxyKubeconfig())
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.kubeProxyConfigPath(), kpCfg, 0o600); err != nil {
		return fmt.Errorf("writing kube-proxy configuration: %w", err)
	}
	args := []string{filepath.Join(st.BinDir, "kube-proxy"), "--config=" + l.kubeProxyConfigPath(), "--v=2"}
	if isVM(st) {
		return l.vmStartKubeProxy(ctx, mode, args)
	}
	p, err := l.start(startSpec{
		name: CompKubeProxy, netns: l.nsName("node"), cpus: st.NodeCPUs, args: args, env: nodeEnv(st),
	})
	if err != nil {
		return err
	}
	if err := l.update(func(s *State) { s.Mode = mode }); err != nil {
		return err
	}
	return waitFor(ctx, p, l.cfg.SyncTimeout, "running in "+string(mode)+" mode", func(ctx context.Context) error {
		return l.VerifyMode(ctx, mode)
	})
}

// VerifyMode checks that kube-proxy answers GET /proxyMode with mode and
// that rules of that kind exist in the client-node namespace. A mismatch
// wraps ErrModeMismatch.
func (l *Lab) VerifyMode(ctx context.Context, mode scenarios.Mode) error {
	if _, ok := kubeproxy.For(mode); !ok {
		return fmt.Errorf("%w: unknown mode %q", ErrBadConfig, mode)
	}
	node := l.node()
	if err := kubeproxy.Verify(ctx, node.KubeProxyGet, kubeproxy.NodeRunner(node.Run), mode); err != nil {
		return err
	}
	if mode == scenarios.ModeIPVS {
		// The lab's node has its own /proc: the virtual servers
		// themselves, beyond the addresses kube-proxy bound for them.
		var out strings.Builder
		if err := node.Run(ctx, nil, &out, nil, "cat", "/proc/net/ip_vs"); err != nil {
			return fmt.Errorf("reading the node's IPVS table: %w", err)
		}
		if kubeproxy.IPVSVirtualServers(out.String()) == 0 {
			return fmt.Errorf("no IPVS virtual servers in the node's /proc/net/ip_vs yet: %w", ErrModeMismatch)
		}
		// kube-proxy programs the virtual servers and binds their
		// addresses first, and only then fills its ipsets (an `ipset
		// add` per entry) and restores the iptables rules that
		// masquerade clients on the node itself, whose source address
		// is the ClusterIP. Until then their SYNs go unanswered (a first
		// request took 15.6 s under TCG): the mode is in effect once the
		// kubernetes Service is in KUBE-CLUSTER-IP.
		entry := KubernetesIP.String() + ",tcp:443"
		if err := node.Run(ctx, nil, nil, nil, "ipset", "test", "KUBE-CLUSTER-IP", entry); err != nil {
			return fmt.Errorf("kube-proxy has not filled ipset KUBE-CLUSTER-IP yet (%s): %w: %w", entry, ErrModeMismatch, err)
		}
	}
	return nil
}

// SetMode switches kube-proxy in place: stop it, run `kube-proxy --cleanup`
// in the client-node namespace, start it in mode and verify. It wraps
// clusters.ErrModeUnavailable when mode cannot run here.
func (l *Lab) SetMode(ctx context.Context, mode scenarios.Mode) error {
	if !mode.Valid() || mode == scenarios.ModeExternal {
		return fmt.Errorf("%w: unknown proxy mode %q (want iptables, ipvs or nftables)", ErrBadConfig, mode)
	}
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	unlock, err := lock(ctx, l.cfg.StateDir, l.cfg.Name)
	if err != nil {
		return err
	}
	defer unlock()
	l.mu.Lock()
	l.st = nil // re-read: another process may have changed the lab
	l.mu.Unlock()
	return l.setMode(ctx, mode)
}

// setMode is SetMode for a caller holding the lock.
func (l *Lab) setMode(ctx context.Context, mode scenarios.Mode) error {
	caps, _ := l.Capabilities(ctx)
	if ok, reason := caps.Runnable(mode); !ok {
		return fmt.Errorf("lab %s cannot run kube-proxy in %s mode: %s: %w", l.cfg.Name, mode, reason, clusters.ErrModeUnavailable)
	}
	st, err := l.state()
	if err != nil {
		return err
	}
	if st.Phase != PhaseUp {
		return fmt.Errorf("lab %s is not up (phase %s): %w", l.cfg.Name, st.Phase, ErrNotRunning)
	}
	start := time.Now()
	if p, ok := st.proc(CompKubeProxy); ok {
		if err := p.stop(10 * time.Second); err != nil {
			return err
		}
	}
	if err := l.vmStopKubeProxy(ctx, st); err != nil {
		return err
	}
	node := l.node()
	// Remove every mode's rules so the next mode starts from a clean node.
	// kube-proxy --cleanup deletes iptables chains one at a time, which
	// through iptables-nft takes many minutes at 10,000 Services. The node
	// namespace holds nothing but kube-proxy's rules, so first drop its
	// whole nf_tables ruleset (iptables-nft's tables included) at once;
	// --cleanup then removes whatever is left (legacy iptables, IPVS, ipsets).
	if _, err := exec.LookPath("nft"); err == nil {
		if err := node.Run(ctx, nil, nil, nil, "nft", "flush", "ruleset"); err != nil {
			return fmt.Errorf("flushing the node's nftables ruleset before switching modes: %w", err)
		}
	}
	// kube-proxy --cleanup leaves ipvs mode's IPv6 ipsets (KUBE-6-*)
	// behind; the node's ipsets are all kube-proxy's and nothing
	// references them once the ruleset is flushed. A kernel without
	// ip_set has none: its error is left for the leftover check.
	if _, err := exec.LookPath("ipset"); err == nil {
		_ = node.Run(ctx, nil, nil, nil, "ipset", "destroy")
	}
	logPath := l.logPath("kube-proxy-cleanup")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening cleanup log: %w", err)
	}
	fmt.Fprintf(logf, "==== %s kpbench: kube-proxy --cleanup before switching to %s\n", time.Now().UTC().Format(time.RFC3339), mode)
	err = node.Run(ctx, nil, logf, logf, filepath.Join(st.BinDir, "kube-proxy"), "--cleanup", "--config="+l.kubeProxyConfigPath())
	logf.Close()
	if err != nil {
		return &ComponentError{Component: "kube-proxy --cleanup", Log: logPath, Tail: logTail(logPath, 25), Err: err}
	}
	if err := l.startKubeProxy(ctx, mode); err != nil {
		return err
	}
	if left := otherModeState(ctx, node, mode); len(left) > 0 {
		return fmt.Errorf("lab %s: after switching to %s the client node still holds %s: %w", l.cfg.Name, mode, strings.Join(left, "; "), ErrLeftoverState)
	}
	l.cfg.Logger.Info("lab: kube-proxy switched", "mode", mode, "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}
