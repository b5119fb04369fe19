package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/kpbench/kpbench/clusters/kind"
	"github.com/kpbench/kpbench/scenarios"
)

func TestClusterCreateDryRun(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{name: "nftables two servers", args: []string{"--mode", "nftables", "--workers", "2"}, wantOut: []string{"kubeProxyMode: nftables", "kpbench.io/role: client", "kpbench.io/role: server"}},
		{name: "ipvs with node image", args: []string{"--mode", "ipvs", "--k8s-image", "kindest/node:v1.33.1"}, wantOut: []string{"kubeProxyMode: ipvs", "image: kindest/node:v1.33.1"}},
		{name: "offline node image", args: []string{"--mode", "iptables", "--k8s-image", "offline"}, wantOut: []string{"disableDefaultCNI: true", "image: localhost/kpbench/node:v1.36.3-"}},
		{name: "external refused", args: []string{"--mode", "external"}, wantCode: 2, wantErr: "unknown proxy mode"},
		{name: "bad workers", args: []string{"--mode", "iptables", "--workers", "0"}, wantCode: 2, wantErr: "--workers must be at least 1"},
		{name: "existing provider refused", args: []string{"--provider", "existing"}, wantCode: 2, wantErr: "create makes kind clusters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"cluster", "create", "--dry-run"}, tt.args...)
			code, out, errs := runKpbench(t, args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.wantCode, errs)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tt.wantErr != "" && !strings.Contains(errs, tt.wantErr) {
				t.Errorf("stderr %q lacks %q", errs, tt.wantErr)
			}
			if tt.wantCode == 0 {
				var doc map[string]any
				if err := yaml.Unmarshal([]byte(out), &doc); err != nil || doc["kind"] != "Cluster" {
					t.Errorf("dry-run output is not a kind Cluster config: %v\n%s", err, out)
				}
			}
		})
	}
}

func TestClusterSetModeNeedsYes(t *testing.T) {
	code, _, errs := runKpbench(t, "cluster", "set-mode", "nftables", "--kubeconfig", "/nonexistent")
	if code != 2 || !strings.Contains(errs, "--yes") {
		t.Fatalf("exit %d stderr %q, want 2 asking for --yes", code, errs)
	}
}

func TestClusterAgentProbes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "iptables")
	}))
	t.Cleanup(srv.Close)
	code, out, errs := runKpbench(t, "cluster", "agent", "get", srv.URL+"/proxyMode")
	if code != 0 || out != "iptables" {
		t.Errorf("get: exit %d out %q stderr %q", code, out, errs)
	}
	code, _, errs = runKpbench(t, "cluster", "agent", "get", "http://198.51.100.1:10249/metrics")
	if code == 0 || !strings.Contains(errs, "loopback") {
		t.Errorf("get to a non-loopback address: exit %d stderr %q", code, errs)
	}

	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "77"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "77", "comm"), []byte("kube-proxy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runKpbench(t, "cluster", "agent", "pid", "--proc", proc, "kube-proxy")
	if code != 0 || strings.TrimSpace(out) != "77" {
		t.Errorf("pid: exit %d out %q stderr %q", code, out, errs)
	}
	code, _, errs = runKpbench(t, "cluster", "agent", "cat", "/etc/passwd")
	if code != 2 || !strings.Contains(errs, "/host/proc") {
		t.Errorf("cat outside /host/proc: exit %d stderr %q", code, errs)
	}
	code, _, errs = runKpbench(t, "cluster", "agent", "ipvs", "--proc", proc, "--root", t.TempDir())
	if code != 1 || !strings.Contains(errs, "cannot tell") {
		t.Errorf("ipvs on a tree without osrelease: exit %d stderr %q", code, errs)
	}
}

func TestClusterAgentIdlesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		var out, errb bytes.Buffer
		done <- Run(ctx, strings.NewReader(""), &out, &errb, []string{"cluster", "agent"})
	}()
	select {
	case code := <-done:
		t.Fatalf("agent exited (%d) before it was told to", code)
	default:
	}
	cancel()
	if code := <-done; code != 0 && code != 130 {
		t.Errorf("agent exit %d after SIGTERM, want a clean exit", code)
	}
}

func TestImageBuildInput(t *testing.T) {
	code, _, errs := runKpbench(t, "image", "build")
	if code != 2 || !strings.Contains(errs, "--out") {
		t.Errorf("exit %d stderr %q", code, errs)
	}
	script := filepath.Join(t.TempDir(), "kpbench")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runKpbench(t, "image", "build", "--binary", script, "--out", filepath.Join(t.TempDir(), "x.tar"))
	if code == 0 || !strings.Contains(errs, "not an ELF binary") {
		t.Errorf("exit %d stderr %q", code, errs)
	}
}

func TestClusterManifests(t *testing.T) {
	code, out, errs := runKpbench(t, "cluster", "manifests", "--backends", "4", "--clients", "2", "--image", "registry.example/kpbench:v1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	docs := strings.Split(strings.TrimPrefix(out, "---\n"), "---\n")
	var kinds []string
	for _, d := range docs {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(d), &obj); err != nil {
			t.Fatalf("document does not parse: %v\n%s", err, d)
		}
		if obj.Metadata.Labels["app.kubernetes.io/managed-by"] != "kpbench" {
			t.Errorf("%s lacks the managed-by label", obj.Kind)
		}
		kinds = append(kinds, obj.Kind)
	}
	if got := strings.Join(kinds, ","); got != "Namespace,Deployment,DaemonSet,Job,Job" {
		t.Errorf("kinds = %s", got)
	}
	if !strings.Contains(out, "replicas: 4") || !strings.Contains(out, "image: registry.example/kpbench:v1") {
		t.Errorf("flags not applied:\n%s", out)
	}
	if code, _, _ := runKpbench(t, "cluster", "manifests", "--backends", "0"); code != 2 {
		t.Errorf("zero backends: exit %d, want 2", code)
	}
}

func TestRunClusterFlagsNewProvider(t *testing.T) {
	g := &globals{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	g.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	f := runFlags{provider: "kind"}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	f.cluster.register(fs)
	if err := fs.Parse([]string{"--name", "kpbt-flags", "--workers", "3"}); err != nil {
		t.Fatal(err)
	}
	if err := f.cluster.validate(f.provider); err != nil {
		t.Fatal(err)
	}
	sc := &scenarios.Scenario{Spec: scenarios.Spec{Backends: 10}}
	sc.Spec.Load.Clients = 2
	p, err := f.newProvider(g, sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	kp, ok := p.(*kind.Provider)
	if !ok || kp.Name() != "kind" || kp.ClusterName() != "kpbt-flags" {
		t.Fatalf("provider %T %v", p, p)
	}
	if topo := kp.Topology(); topo.ClientNodes != 2 || topo.ServerNodes != 3 {
		t.Errorf("topology %+v, want a client node per load client and 3 servers", topo)
	}
	if err := f.cluster.validate("lab"); err == nil {
		t.Error("lab is not an in-cluster provider")
	}
	bad := runClusterFlags{pullPolicy: "Sometimes", image: ""}
	bad.topology.imageArchive = "kpbench.tar"
	err = bad.validate("existing")
	for _, want := range []string{"--pull-policy", "--workers", "--clients", "--image-archive is for kind"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want it to name %s", err, want)
		}
	}
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 2 {
		t.Errorf("validate: %v, want exit status 2", err)
	}
}
