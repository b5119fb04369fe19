package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestStagingVersion(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "release", in: "v1.36.3", want: "v0.36.3"},
		{name: "older release", in: "v1.30.0", want: "v0.30.0"},
		{name: "pre-release", in: "v1.37.0-rc.1", want: "v0.37.0-rc.1"},
		{name: "no v", in: "1.36.3", wantErr: true},
		{name: "major 2", in: "v2.0.0", wantErr: true},
		{name: "missing patch", in: "v1.36", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StagingVersion(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadVersion) {
					t.Fatalf("StagingVersion(%q) error = %v, want ErrBadVersion", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("StagingVersion(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestPlanFromGoMod(t *testing.T) {
	data, err := os.ReadFile("testdata/kubernetes-v1.36.3.gomod.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanFromGoMod("v1.36.3", data)
	if err != nil {
		t.Fatal(err)
	}
	if p.EtcdVersion != "v3.6.8" {
		t.Errorf("etcd version = %q, want v3.6.8 (what kubernetes v1.36.3 pins)", p.EtcdVersion)
	}
	if p.StagingVersion != "v0.36.3" || p.GoVersion != "1.26.0" {
		t.Errorf("staging %q go %q", p.StagingVersion, p.GoVersion)
	}
	for _, want := range []string{"k8s.io/api", "k8s.io/client-go", "k8s.io/kube-proxy", "k8s.io/component-base", "k8s.io/apiserver"} {
		if !slices.Contains(p.Staging, want) {
			t.Errorf("staging list lacks %s", want)
		}
	}
	// Modules that are real dependencies, not staging, must not be replaced.
	for _, notStaging := range []string{"k8s.io/klog/v2", "k8s.io/utils", "k8s.io/kube-openapi"} {
		if slices.Contains(p.Staging, notStaging) {
			t.Errorf("staging list wrongly holds %s", notStaging)
		}
	}
	mod := p.GoModFile()
	for _, want := range []string{
		"module kpbench.local/k8sbuild",
		"go 1.26.0",
		"godebug default=go1.26",
		"\tk8s.io/kubernetes v1.36.3\n",
		"\tgo.etcd.io/etcd/server/v3 v3.6.8\n",
		"\tk8s.io/client-go => k8s.io/client-go v0.36.3\n",
	} {
		if !strings.Contains(mod, want) {
			t.Errorf("go.mod lacks %q:\n%s", want, mod)
		}
	}
	if got := strings.Count(mod, " => "); got != len(p.Staging) {
		t.Errorf("go.mod has %d replaces, want %d", got, len(p.Staging))
	}
}

func TestPlanFromGoModRejects(t *testing.T) {
	tests := []struct {
		name, json string
	}{
		{name: "no staging", json: `{"Require":[{"Path":"go.etcd.io/etcd/server/v3","Version":"v3.6.8"}]}`},
		{name: "no etcd", json: `{"Replace":[{"Old":{"Path":"k8s.io/api"},"New":{"Path":"./staging/src/k8s.io/api"}}]}`},
		{name: "not json", json: `go 1.26`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := PlanFromGoMod("v1.36.3", []byte(tt.json)); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestLDFlags(t *testing.T) {
	got := LDFlags("v1.36.3")
	for _, want := range []string{
		"-X k8s.io/component-base/version.gitVersion=v1.36.3",
		"-X k8s.io/component-base/version.gitMajor=1",
		"-X k8s.io/component-base/version.gitMinor=36",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("LDFlags lacks %q: %s", want, got)
		}
	}
}

func writeExe(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFromDirAndCached(t *testing.T) {
	cache := t.TempDir()
	opts := Options{Version: "v1.36.3", CacheDir: cache}
	dir, err := opts.Dir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeExe(t, filepath.Join(dir, Etcd))
	writeExe(t, filepath.Join(dir, KubeAPIServer))
	if _, err := FromDir(dir); !errors.Is(err, ErrMissingBinary) || !strings.Contains(err.Error(), KubeProxy) {
		t.Fatalf("FromDir without kube-proxy = %v, want ErrMissingBinary naming kube-proxy", err)
	}
	writeExe(t, filepath.Join(dir, KubeProxy))
	if _, ok := Cached(opts); ok {
		t.Fatal("Cached without a build stamp = true; an interrupted build must not count")
	}
	if err := os.WriteFile(filepath.Join(dir, stampFile), []byte(`{"version":"v1.36.3","etcdVersion":"v3.6.8"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b, ok := Cached(opts)
	if !ok || !b.Cached || b.Version != "v1.36.3" || b.EtcdVersion != "v3.6.8" || b.KubeProxy != filepath.Join(dir, KubeProxy) {
		t.Fatalf("Cached = %+v, %v", b, ok)
	}
	if err := os.Chmod(filepath.Join(dir, Etcd), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := FromDir(dir); !errors.Is(err, ErrMissingBinary) {
		t.Fatalf("FromDir with a non-executable etcd = %v, want ErrMissingBinary", err)
	}
}

func TestSets(t *testing.T) {
	if got := LabSet.packages(); !slices.Equal(got, Packages) || !slices.Equal(got, []string{"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-proxy", "./etcd"}) {
		t.Errorf("lab packages = %v", got)
	}
	if got := (Set{}).packages(); !slices.Equal(got, Packages) {
		t.Errorf("the zero Set builds %v, want the lab's", got)
	}
	node := NodeSet.packages()
	for _, c := range []string{"kubelet", "kubeadm", "kubectl", "kube-controller-manager", "kube-scheduler", "kube-apiserver", "kube-proxy"} {
		if !slices.Contains(node, "k8s.io/kubernetes/cmd/"+c) {
			t.Errorf("the node set lacks %s: %v", c, node)
		}
		if !strings.Contains(NodeSet.toolsGo(), "\t_ \"k8s.io/kubernetes/cmd/"+c+"\"\n") {
			t.Errorf("tools.go lacks %s", c)
		}
	}
	if !strings.HasPrefix(NodeSet.toolsGo(), "//go:build tools\n") {
		t.Error("tools.go is not behind the tools build tag")
	}
	if LabSet.dirName("v1.36.3") != "v1.36.3" || NodeSet.dirName("v1.36.3") != "v1.36.3-node" {
		t.Errorf("dirs %s %s", LabSet.dirName("v1.36.3"), NodeSet.dirName("v1.36.3"))
	}
}

func TestEnsureSetFromCache(t *testing.T) {
	cache := t.TempDir()
	opts := Options{Version: "v1.36.3", CacheDir: cache, Set: NodeSet, Go: "/nonexistent/go"}
	dir, err := opts.Dir()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(dir) != "v1.36.3-node" {
		t.Fatalf("node set dir %s", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The lab's binaries alone are not the node set.
	for _, n := range LabSet.names() {
		writeExe(t, filepath.Join(dir, n))
	}
	if err := os.WriteFile(filepath.Join(dir, stampFile), []byte(`{"version":"v1.36.3","etcdVersion":"v3.6.8"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := cachedDir(opts); ok {
		t.Fatal("a directory without kubelet counts as the node set")
	}
	for _, n := range NodeSet.names() {
		writeExe(t, filepath.Join(dir, n))
	}
	sb, err := EnsureSet(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !sb.Cached || sb.Version != "v1.36.3" || sb.EtcdVersion != "v3.6.8" || sb.Paths["kubelet"] != filepath.Join(dir, "kubelet") || len(sb.Paths) != 8 {
		t.Errorf("EnsureSet = %+v", sb)
	}
	// The lab's cache is another directory.
	if _, ok := Cached(Options{Version: "v1.36.3", CacheDir: cache}); ok {
		t.Error("the node set's directory was taken for the lab's")
	}
	if _, err := EnsureSet(context.Background(), Options{Version: "v1.36.3", CacheDir: cache}); err == nil {
		t.Error("EnsureSet without a named set was accepted")
	}
}
