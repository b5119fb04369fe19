package sweep_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/labtest"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
	"github.com/kpbench/kpbench/sweep"
)

// The in-cluster observer — `kpbench cluster agent point` run on the client
// node, its result carried back over the command's stdout — against the
// lab's in-process observer, over the same load window on a real lab: the
// two must see the same node CPU, and the agent's window, opened early and
// trimmed to the load's own window, must not be diluted by the idle time
// before the load.
func TestAgentObserverMatchesNodeObserverOnTheLab(t *testing.T) {
	l := labtest.Start(t, lab.Config{Backends: 2}, scenarios.ModeIPTables)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	node := l.ClientNode()
	eps, err := l.Backends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bin := labtest.KpbenchBin(t)
	agent := &collector.AgentObserver{Node: node, Bin: bin, Interval: 250 * time.Millisecond}
	local := &collector.NodeObserver{Node: node, Interval: 250 * time.Millisecond}
	load := &sweep.NodeLoad{Node: node, Bin: bin}

	// The agent's window opens first, as it does in a cluster where the
	// client pod takes a while to start.
	araw, lraw := t.TempDir(), t.TempDir()
	aw, err := agent.Begin(ctx, araw)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	lw, err := local.Begin(ctx, lraw)
	if err != nil {
		t.Fatal(err)
	}
	// A backend pod directly (no Service needed): new connections at a
	// rate that keeps the node's CPU clearly busy.
	url := fmt.Sprintf("http://%s:%d/", eps[0].Addr, eps[0].Port)
	res, err := load.Run(ctx, sweep.LoadRequest{ID: "agent", URLs: []string{url}, Rate: 2000, Duration: 4 * time.Second,
		RequestsPerConn: 1, Timeout: time.Second, MaxInflight: 1000})
	if err != nil {
		t.Fatal(err)
	}
	lo, ao := &runs.Point{}, &runs.Point{}
	if err := lw.End(ctx, collector.Load{}, lo); err != nil {
		t.Fatal(err)
	}
	if err := aw.End(ctx, collector.Load{Span: collector.Span{Start: res.WindowStart, End: res.WindowEnd}}, ao); err != nil {
		t.Fatal(err)
	}
	t.Logf("node CPU: agent (trimmed) %.3f, in-process %.3f cores; kube-proxy %.4f / %.4f; client %.3f",
		ao.CPU.Node.Total, lo.CPU.Node.Total, ao.CPU.Processes.KubeProxy, lo.CPU.Processes.KubeProxy, res.ClientCPUCores)
	if lo.CPU.Node.Total < 0.1 {
		t.Fatalf("the load did not make the node busy (%.3f cores); nothing to compare", lo.CPU.Node.Total)
	}
	// The in-process window also holds the load's start-up (the process
	// starting, resolving, dialling): within 10% of each other, plus the
	// agent's own sampling.
	if d := math.Abs(ao.CPU.Node.Total - lo.CPU.Node.Total); d > 0.1*lo.CPU.Node.Total+0.02 {
		t.Errorf("agent %.3f vs in-process %.3f cores differ by %.3f", ao.CPU.Node.Total, lo.CPU.Node.Total, d)
		t.Logf("load window %s – %s", res.WindowStart.UTC().Format(time.RFC3339Nano), res.WindowEnd.UTC().Format(time.RFC3339Nano))
		for name, dir := range map[string]string{"agent": araw, "in-process": lraw} {
			b, _ := os.ReadFile(filepath.Join(dir, collector.RawCPUCSV))
			t.Logf("%s samples:\n%s", name, b)
		}
	}
	// kube-proxy was found and followed (idle between syncs: tiny but
	// read from the same process).
	if ao.CPU.Processes.KubeProxy < 0 || ao.CPU.Processes.KubeProxy > 0.2 {
		t.Errorf("kube-proxy %.4f cores through the agent", ao.CPU.Processes.KubeProxy)
	}
	if ao.Conntrack.Max == 0 {
		t.Errorf("no conntrack table size through the agent: %+v", ao.Conntrack)
	}
}
