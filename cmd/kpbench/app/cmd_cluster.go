package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/existing"
	"github.com/kpbench/kpbench/clusters/kind"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/clusters/manifests"
	"github.com/kpbench/kpbench/clusters/providers"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/scenarios"
)

// clusterFlags are the flags that pick and configure an in-cluster
// provider (kind or existing). `kpbench run` can register them too and
// build its provider with provider().
type clusterFlags struct {
	provider      string
	name          string
	kubeconfig    string
	context       string
	yes           bool
	keep          bool
	retain        bool
	workers       int
	clients       int
	k8sImage      string
	imageArchive  string
	image         string
	pullPolicy    string
	clientNode    string
	ipvsScheduler string
	waitReady     time.Duration
}

func (f *clusterFlags) register(fs *pflag.FlagSet, providerDefault string) {
	fs.StringVar(&f.provider, "provider", providerDefault, "cluster provider: kind or existing")
	fs.StringVar(&f.name, "name", kind.DefaultName, "kind cluster name")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of an existing cluster (default $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&f.context, "context", "", "kubeconfig context (default: the current one)")
	fs.BoolVar(&f.yes, "yes", false, "allow switching kube-proxy's mode on an existing cluster (patches kube-system/kube-proxy and restarts it)")
	fs.BoolVar(&f.keep, "keep", false, "keep the cluster (kind) or the switched mode and kpbench's namespace (existing) at the end")
	fs.BoolVar(&f.retain, "retain", false, "keep what a failed create or start made, for debugging")
	fs.IntVar(&f.workers, "workers", 1, "kind: server nodes running the backends")
	fs.IntVar(&f.clients, "clients", 1, "kind: client nodes (kube-proxy under test, agent, load clients)")
	fs.StringVar(&f.k8sImage, "k8s-image", "", "kind: node image, e.g. kindest/node:v1.33.1 (default: kind's)")
	fs.StringVar(&f.imageArchive, "image-archive", "", "kind: kpbench image tarball to load (default: built from this binary)")
	fs.StringVar(&f.image, "image", "", "existing: kpbench image reference the cluster can pull (see kpbench image build --push)")
	fs.StringVar(&f.pullPolicy, "pull-policy", "", "existing: image pull policy (Always, IfNotPresent, Never; default IfNotPresent)")
	fs.StringVar(&f.clientNode, "client-node", "", "existing: client node name when no node is labelled kpbench.io/role=client")
	fs.StringVar(&f.ipvsScheduler, "ipvs-scheduler", "", "ipvs.scheduler to set when switching to ipvs (default: leave as is)")
	fs.DurationVar(&f.waitReady, "wait", 5*time.Minute, "how long to wait for the control plane and kpbench's pods")
}

// registerForRun registers the provider flags on `kpbench run`, which
// has its own --provider (lab, kind, existing) and --keep.
func (f *clusterFlags) registerForRun(fs *pflag.FlagSet) {
	tmp := pflag.NewFlagSet("cluster", pflag.ContinueOnError)
	f.register(tmp, "kind")
	tmp.VisitAll(func(fl *pflag.Flag) {
		switch fl.Name {
		case "provider", "keep":
			return
		case "name":
			fl.Usage = "kind: cluster name"
		case "wait":
			fl.Usage = "kind, existing: how long to wait for the control plane and kpbench's pods"
		}
		fs.AddFlag(fl)
	})
}

func (f *clusterFlags) validate() error {
	var errs []error
	switch f.provider {
	case "kind", "existing":
	default:
		errs = append(errs, fmt.Errorf("--provider must be kind or existing, got %q", f.provider))
	}
	switch corev1.PullPolicy(f.pullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		errs = append(errs, fmt.Errorf("--pull-policy must be Always, IfNotPresent or Never, got %q", f.pullPolicy))
	}
	if f.workers < 1 {
		errs = append(errs, fmt.Errorf("--workers must be at least 1, got %d", f.workers))
	}
	if f.clients < 1 {
		errs = append(errs, fmt.Errorf("--clients must be at least 1, got %d", f.clients))
	}
	if f.provider == "existing" && f.image == "" && f.imageArchive != "" {
		errs = append(errs, errors.New("--image-archive is for kind; an existing cluster pulls --image from a registry"))
	}
	if err := errors.Join(errs...); err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	return nil
}

// providerOptions are the provider options the flags describe for a
// scenario: its backend count and load clients (kind makes a client node
// per load client unless --clients asks for more).
func (f *clusterFlags) providerOptions(g *globals, spec scenarios.Spec) providers.Options {
	return providers.Options{
		Backends:    spec.Backends,
		LoadClients: spec.Load.Clients,
		Keep:        f.keep,
		Logger:      g.logger,
		Kind: kind.Options{
			Name:          f.name,
			Topology:      kind.Topology{ClientNodes: f.clients, ServerNodes: f.workers, NodeImage: f.k8sImage},
			ImageArchive:  f.imageArchive,
			Retain:        f.retain,
			IPVSScheduler: f.ipvsScheduler,
			WaitForReady:  f.waitReady,
			Version:       Version,
		},
		Existing: f.existingOptions(),
	}
}

// newProvider builds the in-cluster provider (kind or existing) the flags
// describe for a scenario.
func (f *clusterFlags) newProvider(g *globals, spec scenarios.Spec) (clusters.Provider, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	return providers.New(f.provider, f.providerOptions(g, spec))
}

func (f *clusterFlags) existingOptions() existing.Options {
	return existing.Options{
		Kubeconfig:    f.kubeconfig,
		Context:       f.context,
		Confirm:       f.yes,
		Keep:          f.keep,
		Retain:        f.retain,
		IPVSScheduler: f.ipvsScheduler,
		Image:         f.image,
		PullPolicy:    corev1.PullPolicy(f.pullPolicy),
		ClientNode:    f.clientNode,
		ReadyTimeout:  f.waitReady,
	}
}

// existing is the existing-cluster provider for the cluster subcommands,
// which need its own methods (KubeProxy, Clientset).
func (f *clusterFlags) existing(g *globals, backends int) (*existing.Provider, error) {
	o := f.existingOptions()
	o.Backends, o.Logger = backends, g.logger
	return existing.New(o)
}

// kubeconfigFor is the kubeconfig of the cluster the flags name.
func (f *clusterFlags) kubeconfigFor(g *globals) (string, error) {
	if f.provider != "kind" {
		return f.kubeconfig, nil
	}
	p, err := kind.New(kind.Options{Name: f.name, Logger: g.logger})
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p.KubeconfigPath()); err != nil {
		return "", badInput(fmt.Errorf("kind cluster %s: no kubeconfig at %s (create it with `kpbench cluster create --name %s`)", f.name, p.KubeconfigPath(), f.name))
	}
	return p.KubeconfigPath(), nil
}

func parseMode(s string, allowExternal bool) (scenarios.Mode, error) {
	m := scenarios.Mode(s)
	if !m.Valid() || (m == scenarios.ModeExternal && !allowExternal) {
		return "", &ExitError{Code: 2, Err: fmt.Errorf("unknown proxy mode %q: want iptables, ipvs or nftables", s)}
	}
	return m, nil
}

func newClusterCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Create kind clusters for kpbench and inspect or switch kube-proxy's mode",
		Long: `cluster manages the clusters kpbench measures beyond the local lab:

  create    a kind cluster with kube-proxy in a given mode, a client node and
            server nodes labelled kpbench.io/role=client|server, and the
            kpbench image loaded into its nodes
  delete    a kind cluster
  mode      show kube-proxy's mode (ConfigMap and, if the agent runs, /proxyMode)
  set-mode  switch kube-proxy's mode (patches kube-system/kube-proxy, restarts
            the DaemonSet, waits for the rollout); --yes required
  cleanup   after an interrupted run on an existing cluster: restore
            kube-proxy's original mode and delete the kpbench namespace
  manifests print the objects kpbench deploys (namespace, backends, agent,
            load Jobs) as YAML, to review before a run

kpbench run --provider kind|existing does all of this itself.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newClusterCreateCmd(g), newClusterDeleteCmd(g), newClusterModeCmd(g), newClusterSetModeCmd(g), newClusterCleanupCmd(g), newClusterManifestsCmd(g), newClusterAgentCmd(g))
	return cmd
}

func newClusterCreateCmd(g *globals) *cobra.Command {
	var (
		f      clusterFlags
		mode   string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "create --provider kind --mode MODE [--workers N] [--clients N] [--name NAME] [--k8s-image IMAGE]",
		Short: "Create a kind cluster for kpbench",
		Long: `create writes a kind (v1alpha4) config with networking.kubeProxyMode set to
MODE, one control-plane node, --clients worker(s) labelled
kpbench.io/role=client and --workers worker(s) labelled kpbench.io/role=server,
creates the cluster, and loads the kpbench image into every node (from
--image-archive, else built from this binary). A failed create deletes what it
made unless --retain. --dry-run prints the kind config and creates nothing.

The cluster's kubeconfig is written under kpbench's cache directory (never
into ~/.kube/config); its path is printed.`,
		Example: `  kpbench cluster create --provider kind --mode nftables --dry-run
  kpbench cluster create --provider kind --mode iptables --workers 2 --image-archive kpbench.tar`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.provider != "kind" {
				return &ExitError{Code: 2, Err: fmt.Errorf("create makes kind clusters; an existing cluster needs none (use kpbench run --provider existing, or kpbench cluster mode)")}
			}
			m, err := parseMode(mode, false)
			if err != nil {
				return err
			}
			if err := f.validate(); err != nil {
				return err
			}
			topo := kind.Topology{ClientNodes: f.clients, ServerNodes: f.workers, NodeImage: f.k8sImage}
			cfg, err := kind.Config(m, topo)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if dryRun {
				b, err := kind.ConfigYAML(cfg)
				if err != nil {
					return err
				}
				_, err = g.stdout.Write(b)
				return err
			}
			p, err := kind.New(kind.Options{
				Name: f.name, Topology: topo, ImageArchive: f.imageArchive, Retain: f.retain,
				WaitForReady: f.waitReady, Version: Version, Logger: g.logger,
			})
			if err != nil {
				return err
			}
			exists, err := p.Exists()
			if err != nil {
				return err
			}
			if exists {
				return &ExitError{Code: 2, Err: fmt.Errorf("kind cluster %s exists; delete it first or pick another --name", f.name)}
			}
			if err := p.Create(cmd.Context(), m); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "kind cluster %s is up with kube-proxy in %s mode\nkubeconfig: %s\n", f.name, m, p.KubeconfigPath())
			return nil
		},
	}
	f.register(cmd.Flags(), "kind")
	cmd.Flags().StringVar(&mode, "mode", string(scenarios.ModeIPTables), "kube-proxy mode: iptables, ipvs or nftables")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the kind config and create nothing")
	hideExcept(cmd.Flags(), "provider", "name", "mode", "workers", "clients", "k8s-image", "image-archive", "retain", "dry-run", "wait")
	return cmd
}

// hideExcept hides the shared cluster flags a subcommand does not use.
func hideExcept(fs *pflag.FlagSet, keep ...string) {
	fs.VisitAll(func(fl *pflag.Flag) {
		for _, k := range keep {
			if fl.Name == k {
				return
			}
		}
		fl.Hidden = true
	})
}

func newClusterDeleteCmd(g *globals) *cobra.Command {
	var f clusterFlags
	cmd := &cobra.Command{
		Use:   "delete [--name NAME]",
		Short: "Delete a kind cluster made by kpbench cluster create",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := kind.New(kind.Options{Name: f.name, Logger: g.logger})
			if err != nil {
				return err
			}
			if err := p.Down(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "kind cluster %s deleted\n", f.name)
			return nil
		},
	}
	f.register(cmd.Flags(), "kind")
	hideExcept(cmd.Flags(), "name")
	return cmd
}

func newClusterModeCmd(g *globals) *cobra.Command {
	var f clusterFlags
	cmd := &cobra.Command{
		Use:   "mode [--provider existing|kind] [--kubeconfig FILE] [--context NAME]",
		Short: "Show kube-proxy's mode",
		Long: `mode prints kube-proxy's mode as the kube-system/kube-proxy ConfigMap sets it
(an empty mode is iptables on Linux) and, when kpbench's agent runs on the
client node, as kube-proxy reports it on /proxyMode. A cluster without a
kube-proxy DaemonSet runs a replacement: its mode is "external".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			kc, err := f.kubeconfigFor(g)
			if err != nil {
				return err
			}
			f.kubeconfig = kc
			p, err := f.existing(g, 0)
			if err != nil {
				return err
			}
			kp, err := p.KubeProxy(ctx)
			if err != nil {
				return err
			}
			switch {
			case !kp.Present:
				fmt.Fprintf(g.stdout, "mode: %s (no kube-system/kube-proxy DaemonSet: kube-proxy is replaced)\n", scenarios.ModeExternal)
				return nil
			case kp.ConfigMapMissing:
				fmt.Fprintf(g.stdout, "configmap: none (kube-proxy %s is configured otherwise; kpbench cannot switch it)\n", existing.ImageVersion(kp.Image))
			default:
				raw := kp.RawMode
				if raw == "" {
					raw = `"" (default)`
				}
				fmt.Fprintf(g.stdout, "configmap: %s (mode: %s)\n", kp.Mode, raw)
				if kp.Scheduler != "" {
					fmt.Fprintf(g.stdout, "ipvs scheduler: %s\n", kp.Scheduler)
				}
			}
			fmt.Fprintf(g.stdout, "kube-proxy: %s\n", existing.ImageVersion(kp.Image))
			node := p.ClientNode().(*existing.AgentNode)
			got, err := kubeproxy.ReadProxyMode(ctx, node.KubeProxyGet)
			switch {
			case errors.Is(err, existing.ErrNoAgent):
				fmt.Fprintln(g.stdout, "proxyMode: unknown (no kpbench agent running; kpbench run deploys it)")
			case err != nil:
				return err
			default:
				fmt.Fprintf(g.stdout, "proxyMode: %s (node %s)\n", got, node.NodeName(ctx))
			}
			return nil
		},
	}
	f.register(cmd.Flags(), "existing")
	hideExcept(cmd.Flags(), "provider", "name", "kubeconfig", "context")
	return cmd
}

func newClusterSetModeCmd(g *globals) *cobra.Command {
	var f clusterFlags
	cmd := &cobra.Command{
		Use:   "set-mode MODE --yes [--ipvs-scheduler NAME] [--provider existing|kind]",
		Short: "Switch kube-proxy's mode (patch its ConfigMap, restart it)",
		Long: `set-mode patches mode (and ipvs.scheduler with --ipvs-scheduler) in the
kube-system/kube-proxy ConfigMap's config.conf, restarts the kube-proxy
DaemonSet like 'kubectl rollout restart', and waits for the rollout. When
kpbench's agent runs on the client node it also checks /proxyMode and the
mode's rules there. It restarts kube-proxy on every node: --yes is required.
The change stays; kpbench run restores the original mode itself.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			m, err := parseMode(args[0], false)
			if err != nil {
				return err
			}
			if !f.yes && f.provider == "existing" {
				return &ExitError{Code: 2, Err: existing.ErrNotConfirmed}
			}
			kc, err := f.kubeconfigFor(g)
			if err != nil {
				return err
			}
			f.kubeconfig, f.yes = kc, true
			p, err := f.existing(g, 0)
			if err != nil {
				return err
			}
			node := p.ClientNode().(*existing.AgentNode)
			if _, _, err := node.Pod(ctx); err == nil {
				if err := p.SetMode(ctx, m); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "kube-proxy runs in %s mode (verified on node %s)\n", m, node.NodeName(ctx))
				return nil
			}
			kp, err := p.KubeProxy(ctx)
			if err != nil {
				return err
			}
			if !kp.Present {
				return fmt.Errorf("%w: %w", clusters.ErrModeUnavailable, existing.ErrNoKubeProxy)
			}
			var sched *string
			if f.ipvsScheduler != "" {
				sched = &f.ipvsScheduler
			}
			changed, err := existing.WriteMode(ctx, p.Clientset(), string(m), sched)
			if err != nil {
				return err
			}
			if !changed {
				fmt.Fprintf(g.stdout, "kube-proxy is already configured for %s mode\n", m)
				return nil
			}
			gen, err := existing.RestartKubeProxy(ctx, p.Clientset(), time.Now())
			if err != nil {
				return err
			}
			if err := existing.WaitKubeProxyRollout(ctx, p.Clientset(), gen, 2*time.Second, f.waitReady); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "kube-proxy restarted in %s mode (not verified on a node: no kpbench agent running)\n", m)
			return nil
		},
	}
	f.register(cmd.Flags(), "existing")
	hideExcept(cmd.Flags(), "provider", "name", "kubeconfig", "context", "yes", "ipvs-scheduler", "wait")
	return cmd
}

func newClusterCleanupCmd(g *globals) *cobra.Command {
	var f clusterFlags
	cmd := &cobra.Command{
		Use:   "cleanup [--kubeconfig FILE] [--context NAME]",
		Short: "Restore kube-proxy's original mode and delete kpbench's namespace",
		Long: `cleanup undoes what an interrupted 'kpbench run --provider existing' left: it
restores kube-proxy's mode as kpbench first found it (recorded in kpbench's
cache directory before the first change) and deletes the kpbench namespace.
It is safe to run when there is nothing to undo.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.keep = false
			p, err := f.existing(g, 0)
			if err != nil {
				return err
			}
			if err := p.Down(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(g.stdout, "kube-proxy's original mode is in place and the kpbench namespace is gone")
			return nil
		},
	}
	f.register(cmd.Flags(), "existing")
	hideExcept(cmd.Flags(), "kubeconfig", "context", "wait")
	return cmd
}

func newClusterManifestsCmd(g *globals) *cobra.Command {
	var (
		backends, clients int
		image, clientNode string
	)
	cmd := &cobra.Command{
		Use:   "manifests [--backends N] [--clients N] [--image REF] [--client-node NAME]",
		Short: "Print the Kubernetes objects kpbench deploys, as YAML",
		Long: `manifests prints what kpbench creates in a cluster — the kpbench namespace,
the backend Deployment, the CPU agent DaemonSet and the load client Jobs of one
window (with placeholder load arguments) — so it can be reviewed, or checked
with 'kubectl apply --dry-run=server -f -'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := manifests.Config{Backends: backends, Image: image}
			if clientNode != "" {
				cfg.ClientSelector = map[string]string{corev1.LabelHostname: clientNode}
				cfg.ServerSelector = map[string]string{}
				cfg.AvoidNodes = []string{clientNode}
			}
			objs, err := manifests.Workloads(cfg)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			jobs, err := manifests.LoadJobs(cfg, manifests.LoadSpec{
				RunID: "example", Clients: clients, Deadline: 30 * time.Second,
				Args: []string{"--rate", "1000", "--duration", "20s"},
			})
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			for _, j := range jobs {
				objs = append(objs, j)
			}
			for _, o := range objs {
				b, err := yaml.Marshal(o)
				if err != nil {
					return err
				}
				if _, err := fmt.Fprintf(g.stdout, "---\n%s", b); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&backends, "backends", 10, "backend replicas")
	cmd.Flags().IntVar(&clients, "clients", 1, "load client Jobs")
	cmd.Flags().StringVar(&image, "image", manifests.DefaultImage, "kpbench image")
	cmd.Flags().StringVar(&clientNode, "client-node", "", "pin to this node instead of kpbench.io/role labels")
	return cmd
}

// newClusterAgentCmd is what the CPU agent pod runs: it idles until
// SIGTERM so kpbench can exec its probes into the pod, which shares the
// client node's PID and network namespaces.
func newClusterAgentCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "Idle in the CPU agent pod until terminated",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g.logger.Info("kpbench agent ready", "procRoot", manifests.HostProcPath, "hostRoot", manifests.HostRootPath)
			<-cmd.Context().Done()
			return nil
		},
	}
	get := &cobra.Command{
		Use:   "get URL",
		Short: "GET a loopback URL (kube-proxy's metrics port) and print the body",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return existing.AgentGet(cmd.Context(), args[0], g.stdout)
		},
	}
	var procRoot, rootFS string
	pid := &cobra.Command{
		Use:   "pid NAME",
		Short: "Print the PID of the process named NAME",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := existing.FindPID(procRoot, args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, p)
			return err
		},
	}
	pid.Flags().StringVar(&procRoot, "proc", manifests.HostProcPath, "proc filesystem to search")
	cat := &cobra.Command{
		Use:   "cat FILE",
		Short: "Print a file under the node's /proc",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !strings.HasPrefix(args[0], manifests.HostProcPath+"/") {
				return &ExitError{Code: 2, Err: fmt.Errorf("cat reads files under %s only", manifests.HostProcPath)}
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(b)
			return err
		},
	}
	ipvs := &cobra.Command{
		Use:   "ipvs",
		Short: "Exit 0 when the node's kernel can run IPVS, else explain on stderr and exit 1",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ok, reason := kubeproxy.IPVSAvailable(procRoot, rootFS); !ok {
				fmt.Fprintln(g.stderr, reason)
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	ipvs.Flags().StringVar(&procRoot, "proc", manifests.HostProcPath, "the node's proc filesystem")
	ipvs.Flags().StringVar(&rootFS, "root", manifests.HostRootPath, "the node's root filesystem")
	host := &cobra.Command{
		Use:                "host -- COMMAND [ARGS...]",
		Short:              "Run a command from the node's root filesystem (iptables-save, nft, ipvsadm)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			if len(args) == 0 {
				return badInput(errors.New("host: no command: kpbench cluster agent host -- COMMAND [ARGS...]"))
			}
			c, err := existing.HostCommand(cmd.Context(), manifests.HostRootPath, args)
			if err != nil {
				return &ExitError{Code: 127, Err: err}
			}
			c.Stdin, c.Stdout, c.Stderr = g.stdin, g.stdout, g.stderr
			err = c.Run()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return &ExitError{Code: exit.ExitCode()}
			}
			return err
		},
	}
	cmd.AddCommand(get, pid, cat, ipvs, host, newAgentPointCmd(g))
	return cmd
}

// newAgentPointCmd measures one point's window on the node the agent runs
// on: what `kpbench run` on kind or an existing cluster execs into the
// agent pod (and what the lab's in-cluster path tests run in its node).
func newAgentPointCmd(g *globals) *cobra.Command {
	var (
		procRoot, cpuList, metricsURL, family string
		kpPID, netnsPID                       int
		noKubeProxy                           bool
		interval, maxDuration                 time.Duration
	)
	cmd := &cobra.Command{
		Use:   "point [--proc DIR] [--cpus LIST] [--kube-proxy-pid N] [--interval 1s]",
		Short: "Measure node CPU, kube-proxy, conntrack and sync metrics until stdin closes",
		Long: `point starts the collector's point measurement, prints {"ready":true} once
sampling runs, waits for a line or the end of its standard input (or
--max-duration), then
prints the point's result as JSON: CPU series and summary, conntrack and
kube-proxy sync deltas, raw metrics. kube-proxy is found by name under --proc
unless --kube-proxy-pid is given; its metrics are read from --metrics-url,
which must be on loopback.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fs, cpus, err := procFlags(procRoot, cpuList)
			if err != nil {
				return err
			}
			if noKubeProxy {
				kpPID, metricsURL = 0, ""
			} else if kpPID == 0 {
				if kpPID, err = existing.FindPID(procRoot, "kube-proxy"); err != nil {
					return err
				}
			}
			if netnsPID == 0 {
				netnsPID = kpPID // 0 without kube-proxy: the agent's own, the node's (hostNetwork)
			}
			cfg := collector.PointConfig{CPUs: cpus, KubeProxyPID: kpPID, NetnsPID: netnsPID, Interval: interval}
			if metricsURL != "" {
				base := strings.TrimRight(metricsURL, "/")
				cfg.KubeProxy = &collector.KubeProxyScraper{IPFamily: family, Fetch: func(ctx context.Context, path string) ([]byte, error) {
					var b bytes.Buffer
					err := existing.AgentGet(ctx, base+path, &b)
					return b.Bytes(), err
				}}
			}
			return collector.ServeRemotePoint(cmd.Context(), fs, cfg, g.stdin, g.stdout, maxDuration)
		},
	}
	f := cmd.Flags()
	f.StringVar(&procRoot, "proc", manifests.HostProcPath, "the node's proc filesystem")
	f.StringVar(&cpuList, "cpus", "", "CPUs whose time is the node's (default: all)")
	f.IntVar(&kpPID, "kube-proxy-pid", 0, "kube-proxy's PID under --proc (default: found by name)")
	f.BoolVar(&noKubeProxy, "no-kube-proxy", false, "the node has no kube-proxy (a replacement, mode external): node CPU and conntrack only")
	f.IntVar(&netnsPID, "netns-pid", 0, "a process in the node's network namespace, for conntrack (default: kube-proxy)")
	f.StringVar(&metricsURL, "metrics-url", existing.KubeProxyMetricsURL, "kube-proxy's metrics server (loopback only; empty: do not scrape)")
	f.StringVar(&family, "ip-family", "IPv4", "keep kube-proxy series of this ip_family")
	f.DurationVar(&interval, "interval", time.Second, "CPU sampling interval")
	f.DurationVar(&maxDuration, "max-duration", time.Hour, "end the window after this long even if stdin stays open")
	return cmd
}
