// Package existing is the provider for a cluster the user already has,
// reached through a kubeconfig. It reads kube-proxy's mode from the
// kube-system/kube-proxy ConfigMap and from kube-proxy's /proxyMode; it
// switches modes only when the user confirmed it (--yes), by patching that
// ConfigMap and restarting the kube-proxy DaemonSet, and restores the
// original mode at Down unless asked to keep it. A cluster without a
// kube-proxy DaemonSet runs a replacement (Cilium, Calico eBPF, ...),
// measured as mode "external" and never switched.
//
// kpbench's own pods (backends, the CPU agent on the client node, load
// clients) live in the kpbench namespace; the client node is reached by
// exec into the agent pod. The kind provider builds on this one.
package existing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/clusters/manifests"
	"github.com/kpbench/kpbench/scenarios"
)

// Options configure the existing-cluster provider.
type Options struct {
	// Kubeconfig is the kubeconfig path; "" follows kubectl's rules
	// ($KUBECONFIG, then ~/.kube/config).
	Kubeconfig string
	// Context picks a kubeconfig context; "" is the current one.
	Context string
	// Confirm allows switching kube-proxy's mode (--yes).
	Confirm bool
	// Keep leaves the switched mode and kpbench's namespace in place at
	// Down.
	Keep bool
	// Retain keeps what a failed Up made, for debugging.
	Retain bool
	// IPVSScheduler sets ipvs.scheduler when switching to ipvs ("" leaves
	// it as it is).
	IPVSScheduler string
	// Backends is the number of backend pods (default 10).
	Backends int
	// Image is kpbench's image (default kpbench:dev); PullPolicy defaults
	// to IfNotPresent.
	Image      string
	PullPolicy corev1.PullPolicy
	// ClientNode names the client node when no node is labelled
	// kpbench.io/role=client.
	ClientNode string
	// StateDir holds the state Down needs after a crash (default
	// $XDG_CACHE_HOME/kpbench).
	StateDir string
	// Timeouts and the polling interval (defaults: 5m, 5m, 2s).
	ReadyTimeout   time.Duration
	RolloutTimeout time.Duration
	PollInterval   time.Duration
	Logger         *slog.Logger

	// Clientset, RESTConfig and Execer replace the ones built from the
	// kubeconfig (tests, and the kind provider).
	Clientset  kubernetes.Interface
	RESTConfig *rest.Config
	Execer     Execer
	// Now stamps the restart annotation (default time.Now).
	Now func() time.Time
}

// Provider implements clusters.Provider and clusters.LoadRunner for an
// existing cluster.
type Provider struct {
	opts       Options
	cs         kubernetes.Interface
	agent      *AgentNode
	kubeconfig string
	statePath  string
	logs       func(ctx context.Context, pod string) ([]byte, error)

	mu        sync.Mutex
	placement manifests.Config
	// switched is set once this provider switched kube-proxy's mode: the
	// state file's Switched is then its own, not an earlier run's.
	switched bool
}

var (
	_ clusters.Provider   = (*Provider)(nil)
	_ clusters.LoadRunner = (*Provider)(nil)
)

// New returns a provider for the cluster of opts.Kubeconfig. It reads the
// kubeconfig but does not contact the cluster.
func New(opts Options) (*Provider, error) {
	if opts.Backends == 0 {
		opts.Backends = 10
	}
	if opts.Backends < 0 {
		return nil, fmt.Errorf("backends must be positive, got %d", opts.Backends)
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 5 * time.Minute
	}
	if opts.RolloutTimeout == 0 {
		opts.RolloutTimeout = 5 * time.Minute
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StateDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("finding a state directory: %w", err)
		}
		opts.StateDir = filepath.Join(dir, "kpbench")
	}
	if opts.Clientset == nil {
		cfg := opts.RESTConfig
		if cfg == nil {
			var err error
			cfg, err = RESTConfig(opts.Kubeconfig, opts.Context)
			if err != nil {
				return nil, err
			}
			opts.RESTConfig = cfg
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("making a Kubernetes client: %w", err)
		}
		opts.Clientset = cs
	}
	if opts.Execer == nil {
		if opts.RESTConfig == nil {
			return nil, errors.New("an Execer or a REST config is needed to reach the client node")
		}
		opts.Execer = NewExecer(opts.RESTConfig, opts.Clientset)
	}
	// Where the kubeconfig comes from when none was named ($KUBECONFIG,
	// else ~/.kube/config): the path names the cluster's state file and is
	// what KubeconfigPath reports; loading still merges $KUBECONFIG's list.
	shown := opts.Kubeconfig
	if shown == "" {
		shown = clientcmd.NewDefaultClientConfigLoadingRules().GetDefaultFilename()
	}
	p := &Provider{
		opts:       opts,
		cs:         opts.Clientset,
		agent:      NewAgentNode(opts.Clientset, opts.Execer),
		kubeconfig: shown,
		statePath:  statePath(opts.StateDir, shown, opts.Context),
	}
	p.logs = func(ctx context.Context, pod string) ([]byte, error) { return podLogs(ctx, p.cs, pod) }
	return p, nil
}

// RESTConfig loads a kubeconfig the way kubectl does (path, or the
// default rules when empty) for context ("" = current).
func RESTConfig(kubeconfig, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		// The error names the file, never its credentials.
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "kpbench"
	return cfg, nil
}

// Name is "existing".
func (p *Provider) Name() string { return "existing" }

// KubeconfigPath is the kubeconfig in use.
func (p *Provider) KubeconfigPath() string { return p.kubeconfig }

// Clientset is the client the provider uses.
func (p *Provider) Clientset() kubernetes.Interface { return p.cs }

// ClientNode is the client node, reached through the agent pod.
func (p *Provider) ClientNode() clusters.ClientNode { return p.agent }

// ClientNodes lists every client node with
// a ready agent pod, the measured one first.
func (p *Provider) ClientNodes(ctx context.Context) ([]clusters.NamedNode, error) {
	return p.agent.ClientNodes(ctx)
}

// KubeProxy reads kube-proxy's DaemonSet and ConfigMap.
func (p *Provider) KubeProxy(ctx context.Context) (KubeProxyState, error) {
	return ReadKubeProxy(ctx, p.cs)
}

// Up attaches to the cluster: it records kube-proxy's original mode,
// deploys the backends and the agent, waits for them, and switches
// kube-proxy to mode (confirmation needed) or verifies it is in it. A
// failed Up deletes the kpbench namespace and restores the mode unless
// Retain.
func (p *Provider) Up(ctx context.Context, mode scenarios.Mode) (err error) {
	kp, err := ReadKubeProxy(ctx, p.cs)
	if err != nil {
		return err
	}
	if err := p.checkModeRequest(kp, mode); err != nil {
		return err
	}
	st, err := p.recordOriginal(kp)
	if err != nil {
		return err
	}
	defer func() {
		if err == nil || p.opts.Retain {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
		defer cancel()
		if derr := p.down(cctx, false); derr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up after the failed start: %w", derr))
		}
	}()

	cfg, err := p.placementFor(ctx)
	if err != nil {
		return err
	}
	objs, err := manifests.Workloads(cfg)
	if err != nil {
		return err
	}
	st.Deployed = true
	if err := saveState(p.statePath, st); err != nil {
		return err
	}
	if p.opts.Image == "" {
		p.opts.Logger.Warn("no image given: kpbench:dev must already be on the nodes (kpbench image build --push REF, then --image REF)")
	}
	p.opts.Logger.Info("deploying kpbench workloads", "namespace", manifests.Namespace, "backends", cfg.Backends, "image", cfg.Defaulted().Image)
	if err := Apply(ctx, p.cs, objs, false); err != nil {
		return err
	}
	if err := WaitWorkloads(ctx, p.cs, cfg.Backends, p.opts.PollInterval, p.opts.ReadyTimeout); err != nil {
		return err
	}
	if mode == scenarios.ModeExternal {
		return nil
	}
	return p.SetMode(ctx, mode)
}

// checkModeRequest refuses, before changing anything, a mode this cluster
// cannot be measured in.
func (p *Provider) checkModeRequest(kp KubeProxyState, mode scenarios.Mode) error {
	switch {
	case !mode.Valid():
		return fmt.Errorf("unknown mode %q", mode)
	case mode == scenarios.ModeExternal && kp.Present:
		return fmt.Errorf("%w: mode external is for kube-proxy replacements, but kube-proxy runs here (mode %s)", clusters.ErrModeUnavailable, kp.Mode)
	case mode != scenarios.ModeExternal && !kp.Present:
		return fmt.Errorf("%w: %s: %w", clusters.ErrModeUnavailable, mode, ErrNoKubeProxy)
	case mode != scenarios.ModeExternal && kp.Mode != mode && kp.ConfigMapMissing:
		return fmt.Errorf("%w: %s: kube-proxy runs in mode %s and has no kube-system/kube-proxy ConfigMap to switch it with", clusters.ErrModeUnavailable, mode, kp.Mode)
	case mode != scenarios.ModeExternal && kp.Mode != mode && !p.opts.Confirm:
		return fmt.Errorf("kube-proxy runs in mode %s, %s asked: %w", kp.Mode, mode, ErrNotConfirmed)
	}
	return nil
}

// recordOriginal writes kube-proxy's mode as found, unless a state file
// from an earlier, unfinished run already holds the true original.
func (p *Provider) recordOriginal(kp KubeProxyState) (*state, error) {
	st, err := loadState(p.statePath)
	if err != nil {
		return nil, err
	}
	if st != nil {
		if st.Switched && !p.switchedHere() {
			p.opts.Logger.Warn("an earlier run did not restore kube-proxy's mode; keeping its record of the original", "originalMode", st.OriginalMode)
		}
		return st, nil
	}
	st = &state{Kubeconfig: p.kubeconfig, Context: p.opts.Context, OriginalMode: kp.RawMode, OriginalScheduler: kp.Scheduler}
	if err := saveState(p.statePath, st); err != nil {
		return nil, err
	}
	return st, nil
}

func (p *Provider) switchedHere() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.switched
}

// placementFor decides which nodes are the client and the servers: nodes
// labelled kpbench.io/role=client|server, else Options.ClientNode and any
// other node.
func (p *Provider) placementFor(ctx context.Context) (manifests.Config, error) {
	cfg := manifests.Config{
		Image:      p.opts.Image,
		PullPolicy: p.opts.PullPolicy,
		Backends:   p.opts.Backends,
	}
	nodes, err := p.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return cfg, fmt.Errorf("listing nodes: %w", err)
	}
	var clientsByLabel, serversByLabel, all []string
	for _, n := range nodes.Items {
		all = append(all, n.Name)
		switch n.Labels[manifests.LabelRole] {
		case manifests.RoleClient:
			clientsByLabel = append(clientsByLabel, n.Name)
		case manifests.RoleServer:
			serversByLabel = append(serversByLabel, n.Name)
		}
	}
	switch {
	case p.opts.ClientNode != "":
		found := false
		for _, n := range all {
			found = found || n == p.opts.ClientNode
		}
		if !found {
			return cfg, fmt.Errorf("client node %q not found among %d nodes", p.opts.ClientNode, len(all))
		}
		cfg.ClientSelector = map[string]string{corev1.LabelHostname: p.opts.ClientNode}
		cfg.AvoidNodes = []string{p.opts.ClientNode}
	case len(clientsByLabel) > 0:
		cfg.ClientSelector = map[string]string{manifests.LabelRole: manifests.RoleClient}
		cfg.AvoidNodes = clientsByLabel
	default:
		return cfg, fmt.Errorf("no client node: label one with `kubectl label node NAME %s=%s` or pass --client-node NAME", manifests.LabelRole, manifests.RoleClient)
	}
	if len(serversByLabel) > 0 {
		cfg.ServerSelector = map[string]string{manifests.LabelRole: manifests.RoleServer}
	} else {
		cfg.ServerSelector = map[string]string{}
		if len(all) == len(cfg.AvoidNodes) {
			// A single-node cluster: backends share the client node.
			cfg.AvoidNodes = nil
		}
	}
	if cfg.ClientSelector[corev1.LabelHostname] != "" && len(serversByLabel) > 0 {
		cfg.AvoidNodes = nil
	}
	sort.Strings(cfg.AvoidNodes)
	p.mu.Lock()
	p.placement = cfg
	p.mu.Unlock()
	return cfg, nil
}

// Placement returns the workload configuration Up chose.
func (p *Provider) Placement() manifests.Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.placement
}

// SetMode switches kube-proxy to mode: it patches config.conf's mode (and
// ipvs.scheduler when configured), restarts the DaemonSet like `kubectl
// rollout restart`, waits for the rollout and verifies the mode on the
// client node. Without confirmation it changes nothing.
func (p *Provider) SetMode(ctx context.Context, mode scenarios.Mode) error {
	kp, err := ReadKubeProxy(ctx, p.cs)
	if err != nil {
		return err
	}
	if err := p.checkModeRequest(kp, mode); err != nil {
		return err
	}
	if mode == scenarios.ModeExternal {
		return nil
	}
	var sched *string
	if p.opts.IPVSScheduler != "" && mode == scenarios.ModeIPVS {
		sched = &p.opts.IPVSScheduler
	}
	if kp.Mode == mode && (sched == nil || kp.Scheduler == *sched) {
		return p.waitVerify(ctx, mode)
	}
	if !p.opts.Confirm {
		return fmt.Errorf("switching kube-proxy from %s to %s: %w", kp.Mode, mode, ErrNotConfirmed)
	}
	st, err := p.recordOriginal(kp)
	if err != nil {
		return err
	}
	st.Switched = true
	if err := saveState(p.statePath, st); err != nil {
		return err
	}
	p.mu.Lock()
	p.switched = true
	p.mu.Unlock()
	p.opts.Logger.Info("switching kube-proxy", "from", kp.Mode, "to", mode)
	if err := p.applyMode(ctx, string(mode), sched); err != nil {
		return err
	}
	return p.waitVerify(ctx, mode)
}

// applyMode writes the ConfigMap and rolls kube-proxy.
func (p *Provider) applyMode(ctx context.Context, raw string, sched *string) error {
	if _, err := WriteMode(ctx, p.cs, raw, sched); err != nil {
		return err
	}
	gen, err := RestartKubeProxy(ctx, p.cs, p.opts.Now())
	if err != nil {
		return err
	}
	return WaitKubeProxyRollout(ctx, p.cs, gen, p.opts.PollInterval, p.opts.RolloutTimeout)
}

// waitVerify retries VerifyMode while the restarted kube-proxy comes up.
func (p *Provider) waitVerify(ctx context.Context, mode scenarios.Mode) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, p.opts.PollInterval, p.opts.RolloutTimeout, true, func(ctx context.Context) (bool, error) {
		last = p.VerifyMode(ctx, mode)
		return last == nil, nil
	})
	if err != nil && last != nil {
		return last
	}
	return err
}

// VerifyMode checks kube-proxy's /proxyMode on the client node and that
// rules of that kind exist there. For external it checks that kube-proxy
// is absent.
func (p *Provider) VerifyMode(ctx context.Context, mode scenarios.Mode) error {
	if mode == scenarios.ModeExternal {
		kp, err := ReadKubeProxy(ctx, p.cs)
		if err != nil {
			return err
		}
		if kp.Present {
			return fmt.Errorf("mode external: kube-proxy runs in the cluster (mode %s)", kp.Mode)
		}
		return nil
	}
	if err := kubeproxy.Verify(ctx, p.agent.KubeProxyGet, kubeproxy.NodeRunner(p.agent.Run), mode); err != nil {
		return fmt.Errorf("kube-proxy on node %s: %w", p.agent.NodeName(ctx), err)
	}
	return nil
}

// Down restores kube-proxy's original mode and deletes the kpbench
// namespace, unless Keep. It works from the state file, so it is safe
// after a crash and when called twice.
func (p *Provider) Down(ctx context.Context) error {
	return p.down(ctx, p.opts.Keep)
}

// down undoes what kpbench did; keep leaves the mode and the namespace.
func (p *Provider) down(ctx context.Context, keep bool) error {
	st, err := loadState(p.statePath)
	if err != nil {
		return err
	}
	var errs []error
	if st != nil && st.Switched && !keep {
		p.opts.Logger.Info("restoring kube-proxy's mode", "mode", EffectiveMode(st.OriginalMode))
		if err := p.applyMode(ctx, st.OriginalMode, &st.OriginalScheduler); err != nil {
			errs = append(errs, fmt.Errorf("restoring kube-proxy's mode %s: %w", EffectiveMode(st.OriginalMode), err))
		} else if err := p.waitVerify(ctx, EffectiveMode(st.OriginalMode)); err != nil {
			p.opts.Logger.Warn("could not verify the restored mode", "err", err)
		}
	}
	if !keep {
		if err := DeleteNamespace(ctx, p.cs, p.opts.PollInterval, p.opts.ReadyTimeout); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if st != nil {
		if err := os.Remove(p.statePath); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing state: %w", err)
		}
	}
	return nil
}

// Capabilities reports the modes this cluster can be measured in.
func (p *Provider) Capabilities(ctx context.Context) (clusters.Capabilities, error) {
	kp, err := ReadKubeProxy(ctx, p.cs)
	if err != nil {
		return clusters.Capabilities{}, err
	}
	caps := clusters.Capabilities{Modes: map[scenarios.Mode]string{}}
	if !kp.Present {
		for _, m := range scenarios.Modes {
			caps.Modes[m] = "kube-proxy is replaced here (no kube-system/kube-proxy DaemonSet); measured as mode external"
		}
		caps.Modes[scenarios.ModeExternal] = ""
		return caps, nil
	}
	caps.Modes[scenarios.ModeExternal] = fmt.Sprintf("kube-proxy runs here (mode %s); external is for kube-proxy replacements", kp.Mode)
	version := ImageVersion(kp.Image)
	for _, m := range scenarios.Modes {
		reason := ""
		switch {
		case m == kp.Mode:
		case kp.ConfigMapMissing:
			reason = "no kube-system/kube-proxy ConfigMap to switch kube-proxy's mode with"
		case !p.opts.Confirm:
			reason = "switching kube-proxy's mode on an existing cluster needs --yes"
		}
		if d, ok := kubeproxy.For(m); reason == "" && ok {
			if reason = d.KubeProxyTooOld(version); reason == "" {
				reason = d.Unavailable(p.nodeHost(ctx))
			}
		}
		caps.Modes[m] = reason
	}
	return caps, nil
}

// nodeHost is what a mode's descriptor judges on the client node, asked
// through the agent: its kernel release and whether it has IP_VS. Without
// an agent yet neither is known, and nothing is ruled out. The node's
// tools are its kube-proxy image's, not looked up.
func (p *Provider) nodeHost(ctx context.Context) kubeproxy.Host {
	h := kubeproxy.Host{IPVS: func() (bool, string) {
		reason := p.probeIPVS(ctx)
		return reason == "", reason
	}}
	if _, _, err := p.agent.Pod(ctx); err == nil {
		var out bytes.Buffer
		if err := p.agent.Run(ctx, nil, &out, nil, append(AgentCat, manifests.HostProcPath+"/sys/kernel/osrelease")...); err == nil {
			h.KernelRelease = strings.TrimSpace(out.String())
		}
	}
	return h
}

// probeIPVS asks the agent whether the client node's kernel has IP_VS;
// without an agent yet it cannot tell and says nothing.
func (p *Provider) probeIPVS(ctx context.Context) string {
	if _, _, err := p.agent.Pod(ctx); err != nil {
		return ""
	}
	var out bytes.Buffer
	err := p.agent.Run(ctx, nil, &out, nil, "kpbench", "cluster", "agent", "ipvs",
		"--proc", manifests.HostProcPath, "--root", manifests.HostRootPath)
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Stderr != "" {
			return exit.Stderr
		}
		return "the client node's kernel has no IP_VS"
	}
	return ""
}

// Describe gives run.json's provider details: the kubeconfig context
// (never its credentials), the measured client node, the images. An
// existing cluster has no name of kpbench's making: the cluster is "".
func (p *Provider) Describe(ctx context.Context) (cluster string, details map[string]string) {
	d := map[string]string{"image": manifests.Config{Image: p.opts.Image}.Defaulted().Image}
	if p.opts.Context != "" {
		d["context"] = p.opts.Context
	}
	if n := p.agent.NodeName(ctx); n != "" {
		d["clientNode"] = n
	}
	if kp, err := ReadKubeProxy(ctx, p.cs); err == nil {
		if kp.Present {
			d["kubeProxyImage"] = kp.Image
		} else {
			d["kubeProxy"] = "replaced (no kube-system/kube-proxy DaemonSet)"
		}
	}
	return "", d
}

// Backends returns the ready backend pods' addresses.
func (p *Provider) Backends(ctx context.Context) ([]clusters.Endpoint, error) {
	eps, err := ReadyBackends(ctx, p.cs)
	if err != nil {
		return nil, err
	}
	if len(eps) == 0 {
		return nil, errors.New("no ready backend pods in namespace " + manifests.Namespace)
	}
	return eps, nil
}

// Versions reports the API server's and kube-proxy's versions.
func (p *Provider) Versions(ctx context.Context) (clusters.Versions, error) {
	sv, err := p.cs.Discovery().ServerVersion()
	if err != nil {
		return clusters.Versions{}, fmt.Errorf("reading the server version: %w", err)
	}
	kp, err := ReadKubeProxy(ctx, p.cs)
	if err != nil {
		return clusters.Versions{}, err
	}
	v := clusters.Versions{Kubernetes: sv.GitVersion}
	if kp.Present {
		v.KubeProxy = ImageVersion(kp.Image)
	}
	return v, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("invalid pod IP %q: %w", s, err)
	}
	return a.Unmap(), nil
}
