// Package kind is the kind provider: it creates a kind cluster (Docker or
// Podman nodes) for kpbench with the sigs.k8s.io/kind library — one
// control-plane, client and server workers labelled kpbench.io/role, and
// kube-proxy in the requested mode — loads the kpbench image into its
// nodes, and then drives it like an existing cluster (see
// clusters/existing). A failed create deletes what it made unless asked to
// retain it.
//
// Only this package imports kind: its dependencies stay out of the rest of
// kpbench.
package kind

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
	kindexec "sigs.k8s.io/kind/pkg/exec"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/containerimage"
	"github.com/kpbench/kpbench/clusters/existing"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/clusters/manifests"
	"github.com/kpbench/kpbench/clusters/nodeimage"
	"github.com/kpbench/kpbench/scenarios"
)

// DefaultName is the kind cluster's default name.
const DefaultName = "kpbench"

// ClusterAPI is the part of kind kpbench uses; *KindAPI implements it with
// the kind library, tests with a fake.
type ClusterAPI interface {
	// Create creates cluster name from cfg, waiting up to wait for the
	// control plane, and writes its kubeconfig to kubeconfig. With retain,
	// kind keeps the nodes of a failed create.
	Create(name string, cfg *v1alpha4.Cluster, kubeconfig string, retain bool, wait time.Duration) error
	// Delete deletes cluster name (no error when it does not exist) and
	// its entry in kubeconfig.
	Delete(name, kubeconfig string) error
	// List lists the kind clusters.
	List() ([]string, error)
	// ExportKubeconfig writes cluster name's kubeconfig to path.
	ExportKubeconfig(name, path string) error
	// LoadImageArchive imports the image archive that open returns into
	// every node of cluster name (`kind load image-archive`).
	LoadImageArchive(name string, open func() (io.ReadCloser, error)) error
}

// KindAPI is ClusterAPI on the kind library.
type KindAPI struct {
	p *cluster.Provider
	// prepare readies the node runtime before kind's first command
	// (podman's configuration, see preparePodman); it runs once.
	prepare func() error
}

// NewKindAPI picks the node runtime (KIND_EXPERIMENTAL_PROVIDER, else
// Docker if its daemon answers, else Podman; see usesPodman) and logs kind's messages to logger. With
// podman, kpbench's containers.conf (under stateDir) is put in place
// before kind's first command.
func NewKindAPI(logger *slog.Logger, stateDir string) (*KindAPI, error) {
	opts := []cluster.ProviderOption{cluster.ProviderWithLogger(slogKind{logger})}
	podman := usesPodman(os.Getenv, exec.LookPath, dockerAnswers)
	if podman {
		opts = append(opts, cluster.ProviderWithPodman())
	} else if o, err := cluster.DetectNodeProvider(); err == nil {
		opts = append(opts, o)
	} else {
		// Fall back to Docker: creating then fails with Docker's own
		// message, which says what is missing.
		opts = append(opts, cluster.ProviderWithDocker())
	}
	k := &KindAPI{p: cluster.NewProvider(opts...)}
	k.prepare = sync.OnceValue(func() error {
		if !podman {
			return nil
		}
		conf, err := preparePodman(stateDir, os.Getenv, os.Setenv)
		if err != nil {
			return err
		}
		logger.Debug("kind runs the nodes with podman", "containersConf", conf)
		return nil
	})
	return k, nil
}

// withOutput adds the output of the command a kind error carries (e.g.
// Docker's "Cannot connect to the Docker daemon"), which kind's own
// message leaves out.
func withOutput(err error) error {
	if err == nil {
		return nil
	}
	var re *kindexec.RunError
	if !errors.As(err, &re) {
		// kind wraps with Cause(), not Unwrap().
		re = kindexec.RunErrorForError(err)
	}
	if re != nil && len(bytes.TrimSpace(re.Output)) > 0 {
		out := strings.TrimSpace(string(re.Output))
		if len(out) > 2000 {
			out = "..." + out[len(out)-2000:]
		}
		return fmt.Errorf("%w: %s", err, out)
	}
	return err
}

// Create implements ClusterAPI.
func (k *KindAPI) Create(name string, cfg *v1alpha4.Cluster, kubeconfig string, retain bool, wait time.Duration) error {
	if err := k.prepare(); err != nil {
		return err
	}
	return withOutput(k.p.Create(name,
		cluster.CreateWithV1Alpha4Config(cfg),
		cluster.CreateWithKubeconfigPath(kubeconfig),
		cluster.CreateWithRetain(retain),
		cluster.CreateWithWaitForReady(wait),
		cluster.CreateWithDisplayUsage(false),
		cluster.CreateWithDisplaySalutation(false),
	))
}

// Delete implements ClusterAPI.
func (k *KindAPI) Delete(name, kubeconfig string) error {
	if err := k.prepare(); err != nil {
		return err
	}
	return withOutput(k.p.Delete(name, kubeconfig))
}

// List implements ClusterAPI.
func (k *KindAPI) List() ([]string, error) {
	if err := k.prepare(); err != nil {
		return nil, err
	}
	names, err := k.p.List()
	return names, withOutput(err)
}

// ExportKubeconfig implements ClusterAPI.
func (k *KindAPI) ExportKubeconfig(name, path string) error {
	if err := k.prepare(); err != nil {
		return err
	}
	return withOutput(k.p.ExportKubeConfig(name, path, false))
}

// LoadImageArchive implements ClusterAPI the way `kind load
// image-archive` does: `ctr images import` on every internal node, in
// parallel.
func (k *KindAPI) LoadImageArchive(name string, open func() (io.ReadCloser, error)) error {
	if err := k.prepare(); err != nil {
		return err
	}
	ns, err := k.p.ListInternalNodes(name)
	if err != nil {
		return fmt.Errorf("listing the nodes of %s: %w", name, withOutput(err))
	}
	if len(ns) == 0 {
		return fmt.Errorf("no nodes found for cluster %q", name)
	}
	return loadOnNodes(ns, open)
}

func loadOnNodes(ns []nodes.Node, open func() (io.ReadCloser, error)) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, n := range ns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := func() error {
				f, err := open()
				if err != nil {
					return err
				}
				defer f.Close()
				return withOutput(nodeutils.LoadImageArchive(n, f))
			}()
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("loading the image into node %s: %w", n.String(), err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Options configure the kind provider.
type Options struct {
	// Name is the kind cluster's name (default kpbench).
	Name string
	Topology
	// ImageArchive is a kpbench image tarball (`kpbench image build`);
	// "" builds one from the running binary.
	ImageArchive string
	// Retain keeps the cluster when creating it fails.
	Retain bool
	// Keep keeps the cluster at Down.
	Keep bool
	// Kubeconfig is where the cluster's kubeconfig is written (default
	// <state dir>/kind-<name>.kubeconfig; ~/.kube/config is left alone).
	Kubeconfig string
	// StateDir holds the kubeconfig and the existing provider's state
	// (default $XDG_CACHE_HOME/kpbench).
	StateDir string
	// Backends is the number of backend pods (default 10).
	Backends int
	// IPVSScheduler is passed to kube-proxy's ipvs.scheduler on switches.
	IPVSScheduler string
	// WaitForReady bounds the wait for the control plane (default 5m).
	WaitForReady time.Duration
	// Version is kpbench's version, written into a built image.
	Version string
	Logger  *slog.Logger

	// HostRoot is where this machine's /proc and /sys/fs/cgroup are
	// found (default /; tests).
	HostRoot string
	// API replaces the kind library (tests).
	API ClusterAPI
	// Runtime runs podman and nft for the cleanup after a delete
	// (leftovers.go); nil runs them on this machine when kind uses
	// podman, unless API is given (tests).
	Runtime Runner
	// InCluster adjusts the existing-cluster options the provider uses
	// once the cluster is up (tests).
	InCluster func(*existing.Options)

	// NodeImageCacheDir is kpbench's cache root for the offline node image
	// (default the user cache dir + /kpbench).
	NodeImageCacheDir string
	// ResolveNodeImage picks the node image for Topology.NodeImage (see
	// chooseNodeImage); nil probes the runtime and the registry, unless
	// API is given (tests), which keeps the image asked for.
	ResolveNodeImage func(ctx context.Context, asked string) NodeImageChoice
	// EnsureNodeImage and LoadNodeImage replace building the offline node
	// image and loading it into the runtime (tests).
	EnsureNodeImage func(context.Context) (nodeimage.Result, error)
	LoadNodeImage   func(context.Context, nodeimage.Result) error
}

// Provider implements clusters.Provider on a kind cluster.
type Provider struct {
	opts Options
	api  ClusterAPI
	// prepare readies the node runtime (KindAPI.prepare) before kpbench's
	// own runtime commands.
	prepare func() error

	mu    sync.Mutex
	inner *existing.Provider
}

var (
	_ clusters.Provider   = (*Provider)(nil)
	_ clusters.LoadRunner = (*Provider)(nil)
)

// New returns a kind provider; it creates nothing yet.
func New(opts Options) (*Provider, error) {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	opts.Topology = opts.Topology.withDefaults()
	if err := opts.Topology.validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.WaitForReady == 0 {
		opts.WaitForReady = 5 * time.Minute
	}
	if opts.StateDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("finding a state directory: %w", err)
		}
		opts.StateDir = filepath.Join(dir, "kpbench")
	}
	if opts.Kubeconfig == "" {
		opts.Kubeconfig = filepath.Join(opts.StateDir, "kind-"+opts.Name+".kubeconfig")
	}
	api := opts.API
	prepare := func() error { return nil }
	if api == nil {
		k, err := NewKindAPI(opts.Logger, opts.StateDir)
		if err != nil {
			return nil, err
		}
		api, prepare = k, k.prepare
	}
	if opts.ResolveNodeImage == nil {
		if opts.API != nil {
			opts.ResolveNodeImage = func(_ context.Context, asked string) NodeImageChoice {
				return chooseNodeImage(context.Background(), asked, func(string) bool { return true }, nil)
			}
		} else {
			opts.ResolveNodeImage = func(ctx context.Context, asked string) NodeImageChoice {
				rt := containerRuntime()
				return chooseNodeImage(ctx, asked, func(img string) bool { return imagePresent(ctx, rt, img) }, registryReachable)
			}
		}
	}
	return &Provider{opts: opts, api: api, prepare: prepare}, nil
}

// Name is "kind".
func (p *Provider) Name() string { return "kind" }

// ClusterName is the kind cluster's name.
func (p *Provider) ClusterName() string { return p.opts.Name }

// Topology is the shape of the cluster the provider creates.
func (p *Provider) Topology() Topology { return p.opts.Topology }

// KubeconfigPath is the cluster's kubeconfig.
func (p *Provider) KubeconfigPath() string { return p.opts.Kubeconfig }

// Exists reports whether the kind cluster exists.
func (p *Provider) Exists() (bool, error) {
	names, err := p.api.List()
	if err != nil {
		return false, fmt.Errorf("listing kind clusters: %w", err)
	}
	return slices.Contains(names, p.opts.Name), nil
}

// Create creates the cluster with kube-proxy in mode and loads the kpbench
// image into its nodes. A failure after kind made the cluster deletes it
// unless Retain (kind itself cleans up a failed create the same way).
func (p *Provider) Create(ctx context.Context, mode scenarios.Mode) (err error) {
	if _, err := KindProxyMode(mode); err != nil {
		return err
	}
	if err := p.resolveNodeImage(ctx); err != nil {
		return err
	}
	cfg, err := Config(mode, p.opts.Topology)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.opts.Kubeconfig), 0o700); err != nil {
		return fmt.Errorf("creating the kubeconfig directory: %w", err)
	}
	p.noteTables(ctx)
	p.opts.Logger.Info("creating kind cluster", "name", p.opts.Name, "mode", mode,
		"clientNodes", p.opts.ClientNodes, "serverNodes", p.opts.ServerNodes, "nodeImage", p.opts.NodeImage)
	if err := p.api.Create(p.opts.Name, cfg, p.opts.Kubeconfig, p.opts.Retain, p.opts.WaitForReady); err != nil {
		return fmt.Errorf("creating kind cluster %s: %w", p.opts.Name, err)
	}
	defer func() {
		if err == nil {
			return
		}
		if p.opts.Retain {
			p.opts.Logger.Warn("keeping the failed cluster (--retain)", "name", p.opts.Name)
			return
		}
		if derr := p.delete(ctx); derr != nil {
			err = errors.Join(err, fmt.Errorf("deleting the failed cluster: %w", derr))
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := p.LoadImage(ctx); err != nil {
		return err
	}
	return nil
}

// LoadImage loads the kpbench image into every node (building it from
// this binary when no archive was given) and returns its tag.
func (p *Provider) LoadImage(ctx context.Context) (tag string, err error) {
	archive := p.opts.ImageArchive
	if archive == "" {
		dir, err := os.MkdirTemp("", "kpbench-image-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(dir)
		archive = filepath.Join(dir, "kpbench.tar")
		if err := BuildImageArchive(archive, p.opts.Version); err != nil {
			return "", err
		}
	}
	tag, err = ArchiveTag(archive)
	if err != nil {
		return "", err
	}
	p.opts.Logger.Info("loading the kpbench image into the nodes", "image", tag, "archive", archive)
	err = p.api.LoadImageArchive(p.opts.Name, func() (io.ReadCloser, error) { return os.Open(archive) })
	if err != nil {
		return "", fmt.Errorf("loading %s into kind cluster %s: %w", archive, p.opts.Name, err)
	}
	return tag, nil
}

// Up creates the cluster in mode unless it exists, loads the image, and
// deploys kpbench's workloads. On a cluster that exists it switches
// kube-proxy to mode. A failed Up deletes a cluster it created unless
// Retain.
func (p *Provider) Up(ctx context.Context, mode scenarios.Mode) (err error) {
	exists, err := p.Exists()
	if err != nil {
		return err
	}
	var tag string
	if exists {
		p.opts.Logger.Info("reusing kind cluster", "name", p.opts.Name)
		if err := p.api.ExportKubeconfig(p.opts.Name, p.opts.Kubeconfig); err != nil {
			return fmt.Errorf("writing the kubeconfig of %s: %w", p.opts.Name, err)
		}
		if tag, err = p.LoadImage(ctx); err != nil {
			return err
		}
	} else {
		if err := p.Create(ctx, mode); err != nil {
			return err
		}
		defer func() {
			if err != nil && !p.opts.Retain {
				if derr := p.delete(ctx); derr != nil {
					err = errors.Join(err, fmt.Errorf("deleting the failed cluster: %w", derr))
				}
			}
		}()
		if p.opts.ImageArchive != "" {
			if tag, err = ArchiveTag(p.opts.ImageArchive); err != nil {
				return err
			}
		} else {
			tag = containerimage.DefaultTag
		}
	}
	inner, err := p.attach(tag)
	if err != nil {
		return err
	}
	return inner.Up(ctx, mode)
}

// attach makes the existing-cluster provider that drives the cluster.
func (p *Provider) attach(image string) (*existing.Provider, error) {
	eo := existing.Options{
		Kubeconfig: p.opts.Kubeconfig,
		// kpbench made this cluster: switching modes needs no
		// confirmation, and Down deletes the whole cluster.
		Confirm:       true,
		Keep:          true,
		Retain:        true,
		IPVSScheduler: p.opts.IPVSScheduler,
		Backends:      p.opts.Backends,
		Image:         image,
		StateDir:      p.opts.StateDir,
		Logger:        p.opts.Logger,
	}
	if p.opts.InCluster != nil {
		p.opts.InCluster(&eo)
	}
	inner, err := existing.New(eo)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.inner = inner
	p.mu.Unlock()
	return inner, nil
}

func (p *Provider) in() (*existing.Provider, error) {
	p.mu.Lock()
	inner := p.inner
	p.mu.Unlock()
	if inner != nil {
		return inner, nil
	}
	if _, err := os.Stat(p.opts.Kubeconfig); err != nil {
		return nil, fmt.Errorf("kind cluster %s is not up (no kubeconfig at %s)", p.opts.Name, p.opts.Kubeconfig)
	}
	tag := containerimage.DefaultTag
	if p.opts.ImageArchive != "" {
		if t, err := ArchiveTag(p.opts.ImageArchive); err == nil {
			tag = t
		}
	}
	return p.attach(tag)
}

// delete deletes the cluster, what kind leaves behind on this machine
// (removeLeftovers), the kubeconfig and the in-cluster provider's state;
// also when ctx is done (a run interrupted, a failed create).
func (p *Provider) delete(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := p.api.Delete(p.opts.Name, p.opts.Kubeconfig); err != nil {
		return fmt.Errorf("deleting kind cluster %s: %w", p.opts.Name, err)
	}
	var errs []error
	if err := p.removeLeftovers(ctx); err != nil {
		errs = append(errs, fmt.Errorf("after deleting kind cluster %s: %w", p.opts.Name, err))
	}
	if err := os.Remove(p.opts.Kubeconfig); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("removing %s: %w", p.opts.Kubeconfig, err))
	}
	errs = append(errs, existing.ForgetState(p.opts.StateDir, p.opts.Kubeconfig, ""))
	p.mu.Lock()
	p.inner = nil
	p.mu.Unlock()
	return errors.Join(errs...)
}

// Down deletes the kind cluster unless Keep. Safe to call twice.
func (p *Provider) Down(ctx context.Context) error {
	if p.opts.Keep {
		p.opts.Logger.Info("keeping kind cluster", "name", p.opts.Name, "kubeconfig", p.opts.Kubeconfig)
		return nil
	}
	p.opts.Logger.Info("deleting kind cluster", "name", p.opts.Name)
	return p.delete(ctx)
}

// Capabilities: kind runs kube-proxy in every mode on this machine's
// kernel, so each mode's descriptor is judged against this kernel (its
// release, its ip_vs module); the tools are the node image's.
func (p *Provider) Capabilities(ctx context.Context) (clusters.Capabilities, error) {
	caps := clusters.Capabilities{
		Modes: map[scenarios.Mode]string{
			scenarios.ModeExternal: "a kind cluster runs kube-proxy; external is for kube-proxy replacements on existing clusters",
		},
	}
	host := kubeproxy.Host{
		KernelRelease: hostKernelRelease(),
		IPVS:          func() (bool, string) { return kubeproxy.IPVSAvailable("/proc", "/") },
	}
	for _, m := range scenarios.Modes {
		d, _ := kubeproxy.For(m)
		caps.Modes[m] = d.Unavailable(host)
	}
	return caps, nil
}

// hostKernelRelease is this machine's kernel release, the kernel kind's
// nodes run on ("" when unknown: nothing is ruled out for it).
func hostKernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// SetMode switches kube-proxy's mode through its ConfigMap (kind's
// kube-proxy is kubeadm's).
func (p *Provider) SetMode(ctx context.Context, mode scenarios.Mode) error {
	inner, err := p.in()
	if err != nil {
		return err
	}
	return inner.SetMode(ctx, mode)
}

// VerifyMode checks /proxyMode and the rules on the client node.
func (p *Provider) VerifyMode(ctx context.Context, mode scenarios.Mode) error {
	inner, err := p.in()
	if err != nil {
		return err
	}
	return inner.VerifyMode(ctx, mode)
}

// Backends returns the backend pods' addresses.
func (p *Provider) Backends(ctx context.Context) ([]clusters.Endpoint, error) {
	inner, err := p.in()
	if err != nil {
		return nil, err
	}
	return inner.Backends(ctx)
}

// ClientNode is the client worker, reached through the agent pod. The
// node is resolved at each call, so it may be taken before Up.
func (p *Provider) ClientNode() clusters.ClientNode { return lazyNode{p} }

// Versions reports the cluster's versions.
func (p *Provider) Versions(ctx context.Context) (clusters.Versions, error) {
	inner, err := p.in()
	if err != nil {
		return clusters.Versions{}, err
	}
	return inner.Versions(ctx)
}

// Describe gives the cluster's name and run.json's provider details.
func (p *Provider) Describe(ctx context.Context) (cluster string, details map[string]string) {
	d := map[string]string{}
	if inner, err := p.in(); err == nil {
		_, d = inner.Describe(ctx)
	}
	d["cluster"] = p.opts.Name
	d["clientNodes"] = strconv.Itoa(p.opts.ClientNodes)
	d["serverNodes"] = strconv.Itoa(p.opts.ServerNodes)
	if p.opts.NodeImage != "" {
		d["nodeImage"] = p.opts.NodeImage
	}
	if p.opts.Offline {
		d["nodeImageBuiltBy"] = "kpbench image node (docs/kind-offline.md)"
	}
	return p.opts.Name, d
}

// RunLoad runs in-cluster load clients.
func (p *Provider) RunLoad(ctx context.Context, req clusters.LoadRequest) ([]clusters.LoadResult, error) {
	inner, err := p.in()
	if err != nil {
		return nil, err
	}
	return inner.RunLoad(ctx, req)
}

// lazyNode finds the client node of the cluster when used.
type lazyNode struct{ p *Provider }

func (l lazyNode) node() (clusters.ClientNode, error) {
	inner, err := l.p.in()
	if err != nil {
		return nil, err
	}
	return inner.ClientNode(), nil
}

func (l lazyNode) Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	n, err := l.node()
	if err != nil {
		return err
	}
	return n.Run(ctx, stdin, stdout, stderr, args...)
}

func (l lazyNode) CPUs() []int { return nil }

func (l lazyNode) ProcRoot() string { return manifests.HostProcPath }

func (l lazyNode) KubeProxyPID(ctx context.Context) (int, error) {
	n, err := l.node()
	if err != nil {
		return 0, err
	}
	return n.KubeProxyPID(ctx)
}

func (l lazyNode) KubeProxyGet(ctx context.Context, path string) ([]byte, error) {
	n, err := l.node()
	if err != nil {
		return nil, err
	}
	return n.KubeProxyGet(ctx, path)
}
