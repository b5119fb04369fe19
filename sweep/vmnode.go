package sweep

import (
	"context"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/runs"
)

// vmNode reports whether p's client node is a VM on this machine.
func vmNode(ctx context.Context, p clusters.Provider) (clusters.VMNodeInfo, bool) {
	v, ok := p.(clusters.VMNode)
	if !ok {
		return clusters.VMNodeInfo{}, false
	}
	return v.VMNode(ctx)
}

// vmEnvironment describes a VM client node for run.json: the guest's
// kernel, CPUs and memory (read in the guest, whose own tools run), the
// accelerator, and this machine's kernel and CPU. Under TCG run.json's
// problems say that the figures are emulated.
func vmEnvironment(ctx context.Context, node clusters.ClientNode, vm clusters.VMNodeInfo, run *runs.Run) (runs.Environment, error) {
	host := DetectEnvironment(ctx, "/proc", nil)
	env, err := NodeEnvironmentWith(ctx, node, "cat")
	env.HostKernel = host.Kernel
	env.Accelerator = vm.Accelerator
	if vm.Accelerator == "tcg" {
		env.CPUModel = host.CPUModel + " (host; the guest's emulated CPU: " + env.CPUModel + ")"
		run.Problems = append(run.Problems, "the client node is a VM under TCG (software emulation: "+vm.AccelReason+"): its figures are emulated, valid for function and for comparisons within this run, not as absolute cost")
	}
	return env, err
}
