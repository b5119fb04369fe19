package app

// The flag values of each `kpbench cluster` subcommand and of `kpbench
// run`'s kind and existing providers: one small struct type per command
// (kind's "flagpole"), holding just the flags that command registers.
// Flags that several commands share are registered by one function each,
// so their names, defaults and help read the same everywhere.

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	"github.com/kpbench/kpbench/clusters/existing"
	"github.com/kpbench/kpbench/clusters/kind"
	"github.com/kpbench/kpbench/clusters/providers"
	"github.com/kpbench/kpbench/scenarios"
)

// defaultWaitReady is --wait's default: how long to wait for the control
// plane and kpbench's pods.
const defaultWaitReady = 5 * time.Minute

func registerProvider(fs *pflag.FlagSet, p *string, def string) {
	fs.StringVar(p, "provider", def, "cluster provider: kind or existing")
}

func registerKindName(fs *pflag.FlagSet, p *string, usage string) {
	fs.StringVar(p, "name", kind.DefaultName, usage)
}

func registerRetain(fs *pflag.FlagSet, p *bool) {
	fs.BoolVar(p, "retain", false, "keep what a failed create or start made, for debugging")
}

func registerYes(fs *pflag.FlagSet, p *bool) {
	fs.BoolVar(p, "yes", false, "allow switching kube-proxy's mode on an existing cluster (patches kube-system/kube-proxy and restarts it)")
}

func registerIPVSScheduler(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "ipvs-scheduler", "", "ipvs.scheduler to set when switching to ipvs (default: leave as is)")
}

func registerWait(fs *pflag.FlagSet, p *time.Duration, usage string) {
	fs.DurationVar(p, "wait", defaultWaitReady, usage)
}

const waitUsage = "how long to wait for the control plane and kpbench's pods"

// kubeconfigFlags name an existing cluster: --kubeconfig and --context.
type kubeconfigFlags struct {
	kubeconfig string
	context    string
}

func (f *kubeconfigFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of an existing cluster (default $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&f.context, "context", "", "kubeconfig context (default: the current one)")
}

// kindTopologyFlags shape a kind cluster: its nodes, their image and the
// kpbench image loaded into them.
type kindTopologyFlags struct {
	workers      int
	clients      int
	k8sImage     string
	imageArchive string
}

func (f *kindTopologyFlags) register(fs *pflag.FlagSet) {
	fs.IntVar(&f.workers, "workers", 1, "kind: server nodes running the backends")
	fs.IntVar(&f.clients, "clients", 1, "kind: client nodes (kube-proxy under test, agent, load clients)")
	fs.StringVar(&f.k8sImage, "k8s-image", "", "kind: node image: a reference, or offline for kpbench's (default: kind's where it can be had, else offline)")
	fs.StringVar(&f.imageArchive, "image-archive", "", "kind: kpbench image tarball to load (default: built from this binary)")
}

func (f *kindTopologyFlags) topology() kind.Topology {
	return kind.Topology{ClientNodes: f.clients, ServerNodes: f.workers, NodeImage: f.k8sImage}
}

func (f *kindTopologyFlags) validate() []error {
	var errs []error
	if f.workers < 1 {
		errs = append(errs, fmt.Errorf("--workers must be at least 1, got %d", f.workers))
	}
	if f.clients < 1 {
		errs = append(errs, fmt.Errorf("--clients must be at least 1, got %d", f.clients))
	}
	return errs
}

// badFlags is the exit-2 error of every problem in errs, or nil.
func badFlags(errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	return nil
}

// clusterCreateFlags are `kpbench cluster create`'s flags.
type clusterCreateFlags struct {
	provider  string
	name      string
	topology  kindTopologyFlags
	retain    bool
	waitReady time.Duration
	mode      string
	dryRun    bool
}

func (f *clusterCreateFlags) register(fs *pflag.FlagSet) {
	registerProvider(fs, &f.provider, "kind")
	registerKindName(fs, &f.name, "kind cluster name")
	f.topology.register(fs)
	registerRetain(fs, &f.retain)
	registerWait(fs, &f.waitReady, waitUsage)
	fs.StringVar(&f.mode, "mode", string(scenarios.ModeIPTables), "kube-proxy mode: iptables, ipvs or nftables")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the kind config and create nothing")
}

// clusterDeleteFlags are `kpbench cluster delete`'s flags.
type clusterDeleteFlags struct {
	name string
}

func (f *clusterDeleteFlags) register(fs *pflag.FlagSet) {
	registerKindName(fs, &f.name, "kind cluster name")
}

// clusterTargetFlags pick the cluster whose kube-proxy a command reads or
// switches: a kind cluster by name, or an existing one by kubeconfig.
type clusterTargetFlags struct {
	provider string
	name     string
	cluster  kubeconfigFlags
}

func (f *clusterTargetFlags) register(fs *pflag.FlagSet) {
	registerProvider(fs, &f.provider, "existing")
	registerKindName(fs, &f.name, "kind cluster name")
	f.cluster.register(fs)
}

// kubeconfig is the kubeconfig of the cluster the flags name.
func (f *clusterTargetFlags) kubeconfig(g *globals) (string, error) {
	if f.provider != "kind" {
		return f.cluster.kubeconfig, nil
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

// clusterModeFlags are `kpbench cluster mode`'s flags.
type clusterModeFlags struct {
	target clusterTargetFlags
}

func (f *clusterModeFlags) register(fs *pflag.FlagSet) { f.target.register(fs) }

// clusterSetModeFlags are `kpbench cluster set-mode`'s flags.
type clusterSetModeFlags struct {
	target        clusterTargetFlags
	yes           bool
	ipvsScheduler string
	waitReady     time.Duration
}

func (f *clusterSetModeFlags) register(fs *pflag.FlagSet) {
	f.target.register(fs)
	registerYes(fs, &f.yes)
	registerIPVSScheduler(fs, &f.ipvsScheduler)
	registerWait(fs, &f.waitReady, waitUsage)
}

// clusterCleanupFlags are `kpbench cluster cleanup`'s flags.
type clusterCleanupFlags struct {
	cluster   kubeconfigFlags
	waitReady time.Duration
}

func (f *clusterCleanupFlags) register(fs *pflag.FlagSet) {
	f.cluster.register(fs)
	registerWait(fs, &f.waitReady, waitUsage)
}

// existingProvider is the existing-cluster provider for the cluster
// subcommands, which need its own methods (KubeProxy, Clientset).
func existingProvider(g *globals, o existing.Options) (*existing.Provider, error) {
	o.Logger = g.logger
	return existing.New(o)
}

// runClusterFlags are `kpbench run`'s flags for the kind and existing
// providers (run has its own --provider and --keep).
type runClusterFlags struct {
	name          string
	topology      kindTopologyFlags
	cluster       kubeconfigFlags
	yes           bool
	retain        bool
	image         string
	pullPolicy    string
	clientNode    string
	ipvsScheduler string
	waitReady     time.Duration
}

func (f *runClusterFlags) register(fs *pflag.FlagSet) {
	registerKindName(fs, &f.name, "kind: cluster name")
	f.topology.register(fs)
	f.cluster.register(fs)
	registerYes(fs, &f.yes)
	registerRetain(fs, &f.retain)
	fs.StringVar(&f.image, "image", "", "existing: kpbench image reference the cluster can pull (see kpbench image build --push)")
	fs.StringVar(&f.pullPolicy, "pull-policy", "", "existing: image pull policy (Always, IfNotPresent, Never; default IfNotPresent)")
	fs.StringVar(&f.clientNode, "client-node", "", "existing: client node name when no node is labelled kpbench.io/role=client")
	registerIPVSScheduler(fs, &f.ipvsScheduler)
	registerWait(fs, &f.waitReady, "kind, existing: "+waitUsage)
}

// validate checks the flags for a run on provider (kind or existing),
// naming every problem.
func (f *runClusterFlags) validate(provider string) error {
	var errs []error
	switch provider {
	case "kind", "existing":
	default:
		errs = append(errs, fmt.Errorf("--provider must be kind or existing, got %q", provider))
	}
	switch corev1.PullPolicy(f.pullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		errs = append(errs, fmt.Errorf("--pull-policy must be Always, IfNotPresent or Never, got %q", f.pullPolicy))
	}
	errs = append(errs, f.topology.validate()...)
	if provider == "existing" && f.image == "" && f.topology.imageArchive != "" {
		errs = append(errs, errors.New("--image-archive is for kind; an existing cluster pulls --image from a registry"))
	}
	return badFlags(errs)
}

// providerOptions are the provider options the flags describe for a
// scenario: its backend count and load clients (kind makes a client node
// per load client unless --clients asks for more); keep is run's --keep.
func (f *runClusterFlags) providerOptions(g *globals, spec scenarios.Spec, keep bool) providers.Options {
	return providers.Options{
		Backends:    spec.Backends,
		LoadClients: spec.Load.Clients,
		Keep:        keep,
		Logger:      g.logger,
		Kind: kind.Options{
			Name:          f.name,
			Topology:      f.topology.topology(),
			ImageArchive:  f.topology.imageArchive,
			Retain:        f.retain,
			IPVSScheduler: f.ipvsScheduler,
			WaitForReady:  f.waitReady,
			Version:       Version,
		},
		Existing: existing.Options{
			Kubeconfig:    f.cluster.kubeconfig,
			Context:       f.cluster.context,
			Confirm:       f.yes,
			Keep:          keep,
			Retain:        f.retain,
			IPVSScheduler: f.ipvsScheduler,
			Image:         f.image,
			PullPolicy:    corev1.PullPolicy(f.pullPolicy),
			ClientNode:    f.clientNode,
			ReadyTimeout:  f.waitReady,
		},
	}
}
