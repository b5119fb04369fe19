package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scaler"
	"github.com/kpbench/kpbench/scenarios"
)

// This file turns any clusters.Provider into a cluster a run can measure
// and into the engine's interfaces. It reads the provider's shape from one
// record, clusters.Features, instead of knowing providers by name or type,
// so a new provider, or a new kind of client node, needs no change here.

// ErrCannotRun is wrapped when the cluster cannot run the scenario: none of
// its modes, or fewer backends than it needs. It is the user's choice of
// scenario or cluster that must change, not a fault of the run.
var ErrCannotRun = errors.New("the cluster cannot run this scenario")

// Target is a provider that is up for a run, in the scenario's first
// runnable mode.
type Target struct {
	Provider clusters.Provider
	// Note, when set, goes into run.json's problems (e.g. modes replaced
	// by external on a cluster without kube-proxy).
	Note string
	// Modes, when set, replace the scenario's modes for this cluster
	// ([external] on a cluster whose kube-proxy is replaced); Execute
	// records them in run.json.
	Modes []scenarios.Mode
	// owned is false for a cluster that was up before the run: it is used
	// as it is and left up.
	owned bool
	log   *slog.Logger
}

// Prepare brings p up for sc, or attaches to its cluster when p's
// Features say it outlives a run (Running) and it is up. It leaves sc as
// it is: when the cluster has no kube-proxy but a replacement, Modes is
// [external] and Note says so. Errors wrapping ErrCannotRun mean the scenario does not fit
// the cluster.
func Prepare(ctx context.Context, p clusters.Provider, sc *scenarios.Scenario, log *slog.Logger) (*Target, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Target{Provider: p, log: log}
	f := p.Features(ctx)
	if f.Running != nil && f.Running(ctx) {
		eps, err := p.Backends(ctx)
		if err != nil {
			return nil, err
		}
		if len(eps) < sc.Spec.EndpointsPerService {
			cluster := p.Name()
			if f.Describe != nil {
				cluster, _ = f.Describe(ctx)
			}
			return nil, fmt.Errorf("%w: %s %s is up with %d backends; the scenario needs %d (bring it down or use another name)", ErrCannotRun, p.Name(), cluster, len(eps), sc.Spec.EndpointsPerService)
		}
		log.Info("using the "+p.Name()+" that is up", "kubeconfig", p.KubeconfigPath())
		return t, nil
	}
	// What the cluster can run; an in-cluster provider's agent is not
	// deployed yet, so IPVS is probed again once it is.
	caps, err := p.Capabilities(ctx)
	if err != nil {
		return nil, err
	}
	first := firstRunnable(caps, sc.Spec.Modes)
	if first == "" {
		if ok, _ := caps.Runnable(scenarios.ModeExternal); !ok {
			return nil, fmt.Errorf("%w: %s can run none of the scenario's modes %v: %v", ErrCannotRun, p.Name(), sc.Spec.Modes, caps.Modes)
		}
		t.Note = fmt.Sprintf("kube-proxy is replaced on this cluster: measured as mode external instead of the scenario's modes %v", sc.Spec.Modes)
		log.Warn(t.Note)
		t.Modes = []scenarios.Mode{scenarios.ModeExternal}
		first = scenarios.ModeExternal
	}
	log.Info("bringing the cluster up", "provider", p.Name(), "mode", first)
	if err := p.Up(ctx, first); err != nil {
		return nil, err
	}
	t.owned = true
	return t, nil
}

func firstRunnable(caps clusters.Capabilities, modes []scenarios.Mode) scenarios.Mode {
	for _, m := range modes {
		if ok, _ := caps.Runnable(m); ok {
			return m
		}
	}
	return ""
}

// Teardown undoes Prepare: the provider's Down (which honours its own
// keep option) for a cluster the run brought up; nothing for one that was
// up before. ctx may be cancelled already (Ctrl-C): Down still runs.
func (t *Target) Teardown(ctx context.Context) {
	p := t.Provider
	if !t.owned {
		t.log.Info(p.Name()+" left up: it was up before the run", "kubeconfig", p.KubeconfigPath())
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	if err := p.Down(dctx); err != nil {
		t.log.Error("cluster teardown", "provider", p.Name(), "err", err)
	}
}

// Describe fills run.json's environment (the client node's kernel, CPU and
// iptables; the cluster's versions), provider and CPU pinning.
func (t *Target) Describe(ctx context.Context, run *runs.Run) error {
	p := t.Provider
	v, err := p.Versions(ctx)
	if err != nil {
		return err
	}
	f := p.Features(ctx)
	var env runs.Environment
	switch {
	case f.Client.VM != nil:
		env, err = vmEnvironment(ctx, p.ClientNode(), f.Client, run)
		if err != nil {
			t.log.Warn("describing the node VM", "err", err)
			run.Problems = append(run.Problems, "client node environment incomplete: "+err.Error())
		}
	case f.Client.Cat != nil:
		// The machine kpbench runs on is not the client node: the
		// node's kernel, CPU and iptables come through it.
		env, err = NodeEnvironmentWith(ctx, p.ClientNode(), f.Client.Cat...)
		if err != nil {
			t.log.Warn("describing the client node", "err", err)
			run.Problems = append(run.Problems, "client node environment incomplete: "+err.Error())
		}
	default:
		env = DetectEnvironment(ctx, "/proc", nil)
	}
	env.KubernetesVersion, env.KubeProxyVersion = v.Kubernetes, v.KubeProxy
	if v.IPTablesBackend != "" {
		env.IPTablesBackend = v.IPTablesBackend
	}
	run.Environment = env
	run.Provider = runs.Provider{Name: p.Name()}
	if f.Describe != nil {
		run.Provider.Cluster, run.Provider.Details = f.Describe(ctx)
	}
	if f.Pinning != nil {
		node, others, err := f.Pinning(ctx)
		if err != nil {
			return err
		}
		if len(node) > 0 {
			run.Pinning = &runs.Pinning{NodeCPUs: node, OtherCPUs: others}
		}
	}
	return nil
}

// EngineOptions are the run's settings the engine's adapters need.
type EngineOptions struct {
	// QPS bounds the scaler's API requests per second (and its burst).
	QPS float64
	// WaitTimeout bounds the wait for kube-proxy to program one step.
	WaitTimeout time.Duration
	Log         *slog.Logger
}

// Engine assembles the engine for the target from the provider's
// Features: the scaler against the provider's API server and backends;
// rules and health through its client node; the load as in-cluster Jobs
// (Client.Load) or `kpbench load` run on the node (Client.Bin, or this
// executable on a node that shares this machine); the observer from the
// collector (collector.ForClient).
func (t *Target) Engine(ctx context.Context, sc *scenarios.Scenario, o EngineOptions) (*Engine, error) {
	p := t.Provider
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	node := p.ClientNode()
	f := p.Features(ctx)
	external := len(sc.Spec.Modes) == 1 && sc.Spec.Modes[0] == scenarios.ModeExternal
	setup := collector.Setup{Client: f.Client, Node: node,
		Interval: sc.Spec.Sampling.Interval.D(), NoKubeProxy: external, FirstPacket: sc.Spec.Sampling.FirstPacketOn(), Log: log}
	var load LoadRunner
	switch {
	case f.Client.Load != nil:
		load = &ClusterLoad{Runner: f.Client.Load, Clients: sc.Spec.Load.Clients}
	case f.Client.Bin != "":
		nl := &NodeLoad{Node: node, Bin: f.Client.Bin, FirstPacket: collector.LoadTimesFirstPacket(setup)}
		if f.Client.VM != nil {
			nl.Scratch = f.Client.VM.Scratch
		}
		load = nl
	default:
		bin, err := os.Executable()
		if err != nil {
			return nil, err
		}
		load = &NodeLoad{Node: node, Bin: bin}
	}
	observer := collector.ForClient(ctx, setup)

	eps, err := p.Backends(ctx)
	if err != nil {
		return nil, err
	}
	ips := make([]netip.Addr, len(eps))
	for i, e := range eps {
		ips[i] = e.Addr
	}
	copts := scaler.ClientOptions{Kubeconfig: p.KubeconfigPath()}
	if u := f.UserKubeconfig; u != nil {
		copts.Kubeconfig, copts.Context = u.Path, u.Context
	}
	copts.QPS, copts.Burst = float32(o.QPS), int(o.QPS)
	client, _, err := scaler.NewClient(copts)
	if err != nil {
		return nil, err
	}
	port := int32(80)
	if len(eps) > 0 && eps[0].Port != 0 {
		port = int32(eps[0].Port)
	}
	s, err := scaler.New(client, scaler.Config{EndpointIPs: ips, EndpointsPerService: sc.Spec.EndpointsPerService, TargetPort: port,
		Progress: &scaler.LogProgress{Logger: log, Interval: 10 * time.Second}})
	if err != nil {
		return nil, err
	}
	churnParts, err := newChurnParts(sc, client, s, node, o.WaitTimeout) // churn_service.go
	if err != nil {
		return nil, err
	}
	return &Engine{
		Provider: p,
		Scaler:   &ServiceScaler{Scaler: s, Client: client, Node: node, WaitTimeout: o.WaitTimeout, ProbeOnly: external},
		Churn:    churnParts,
		Load:     load,
		Observer: observer,
		Rules:    NodeRules{Node: node},
		Depth:    NodeDepth{Node: node},
		Log:      log,
		Progress: func(done, total int, id string) {
			log.Info(fmt.Sprintf("point %d/%d", done, total), "id", id)
		},
	}, nil
}
