package kind

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	kinddefaults "sigs.k8s.io/kind/pkg/apis/config/defaults"

	"github.com/kpbench/kpbench/clusters/nodeimage"
)

// PodmanConf is the containers.conf kpbench points podman at
// (CONTAINERS_CONF) when podman runs kind's nodes:
//   - no default ulimits: podman's defaults raise RLIMIT_NOFILE, which
//     needs CAP_SYS_RESOURCE, and a machine (or a container running
//     kpbench) may lack it in its bounding set; the nodes then inherit
//     podman's own limits;
//   - runc as the runtime: crun refuses hosts with hybrid (v1) cgroups;
//   - netavark as the network stack: its DNS (aardvark-dns) resolves the
//     node names on kind's network, which kubeadm's join needs (the
//     control plane's endpoint is its node name).
const PodmanConf = `# Written by kpbench for the podman commands kind runs (CONTAINERS_CONF).
[containers]
default_ulimits = []

[engine]
runtime = "runc"

[network]
network_backend = "netavark"
`

// Environment variables kpbench sets for kind and podman.
const (
	EnvKindProvider   = "KIND_EXPERIMENTAL_PROVIDER"
	EnvContainersConf = "CONTAINERS_CONF"
)

// PodmanConfPath is where kpbench writes PodmanConf under its state
// directory.
func PodmanConfPath(stateDir string) string {
	return filepath.Join(stateDir, "podman", "containers.conf")
}

// preparePodman makes the podman commands kind runs (and kpbench's own
// podman inspect) use PodmanConf, unless CONTAINERS_CONF is already set,
// and tells kind to use podman. It returns the file used ("" when the
// user's CONTAINERS_CONF is kept).
func preparePodman(stateDir string, getenv func(string) string, setenv func(k, v string) error) (string, error) {
	if err := setenv(EnvKindProvider, "podman"); err != nil {
		return "", err
	}
	if getenv(EnvContainersConf) != "" {
		return "", nil
	}
	p := PodmanConfPath(stateDir)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("writing podman's configuration: %w", err)
	}
	if err := os.WriteFile(p, []byte(PodmanConf), 0o644); err != nil {
		return "", fmt.Errorf("writing podman's configuration: %w", err)
	}
	return p, setenv(EnvContainersConf, p)
}

// usesPodman reports whether kind will run the nodes with podman: asked
// for with KIND_EXPERIMENTAL_PROVIDER, or podman installed and Docker
// not, or Docker's command installed without a daemon that answers
// (dockerUp) while podman is installed. kind itself would pick Docker
// whenever its command is on the PATH, and then fail.
func usesPodman(getenv func(string) string, lookPath func(string) (string, error), dockerUp func() bool) bool {
	if rt := getenv(EnvKindProvider); rt != "" {
		return rt == "podman"
	}
	if _, err := lookPath("podman"); err != nil {
		return false
	}
	if _, err := lookPath("docker"); err == nil && dockerUp() {
		return false
	}
	return true
}

// dockerAnswers reports whether Docker's daemon answers within 10 s.
func dockerAnswers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").Run() == nil
}

// NodeImageOffline asks for kpbench's own node image (`kpbench image
// node`), built offline; "" picks it when kind's default cannot be had.
const NodeImageOffline = "offline"

// RegistryURL is what a reachable registry answers: Docker Hub's API, where
// kind's default node image lives.
const RegistryURL = "https://registry-1.docker.io/v2/"

// registryReachable reports whether Docker Hub answers at all within 5 s
// (any HTTP status will do: it means a pull can be tried).
func registryReachable(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, RegistryURL, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// imagePresent reports whether the node runtime holds image.
func imagePresent(ctx context.Context, runtime, image string) bool {
	return exec.CommandContext(ctx, runtime, "image", "inspect", image).Run() == nil
}

// NodeImageChoice is the node image a create uses, and why.
type NodeImageChoice struct {
	// Image is the node image reference ("" = kind's default).
	Image string
	// Offline is true for kpbench's own node image, which needs kind's
	// default CNI disabled.
	Offline bool
	Reason  string
}

// chooseNodeImage decides the node image: the one asked for; else kind's
// default when the runtime holds it or a registry answers; else
// kpbench's offline image.
func chooseNodeImage(ctx context.Context, asked string, present func(string) bool, reachable func(context.Context) bool) NodeImageChoice {
	switch {
	case asked == NodeImageOffline:
		return NodeImageChoice{Offline: true, Reason: "asked for (--k8s-image " + NodeImageOffline + ")"}
	case asked != "":
		return NodeImageChoice{Image: asked, Reason: "asked for"}
	case present(kinddefaults.Image):
		return NodeImageChoice{Reason: "kind's default image is present"}
	case reachable(ctx):
		return NodeImageChoice{Reason: "a registry answers (" + RegistryURL + ")"}
	default:
		return NodeImageChoice{Offline: true, Reason: "kind's default image is absent and no registry answers"}
	}
}

// offlineNodeImage builds (or finds cached) kpbench's node image and loads
// it into the node runtime.
func (p *Provider) offlineNodeImage(ctx context.Context) (string, error) {
	ensure := p.opts.EnsureNodeImage
	if ensure == nil {
		ensure = func(ctx context.Context) (nodeimage.Result, error) {
			return nodeimage.Ensure(ctx, nodeimage.Options{Logger: p.opts.Logger, CacheDir: p.opts.NodeImageCacheDir})
		}
	}
	res, err := ensure(ctx)
	if err != nil {
		return "", fmt.Errorf("kpbench's offline node image: %w", err)
	}
	load := p.opts.LoadNodeImage
	if load == nil {
		load = func(ctx context.Context, res nodeimage.Result) error {
			_, err := nodeimage.Load(ctx, containerRuntime(), res)
			return err
		}
	}
	if err := load(ctx, res); err != nil {
		return "", err
	}
	return res.Ref, nil
}

// resolveNodeImage settles the node image (building and loading kpbench's
// offline one if it is the choice) and whether the host's cgroups are v1.
func (p *Provider) resolveNodeImage(ctx context.Context) error {
	if err := p.prepare(); err != nil {
		return err
	}
	t := &p.opts.Topology
	t.CgroupV1 = hostCgroupV1(p.opts.HostRoot)
	if t.Offline {
		return nil // resolved already
	}
	choice := p.opts.ResolveNodeImage(ctx, t.NodeImage)
	p.opts.Logger.Info("kind node image", "image", choice.Image, "offline", choice.Offline, "why", choice.Reason)
	if !choice.Offline {
		t.NodeImage = choice.Image
		return nil
	}
	ref, err := p.offlineNodeImage(ctx)
	if err != nil {
		return err
	}
	t.NodeImage, t.Offline = ref, true
	return nil
}

// hostCgroupV1 reports whether the host under root mounts cgroup v1
// (no unified hierarchy at /sys/fs/cgroup).
func hostCgroupV1(root string) bool {
	if root == "" {
		root = "/"
	}
	_, err := os.Stat(filepath.Join(root, "sys", "fs", "cgroup", "cgroup.controllers"))
	return err != nil
}

// PlannedTopology is t as Create would settle it, without building or
// probing anything: the offline node image by the reference it has (or
// will have), and the host's cgroup version (for --dry-run).
func PlannedTopology(t Topology) (Topology, error) {
	t.CgroupV1 = hostCgroupV1("/")
	if t.NodeImage == NodeImageOffline {
		ref, err := nodeimage.ExpectedRef("")
		if err != nil {
			return t, err
		}
		t.NodeImage, t.Offline = ref, true
	}
	return t, nil
}
