package nodeimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// kindModuleFiles is kind's images/base/files in the Go module cache (the
// kind module kpbench builds with is there whenever kpbench was built).
func kindModuleFiles(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	d := filepath.Join(strings.TrimSpace(string(out)), "sigs.k8s.io", "kind@"+KindVersion, "images", "base", "files")
	if _, err := os.Stat(d); err != nil {
		t.Fatalf("kind %s's node files: %v (go mod download sigs.k8s.io/kind@%s)", KindVersion, err, KindVersion)
	}
	return d
}

func TestKindVersionIsGoMods(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "sigs.k8s.io/kind "+KindVersion+"\n") {
		t.Errorf("KindVersion %s is not the kind go.mod requires", KindVersion)
	}
}

func TestKindFilesOfTheKindModule(t *testing.T) {
	entries, err := KindFiles(kindModuleFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]Entry{}
	for _, e := range entries {
		byPath[e.Path] = e
	}
	for p, mode := range map[string]int64{
		"/usr/local/bin/entrypoint":                             0o755,
		"/kind/bin/mount-product-files.sh":                      0o755,
		"/etc/containerd/config.toml":                           0o644,
		"/etc/systemd/system/kubelet.service.d/10-kubeadm.conf": 0o644,
		"/etc/systemd/system/kubelet.service.d/11-kind.conf":    0o644,
		"/etc/default/kubelet":                                  0o644,
	} {
		e, ok := byPath[p]
		if !ok {
			t.Errorf("no %s", p)
			continue
		}
		if e.Mode != mode || e.Type != tar.TypeReg || len(e.Data) == 0 {
			t.Errorf("%s: mode %o type %q %d bytes; want mode %o, a non-empty file", p, e.Mode, e.Type, len(e.Data), mode)
		}
	}
	for _, p := range []string{"/usr/local/bin/clean-install", "/LICENSES", "/LICENSES/README.txt", "/etc/systemd/system/containerd-fuse-overlayfs.service"} {
		if _, ok := byPath[p]; ok {
			t.Errorf("%s is in the layout; it should be left out", p)
		}
	}
	if !bytes.Contains(byPath["/usr/local/bin/entrypoint"].Data, []byte("select_iptables")) {
		t.Error("the entrypoint is not kind's (no select_iptables)")
	}
}

func TestKindFilesNamesEveryMissingFile(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("usr/local/bin/entrypoint", "#!/bin/bash\n")
	write("etc/containerd/config.toml", "version = 2\n")
	_, err := KindFiles(root)
	if err == nil {
		t.Fatal("no error for a tree without kubelet.service and others")
	}
	for _, want := range []string{"etc/systemd/system/kubelet.service", "etc/systemd/system/containerd.service", "kind/bin/mount-product-files.sh"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "usr/local/bin/entrypoint,") {
		t.Errorf("error %q names a file that is there", err)
	}
}

func TestContainerdConfigPointsAtThePauseAndRestrictsOOMScoreAdj(t *testing.T) {
	kindCfg, err := os.ReadFile(filepath.Join(kindModuleFiles(t), "etc", "containerd", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(kindCfg, []byte("restrict_oom_score_adj = false")) {
		t.Fatalf("kind's config no longer sets restrict_oom_score_adj = false:\n%s", kindCfg)
	}
	got, err := ContainerdConfig(kindCfg, "registry.k8s.io/pause:3.10.2")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, []byte(`sandbox_image = "registry.k8s.io/pause:3.10.2"`)) {
		t.Errorf("sandbox_image not replaced:\n%s", got)
	}
	if !bytes.Contains(got, []byte("restrict_oom_score_adj = true")) || bytes.Contains(got, []byte("restrict_oom_score_adj = false")) {
		t.Errorf("restrict_oom_score_adj not turned on:\n%s", got)
	}
	// Only those two lines change.
	want := strings.Replace(string(kindCfg), "restrict_oom_score_adj = false", "restrict_oom_score_adj = true", 1)
	want = sandboxRE.ReplaceAllString(want, `${1}"registry.k8s.io/pause:3.10.2"`)
	if string(got) != want {
		t.Errorf("more than the two lines changed:\n%s", got)
	}
	_, err = ContainerdConfig([]byte("version = 2\n"), "p")
	if err == nil {
		t.Fatal("a config without sandbox_image and restrict_oom_score_adj was accepted")
	}
	for _, w := range []string{"sandbox_image", "restrict_oom_score_adj"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
}

const defaultSpec = `{"ociVersion":"1.1.0","process":{"user":{"uid":0,"gid":0},"args":["/pause"],
"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],"cwd":"/"},"linux":{"namespaces":[{"type":"pid"}]}}`

func TestCRIBaseSpec(t *testing.T) {
	out, err := CRIBaseSpec([]byte(defaultSpec))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Process map[string]any
		Hooks   struct {
			CreateContainer []struct{ Path string }
		}
		Linux map[string]any
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Process["rlimits"]; ok {
		t.Error("rlimits kept")
	}
	if m.Process["cwd"] != "/" || m.Linux["namespaces"] == nil {
		t.Error("the rest of the spec was not kept")
	}
	if len(m.Hooks.CreateContainer) != 1 || m.Hooks.CreateContainer[0].Path != MountProductFilesHook {
		t.Errorf("createContainer hooks = %+v", m.Hooks.CreateContainer)
	}
	// A hook already there stays first.
	out, err = CRIBaseSpec([]byte(`{"process":{},"hooks":{"createContainer":[{"path":"/a"}]}}`))
	if err != nil || !strings.Contains(string(out), `"/a"`) || strings.Index(string(out), `"/a"`) > strings.Index(string(out), MountProductFilesHook) {
		t.Errorf("existing hook: %v\n%s", err, out)
	}
	for _, bad := range []string{"not json", `{"hooks":{}}`} {
		if _, err := CRIBaseSpec([]byte(bad)); err == nil {
			t.Errorf("CRIBaseSpec(%q) accepted", bad)
		}
	}
}

func layoutInput(t *testing.T) LayoutInput {
	t.Helper()
	dir := t.TempDir()
	bin := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("binary "+name), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kf, err := KindFiles(kindModuleFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	return LayoutInput{
		KindFiles: kf, K8sVersion: "v1.36.3",
		Kubelet: bin("kubelet"), Kubeadm: bin("kubeadm"), Kubectl: bin("kubectl"),
		Images:      map[string]string{"pause.tar": bin("pause.tar"), "etcd.tar": bin("etcd.tar")},
		Pause:       "registry.k8s.io/pause:3.10.2",
		DefaultSpec: []byte(defaultSpec),
	}
}

// readLayer reads a layer tarball: path → header and content.
func readLayer(t *testing.T, r io.Reader) (map[string]*tar.Header, map[string][]byte, []string) {
	t.Helper()
	hdrs := map[string]*tar.Header{}
	data := map[string][]byte{}
	var order []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := cleanName(h.Name)
		if _, dup := hdrs[p]; dup {
			t.Errorf("%s twice in the layer", p)
		}
		hdrs[p] = h
		order = append(order, p)
		b, _ := io.ReadAll(tr)
		data[p] = b
	}
	return hdrs, data, order
}

func TestLayoutIsTheNodeKindExpects(t *testing.T) {
	in := layoutInput(t)
	entries, err := Layout(in)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteLayer(&buf, entries, epoch); err != nil {
		t.Fatal(err)
	}
	hdrs, data, order := readLayer(t, &buf)
	pos := map[string]int{}
	for i, p := range order {
		pos[p] = i
	}
	// Every entry comes after its directory.
	for _, p := range order {
		if d := filepath.Dir(p); d != "/" {
			if i, ok := pos[d]; !ok || i > pos[p] {
				t.Errorf("%s: its directory %s is missing or comes later", p, d)
			}
		}
		if h := hdrs[p]; h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(epoch) {
			t.Errorf("%s: owner %d:%d mtime %v", p, h.Uid, h.Gid, h.ModTime)
		}
	}
	if got := string(data["/kind/version"]); got != "v1.36.3\n" {
		t.Errorf("/kind/version = %q", got)
	}
	for _, b := range []string{"kubelet", "kubeadm", "kubectl"} {
		if h := hdrs["/usr/bin/"+b]; h == nil || h.Mode != 0o755 || string(data["/usr/bin/"+b]) != "binary "+b {
			t.Errorf("/usr/bin/%s: %+v %q", b, h, data["/usr/bin/"+b])
		}
	}
	for _, img := range []string{"/kind/images/etcd.tar", "/kind/images/pause.tar"} {
		if hdrs[img] == nil || hdrs[img].Mode != 0o644 {
			t.Errorf("%s missing or not 0644", img)
		}
	}
	if !bytes.Contains(data["/etc/containerd/config.toml"], []byte(`sandbox_image = "registry.k8s.io/pause:3.10.2"`)) {
		t.Error("containerd's sandbox image is not the node's pause")
	}
	if !bytes.Contains(data["/etc/containerd/cri-base.json"], []byte(MountProductFilesHook)) {
		t.Error("cri-base.json lacks kind's hook")
	}
	links := map[string]string{
		"/etc/systemd/system/multi-user.target.wants/kubelet.service":          "/etc/systemd/system/kubelet.service",
		"/etc/systemd/system/multi-user.target.wants/containerd.service":       "/etc/systemd/system/containerd.service",
		"/etc/systemd/system/multi-user.target.wants/undo-mount-hacks.service": "/etc/systemd/system/undo-mount-hacks.service",
		"/etc/systemd/system/multi-user.target.wants/" + ImportUnit:            "/etc/systemd/system/" + ImportUnit,
		"/etc/systemd/system/multi-user.target.wants/" + CNIUnit:               "/etc/systemd/system/" + CNIUnit,
		"/etc/systemd/system/systemd-binfmt.service":                           "/dev/null",
		"/usr/local/bin/containerd":                                            "/usr/bin/containerd",
		"/opt/cni/bin":                                                         "/usr/lib/cni",
	}
	for l, target := range links {
		h := hdrs[l]
		if h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != target {
			t.Errorf("%s: %+v, want a symlink to %s", l, h, target)
		}
		// Every enabled unit is in the layer.
		if strings.HasPrefix(target, "/etc/systemd/system/") && hdrs[target] == nil {
			t.Errorf("%s is enabled but not in the layer", target)
		}
	}
	if h := hdrs["/etc/kubernetes/manifests"]; h == nil || h.Typeflag != tar.TypeDir {
		t.Error("no /etc/kubernetes/manifests directory")
	}
}

func TestLayoutNamesEveryMissingInput(t *testing.T) {
	_, err := Layout(LayoutInput{DefaultSpec: []byte("{")})
	if err == nil {
		t.Fatal("an empty input was accepted")
	}
	for _, want := range []string{"no Kubernetes version", "no kubelet binary", "no kubeadm binary", "no kubectl binary", "no pause image", "no images to preload", "not JSON"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestWriteLayerLastEntryWinsAndConflicts(t *testing.T) {
	var buf bytes.Buffer
	err := WriteLayer(&buf, []Entry{
		file("/etc/a", 0o644, "first"),
		symlink("/usr/local/bin/x", "/bin/true"),
		file("/etc/a", 0o600, "second"),
	}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	hdrs, data, _ := readLayer(t, &buf)
	if string(data["/etc/a"]) != "second" || hdrs["/etc/a"].Mode != 0o600 {
		t.Errorf("/etc/a = %q mode %o; want the last entry", data["/etc/a"], hdrs["/etc/a"].Mode)
	}
	for _, d := range []string{"/etc", "/usr", "/usr/local", "/usr/local/bin"} {
		if h := hdrs[d]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o755 {
			t.Errorf("parent %s: %+v", d, h)
		}
	}
	if err := WriteLayer(io.Discard, []Entry{file("/a", 0o644, ""), file("/a/b", 0o644, "")}, epoch); err == nil {
		t.Error("a file used as a directory was accepted")
	}
	if err := WriteLayer(io.Discard, []Entry{file("relative", 0o644, "")}, epoch); err == nil {
		t.Error("a relative path was accepted")
	}
	if err := WriteLayer(io.Discard, []Entry{{Path: "/x", Type: tar.TypeReg, Source: "/nonexistent/kpbench"}}, epoch); err == nil {
		t.Error("a missing source was accepted")
	}
}

// The commands kind's scripts run that Debian's minimal base lacks come
// with the node's packages: mount-product-files.sh, the hook containerd
// runs for every container, reads the container's state with jq, and
// without it no pod starts.
func TestPackagesHaveWhatKindsScriptsRun(t *testing.T) {
	notInMinbase := map[string]string{"jq": "jq", "curl": "curl", "pigz": "pigz", "socat": "socat"}
	root := kindModuleFiles(t)
	var scripts []string
	for _, glob := range []string{"kind/bin/*", "usr/local/bin/*"} {
		m, err := filepath.Glob(filepath.Join(root, glob))
		if err != nil {
			t.Fatal(err)
		}
		scripts = append(scripts, m...)
	}
	if len(scripts) == 0 {
		t.Fatalf("no scripts under %s", root)
	}
	used := map[string]bool{}
	for _, s := range scripts {
		rel, _ := filepath.Rel(root, s)
		if slices.Contains(kindFilesSkipped, filepath.ToSlash(rel)) {
			continue
		}
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for cmd := range notInMinbase {
			if regexp.MustCompile(`(^|[\s$(|;&])` + cmd + `\s`).Match(data) {
				used[cmd] = true
				t.Logf("%s runs %s", rel, cmd)
			}
		}
	}
	if !used["jq"] {
		t.Errorf("kind's scripts no longer run jq; this test's premise changed")
	}
	for cmd := range used {
		if !slices.Contains(DebianPackages, notInMinbase[cmd]) {
			t.Errorf("kind's scripts run %s, and the node's packages lack %s", cmd, notInMinbase[cmd])
		}
	}
}
