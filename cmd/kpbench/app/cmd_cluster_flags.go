package app

// The provider flags of `kpbench cluster` and `kpbench run`, and the
// provider options they make.

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/existing"
	"github.com/kpbench/kpbench/clusters/kind"
	"github.com/kpbench/kpbench/clusters/providers"
	"github.com/kpbench/kpbench/scenarios"
)

// clusterFlags are the values of the flags that pick and configure an
// in-cluster provider (kind or existing). Each command registers the flags
// it uses and no others (register's names), so its help and its parser
// show exactly those; `kpbench run` registers them all but --provider and
// --keep, which it has of its own.
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

// register adds the flags called names to fs (every one when names is
// empty), with --provider defaulting to providerDefault.
func (f *clusterFlags) register(fs *pflag.FlagSet, providerDefault string, names ...string) {
	all := pflag.NewFlagSet("cluster", pflag.ContinueOnError)
	f.registerAll(all, providerDefault)
	all.VisitAll(func(fl *pflag.Flag) {
		if len(names) == 0 || slices.Contains(names, fl.Name) {
			fs.AddFlag(fl)
		}
	})
}

func (f *clusterFlags) registerAll(fs *pflag.FlagSet, providerDefault string) {
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
