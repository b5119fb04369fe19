package collector

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/internal/cpuset"
	"github.com/kpbench/kpbench/runs"
)

// NodeObserver observes a client node whose /proc this process reads (the
// lab's network namespace): its CPUs, kube-proxy's CPU, conntrack and
// kube-proxy's metrics, with StartPoint.
type NodeObserver struct {
	Node     clusters.ClientNode
	Interval time.Duration
}

type nodeWindow struct {
	m      *PointMeasurement
	raw    string
	covers string
}

// Begin implements Observer.
func (o *NodeObserver) Begin(ctx context.Context, rawDir string) (Window, error) {
	fs, err := NewFS(o.Node.ProcRoot())
	if err != nil {
		return nil, err
	}
	kp, err := o.Node.KubeProxyPID(ctx)
	if err != nil {
		return nil, fmt.Errorf("finding kube-proxy: %w", err)
	}
	m, err := fs.StartPoint(ctx, PointConfig{
		CPUs: o.Node.CPUs(), KubeProxyPID: kp, NetnsPID: kp, Interval: o.Interval,
		KubeProxy: &KubeProxyScraper{Fetch: o.Node.KubeProxyGet},
	})
	if err != nil {
		return nil, err
	}
	return &nodeWindow{m: m, raw: rawDir, covers: procStatCovers(o.Node.CPUs())}, nil
}

// End implements Window.
func (w *nodeWindow) End(ctx context.Context, load Load, p *runs.Point) error {
	res, err := w.m.Stop(ctx)
	if err != nil {
		return err
	}
	if err := res.fill(load.Span, w.raw, w.covers, p); err != nil {
		return err
	}
	p.CPU.Processes.Top = res.processTop(load)
	return nil
}

// AgentObserver observes the client node by running `kpbench cluster agent
// point` on it through ClientNode.Run (on kind and existing clusters an
// exec into the CPU agent pod, which shares the node's PID and network
// namespaces; in a VM node, the guest's kpbench). The window opens before
// the load client starts, so End narrows it to the load's window.
type AgentObserver struct {
	Node clusters.ClientNode
	// Bin is kpbench as the node runs it ("kpbench" in the agent pod).
	Bin      string
	Interval time.Duration
	// NoKubeProxy observes a node whose kube-proxy is replaced (mode
	// external): node CPU and conntrack only.
	NoKubeProxy bool
	// Covers labels the node CPU figure when it is not the node's own
	// /proc/stat (a node container's /proc/stat is the host's).
	Covers string
}

type agentWindow struct {
	p      *RemotePoint
	raw    string
	covers string
}

// Begin implements Observer.
func (o *AgentObserver) Begin(ctx context.Context, rawDir string) (Window, error) {
	bin := o.Bin
	if bin == "" {
		bin = "kpbench"
	}
	interval := o.Interval
	if interval <= 0 {
		interval = time.Second
	}
	args := []string{bin, "cluster", "agent", "point", "--proc", o.Node.ProcRoot()}
	if o.NoKubeProxy {
		args = append(args, "--no-kube-proxy")
	} else {
		kp, err := o.Node.KubeProxyPID(ctx)
		if err != nil {
			return nil, fmt.Errorf("finding kube-proxy: %w", err)
		}
		args = append(args, "--kube-proxy-pid", strconv.Itoa(kp))
	}
	args = append(args, "--interval", interval.String())
	if cpus := o.Node.CPUs(); len(cpus) > 0 {
		args = append(args, "--cpus", cpuset.Format(cpus))
	}
	p, err := StartRemotePoint(ctx, o.Node.Run, args...)
	if err != nil {
		return nil, err
	}
	covers := o.Covers
	if covers == "" {
		covers = procStatCovers(o.Node.CPUs())
	}
	return &agentWindow{p: p, raw: rawDir, covers: covers}, nil
}

// End implements Window.
func (w *agentWindow) End(ctx context.Context, load Load, p *runs.Point) error {
	res, err := w.p.Stop(ctx)
	if err != nil {
		return err
	}
	if err := res.fill(load.Span, w.raw, w.covers, p); err != nil {
		return err
	}
	p.CPU.Processes.Top = res.processTop(load)
	return nil
}
