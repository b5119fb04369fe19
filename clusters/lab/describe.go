package lab

import (
	"context"
	"fmt"

	"github.com/kpbench/kpbench/clusters"
)

// Features implements clusters.Provider: the lab's client node is a
// network namespace of this machine, or a VM on it (--node vm), pinned to
// CPUs of its own; the lab outlives the command that made it, so a run
// reuses one that is up.
func (l *Lab) Features(ctx context.Context) clusters.Features {
	f := clusters.Features{
		Client:      clusters.Client{Where: clusters.ClientNetns},
		SwitchModes: true,
		Pinning:     l.Pinning,
		Running:     l.Running,
		Describe:    l.Describe,
		Hold:        l.Hold,
	}
	if vm, ok := l.VMNode(ctx); ok {
		// The guest runs this machine's kpbench (its root is shared)
		// and its own tools.
		f.Client = clusters.Client{Where: clusters.ClientVM, Bin: "kpbench", Cat: []string{"cat"}, VM: &vm}
	}
	f.Client.FlushConntrack = l.FlushConntrack
	return f
}

// Running reports whether the lab is up and every component runs: a run
// then measures it as it is and leaves it up.
func (l *Lab) Running(ctx context.Context) bool {
	st, err := l.Status(ctx)
	return err == nil && st.Healthy
}

// Describe gives the lab's name and run.json's provider details.
func (l *Lab) Describe(ctx context.Context) (cluster string, details map[string]string) {
	st, err := l.state()
	if err != nil {
		return l.cfg.Name, nil
	}
	details = map[string]string{"etcdVersion": st.EtcdVersion, "backends": fmt.Sprint(len(st.Backends))}
	vmDetails(st, details)
	return st.Name, details
}

// Pinning is the client node's CPUs and the CPUs everything else runs on;
// both empty on a single-CPU machine.
func (l *Lab) Pinning(ctx context.Context) (nodeCPUs, otherCPUs []int, err error) {
	st, err := l.state()
	if err != nil {
		return nil, nil, err
	}
	return st.NodeCPUs, st.OtherCPUs, nil
}
