package lab

import (
	"context"
	"fmt"

	"github.com/kpbench/kpbench/clusters"
)

var (
	_ clusters.Reuser    = (*Lab)(nil)
	_ clusters.Describer = (*Lab)(nil)
	_ clusters.Pinner    = (*Lab)(nil)
)

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
