package kind

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	kinddefaults "sigs.k8s.io/kind/pkg/apis/config/defaults"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"

	"github.com/kpbench/kpbench/clusters/nodeimage"
	"github.com/kpbench/kpbench/scenarios"
)

func TestPreparePodman(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	setenv := func(k, v string) error { env[k] = v; return nil }
	state := t.TempDir()
	p, err := preparePodman(state, getenv, setenv)
	if err != nil {
		t.Fatal(err)
	}
	if p != PodmanConfPath(state) || env[EnvContainersConf] != p || env[EnvKindProvider] != "podman" {
		t.Fatalf("file %s, env %v", p, env)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[containers]\ndefault_ulimits = []\n", "[engine]\nruntime = \"runc\"\n", "[network]\nnetwork_backend = \"netavark\"\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("containers.conf lacks %q:\n%s", want, b)
		}
	}
	// The user's CONTAINERS_CONF is kept, and nothing is written.
	env = map[string]string{EnvContainersConf: "/etc/mine.conf"}
	state2 := t.TempDir()
	p, err = preparePodman(state2, getenv, setenv)
	if err != nil || p != "" || env[EnvContainersConf] != "/etc/mine.conf" || env[EnvKindProvider] != "podman" {
		t.Errorf("with the user's file: %q %v %v", p, err, env)
	}
	if _, err := os.Stat(PodmanConfPath(state2)); err == nil {
		t.Error("a containers.conf was written although the user's is used")
	}
}

func TestUsesPodman(t *testing.T) {
	look := func(have ...string) func(string) (string, error) {
		return func(c string) (string, error) {
			for _, h := range have {
				if h == c {
					return "/usr/bin/" + c, nil
				}
			}
			return "", errors.New("not found")
		}
	}
	env := func(v string) func(string) string { return func(string) string { return v } }
	tests := []struct {
		name     string
		env      string
		have     []string
		dockerUp bool
		want     bool
	}{
		{"asked for", "podman", []string{"docker", "podman"}, true, true},
		{"docker asked for", "docker", []string{"podman"}, false, false},
		{"only podman", "", []string{"podman"}, false, true},
		{"docker first", "", []string{"docker", "podman"}, true, false},
		{"docker's command without its daemon", "", []string{"docker", "podman"}, false, true},
		{"docker without its daemon, no podman", "", []string{"docker"}, false, false},
		{"neither", "", nil, false, false},
	}
	for _, tt := range tests {
		up := func() bool { return tt.dockerUp }
		if got := usesPodman(env(tt.env), look(tt.have...), up); got != tt.want {
			t.Errorf("%s: usesPodman = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestChooseNodeImage(t *testing.T) {
	ctx := context.Background()
	present := func(ok bool) func(string) bool {
		return func(img string) bool {
			if img != kinddefaults.Image {
				t.Errorf("asked about %s, want kind's default", img)
			}
			return ok
		}
	}
	reach := func(ok bool) func(context.Context) bool { return func(context.Context) bool { return ok } }
	tests := []struct {
		name        string
		asked       string
		present     bool
		reachable   bool
		wantImage   string
		wantOffline bool
	}{
		{name: "a reference", asked: "kindest/node:v1.33.1", wantImage: "kindest/node:v1.33.1"},
		{name: "offline asked for", asked: NodeImageOffline, present: true, reachable: true, wantOffline: true},
		{name: "kind's image present", present: true},
		{name: "registry answers", reachable: true},
		{name: "neither", wantOffline: true},
	}
	for _, tt := range tests {
		c := chooseNodeImage(ctx, tt.asked, present(tt.present), reach(tt.reachable))
		if c.Image != tt.wantImage || c.Offline != tt.wantOffline || c.Reason == "" {
			t.Errorf("%s: %+v, want image %q offline %v and a reason", tt.name, c, tt.wantImage, tt.wantOffline)
		}
	}
}

func TestConfigOfflineImageAndCgroupV1(t *testing.T) {
	cfg, err := Config(scenarios.ModeIPTables, Topology{NodeImage: "localhost/kpbench/node:v1.36.3-abc", Offline: true, CgroupV1: true})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Networking.DisableDefaultCNI {
		t.Error("an offline image (no kindnetd) keeps kind's default CNI")
	}
	for _, n := range cfg.Nodes {
		if n.Image != "localhost/kpbench/node:v1.36.3-abc" {
			t.Errorf("node %s image %q", n.Role, n.Image)
		}
	}
	if !reflect.DeepEqual(cfg.KubeadmConfigPatches, []string{KubeletCgroupV1Patch}) || !strings.Contains(KubeletCgroupV1Patch, "failCgroupV1: false") {
		t.Errorf("patches %v", cfg.KubeadmConfigPatches)
	}
	cfg, err = Config(scenarios.ModeIPTables, Topology{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Networking.DisableDefaultCNI || len(cfg.KubeadmConfigPatches) != 0 {
		t.Errorf("kind's image on cgroup v2 got %+v %v", cfg.Networking, cfg.KubeadmConfigPatches)
	}
	if _, err := Config(scenarios.ModeIPTables, Topology{NodeImage: NodeImageOffline}); err == nil {
		t.Error("an unresolved offline image was accepted")
	}
	if _, err := Config(scenarios.ModeIPTables, Topology{Offline: true}); err == nil {
		t.Error("an offline image without its reference was accepted")
	}
}

func TestCreateWithTheOfflineImage(t *testing.T) {
	for _, v1 := range []bool{true, false} {
		f := &fakeKind{}
		host := t.TempDir()
		if !v1 {
			if err := os.MkdirAll(filepath.Join(host, "sys", "fs", "cgroup"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(host, "sys", "fs", "cgroup", "cgroup.controllers"), []byte("cpu memory\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		res := nodeimage.Result{Ref: "localhost/kpbench/node:v1.36.3-0123456789ab", Archive: "/cache/node.tar"}
		var ensured, loaded int
		p := newTestProvider(t, f, Options{
			HostRoot: host,
			ResolveNodeImage: func(_ context.Context, asked string) NodeImageChoice {
				if asked != "" {
					t.Errorf("asked %q, want the default", asked)
				}
				return NodeImageChoice{Offline: true, Reason: "test"}
			},
			EnsureNodeImage: func(context.Context) (nodeimage.Result, error) { ensured++; return res, nil },
			LoadNodeImage: func(_ context.Context, r nodeimage.Result) error {
				if r.Ref != res.Ref {
					t.Errorf("loaded %s", r.Ref)
				}
				loaded++
				return nil
			},
		})
		if err := p.Create(context.Background(), scenarios.ModeNFTables); err != nil {
			t.Fatal(err)
		}
		if ensured != 1 || loaded != 1 || len(f.created) != 1 {
			t.Fatalf("ensured %d loaded %d created %d", ensured, loaded, len(f.created))
		}
		cfg := f.created[0]
		if !cfg.Networking.DisableDefaultCNI || cfg.Nodes[0].Image != res.Ref || cfg.Networking.KubeProxyMode != v1alpha4.NFTablesProxyMode {
			t.Errorf("cgroup v1 %v: created %+v", v1, cfg)
		}
		if got := len(cfg.KubeadmConfigPatches) == 1; got != v1 {
			t.Errorf("cgroup v1 %v: patches %v", v1, cfg.KubeadmConfigPatches)
		}
		_, d := p.Describe(context.Background())
		if d["nodeImage"] != res.Ref {
			t.Errorf("describe %v", d)
		}
	}
}

func TestCreateFailsWhenTheOfflineImageCannotBeBuilt(t *testing.T) {
	f := &fakeKind{}
	p := newTestProvider(t, f, Options{
		Topology: Topology{NodeImage: NodeImageOffline},
		EnsureNodeImage: func(context.Context) (nodeimage.Result, error) {
			return nodeimage.Result{}, errors.New("no mmdebstrap")
		},
	})
	err := p.Create(context.Background(), scenarios.ModeIPTables)
	if err == nil || !strings.Contains(err.Error(), "no mmdebstrap") {
		t.Fatalf("Create = %v", err)
	}
	if len(f.created) != 0 {
		t.Error("kind was asked to create a cluster without its node image")
	}
}
