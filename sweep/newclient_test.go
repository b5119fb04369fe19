package sweep

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// sshProvider is a provider of a kind of client node no provider has yet:
// a machine reached over SSH, which runs kpbench and its own tools.
// Nothing in target.go knows it; its Features say how to reach it.
type sshProvider struct {
	targetProvider
	node *sshNode
}

func (p *sshProvider) ClientNode() clusters.ClientNode { return p.node }
func (p *sshProvider) Features(context.Context) clusters.Features {
	return clusters.Features{
		Client:      clusters.Client{Where: "ssh", Bin: "kpbench", Cat: []string{"cat"}},
		SwitchModes: true,
	}
}

// sshNode answers `kpbench load`, `kpbench cluster agent point` (this
// process's /proc, this process as kube-proxy) and `cat` of the node's
// /proc files, and records every command.
type sshNode struct {
	f    *fakeCluster
	mu   sync.Mutex
	cmds []string
}

func (n *sshNode) Run(ctx context.Context, stdin io.Reader, stdout, _ io.Writer, args ...string) error {
	n.mu.Lock()
	n.cmds = append(n.cmds, strings.Join(args, " "))
	n.mu.Unlock()
	switch {
	case len(args) > 1 && args[0] == "kpbench" && args[1] == "load":
		start := time.Now()
		time.Sleep(300 * time.Millisecond)
		s := loadgen.Summary{SchemaVersion: runs.SchemaVersion, StartedAt: start, DurationSeconds: 0.3,
			Requests: 30, AchievedRate: 100, Valid: true}
		return s.WriteJSON(stdout)
	case len(args) > 4 && strings.Join(args[:4], " ") == "kpbench cluster agent point":
		fs, err := collector.NewFS("/proc")
		if err != nil {
			return err
		}
		interval, _ := time.ParseDuration(args[slices.Index(args, "--interval")+1])
		return collector.ServeRemotePoint(ctx, fs, collector.PointConfig{KubeProxyPID: os.Getpid(), Interval: interval}, stdin, stdout, time.Minute)
	case len(args) == 2 && args[0] == "cat":
		b, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	return errors.New("unexpected command " + strings.Join(args, " "))
}
func (n *sshNode) CPUs() []int                               { return nil }
func (n *sshNode) ProcRoot() string                          { return "/proc" }
func (n *sshNode) KubeProxyPID(context.Context) (int, error) { return os.Getpid(), nil }
func (n *sshNode) KubeProxyGet(ctx context.Context, path string) ([]byte, error) {
	return n.f.KubeProxyGet(ctx, path)
}

func (n *sshNode) ran(prefix string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.ContainsFunc(n.cmds, func(c string) bool { return strings.HasPrefix(c, prefix) })
}

// TestEngineOnANewKindOfClientNode: a provider with a client node of a
// new kind runs through Prepare, Describe and the engine that Target
// assembles from its Features alone: the load and the point agent run on
// the node through its Run, run.json describes the node with its own cat.
func TestEngineOnANewKindOfClientNode(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n" +
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	events := &[]string{}
	p := &sshProvider{targetProvider: targetProvider{fakeCluster: fakeCluster{mode: scenarios.ModeIPTables, pid: 100, events: events},
		modes: map[scenarios.Mode]string{scenarios.ModeIPTables: ""}, backends: 2, kubecfg: kc}}
	p.node = &sshNode{f: &p.fakeCluster}
	sc, err := scenarios.Parse([]byte("apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: t\nspec:\n" +
		"  modes: [iptables]\n  services: [1]\n  endpointsPerService: 2\n  load:\n    duration: 1s\n    requestsPerConn: [1]\n  repetitions: 1\n  sampling:\n    interval: 50ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tg, err := Prepare(ctx, p, sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	run := &runs.Run{ID: "r", Scenario: *sc, Status: runs.StatusRunning}
	if err := tg.Describe(ctx, run); err != nil {
		t.Fatal(err)
	}
	if run.Environment.Kernel == "" || run.Environment.Cores == 0 || !p.node.ran("cat ") {
		t.Errorf("environment %+v, read through the node's cat: %v", run.Environment, p.node.ran("cat "))
	}
	e, err := tg.Engine(ctx, sc, EngineOptions{QPS: 10})
	if err != nil {
		t.Fatal(err)
	}
	// The cluster's API is not there: the scaler, rules and depth are
	// fakes; the load and the observer are the ones Target chose.
	e.Scaler, e.Rules, e.Depth = &fakeScaler{events: events}, fakeRules{}, nil
	dir := t.TempDir()
	if err := e.Run(ctx, &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, err := runs.ReadPoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 1 {
		t.Fatalf("%d points, want 1", len(pts))
	}
	pt := pts[0]
	// The node is this machine: its CPUs may be busy with anything
	// (saturated is then the right verdict); nothing else may be wrong.
	saturatedOnly := !pt.Valid && len(pt.InvalidReasons) == 1 && strings.HasPrefix(pt.InvalidReasons[0], runs.ReasonCPUSaturated)
	if (!pt.Valid && !saturatedOnly) || pt.Requests != 30 || pt.CPU.Node.Total <= 0 || pt.CPU.Node.Covers != "all CPUs of the client node (/proc/stat)" ||
		pt.CPU.Node.CPUs <= 0 || pt.CPU.Node.Coverage < runs.MinCPUCoverage {
		t.Errorf("point: valid %v %v, %d requests, node CPU %+v", pt.Valid, pt.InvalidReasons, pt.Requests, pt.CPU.Node)
	}
	if !p.node.ran("kpbench load --json -") || !p.node.ran("kpbench cluster agent point --proc /proc") {
		t.Errorf("commands on the node: %q", p.node.cmds)
	}
	if _, err := os.Stat(filepath.Join(dir, runs.RawDir, pt.ID, collector.RawCollectorJSON)); err != nil {
		t.Errorf("the agent's raw data: %v", err)
	}
}
