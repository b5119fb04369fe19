package kind

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kinderrors "sigs.k8s.io/kind/pkg/errors"
	kindexec "sigs.k8s.io/kind/pkg/exec"
	"sigs.k8s.io/yaml"

	"github.com/kpbench/kpbench/clusters/existing"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/clusters/manifests"
	"github.com/kpbench/kpbench/scenarios"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestConfigPerMode(t *testing.T) {
	tests := []struct {
		mode    scenarios.Mode
		topo    Topology
		want    v1alpha4.ProxyMode
		clients int
		servers int
	}{
		{mode: scenarios.ModeIPTables, want: v1alpha4.IPTablesProxyMode, clients: 1, servers: 1},
		{mode: scenarios.ModeIPVS, topo: Topology{ServerNodes: 3}, want: v1alpha4.IPVSProxyMode, clients: 1, servers: 3},
		{mode: scenarios.ModeNFTables, topo: Topology{ClientNodes: 2, ServerNodes: 2, NodeImage: "kindest/node:v1.33.1"}, want: v1alpha4.NFTablesProxyMode, clients: 2, servers: 2},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			cfg, err := Config(tt.mode, tt.topo)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Kind != "Cluster" || cfg.APIVersion != "kind.x-k8s.io/v1alpha4" {
				t.Errorf("kind/apiVersion = %s/%s", cfg.Kind, cfg.APIVersion)
			}
			if cfg.Networking.KubeProxyMode != tt.want {
				t.Errorf("kubeProxyMode = %q, want %q", cfg.Networking.KubeProxyMode, tt.want)
			}
			var cps, clients, servers int
			for i, n := range cfg.Nodes {
				if n.Image != tt.topo.NodeImage {
					t.Errorf("node %d image %q, want %q", i, n.Image, tt.topo.NodeImage)
				}
				switch {
				case n.Role == v1alpha4.ControlPlaneRole:
					cps++
					if len(n.Labels) != 0 {
						t.Errorf("control-plane labelled %v", n.Labels)
					}
				case n.Role == v1alpha4.WorkerRole && n.Labels[manifests.LabelRole] == manifests.RoleClient:
					clients++
				case n.Role == v1alpha4.WorkerRole && n.Labels[manifests.LabelRole] == manifests.RoleServer:
					servers++
				default:
					t.Errorf("node %d: role %s labels %v", i, n.Role, n.Labels)
				}
			}
			if cps != 1 || clients != tt.clients || servers != tt.servers {
				t.Errorf("control-planes=%d clients=%d servers=%d, want 1 %d %d", cps, clients, servers, tt.clients, tt.servers)
			}
			// The rendered YAML reads back strictly as the same config.
			b, err := ConfigYAML(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var back v1alpha4.Cluster
			if err := yaml.UnmarshalStrict(b, &back); err != nil {
				t.Fatalf("rendered config does not read back: %v\n%s", err, b)
			}
			if !reflect.DeepEqual(&back, cfg) {
				t.Errorf("round trip differs:\n%s", b)
			}
		})
	}
}

func TestConfigYAMLGolden(t *testing.T) {
	cfg, err := Config(scenarios.ModeNFTables, Topology{ServerNodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ConfigYAML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "nftables-1client-2servers.yaml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("config YAML differs from %s:\n%s", golden, got)
	}
}

func TestConfigRejects(t *testing.T) {
	tests := []struct {
		name string
		mode scenarios.Mode
		topo Topology
		want []string
	}{
		{name: "external", mode: scenarios.ModeExternal, want: []string{"kind cluster runs kube-proxy"}},
		{name: "unknown mode", mode: "ebpf", want: []string{`unknown mode "ebpf"`}},
		{name: "every problem at once", mode: "x", topo: Topology{ClientNodes: -1, ServerNodes: 60, NodeImage: "a b"},
			want: []string{"unknown mode", "client nodes must be at least 1", "more than a kind cluster", "whitespace"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Config(tt.mode, tt.topo)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// fakeKind records what the provider asks of kind.
type fakeKind struct {
	mu         sync.Mutex
	clusters   []string
	created    []*v1alpha4.Cluster
	retain     []bool
	deleted    []string
	loaded     [][]byte
	exported   []string
	createErr  error
	loadErr    error
	kubeconfig string
}

func (f *fakeKind) Create(name string, cfg *v1alpha4.Cluster, kubeconfig string, retain bool, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, cfg)
	f.retain = append(f.retain, retain)
	f.kubeconfig = kubeconfig
	if f.createErr != nil {
		return f.createErr
	}
	f.clusters = append(f.clusters, name)
	return os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\n"), 0o600)
}

func (f *fakeKind) Delete(name, kubeconfig string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, name)
	f.clusters = slicesDelete(f.clusters, name)
	return nil
}

func slicesDelete(s []string, v string) []string {
	var out []string
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

func (f *fakeKind) List() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.clusters...), nil
}

func (f *fakeKind) ExportKubeconfig(name, path string) error {
	f.mu.Lock()
	f.exported = append(f.exported, name)
	f.mu.Unlock()
	return os.WriteFile(path, []byte("apiVersion: v1\nkind: Config\n"), 0o600)
}

func (f *fakeKind) LoadImageArchive(name string, open func() (io.ReadCloser, error)) error {
	if f.loadErr != nil {
		return f.loadErr
	}
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.loaded = append(f.loaded, b)
	f.mu.Unlock()
	return nil
}

// imageArchive writes a small random image tagged tag.
func imageArchive(t *testing.T, tag string) string {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kpbench.tar")
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		t.Fatal(err)
	}
	return path
}

func newTestProvider(t *testing.T, f *fakeKind, opts Options) *Provider {
	t.Helper()
	opts.API = f
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	if opts.ImageArchive == "" {
		opts.ImageArchive = imageArchive(t, "kpbench:test")
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCreateLoadsImage(t *testing.T) {
	f := &fakeKind{}
	p := newTestProvider(t, f, Options{Name: "bench", Topology: Topology{ServerNodes: 2}})
	if err := p.Create(context.Background(), scenarios.ModeIPVS); err != nil {
		t.Fatal(err)
	}
	if len(f.created) != 1 || f.created[0].Networking.KubeProxyMode != v1alpha4.IPVSProxyMode || len(f.created[0].Nodes) != 4 {
		t.Fatalf("created %+v", f.created)
	}
	if f.kubeconfig != p.KubeconfigPath() || !strings.HasPrefix(f.kubeconfig, p.opts.StateDir) {
		t.Errorf("kubeconfig %s, want one under the state dir (never ~/.kube/config)", f.kubeconfig)
	}
	want, _ := os.ReadFile(p.opts.ImageArchive)
	if len(f.loaded) != 1 || string(f.loaded[0]) != string(want) {
		t.Error("the image archive was not loaded as it is")
	}
	if len(f.deleted) != 0 {
		t.Errorf("deleted %v after a good create", f.deleted)
	}
}

func TestFailedCreateDeletesUnlessRetain(t *testing.T) {
	tests := []struct {
		name        string
		retain      bool
		createErr   error
		loadErr     error
		wantDeleted bool
	}{
		{name: "image load fails", loadErr: errors.New("ctr: failed to import"), wantDeleted: true},
		{name: "image load fails, retain", retain: true, loadErr: errors.New("ctr: failed to import")},
		// kind deletes the nodes of its own failed create (unless told to
		// retain them); kpbench passes the flag and deletes nothing more.
		{name: "kind create fails", createErr: errors.New("node(s) already exist")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeKind{createErr: tt.createErr, loadErr: tt.loadErr}
			p := newTestProvider(t, f, Options{Retain: tt.retain})
			err := p.Create(context.Background(), scenarios.ModeIPTables)
			if err == nil {
				t.Fatal("want an error")
			}
			if len(f.retain) != 1 || f.retain[0] != tt.retain {
				t.Errorf("retain passed to kind = %v, want %v", f.retain, tt.retain)
			}
			if got := len(f.deleted) > 0; got != tt.wantDeleted {
				t.Errorf("deleted = %v, want %v", f.deleted, tt.wantDeleted)
			}
		})
	}
}

func TestUpFailureAfterCreateDeletesCluster(t *testing.T) {
	f := &fakeKind{}
	p := newTestProvider(t, f, Options{InCluster: func(o *existing.Options) {
		// A cluster without nodes: deploying the workloads fails.
		o.Clientset = fake.NewClientset()
		o.Execer = nopExecer{}
		o.PollInterval = time.Millisecond
	}})
	err := p.Up(context.Background(), scenarios.ModeNFTables)
	if err == nil || !strings.Contains(err.Error(), "no kube-proxy DaemonSet") {
		t.Fatalf("err = %v", err)
	}
	if len(f.deleted) != 1 {
		t.Errorf("deleted = %v, want the cluster kpbench made", f.deleted)
	}
	if _, err := os.Stat(p.KubeconfigPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the deleted cluster's kubeconfig: %v, want it removed", err)
	}
}

func TestUpReusesExistingCluster(t *testing.T) {
	f := &fakeKind{clusters: []string{DefaultName}}
	p := newTestProvider(t, f, Options{InCluster: func(o *existing.Options) {
		o.Clientset = fake.NewClientset()
		o.Execer = nopExecer{}
		if !o.Confirm || o.Image != "kpbench:test" {
			t.Errorf("in-cluster options: confirm=%v image=%s", o.Confirm, o.Image)
		}
	}})
	err := p.Up(context.Background(), scenarios.ModeIPTables)
	if err == nil {
		t.Fatal("want the fake cluster's missing kube-proxy to fail Up")
	}
	if len(f.created) != 0 || len(f.exported) != 1 || len(f.loaded) != 1 {
		t.Errorf("created=%d exported=%v loaded=%d; want reuse: no create, kubeconfig exported, image loaded", len(f.created), f.exported, len(f.loaded))
	}
	if len(f.deleted) != 0 {
		t.Error("a cluster kpbench did not make this time was deleted")
	}
}

func TestDown(t *testing.T) {
	for _, keep := range []bool{false, true} {
		f := &fakeKind{}
		p := newTestProvider(t, f, Options{Keep: keep})
		if err := p.Create(context.Background(), scenarios.ModeIPTables); err != nil {
			t.Fatal(err)
		}
		if err := p.Down(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, statErr := os.Stat(p.KubeconfigPath())
		if keep && (len(f.deleted) != 0 || statErr != nil) {
			t.Errorf("keep: deleted %v, kubeconfig %v", f.deleted, statErr)
		}
		if !keep && (len(f.deleted) != 1 || !errors.Is(statErr, os.ErrNotExist)) {
			t.Errorf("deleted %v, kubeconfig %v", f.deleted, statErr)
		}
		if err := p.Down(context.Background()); err != nil {
			t.Errorf("second Down: %v", err)
		}
	}
}

func TestNotUp(t *testing.T) {
	p := newTestProvider(t, &fakeKind{}, Options{})
	if _, err := p.ClientNode().KubeProxyGet(context.Background(), "/proxyMode"); err == nil || !strings.Contains(err.Error(), "not up") {
		t.Errorf("err = %v", err)
	}
	if err := p.SetMode(context.Background(), scenarios.ModeIPVS); err == nil {
		t.Error("SetMode on a cluster that is not up succeeded")
	}
}

func TestArchiveTag(t *testing.T) {
	if got, err := ArchiveTag(imageArchive(t, "registry.example/kpbench:v9")); err != nil || got != "registry.example/kpbench:v9" {
		t.Errorf("tag = %q, %v", got, err)
	}
	bad := filepath.Join(t.TempDir(), "x.tar")
	_ = os.WriteFile(bad, []byte("not a tar"), 0o644)
	if _, err := ArchiveTag(bad); err == nil {
		t.Error("want an error for a broken archive")
	}
}

func TestCapabilities(t *testing.T) {
	p := newTestProvider(t, &fakeKind{}, Options{})
	caps, err := p.Capabilities(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables} {
		if ok, why := caps.Runnable(m); !ok {
			t.Errorf("%s not runnable: %s", m, why)
		}
	}
	if ok, _ := caps.Runnable(scenarios.ModeExternal); ok {
		t.Error("external runnable on kind")
	}
	ok, why := caps.Runnable(scenarios.ModeIPVS)
	hostOK, hostWhy := kubeproxy.IPVSAvailable("/proc", "/")
	if ok != hostOK || why != hostWhy {
		t.Errorf("ipvs = %v %q, want this host's answer %v %q", ok, why, hostOK, hostWhy)
	}
}

type nopExecer struct{}

func (nopExecer) Exec(context.Context, string, string, string, []string, io.Reader, io.Writer, io.Writer) error {
	return errors.New("no exec in this test")
}

func TestWithOutputCarriesCommandOutput(t *testing.T) {
	inner := &kindexec.RunError{Command: []string{"docker", "ps"}, Output: []byte("Cannot connect to the Docker daemon\n"), Inner: errors.New("exit status 1")}
	err := withOutput(fmt.Errorf("failed to list clusters: %w", inner))
	if err == nil || !strings.Contains(err.Error(), "Cannot connect to the Docker daemon") {
		t.Fatalf("err = %v", err)
	}
	if withOutput(nil) != nil {
		t.Error("nil error gained a value")
	}
}

func TestWithOutputThroughKindWrapping(t *testing.T) {
	inner := &kindexec.RunError{Command: []string{"ctr", "images", "import"}, Output: []byte("ctr: content digest not found"), Inner: errors.New("exit status 1")}
	err := withOutput(kinderrors.Wrap(inner, "failed to load image"))
	if err == nil || !strings.Contains(err.Error(), "content digest not found") {
		t.Fatalf("err = %v", err)
	}
}
