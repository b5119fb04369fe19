// Package nodeimage builds a kind node image offline, without Docker, a
// Dockerfile or a registry: a Debian root filesystem (mmdebstrap) with
// systemd, containerd, runc and the CNI plugins; kind's node files (its
// entrypoint, containerd config and systemd units, read from the kind
// module kpbench is built with); kubelet, kubeadm and kubectl built from
// source through the Go module proxy at the lab's Kubernetes version; and
// the images kubeadm runs (kube-apiserver, kube-controller-manager,
// kube-scheduler, kube-proxy, etcd, CoreDNS, pause) built as static
// binaries and packed with go-containerregistry, imported into the node's
// containerd at boot. kind's default CNI (kindnetd) is replaced by a
// static ptp network the node sets up itself, so clusters from this image
// need kind's disableDefaultCNI. The image is a Docker-style tarball,
// cached per version and layout; docs/kind-offline.md says what is in it
// and why.
package nodeimage

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kpbench/kpbench/clusters/containerimage"
	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/internal/flock"
)

// LayoutVersion changes whenever the image's layout changes in a way the
// other cache key inputs do not show.
const LayoutVersion = "2"

// KindVersion is the kind module kpbench is built with (go.mod), whose
// node files the image carries; the running binary's build information
// overrides it.
const KindVersion = "v0.33.0"

// Repository is the node image's repository; its tag is the Kubernetes
// version and the cache key.
const Repository = "localhost/kpbench/node"

// Options configure Ensure.
type Options struct {
	// K8sVersion is the Kubernetes version (default the lab's).
	K8sVersion string
	// CacheDir is kpbench's cache root (default the user cache dir +
	// /kpbench); the image goes to CacheDir/kind-node/<tag>/.
	CacheDir string
	// Go is the go command (default "go").
	Go string
	// Mmdebstrap is the mmdebstrap command (default "mmdebstrap").
	Mmdebstrap string
	// KindFilesDir is kind's images/base/files ("" = from the kind
	// module, downloaded through the Go module proxy if needed).
	KindFilesDir string
	// Force rebuilds the image (not its cached parts).
	Force  bool
	Logger *slog.Logger
	// Progress receives the Kubernetes build's progress.
	Progress func(build.Progress)
}

func (o *Options) defaults() error {
	if o.K8sVersion == "" {
		o.K8sVersion = build.DefaultVersion
	}
	if _, err := build.StagingVersion(o.K8sVersion); err != nil {
		return err
	}
	if o.CacheDir == "" {
		d, err := build.DefaultCacheDir()
		if err != nil {
			return err
		}
		o.CacheDir = d
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// kindVersion is the kind module version this binary was built with.
func kindVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "sigs.k8s.io/kind" && d.Version != "" && d.Version != "(devel)" {
				return d.Version
			}
		}
	}
	return KindVersion
}

// Key is the image's cache key: a digest of everything it is made from
// that is known before building (the Kubernetes version decides the
// component versions; the scripts, units and programs are kpbench's).
func Key(k8sVersion, kindVersion string) string {
	h := sha256.New()
	fmt.Fprintf(h, "layout %s\nk8s %s\nkind %s\nrootfs %s\npause %s\ncoredns %s\niptables %s\n",
		LayoutVersion, k8sVersion, kindVersion, DefaultRootfs().Key(), PauseProgram().Key(), CoreDNSProgram("").Key(), IPTablesBackend)
	for _, s := range []string{importUnit, importScript, cniUnit, cniScript} {
		fmt.Fprintf(h, "%d\n%s", len(s), s)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// Ref is the node image's reference for a version and key.
func Ref(k8sVersion, key string) string { return Repository + ":" + k8sVersion + "-" + key }

// Step is one step of a build and what it took.
type Step struct {
	Name   string        `json:"name"`
	Took   time.Duration `json:"took"`
	Cached bool          `json:"cached,omitempty"`
}

// Result is a built (or cached) node image.
type Result struct {
	// Ref is the image's reference (Repository:<version>-<key>).
	Ref string `json:"ref"`
	// Archive is the Docker-style tarball holding it.
	Archive string `json:"archive"`
	// K8sVersion and KindVersion are what it was built for.
	K8sVersion  string `json:"k8sVersion"`
	KindVersion string `json:"kindVersion"`
	// Images are the references preloaded into the node's containerd.
	Images []string `json:"images"`
	// Cached is true when nothing was built.
	Cached bool `json:"-"`
	// Steps are the build's steps (none when cached).
	Steps []Step `json:"steps,omitempty"`
}

const stampFile = "kpbench-node.json"

// Cached returns the cached image of opts, if complete.
func Cached(opts Options) (Result, bool) {
	if err := opts.defaults(); err != nil {
		return Result{}, false
	}
	kv := kindVersion()
	dir := filepath.Join(opts.CacheDir, "kind-node", opts.K8sVersion+"-"+Key(opts.K8sVersion, kv))
	data, err := os.ReadFile(filepath.Join(dir, stampFile))
	if err != nil {
		return Result{}, false
	}
	var r Result
	if json.Unmarshal(data, &r) != nil {
		return Result{}, false
	}
	r.Archive = filepath.Join(dir, "node.tar")
	if _, err := os.Stat(r.Archive); err != nil {
		return Result{}, false
	}
	r.Cached = true
	r.Steps = nil
	return r, true
}

// Ensure returns the node image of opts.K8sVersion, building it unless
// the cache holds it. Concurrent callers wait for one build.
func Ensure(ctx context.Context, opts Options) (Result, error) {
	if err := opts.defaults(); err != nil {
		return Result{}, err
	}
	if !opts.Force {
		if r, ok := Cached(opts); ok {
			return r, nil
		}
	}
	root := filepath.Join(opts.CacheDir, "kind-node")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return Result{}, err
	}
	kv := kindVersion()
	tag := opts.K8sVersion + "-" + Key(opts.K8sVersion, kv)
	unlock, err := flock.Lock(ctx, filepath.Join(root, tag+".lock"), 0o644, 500*time.Millisecond, func() {
		opts.Logger.Info("waiting for another kpbench process building the same node image")
	})
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	if !opts.Force {
		if r, ok := Cached(opts); ok {
			return r, nil
		}
	}
	b := &builder{opts: opts, root: root, tag: tag, kindVersion: kv}
	return b.build(ctx)
}

type builder struct {
	opts        Options
	root, tag   string
	kindVersion string
	steps       []Step
}

// step runs fn as a named step, logging and recording what it took.
func (b *builder) step(name string, fn func() (cached bool, err error)) error {
	start := time.Now()
	b.opts.Logger.Info("node image: "+name, "tag", b.tag)
	cached, err := fn()
	took := time.Since(start)
	b.steps = append(b.steps, Step{Name: name, Took: took.Round(time.Millisecond), Cached: cached})
	if err != nil {
		return fmt.Errorf("node image: %s: %w", name, err)
	}
	b.opts.Logger.Info("node image: "+name+" done", "took", took.Round(time.Millisecond), "cached", cached)
	return nil
}

func (b *builder) build(ctx context.Context) (Result, error) {
	o := b.opts
	work, err := os.MkdirTemp(b.root, "build-"+b.tag+"-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(work)

	var kindFiles []Entry
	if err := b.step("kind's node files ("+b.kindVersion+")", func() (bool, error) {
		var err error
		d := o.KindFilesDir
		if d == "" {
			md, err := ModuleDir(ctx, o.Go, "sigs.k8s.io/kind", b.kindVersion)
			if err != nil {
				return false, err
			}
			d = filepath.Join(md, "images", "base", "files")
		}
		kindFiles, err = KindFiles(d)
		return false, err
	}); err != nil {
		return Result{}, err
	}

	var k8s build.SetBinaries
	if err := b.step("Kubernetes "+o.K8sVersion+" binaries", func() (bool, error) {
		var err error
		k8s, err = build.EnsureSet(ctx, build.Options{Version: o.K8sVersion, CacheDir: o.CacheDir, Go: o.Go, Logger: o.Logger, Progress: o.Progress, Set: build.NodeSet})
		return k8s.Cached, err
	}); err != nil {
		return Result{}, err
	}

	var plan ImagePlan
	if err := b.step("kubeadm's image list", func() (bool, error) {
		out, err := exec.CommandContext(ctx, k8s.Paths["kubeadm"], "config", "images", "list", "--kubernetes-version", o.K8sVersion).Output()
		if err != nil {
			return false, fmt.Errorf("kubeadm config images list: %w", withStderr(err))
		}
		plan, err = ParseImageList(out)
		return false, err
	}); err != nil {
		return Result{}, err
	}
	if want := "v" + strings.SplitN(plan.Tag(Etcd), "-", 2)[0]; k8s.EtcdVersion != "" && want != k8s.EtcdVersion {
		o.Logger.Warn("kubeadm names another etcd than Kubernetes' go.mod pins; the image holds the pinned one", "kubeadm", plan.Tag(Etcd), "built", k8s.EtcdVersion)
	}

	gb := GoBuilder{Go: o.Go, CacheDir: filepath.Join(b.root, "bin")}
	bins := map[string]string{}
	for _, c := range []string{APIServer, ControllerManager, Scheduler, KubeProxy, Etcd} {
		bins[c] = k8s.Paths[c]
	}
	for _, p := range []GoProgram{CoreDNSProgram(plan.Tag(CoreDNS)), PauseProgram()} {
		if err := b.step(p.Name+" binary", func() (bool, error) {
			_, statErr := os.Stat(gb.Path(p))
			path, err := gb.Ensure(ctx, p)
			bins[p.Name] = path
			return statErr == nil, err
		}); err != nil {
			return Result{}, err
		}
	}

	var rootfs string
	if err := b.step("Debian "+DebianSuite+" root filesystem (mmdebstrap)", func() (bool, error) {
		var cached bool
		var err error
		rootfs, cached, err = EnsureRootfs(ctx, DefaultRootfs(), b.root, o.Mmdebstrap)
		return cached, err
	}); err != nil {
		return Result{}, err
	}

	var images map[string]string
	var spec []byte
	if err := b.step("component images", func() (bool, error) {
		r, err := ReadRootfs(rootfs)
		if err != nil {
			return false, err
		}
		spec = r.Files[DefaultSpecPath]
		base, pkgs, err := KubeProxyBase(r)
		if err != nil {
			return false, err
		}
		o.Logger.Debug("kube-proxy's tools", "packages", pkgs, "bytes", len(base))
		specs, err := ComponentSpecs(plan, bins, base)
		if err != nil {
			return false, err
		}
		imgDir := filepath.Join(work, "images")
		if err := os.MkdirAll(imgDir, 0o755); err != nil {
			return false, err
		}
		images, err = WriteImages(imgDir, specs)
		return false, err
	}); err != nil {
		return Result{}, err
	}

	final := filepath.Join(b.root, b.tag)
	res := Result{Ref: Ref(o.K8sVersion, strings.TrimPrefix(b.tag, o.K8sVersion+"-")), K8sVersion: o.K8sVersion, KindVersion: b.kindVersion}
	for _, c := range Components {
		res.Images = append(res.Images, plan[c].String())
	}
	out := filepath.Join(work, "out")
	if err := b.step("node image", func() (bool, error) {
		entries, err := Layout(LayoutInput{
			KindFiles: kindFiles, K8sVersion: o.K8sVersion,
			Kubelet: k8s.Paths["kubelet"], Kubeadm: k8s.Paths["kubeadm"], Kubectl: k8s.Paths["kubectl"],
			Images: images, Pause: plan[Pause].String(), DefaultSpec: spec,
		})
		if err != nil {
			return false, err
		}
		layer := filepath.Join(work, "kpbench-layer.tar")
		f, err := os.Create(layer)
		if err != nil {
			return false, err
		}
		if err := WriteLayer(f, entries, epoch); err != nil {
			f.Close()
			return false, err
		}
		if err := f.Close(); err != nil {
			return false, err
		}
		img, err := NodeImage(rootfs, layer, res)
		if err != nil {
			return false, err
		}
		if err := os.MkdirAll(out, 0o755); err != nil {
			return false, err
		}
		ref, err := name.NewTag(res.Ref)
		if err != nil {
			return false, err
		}
		return false, tarball.WriteToFile(filepath.Join(out, "node.tar"), ref, img)
	}); err != nil {
		return Result{}, err
	}
	res.Steps = b.steps
	data, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(out, stampFile), append(data, '\n'), 0o644); err != nil {
		return Result{}, err
	}
	if err := os.RemoveAll(final); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{}, err
	}
	if err := os.Rename(out, final); err != nil {
		return Result{}, err
	}
	res.Archive = filepath.Join(final, "node.tar")
	return res, nil
}

// Node image labels.
const (
	LabelK8sVersion  = "io.kpbench.node.k8s-version"
	LabelKindVersion = "io.kpbench.node.kind-version"
	LabelImages      = "io.kpbench.node.images"
)

// NodeImage is the node image: the root filesystem tarball and kpbench's
// layer, with kind's entrypoint, systemd's stop signal and the container
// environment systemd looks for.
func NodeImage(rootfs, layer string, res Result) (v1.Image, error) {
	var adds []mutate.Addendum
	for _, l := range []struct{ path, comment string }{
		{rootfs, "Debian " + DebianSuite + " (mmdebstrap)"},
		{layer, "kind's node files, Kubernetes " + res.K8sVersion + ", preloaded images"},
	} {
		tl, err := tarball.LayerFromFile(l.path, tarball.WithCompressionLevel(gzip.BestSpeed))
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: tl, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "kpbench image node", Comment: l.comment}})
	}
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		return nil, err
	}
	return withConfig(img, "amd64",
		[]string{"/usr/local/bin/entrypoint", "/sbin/init"},
		[]string{"container=docker", imagePATH},
		map[string]string{
			containerimage.LabelTitle: "kpbench kind node",
			LabelK8sVersion:           res.K8sVersion,
			LabelKindVersion:          res.KindVersion,
			LabelImages:               strings.Join(res.Images, ","),
			LabelBuiltBy:              "kpbench image node",
		},
		// systemd stops on SIGRTMIN+3 (SIGTERM makes it re-execute).
		"SIGRTMIN+3")
}

// ModuleDir is the directory of module@version in the Go module cache,
// downloading it through the module proxy if needed.
func ModuleDir(ctx context.Context, goCmd, module, version string) (string, error) {
	if goCmd == "" {
		goCmd = "go"
	}
	tmp, err := os.MkdirTemp("", "kpbench-mod-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, goCmd, "mod", "download", "-json", module+"@"+version)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var dl struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &dl); jerr != nil && err == nil {
		err = jerr
	}
	if err != nil || dl.Error != "" || dl.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s: %v %s", module, version, withStderr(err), dl.Error)
	}
	return dl.Dir, nil
}

func withStderr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		s := strings.TrimSpace(string(ee.Stderr))
		if len(s) > 2000 {
			s = "..." + s[len(s)-2000:]
		}
		return fmt.Errorf("%w: %s", err, s)
	}
	return err
}

// Load puts the image into the container runtime's store (`podman load`,
// `docker load`) unless it holds it already; it reports whether it loaded.
func Load(ctx context.Context, runtime string, res Result) (bool, error) {
	if exec.CommandContext(ctx, runtime, "image", "inspect", res.Ref).Run() == nil {
		return false, nil
	}
	out, err := exec.CommandContext(ctx, runtime, "load", "-i", res.Archive).CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("%s load -i %s: %w: %s", runtime, res.Archive, err, strings.TrimSpace(string(out)))
	}
	if err := exec.CommandContext(ctx, runtime, "image", "inspect", res.Ref).Run(); err != nil {
		return false, fmt.Errorf("%s load -i %s did not give %s: %s", runtime, res.Archive, res.Ref, strings.TrimSpace(string(out)))
	}
	return true, nil
}

// ExpectedRef is the reference the node image of k8sVersion ("" = the
// lab's) has, built or not.
func ExpectedRef(k8sVersion string) (string, error) {
	if k8sVersion == "" {
		k8sVersion = build.DefaultVersion
	}
	if _, err := build.StagingVersion(k8sVersion); err != nil {
		return "", err
	}
	return Ref(k8sVersion, Key(k8sVersion, kindVersion())), nil
}
