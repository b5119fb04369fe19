package scaler

import (
	"os"
	"path/filepath"
	"testing"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: kpbench-lab-default
  cluster: {server: "https://198.18.0.2:6443", insecure-skip-tls-verify: true}
- name: prod
  cluster: {server: "https://prod.example:6443", insecure-skip-tls-verify: true}
contexts:
- name: kpbench-lab-default
  context: {cluster: kpbench-lab-default, user: admin}
- name: prod-admin
  context: {cluster: prod, user: admin}
- name: renamed
  context: {cluster: kpbench-lab-default, user: admin}
users:
- name: admin
  user: {token: secret-token}
current-context: prod-admin
`

func TestNewClientTarget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		context string
		wantCtx string
		wantLab bool
		host    string
	}{
		{"", "prod-admin", false, "https://prod.example:6443"},
		{"kpbench-lab-default", "kpbench-lab-default", true, "https://198.18.0.2:6443"},
		{"renamed", "renamed", true, "https://198.18.0.2:6443"},
	}
	for _, tt := range tests {
		t.Run(tt.wantCtx, func(t *testing.T) {
			_, got, err := NewClient(ClientOptions{Kubeconfig: path, Context: tt.context, QPS: 100})
			if err != nil {
				t.Fatal(err)
			}
			if got.Context != tt.wantCtx || got.Lab != tt.wantLab || got.Host != tt.host {
				t.Errorf("target = %+v, want context %s lab %v host %s", got, tt.wantCtx, tt.wantLab, tt.host)
			}
		})
	}
	if _, _, err := NewClient(ClientOptions{Kubeconfig: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("a missing kubeconfig loaded")
	}
}
