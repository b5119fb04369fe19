package lab

// The versions step: what run.json and lab status report about the
// Kubernetes, kube-proxy and iptables in use.

import (
	"context"
	"fmt"
	"os/exec"
	"strings"

	"github.com/kpbench/kpbench/clusters/lab/build"
)

func (l *Lab) stepVersions(ctx context.Context, bins build.Binaries) error {
	out, err := exec.CommandContext(ctx, bins.KubeProxy, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("kube-proxy --version: %w: %s", err, out)
	}
	kpVer := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "Kubernetes"))
	cs, err := l.clientset()
	if err != nil {
		return err
	}
	info, err := cs.Discovery().ServerVersion()
	if err != nil {
		return fmt.Errorf("asking the apiserver its version: %w", err)
	}
	st, err := l.state()
	if err != nil {
		return err
	}
	backend := iptablesBackend(ctx, st)
	return l.update(func(s *State) {
		s.KubeProxyVer = kpVer
		s.K8sVersion = info.GitVersion
		s.IPTablesBackend = backend
	})
}
