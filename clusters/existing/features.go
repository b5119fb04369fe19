package existing

import (
	"context"

	"github.com/kpbench/kpbench/clusters"
)

// AgentCat is how a client node's /proc files are read through the CPU
// agent pod (the path is appended).
var AgentCat = []string{"kpbench", "cluster", "agent", "cat"}

// Features implements clusters.Provider: the client nodes are the
// cluster's, reached through the agent pod; load clients run as Jobs on
// any of them; the cluster is reached through the user's kubeconfig, and
// kube-proxy's mode is switched only when the user allowed it (--yes) and
// kube-proxy runs with a ConfigMap to switch it with.
func (p *Provider) Features(ctx context.Context) clusters.Features {
	switchModes := false
	if p.opts.Confirm {
		kp, err := ReadKubeProxy(ctx, p.cs)
		switchModes = err == nil && kp.Present && !kp.ConfigMapMissing
	}
	return clusters.Features{
		Client: clusters.Client{Where: clusters.ClientPod, Bin: "kpbench", Cat: AgentCat, Load: p,
			Nodes: p.ClientNodes},
		SwitchModes:    switchModes,
		Describe:       p.Describe,
		UserKubeconfig: &clusters.KubeconfigRef{Path: p.opts.Kubeconfig, Context: p.opts.Context},
	}
}
