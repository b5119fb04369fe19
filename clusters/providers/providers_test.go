package providers

import (
	"strings"
	"testing"

	"github.com/kpbench/kpbench/clusters/kind"
	"github.com/kpbench/kpbench/clusters/lab"
)

func TestNewBuildsEveryProviderByName(t *testing.T) {
	if got := List(); got != "lab, kind or existing" {
		t.Errorf("List() = %q", got)
	}
	o := Options{Backends: 7, LoadClients: 3, Keep: true,
		Lab:  lab.Config{Name: "t1", StateDir: t.TempDir(), CacheDir: t.TempDir(), KpbenchBin: "/bin/true"},
		Kind: kind.Options{Name: "t1", StateDir: t.TempDir(), API: noKind{}, Topology: kind.Topology{ClientNodes: 1, ServerNodes: 2}}}
	for _, name := range Names() {
		if name == "existing" {
			continue // needs a kubeconfig; built from one in clusters/existing's tests
		}
		p, err := New(name, o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.Name() != name {
			t.Errorf("New(%q) made %q", name, p.Name())
		}
	}
	p, _ := New("kind", o)
	if topo := p.(*kind.Provider).Topology(); topo.ClientNodes != 3 || topo.ServerNodes != 2 {
		t.Errorf("kind topology %+v: want a client node per load client and the servers asked for", topo)
	}
	if _, err := New("minikube", o); err == nil || !strings.Contains(err.Error(), "lab, kind or existing") {
		t.Errorf("unknown provider: err = %v", err)
	}
	if !Known("lab") || Known("minikube") {
		t.Error("Known")
	}
	o.Lab.Name = "Not A Name"
	if _, err := New("lab", o); err == nil {
		t.Error("a bad lab name was accepted")
	}
}

// noKind stands in for the kind library: New must not touch it.
type noKind struct{ kind.ClusterAPI }
