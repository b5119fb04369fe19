package app

import (
	"errors"
	"fmt"
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
	"github.com/kpbench/kpbench/scenarios"
)

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
	var f clusterCreateFlags
	cmd := &cobra.Command{
		Use:   "create --provider kind --mode MODE [--workers N] [--clients N] [--name NAME] [--k8s-image IMAGE]",
		Short: "Create a kind cluster for kpbench",
		Long: `create writes a kind (v1alpha4) config with networking.kubeProxyMode set to
MODE, one control-plane node, --clients worker(s) labelled
kpbench.io/role=client and --workers worker(s) labelled kpbench.io/role=server,
creates the cluster, and loads the kpbench image into every node (from
--image-archive, else built from this binary). A failed create deletes what it
made unless --retain. --dry-run prints the kind config and creates nothing.

The node image is --k8s-image; without it, kind's default when the runtime
holds it or Docker Hub answers, else kpbench's own, built offline and cached
('kpbench image node'); --k8s-image offline asks for that one. With podman
(KIND_EXPERIMENTAL_PROVIDER=podman, or podman installed and Docker not),
kpbench points podman at a containers.conf of its own (no default ulimits,
runc) unless CONTAINERS_CONF is set.

The cluster's kubeconfig is written under kpbench's cache directory (never
into ~/.kube/config); its path is printed.`,
		Example: `  kpbench cluster create --provider kind --mode nftables --dry-run
  kpbench cluster create --provider kind --mode iptables --workers 2 --image-archive kpbench.tar`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.provider != "kind" {
				return &ExitError{Code: 2, Err: fmt.Errorf("create makes kind clusters; an existing cluster needs none (use kpbench run --provider existing, or kpbench cluster mode)")}
			}
			m, err := parseMode(f.mode, false)
			if err != nil {
				return err
			}
			if err := badFlags(f.topology.validate()); err != nil {
				return err
			}
			topo := f.topology.topology()
			check := topo // the offline image is resolved at create
			if check.NodeImage == kind.NodeImageOffline {
				check.NodeImage = ""
			}
			if _, err := kind.Config(m, check); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if f.dryRun {
				planned, err := kind.PlannedTopology(topo)
				if err != nil {
					return &ExitError{Code: 2, Err: err}
				}
				cfg, err := kind.Config(m, planned)
				if err != nil {
					return &ExitError{Code: 2, Err: err}
				}
				b, err := kind.ConfigYAML(cfg)
				if err != nil {
					return err
				}
				_, err = g.stdout.Write(b)
				return err
			}
			p, err := kind.New(kind.Options{
				Name: f.name, Topology: topo, ImageArchive: f.topology.imageArchive, Retain: f.retain,
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
	f.register(cmd.Flags())
	return cmd
}

func newClusterDeleteCmd(g *globals) *cobra.Command {
	var f clusterDeleteFlags
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
	f.register(cmd.Flags())
	return cmd
}

func newClusterModeCmd(g *globals) *cobra.Command {
	var f clusterModeFlags
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
			kc, err := f.target.kubeconfig(g)
			if err != nil {
				return err
			}
			p, err := existingProvider(g, existing.Options{Kubeconfig: kc, Context: f.target.cluster.context, ReadyTimeout: defaultWaitReady})
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
	f.register(cmd.Flags())
	return cmd
}

func newClusterSetModeCmd(g *globals) *cobra.Command {
	var f clusterSetModeFlags
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
			if !f.yes && f.target.provider == "existing" {
				return &ExitError{Code: 2, Err: existing.ErrNotConfirmed}
			}
			kc, err := f.target.kubeconfig(g)
			if err != nil {
				return err
			}
			p, err := existingProvider(g, existing.Options{
				Kubeconfig: kc, Context: f.target.cluster.context, Confirm: true,
				IPVSScheduler: f.ipvsScheduler, ReadyTimeout: f.waitReady,
			})
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
	f.register(cmd.Flags())
	return cmd
}

func newClusterCleanupCmd(g *globals) *cobra.Command {
	var f clusterCleanupFlags
	cmd := &cobra.Command{
		Use:   "cleanup [--kubeconfig FILE] [--context NAME]",
		Short: "Restore kube-proxy's original mode and delete kpbench's namespace",
		Long: `cleanup undoes what an interrupted 'kpbench run --provider existing' left: it
restores kube-proxy's mode as kpbench first found it (recorded in kpbench's
cache directory before the first change) and deletes the kpbench namespace.
It is safe to run when there is nothing to undo.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := existingProvider(g, existing.Options{Kubeconfig: f.cluster.kubeconfig, Context: f.cluster.context, ReadyTimeout: f.waitReady})
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
	f.register(cmd.Flags())
	return cmd
}

func newClusterManifestsCmd(g *globals) *cobra.Command {
	var f clusterManifestsFlags
	cmd := &cobra.Command{
		Use:   "manifests [--backends N] [--clients N] [--image REF] [--client-node NAME]",
		Short: "Print the Kubernetes objects kpbench deploys, as YAML",
		Long: `manifests prints what kpbench creates in a cluster — the kpbench namespace,
the backend Deployment, the CPU agent DaemonSet and the load client Jobs of one
window (with placeholder load arguments) — so it can be reviewed, or checked
with 'kubectl apply --dry-run=server -f -'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := manifests.Config{Backends: f.backends, Image: f.image}
			if f.clientNode != "" {
				cfg.ClientSelector = map[string]string{corev1.LabelHostname: f.clientNode}
				cfg.ServerSelector = map[string]string{}
				cfg.AvoidNodes = []string{f.clientNode}
			}
			objs, err := manifests.Workloads(cfg)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			jobs, err := manifests.LoadJobs(cfg, manifests.LoadSpec{
				RunID: "example", Clients: f.clients, Deadline: 30 * time.Second,
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
	f.register(cmd.Flags())
	return cmd
}

// clusterManifestsFlags are `kpbench cluster manifests`'s flags.
type clusterManifestsFlags struct {
	backends   int
	clients    int
	image      string
	clientNode string
}

func (f *clusterManifestsFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&f.backends, "backends", 10, "backend replicas")
	fs.IntVar(&f.clients, "clients", 1, "load client Jobs")
	fs.StringVar(&f.image, "image", manifests.DefaultImage, "kpbench image")
	fs.StringVar(&f.clientNode, "client-node", "", "pin to this node instead of kpbench.io/role labels")
}
