package nodeimage

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// kubeadmList is `kubeadm config images list --kubernetes-version v1.36.3`.
const kubeadmList = `registry.k8s.io/kube-apiserver:v1.36.3
registry.k8s.io/kube-controller-manager:v1.36.3
registry.k8s.io/kube-scheduler:v1.36.3
registry.k8s.io/kube-proxy:v1.36.3
registry.k8s.io/coredns/coredns:v1.14.2
registry.k8s.io/pause:3.10.2
registry.k8s.io/etcd:3.6.8-0
`

func TestParseImageList(t *testing.T) {
	plan, err := ParseImageList([]byte(kubeadmList))
	if err != nil {
		t.Fatal(err)
	}
	for c, want := range map[string]string{
		APIServer: "registry.k8s.io/kube-apiserver:v1.36.3",
		CoreDNS:   "registry.k8s.io/coredns/coredns:v1.14.2",
		Pause:     "registry.k8s.io/pause:3.10.2",
		Etcd:      "registry.k8s.io/etcd:3.6.8-0",
	} {
		if got := plan[c].String(); got != want {
			t.Errorf("%s = %s, want %s", c, got, want)
		}
	}
	if plan.Tag(CoreDNS) != "v1.14.2" {
		t.Errorf("coredns tag %q", plan.Tag(CoreDNS))
	}
	bad := strings.Replace(kubeadmList, "registry.k8s.io/pause:3.10.2\n", "registry.k8s.io/kindnetd:v1\nregistry.k8s.io/etcd:3.6.9-0\nnot a reference!\n", 1)
	_, err = ParseImageList([]byte(bad))
	if err == nil {
		t.Fatal("a bad list was accepted")
	}
	for _, want := range []string{"kindnetd:v1: not an image kpbench can build", "etcd is listed twice", "not a reference!", "no pause image listed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// pauseBinary builds kpbench's pause program: a static binary the image
// tests can pack, and the sandbox's process under test.
func pauseBinary(t *testing.T) string {
	t.Helper()
	gb := GoBuilder{CacheDir: t.TempDir()}
	p, err := gb.Ensure(context.Background(), PauseProgram())
	if err != nil {
		t.Fatal(err)
	}
	again, err := gb.Ensure(context.Background(), PauseProgram())
	if err != nil || again != p {
		t.Fatalf("second Ensure = %s, %v; want the cached %s", again, err, p)
	}
	return p
}

func TestPauseStopsOnTERMAndReaps(t *testing.T) {
	bin := pauseBinary(t)
	out, err := exec.Command(bin, "-v").Output()
	if err != nil || !strings.Contains(string(out), "pause") {
		t.Fatalf("pause -v: %q %v", out, err)
	}
	cmd := exec.Command(bin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGCHLD); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("pause exited on SIGCHLD: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pause exited with %v on SIGTERM, want 0", err)
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("pause did not stop on SIGTERM")
	}
}

func TestComponentImages(t *testing.T) {
	bin := pauseBinary(t)
	plan, err := ParseImageList([]byte(kubeadmList))
	if err != nil {
		t.Fatal(err)
	}
	bins := map[string]string{}
	for _, c := range Components {
		bins[c] = bin
	}
	r, err := ReadRootfs(mergedUsrRootfs(t, true))
	if err != nil {
		t.Fatal(err)
	}
	base, _, err := KubeProxyBase(r)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := ComponentSpecs(plan, bins, base)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files, err := WriteImages(dir, specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(Components) {
		t.Fatalf("%d archives for %d components: %v", len(files), len(Components), files)
	}
	want := map[string]struct {
		ref, path string
		layers    int
	}{
		"kube-apiserver.tar": {"registry.k8s.io/kube-apiserver:v1.36.3", "/usr/local/bin/kube-apiserver", 1},
		"etcd.tar":           {"registry.k8s.io/etcd:3.6.8-0", "/usr/local/bin/etcd", 1},
		"coredns.tar":        {"registry.k8s.io/coredns/coredns:v1.14.2", "/coredns", 1},
		"pause.tar":          {"registry.k8s.io/pause:3.10.2", "/pause", 1},
		"kube-proxy.tar":     {"registry.k8s.io/kube-proxy:v1.36.3", "/usr/local/bin/kube-proxy", 2},
	}
	for fname, w := range want {
		p := files[fname]
		if p == "" {
			t.Errorf("no %s", fname)
			continue
		}
		m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(p) })
		if err != nil || len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{w.ref}) {
			t.Errorf("%s: manifest %+v %v, want tag %s", fname, m, err, w.ref)
			continue
		}
		img, err := tarball.ImageFromPath(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{w.path}) || cf.Architecture != "amd64" || cf.OS != "linux" {
			t.Errorf("%s: entrypoint %v arch %s/%s", fname, cf.Config.Entrypoint, cf.OS, cf.Architecture)
		}
		if len(cf.Config.Env) != 1 || !strings.HasPrefix(cf.Config.Env[0], "PATH=/usr/local/bin:") {
			t.Errorf("%s: env %v", fname, cf.Config.Env)
		}
		if cf.Config.Labels[LabelBuiltBy] == "" {
			t.Errorf("%s: labels %v", fname, cf.Config.Labels)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != w.layers {
			t.Errorf("%s: %d layers, want %d (%v)", fname, len(layers), w.layers, err)
			continue
		}
		content := fileInImage(t, layers[len(layers)-1], w.path)
		self, _ := os.ReadFile(bin)
		if string(content) != string(self) {
			t.Errorf("%s: %s is not the binary given", fname, w.path)
		}
	}
	// kube-proxy's tools layer is the one built from the root filesystem.
	img, _ := tarball.ImageFromPath(files["kube-proxy.tar"], nil)
	layers, _ := img.Layers()
	if got := fileInImage(t, layers[0], "/usr/sbin/nft"); string(got) != "nft" {
		t.Errorf("kube-proxy's image has no nft: %q", got)
	}
	// Building again gives the same digests.
	again, err := WriteImages(t.TempDir(), specs)
	if err != nil {
		t.Fatal(err)
	}
	for fname := range files {
		a, _ := tarball.ImageFromPath(files[fname], nil)
		b, _ := tarball.ImageFromPath(again[fname], nil)
		da, _ := a.Digest()
		db, _ := b.Digest()
		if da != db {
			t.Errorf("%s: digests %s and %s from the same inputs", fname, da, db)
		}
	}
	// A missing binary, or kube-proxy without its tools, is refused.
	delete(bins, Etcd)
	delete(bins, CoreDNS)
	if _, err := ComponentSpecs(plan, bins, base); err == nil || !strings.Contains(err.Error(), "coredns, etcd") {
		t.Errorf("missing binaries: %v", err)
	}
	bins[Etcd], bins[CoreDNS] = bin, bin
	if _, err := ComponentSpecs(plan, bins, nil); err == nil {
		t.Error("kube-proxy without its tools was accepted")
	}
	// A dynamically linked binary cannot go into an image without libc.
	if _, err := BuildImage(ImageSpec{Ref: plan[Pause], Binary: "/bin/sh", Files: []Entry{{Path: "/pause", Type: tar.TypeReg, Mode: 0o755, Source: "/bin/sh"}}}); err == nil {
		t.Error("a dynamic binary was packed")
	}
}

func fileInImage(t *testing.T, l v1.Layer, p string) []byte {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		if cleanName(h.Name) == p {
			b, _ := io.ReadAll(tr)
			return b
		}
	}
}

func TestNodeImageConfig(t *testing.T) {
	rootfs := writeTar(t, []tarEntry{{name: "./etc/", typ: tar.TypeDir}, {name: "./etc/os-release", typ: tar.TypeReg, content: "debian"}})
	var entries []Entry
	entries = append(entries, file("/kind/version", 0o644, "v1.36.3\n"))
	layer := filepath.Join(t.TempDir(), "layer.tar")
	f, err := os.Create(layer)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLayer(f, entries, epoch); err != nil {
		t.Fatal(err)
	}
	f.Close()
	res := Result{K8sVersion: "v1.36.3", KindVersion: KindVersion, Images: []string{"registry.k8s.io/pause:3.10.2"}}
	img, err := NodeImage(rootfs, layer, res)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/entrypoint", "/sbin/init"}) {
		t.Errorf("entrypoint %v", cf.Config.Entrypoint)
	}
	if cf.Config.StopSignal != "SIGRTMIN+3" || !slices.Contains(cf.Config.Env, "container=docker") {
		t.Errorf("stop signal %q env %v", cf.Config.StopSignal, cf.Config.Env)
	}
	if cf.Config.Labels[LabelK8sVersion] != "v1.36.3" || cf.Config.Labels[LabelImages] != "registry.k8s.io/pause:3.10.2" {
		t.Errorf("labels %v", cf.Config.Labels)
	}
	layers, _ := img.Layers()
	if len(layers) != 2 || string(fileInImage(t, layers[0], "/etc/os-release")) != "debian" || string(fileInImage(t, layers[1], "/kind/version")) != "v1.36.3\n" {
		t.Errorf("layers: %d, want the root filesystem and kpbench's", len(layers))
	}
}

func TestKeyAndRef(t *testing.T) {
	k := Key("v1.36.3", "v0.33.0")
	if len(k) != 12 || k != Key("v1.36.3", "v0.33.0") {
		t.Fatalf("key %q is not a stable 12-digit digest", k)
	}
	if k == Key("v1.36.2", "v0.33.0") || k == Key("v1.36.3", "v0.32.0") {
		t.Error("the key does not depend on the Kubernetes or kind version")
	}
	if got := Ref("v1.36.3", k); got != "localhost/kpbench/node:v1.36.3-"+k {
		t.Errorf("ref %s", got)
	}
	ref, err := ExpectedRef("")
	if err != nil || !strings.HasPrefix(ref, "localhost/kpbench/node:v1.36.3-") {
		t.Errorf("ExpectedRef = %s, %v", ref, err)
	}
	if _, err := ExpectedRef("1.36"); err == nil {
		t.Error("a bad version was accepted")
	}
}

func TestCachedNeedsStampAndArchive(t *testing.T) {
	cache := t.TempDir()
	opts := Options{CacheDir: cache}
	if _, ok := Cached(opts); ok {
		t.Fatal("an empty cache holds an image")
	}
	ref, _ := ExpectedRef("")
	tag := strings.TrimPrefix(ref, Repository+":")
	dir := filepath.Join(cache, "kind-node", tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stamp, _ := json.Marshal(Result{Ref: ref, K8sVersion: "v1.36.3", Images: []string{"x"}})
	if err := os.WriteFile(filepath.Join(dir, stampFile), stamp, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := Cached(opts); ok {
		t.Fatal("a stamp without the archive counts as cached")
	}
	if err := os.WriteFile(filepath.Join(dir, "node.tar"), []byte("tar"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, ok := Cached(opts)
	if !ok || !r.Cached || r.Ref != ref || r.Archive != filepath.Join(dir, "node.tar") {
		t.Fatalf("Cached = %+v, %v", r, ok)
	}
	// Ensure returns it without building anything.
	got, err := Ensure(context.Background(), Options{CacheDir: cache, Go: "/nonexistent/go", Mmdebstrap: "/nonexistent/mmdebstrap"})
	if err != nil || got.Ref != ref || !got.Cached {
		t.Errorf("Ensure on a cached image = %+v, %v", got, err)
	}
}

func TestRootfsSpec(t *testing.T) {
	s := DefaultRootfs()
	args := s.Args("/tmp/out.tar")
	joined := strings.Join(args, " ")
	for _, want := range []string{"--mode=root", "--variant=minbase", "--format=tar", "--include=systemd,systemd-sysv,dbus,", "containerd", "containernetworking-plugins"} {
		if !strings.Contains(joined, want) {
			t.Errorf("args lack %q: %v", want, args)
		}
	}
	if args[len(args)-2] != DebianSuite || args[len(args)-1] != "/tmp/out.tar" {
		t.Errorf("args end %v, want suite and output", args[len(args)-2:])
	}
	hooks := 0
	for _, a := range args {
		if strings.HasPrefix(a, "--customize-hook=") {
			hooks++
		}
	}
	if hooks != len(RootfsHooks) || !strings.Contains(joined, "ctr oci spec > \"$1"+DefaultSpecPath+"\"") {
		t.Errorf("%d hooks, want %d, the default spec among them", hooks, len(RootfsHooks))
	}
	other := s
	other.Packages = append(slices.Clone(s.Packages), "vim")
	if other.Key() == s.Key() {
		t.Error("the key does not depend on the packages")
	}
	s.Mirror = "http://deb.debian.org/debian"
	if got := s.Args("o.tar"); got[len(got)-1] != s.Mirror {
		t.Errorf("mirror not last: %v", got)
	}
	if _, _, err := EnsureRootfs(context.Background(), DefaultRootfs(), t.TempDir(), "/nonexistent/mmdebstrap"); err == nil || !strings.Contains(err.Error(), "mmdebstrap") {
		t.Errorf("without mmdebstrap: %v", err)
	}
}

// plugin.cfg's order of the plugins kpbench's CoreDNS holds (CoreDNS
// chains a server's plugins in this order, whatever the Corefile says).
var pluginCfgOrder = []string{"reload", "ready", "health", "prometheus", "errors", "log", "loadbalance", "cache", "kubernetes", "loop", "forward"}

func TestCoreDNSProgram(t *testing.T) {
	p := CoreDNSProgram("v1.14.2")
	if !strings.Contains(p.Files["go.mod"], "require github.com/coredns/coredns v1.14.2\n") {
		t.Errorf("go.mod:\n%s", p.Files["go.mod"])
	}
	main := p.Files["main.go"]
	last := -1
	for _, d := range pluginCfgOrder {
		i := strings.Index(main, "\t\""+d+"\",\n")
		if i < 0 {
			t.Errorf("directive %s missing", d)
			continue
		}
		if i < last {
			t.Errorf("directive %s out of plugin.cfg's order", d)
		}
		last = i
	}
	// kubeadm's Corefile plugins are all there.
	for _, d := range []string{"errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop", "reload", "loadbalance"} {
		if !strings.Contains(main, "\t\""+d+"\",\n") {
			t.Errorf("kubeadm's Corefile uses %s", d)
		}
	}
	if !strings.Contains(main, `"github.com/coredns/coredns/plugin/metrics"`) {
		t.Error("the prometheus directive's package (metrics) is not imported")
	}
	if p.Key() == CoreDNSProgram("v1.14.3").Key() || p.Key() != CoreDNSProgram("v1.14.2").Key() {
		t.Error("the program's key does not follow its sources")
	}
}
