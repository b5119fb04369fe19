package app

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/clusters/manifests"
	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/report"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scaler"
	"github.com/kpbench/kpbench/scenarios"
	"github.com/kpbench/kpbench/sweep"
)

type runFlags struct {
	file, scenario, provider, out, resume string
	keep                                  bool
	// force resumes despite a different version, provider or environment;
	// providerSet is true when --provider was given.
	force, providerSet                    bool
	labName, nodeCPUs, k8sVersion, binDir string
	qps                                   float64
	waitTimeout                           time.Duration
	// cluster configures the kind and existing providers.
	cluster clusterFlags
}

func newRunCmd(g *globals) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [-f FILE | --scenario NAME]",
		Short: "Run a scenario end to end and write a results directory with its report",
		Long: `run walks a scenario over a cluster: for each mode, set and verify it (a mode
the environment cannot run is skipped and the reason recorded); for each
Service step, scale and wait until kube-proxy programmed it; for each
connection variant and repetition, warm up, then run the load client on the
client node while sampling its CPU, kube-proxy and conntrack. Every point is
appended to points.jsonl as soon as it is measured; the report is written at
the end.

Ctrl-C stops the load, keeps every finished point, tears the lab down (unless
--keep) and exits non-zero; --resume DIR continues such a run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.providerSet = cmd.Flags().Changed("provider")
			return runScenario(cmd.Context(), g, &f, os.Args)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "scenario file")
	fl.StringVar(&f.scenario, "scenario", "", "catalog scenario name (see 'kpbench scenario list'; default quick)")
	fl.StringVar(&f.provider, "provider", "lab", "cluster provider: lab, kind or existing (see docs/clusters.md)")
	fl.StringVar(&f.out, "out", "results", "directory that receives the run directory")
	fl.StringVar(&f.resume, "resume", "", "continue the run in this directory, skipping points already measured")
	fl.BoolVar(&f.force, "force", false, "with --resume: continue even if the kpbench version, provider or environment differ from the run's (recorded in run.json)")
	fl.BoolVar(&f.keep, "keep", false, "leave the lab or kind cluster up at the end (existing: keep the switched mode and kpbench's namespace)")
	fl.StringVar(&f.labName, "lab-name", "kpbench", "lab name (a lab of that name already up is used as it is and left up)")
	fl.StringVar(&f.nodeCPUs, "node-cpus", "", "lab: CPUs of the client node (default: the last CPU)")
	fl.StringVar(&f.k8sVersion, "k8s-version", "", "lab: Kubernetes version of the binaries (default "+labDefaultVersion()+")")
	fl.StringVar(&f.binDir, "bin-dir", "", "lab: use etcd, kube-apiserver and kube-proxy from this directory")
	fl.Float64Var(&f.qps, "qps", 500, "API requests per second the scaler may make")
	fl.DurationVar(&f.waitTimeout, "programmed-timeout", 10*time.Minute, "how long to wait for kube-proxy to program one Service step")
	f.cluster.registerForRun(fl)
	return cmd
}

func runScenario(ctx context.Context, g *globals, f *runFlags, argv []string) error {
	bad := func(err error) error { return &ExitError{Code: 2, Err: err} }
	if f.resume != "" {
		if r, err := runs.ReadRun(f.resume); err == nil {
			if err := resumeTrust(r, f, Version); err != nil {
				return err
			}
		}
	}
	switch f.provider {
	case "lab":
	case "kind", "existing":
		f.cluster.provider, f.cluster.keep = f.provider, f.keep
		if err := f.cluster.validate(); err != nil {
			return err
		}
		if f.provider == "existing" && !f.cluster.yes {
			return bad(errors.New("a run on an existing cluster creates and deletes thousands of Services in namespace kpbench and may switch kube-proxy's mode (restored at the end); pass --yes to allow it"))
		}
	default:
		return bad(fmt.Errorf("--provider must be lab, kind or existing, got %q", f.provider))
	}
	if f.file != "" && f.scenario != "" {
		return bad(errors.New("give either -f FILE or --scenario NAME, not both"))
	}
	if f.resume != "" && (f.file != "" || f.scenario != "") {
		return bad(errors.New("--resume continues the scenario recorded in the run; do not give -f or --scenario with it"))
	}

	// The run directory and its record.
	var (
		dir          string
		run          *runs.Run
		prevProvider string
		prevEnv      runs.Environment
	)
	if f.resume != "" {
		dir = f.resume
		r, err := runs.ReadRun(dir)
		if err != nil {
			return bad(fmt.Errorf("cannot resume %s: %w", dir, err))
		}
		run = r
		prevProvider, prevEnv = r.Provider.Name, r.Environment
		if err := resumeTrust(run, f, Version); err != nil { // records a forced resume in this run
			return err
		}
		run.Problems = append(run.Problems, fmt.Sprintf("resumed at %s", time.Now().UTC().Format(time.RFC3339)))
		run.FinishedAt = nil
	} else {
		ref := f.file
		if ref == "" {
			ref = f.scenario
		}
		if ref == "" {
			ref = "quick"
		}
		s, err := scenarios.Resolve(ref)
		if err != nil {
			return bad(err)
		}
		now := time.Now()
		run = &runs.Run{ID: runs.NewID(now, s.Metadata.Name), Scenario: *s, StartedAt: now.UTC()}
		dir = filepath.Join(f.out, run.ID) // made once the cluster is up
	}
	run.Status = runs.StatusRunning
	run.KpbenchVersion = Version
	run.Command = argv
	sc := &run.Scenario

	var (
		target *runTarget
		err    error
	)
	if f.provider == "lab" {
		target, err = labTarget(ctx, g, f, sc)
	} else {
		target, err = clusterTarget(ctx, g, f, sc)
	}
	if err != nil {
		return err
	}
	defer target.teardown()
	if target.note != "" {
		run.Problems = append(run.Problems, target.note)
	}
	if err := target.describe(ctx, run); err != nil {
		return err
	}
	if f.resume != "" {
		if err := resumeEnvironment(run, prevProvider, prevEnv, f.force); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := runs.WriteRun(dir, run); err != nil {
		return err
	}
	g.logger.Info("run", "dir", dir, "scenario", sc.Metadata.Name, "provider", f.provider)

	engine, err := target.engine(ctx)
	if err != nil {
		return err
	}
	runErr := engine.Run(ctx, dir, run)
	fin := time.Now().UTC()
	run.FinishedAt = &fin
	switch {
	case runErr == nil:
		run.Status = runs.StatusComplete
	case errors.Is(runErr, sweep.ErrInterrupted) || ctx.Err() != nil:
		run.Status = runs.StatusInterrupted
	default:
		run.Status = runs.StatusFailed
		run.Problems = append(run.Problems, runErr.Error())
	}
	if err := runs.WriteRun(dir, run); err != nil {
		return err
	}
	// The report covers whatever was measured, also after an interruption.
	if d, err := report.Load(dir); err == nil {
		if _, err := report.Generate(d); err != nil {
			g.logger.Error("report", "err", err)
		} else {
			fmt.Fprintf(g.stdout, "report: %s\n", filepath.Join(dir, "report.html"))
		}
	} else {
		g.logger.Error("report", "err", err)
	}
	if runErr != nil {
		if run.Status == runs.StatusInterrupted {
			return &ExitError{Code: 130, Err: fmt.Errorf("%w; finished points are in %s (continue with --resume %s)", runErr, dir, dir)}
		}
		return fmt.Errorf("%w (finished points are in %s)", runErr, dir)
	}
	return nil
}

// labFor attaches to a lab of that name that is already up (and leaves it
// up afterwards) or brings one up in the scenario's first runnable mode.
func labFor(ctx context.Context, g *globals, cfg lab.Config, sc *scenarios.Scenario) (*lab.Lab, bool, error) {
	if l, err := lab.Open(cfg); err == nil {
		if st, err := l.Status(ctx); err == nil && st.Healthy {
			if len(st.Backends) < sc.Spec.EndpointsPerService {
				return nil, false, &ExitError{Code: 2, Err: fmt.Errorf("lab %s is up with %d backends; the scenario needs %d (bring it down or use --lab-name)", cfg.Name, len(st.Backends), sc.Spec.EndpointsPerService)}
			}
			g.logger.Info("using the lab that is up", "name", cfg.Name)
			return l, false, nil
		}
	}
	l, err := lab.New(cfg)
	if err != nil {
		return nil, false, &ExitError{Code: 2, Err: err}
	}
	caps, err := l.Capabilities(ctx)
	if err != nil {
		return nil, false, err
	}
	first := firstRunnable(caps, sc.Spec.Modes)
	if first == "" {
		return nil, false, fmt.Errorf("the lab can run none of the scenario's modes %v: %v", sc.Spec.Modes, caps.Modes)
	}
	if err := l.Up(ctx, first); err != nil {
		return nil, false, err
	}
	return l, true, nil
}

// runTarget is the cluster a run measures and how it is measured there.
type runTarget struct {
	// note, when set, goes into run.json's problems (e.g. modes replaced
	// by external on a cluster without kube-proxy).
	note     string
	describe func(ctx context.Context, run *runs.Run) error
	engine   func(ctx context.Context) (*sweep.Engine, error)
	teardown func()
}

// labTarget brings up (or attaches to) the lab.
func labTarget(ctx context.Context, g *globals, f *runFlags, sc *scenarios.Scenario) (*runTarget, error) {
	cfg := lab.Config{Name: f.labName, Backends: sc.Spec.Backends, K8sVersion: f.k8sVersion, BinDir: f.binDir, Logger: g.logger}
	if f.nodeCPUs != "" {
		cpus, err := lab.ParseCPUList(f.nodeCPUs)
		if err != nil {
			return nil, &ExitError{Code: 2, Err: fmt.Errorf("--node-cpus: %w", err)}
		}
		cfg.NodeCPUs = cpus
	}
	progress, progressDone := buildProgress(g)
	cfg.BuildProgress = progress
	l, owned, err := labFor(ctx, g, cfg, sc)
	progressDone()
	if err != nil {
		return nil, err
	}
	return &runTarget{
		describe: func(ctx context.Context, run *runs.Run) error { return describeLab(ctx, l, run) },
		engine: func(ctx context.Context) (*sweep.Engine, error) {
			bin, err := os.Executable()
			if err != nil {
				return nil, err
			}
			node := l.ClientNode()
			return newEngine(ctx, g, f, l, sc, scaler.ClientOptions{Kubeconfig: l.KubeconfigPath()}, engineParts{
				load:     &sweep.NodeLoad{Node: node, Bin: bin},
				observer: &sweep.NodeObserver{Node: node, Interval: sc.Spec.Sampling.Interval.D()},
			})
		},
		teardown: func() {
			if !owned || f.keep {
				g.logger.Info("lab left up", "name", f.labName, "kubeconfig", l.KubeconfigPath())
				return
			}
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
			defer cancel()
			if err := l.Down(dctx); err != nil {
				g.logger.Error("lab down", "err", err)
			}
		},
	}, nil
}

// inCluster is what the kind and existing providers offer beyond
// clusters.Provider: in-cluster load clients and run.json details.
type inCluster interface {
	clusters.Provider
	clusters.LoadRunner
	Details(ctx context.Context) map[string]string
}

// clusterTarget brings up a kind cluster or attaches to an existing one:
// backends and the CPU agent deployed, kube-proxy in the scenario's first
// runnable mode. Teardown undoes it (kind: deletes the cluster; existing:
// restores kube-proxy's mode and deletes kpbench's namespace) unless
// --keep.
func clusterTarget(ctx context.Context, g *globals, f *runFlags, sc *scenarios.Scenario) (*runTarget, error) {
	prov, err := f.cluster.newProvider(g, sc.Spec)
	if err != nil {
		return nil, err
	}
	p, ok := prov.(inCluster)
	if !ok {
		return nil, fmt.Errorf("provider %s cannot run load in the cluster", prov.Name())
	}
	// What the cluster can run; the agent is not deployed yet, so IPVS is
	// probed again once it is.
	caps, err := p.Capabilities(ctx)
	if err != nil {
		return nil, err
	}
	t := &runTarget{}
	first := firstRunnable(caps, sc.Spec.Modes)
	if first == "" {
		if ok, _ := caps.Runnable(scenarios.ModeExternal); ok {
			t.note = fmt.Sprintf("kube-proxy is replaced on this cluster: measured as mode external instead of the scenario's modes %v", sc.Spec.Modes)
			g.logger.Warn(t.note)
			sc.Spec.Modes = []scenarios.Mode{scenarios.ModeExternal}
			first = scenarios.ModeExternal
		} else {
			return nil, &ExitError{Code: 2, Err: fmt.Errorf("%s can run none of the scenario's modes %v: %v", prov.Name(), sc.Spec.Modes, caps.Modes)}
		}
	}
	g.logger.Info("bringing the cluster up", "provider", prov.Name(), "mode", first)
	if err := p.Up(ctx, first); err != nil {
		return nil, err
	}
	t.teardown = func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		defer cancel()
		if err := p.Down(dctx); err != nil {
			g.logger.Error("cluster teardown", "provider", prov.Name(), "err", err)
		}
	}
	t.describe = func(ctx context.Context, run *runs.Run) error {
		v, err := p.Versions(ctx)
		if err != nil {
			return err
		}
		// The machine kpbench runs on is not the client node: the
		// node's kernel, CPU and iptables come through the agent.
		env, err := sweep.NodeEnvironment(ctx, p.ClientNode())
		if err != nil {
			g.logger.Warn("describing the client node", "err", err)
			run.Problems = append(run.Problems, "client node environment incomplete: "+err.Error())
		}
		env.KubernetesVersion, env.KubeProxyVersion = v.Kubernetes, v.KubeProxy
		if v.IPTablesBackend != "" {
			env.IPTablesBackend = v.IPTablesBackend
		}
		run.Environment = env
		d := p.Details(ctx)
		run.Provider = runs.Provider{Name: prov.Name(), Cluster: d["cluster"], Details: d}
		return nil
	}
	t.engine = func(ctx context.Context) (*sweep.Engine, error) {
		node := p.ClientNode()
		external := len(sc.Spec.Modes) == 1 && sc.Spec.Modes[0] == scenarios.ModeExternal
		opts := scaler.ClientOptions{Kubeconfig: p.KubeconfigPath()}
		if f.provider == "existing" {
			opts = scaler.ClientOptions{Kubeconfig: f.cluster.kubeconfig, Context: f.cluster.context}
		}
		e, err := newEngine(ctx, g, f, p, sc, opts, engineParts{
			load:      &sweep.ClusterLoad{Runner: p, Clients: sc.Spec.Load.Clients, Merge: manifests.SummaryMergerFunc(loadgen.MergeSummaries)},
			observer:  &sweep.AgentObserver{Node: node, Bin: "kpbench", Interval: sc.Spec.Sampling.Interval.D(), NoKubeProxy: external},
			probeOnly: external,
		})
		return e, err
	}
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

// describeLab fills run.json's provider, environment and pinning.
func describeLab(ctx context.Context, l *lab.Lab, run *runs.Run) error {
	st, err := l.Status(ctx)
	if err != nil {
		return fmt.Errorf("lab status: %w", err)
	}
	env := sweep.DetectEnvironment(ctx, "/proc", nil)
	env.KubernetesVersion = st.KubernetesVer
	env.KubeProxyVersion = st.KubeProxyVer
	if st.IPTablesBackend != "" {
		env.IPTablesBackend = st.IPTablesBackend
	}
	run.Environment = env
	run.Provider = runs.Provider{Name: "lab", Cluster: st.Name, Details: map[string]string{
		"etcdVersion": st.EtcdVersion, "backends": fmt.Sprint(len(st.Backends)),
	}}
	if len(st.NodeCPUs) > 0 {
		run.Pinning = &runs.Pinning{NodeCPUs: st.NodeCPUs, OtherCPUs: st.OtherCPUs}
	}
	return nil
}

// engineParts are the provider-specific adapters of the engine.
type engineParts struct {
	load      sweep.LoadRunner
	observer  sweep.Observer
	probeOnly bool
}

// newEngine assembles the sweep engine: the scaler against the provider's
// API server and backends, rules and health through its client node, load
// and observation from parts.
func newEngine(ctx context.Context, g *globals, f *runFlags, p clusters.Provider, sc *scenarios.Scenario, opts scaler.ClientOptions, parts engineParts) (*sweep.Engine, error) {
	eps, err := p.Backends(ctx)
	if err != nil {
		return nil, err
	}
	ips := make([]netip.Addr, len(eps))
	for i, e := range eps {
		ips[i] = e.Addr
	}
	opts.QPS, opts.Burst = float32(f.qps), int(f.qps)
	client, _, err := scaler.NewClient(opts)
	if err != nil {
		return nil, err
	}
	port := int32(80)
	if len(eps) > 0 && eps[0].Port != 0 {
		port = int32(eps[0].Port)
	}
	s, err := scaler.New(client, scaler.Config{EndpointIPs: ips, EndpointsPerService: sc.Spec.EndpointsPerService, TargetPort: port,
		Progress: &scaler.LogProgress{Logger: g.logger, Interval: 10 * time.Second}})
	if err != nil {
		return nil, err
	}
	node := p.ClientNode()
	return &sweep.Engine{
		Provider: p,
		Scaler:   &sweep.ServiceScaler{Scaler: s, Client: client, Node: node, WaitTimeout: f.waitTimeout, ProbeOnly: parts.probeOnly},
		Load:     parts.load,
		Observer: parts.observer,
		Rules:    sweep.NodeRules{Node: node},
		Depth:    sweep.NodeDepth{Node: node},
		Log:      g.logger,
		Progress: func(done, total int, id string) {
			g.logger.Info(fmt.Sprintf("point %d/%d", done, total), "id", id)
		},
	}, nil
}

func labDefaultVersion() string { return build.DefaultVersion }
