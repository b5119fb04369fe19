package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/scaler"
	"github.com/kpbench/kpbench/scaler/scaletest"
)

const prodKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
contexts:
- name: prod-admin
  context: {cluster: prod, user: admin}
users:
- name: admin
  user: {token: t}
current-context: prod-admin
`

func TestScaleCmdRejects(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(prodKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no services", []string{"scale"}, "--services is required"},
		{"negative", []string{"scale", "--services", "-1"}, "--services must be 0 or more, got -1"},
		{"no lab up", []string{"scale", "--services", "300", "--wait", "--lab-name", "nosuchlab"}, "no lab is up: run `kpbench lab up` or pass --kubeconfig/--endpoint-ips"},
		{"too many", []string{"scale", "--services", "100000"}, "--services must be at most 99999, got 100000"},
		{"bad ip", []string{"scale", "--services", "1", "--endpoint-ips", "1.2.3"}, "--endpoint-ips"},
		{"no ips", []string{"scale", "--services", "3", "--kubeconfig", kc}, "--endpoint-ips is required"},
		{"bad output", []string{"scale", "--services", "0", "-o", "yaml"}, "--output"},
		{"existing cluster without --yes", []string{"scale", "--services", "0", "--kubeconfig", kc}, `context "prod-admin"`},
		{"wait without a node", []string{"scale", "--services", "0", "--kubeconfig", kc, "--yes", "--wait"}, "--wait needs the lab up or --kube-proxy-metrics"},
		{"ipv6 endpoint", []string{"scale", "--services", "1", "--endpoint-ips", "fd00::1", "--endpoints-per-service", "1", "--kubeconfig", kc, "--yes"}, "not IPv4"},
	}
	t.Setenv("KUBECONFIG", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), strings.NewReader(""), &stdout, &stderr, tt.args)
			if code != 2 || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tt.want)
			}
		})
	}
}

func TestScaleReportJSON(t *testing.T) {
	rep := scaleReport{SchemaVersion: 1, Result: scaler.Result{
		Namespace: "kpbench", Before: 2, Services: 5, Created: 6, Duration: 2 * time.Second,
		LastWrite: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Last:      &scaler.ServiceRef{Index: 4, Name: "kpb-svc-00004", ClusterIP: "198.19.0.9"},
	}, Programmed: &scaler.Programmed{TimeToProgrammed: 1500 * time.Millisecond, LastSyncDuration: 250 * time.Millisecond, Syncs: 2}}
	var buf bytes.Buffer
	if err := rep.write(&buf, "json"); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["writesPerSecond"] != 3.0 || got["services"] != 5.0 || got["schemaVersion"] != 1.0 {
		t.Errorf("json = %s", buf.String())
	}
	p := got["programmed"].(map[string]any)
	if p["timeToProgrammedSeconds"] != 1.5 || p["lastSyncSeconds"] != 0.25 {
		t.Errorf("programmed = %v", p)
	}
	buf.Reset()
	if err := rep.write(&buf, "text"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "namespace kpbench: 2 → 5 Services in 2.0s") || !strings.Contains(buf.String(), "programmed: 1.500s") {
		t.Errorf("text = %q", buf.String())
	}
}

// TestScaleCmdAPIServer runs kpbench scale end to end against a real
// kube-apiserver whose kubeconfig context is a lab's (so no --yes).
func TestScaleCmdAPIServer(t *testing.T) {
	api := scaletest.Start(t)
	run := func(args ...string) scaleReportJSON {
		t.Helper()
		var stdout, stderr bytes.Buffer
		base := []string{"scale", "--namespace", "kpbt-cli", "--endpoint-ips", "198.18.0.10,198.18.0.11,198.18.0.12",
			"--endpoints-per-service", "2", "-o", "json", "--progress", "log"}
		if code := Run(context.Background(), strings.NewReader(""), &stdout, &stderr, append(base, args...)); code != 0 {
			t.Fatalf("kpbench %v: exit %d\n%s", args, code, stderr.String())
		}
		var rep scaleReportJSON
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("output %q: %v", stdout.String(), err)
		}
		return rep
	}
	rep := run("--services", "40", "--kubeconfig", api.Kubeconfig)
	if rep.Before != 0 || rep.Services != 40 || rep.Created != 80 || rep.Last == nil || rep.Last.Name != "kpb-svc-00039" || rep.Last.ClusterIP == "" {
		t.Errorf("scale to 40: %+v", rep)
	}
	// The kubeconfig from the environment, as viper binds it.
	t.Setenv("KPBENCH_KUBECONFIG", api.Kubeconfig)
	if rep := run("--services", "40"); rep.Created+rep.Updated+rep.Deleted != 0 || rep.Before != 40 {
		t.Errorf("same count again wrote: %+v", rep)
	}
	if rep := run("--services", "0"); rep.Deleted != 80 || rep.Services != 0 {
		t.Errorf("scale to 0: %+v", rep)
	}
}
