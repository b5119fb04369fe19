package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/clusters/providers"
	"github.com/kpbench/kpbench/internal/cpuset"
	"github.com/kpbench/kpbench/report"
	"github.com/kpbench/kpbench/runs"
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
	// node is the lab's client node (netns or a VM).
	node        nodeFlags
	qps         float64
	waitTimeout time.Duration
	// cluster configures the kind and existing providers.
	cluster runClusterFlags
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
	fl.StringVar(&f.provider, "provider", "lab", "cluster provider: "+providers.List()+" (see docs/clusters.md)")
	fl.StringVar(&f.out, "out", "results", "directory that receives the run directory")
	fl.StringVar(&f.resume, "resume", "", "continue the run in this directory, skipping points already measured")
	fl.BoolVar(&f.force, "force", false, "with --resume: continue even if the kpbench version, provider or environment differ from the run's (recorded in run.json)")
	fl.BoolVar(&f.keep, "keep", false, "leave the lab or kind cluster up at the end (existing: keep the switched mode and kpbench's namespace)")
	fl.StringVar(&f.labName, "lab-name", "kpbench", "lab name (a lab of that name already up is used as it is and left up)")
	fl.StringVar(&f.nodeCPUs, "node-cpus", "", "lab: CPUs of the client node (default: the last CPU)")
	fl.StringVar(&f.k8sVersion, "k8s-version", "", "lab: Kubernetes version of the binaries (default "+labDefaultVersion()+")")
	fl.StringVar(&f.binDir, "bin-dir", "", "lab: use etcd, kube-apiserver and kube-proxy from this directory")
	f.node.register(fl, "lab: ")
	fl.Float64Var(&f.qps, "qps", 500, "API requests per second the scaler may make")
	fl.DurationVar(&f.waitTimeout, "programmed-timeout", 10*time.Minute, "how long to wait for kube-proxy to program one Service step")
	f.cluster.register(fl)
	return cmd
}

func runScenario(ctx context.Context, g *globals, f *runFlags, argv []string) error {
	bad := func(err error) error { return &ExitError{Code: 2, Err: err} }
	// The run's record: read once when resuming (its provider is the
	// default of --provider), made once the flags are checked otherwise.
	var rec *runs.Record
	if f.resume != "" {
		r, err := runs.OpenRecord(f.resume)
		if err != nil {
			return bad(fmt.Errorf("cannot resume %s: %w", f.resume, err))
		}
		rec = r
		if resumeIsDone(g, rec) {
			return nil // nothing brought up, nothing written
		}
		if err := resumeTrust(rec.Run, f, Version); err != nil { // records a forced resume in this run
			return err
		}
	}
	if !providers.Known(f.provider) {
		return bad(fmt.Errorf("--provider must be %s, got %q", providers.List(), f.provider))
	}
	switch f.provider {
	case "kind", "existing":
		if err := f.cluster.validate(f.provider); err != nil {
			return err
		}
		if f.provider == "existing" && !f.cluster.yes {
			return bad(errors.New("a run on an existing cluster creates and deletes thousands of Services in namespace kpbench and may switch kube-proxy's mode (restored at the end); pass --yes to allow it"))
		}
	}
	if f.file != "" && f.scenario != "" {
		return bad(errors.New("give either -f FILE or --scenario NAME, not both"))
	}
	if f.resume != "" && (f.file != "" || f.scenario != "") {
		return bad(errors.New("--resume continues the scenario recorded in the run; do not give -f or --scenario with it"))
	}

	var (
		prevProvider string
		prevEnv      runs.Environment
	)
	if rec != nil {
		prevProvider, prevEnv = rec.Run.Provider.Name, rec.Run.Environment
		recordResume(g, rec, argv)
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
		rec = runs.NewRecord(f.out, *s, argv, Version, time.Now()) // its directory is made once the cluster is up
	}
	sc := &rec.Run.Scenario
	if f.provider == "lab" {
		announceLabReuse(ctx, g, f.labName, sc)
	}

	progress, progressDone := buildProgress(g)
	prov, err := f.newProvider(g, sc, progress)
	if err != nil {
		progressDone()
		return err
	}
	// The point being measured, for the one line an interruption prints.
	current := ""
	cfg := sweep.RunConfig{
		Provider: prov,
		Engine:   sweep.EngineOptions{QPS: f.qps, WaitTimeout: f.waitTimeout, Log: g.logger},
		Log:      g.logger,
		Prepared: progressDone,
		Progress: func(_, _ int, id string) { current = id },
	}
	if f.resume != "" {
		cfg.Described = func(run *runs.Run) error { return resumeEnvironment(run, prevProvider, prevEnv, f.force) }
	}
	runErr := sweep.Execute(ctx, rec, cfg)
	var setupErr *sweep.SetupError
	if errors.As(runErr, &setupErr) {
		var held *lab.HeldError
		switch {
		case errors.As(runErr, &held):
			h := held.Hold
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("lab %s is held by run %s (kpbench pid %d, results in %s): wait for that run to end or stop it, or run on a lab of its own (--lab-name)",
				held.Lab, h.RunID, h.Process.PID, orNone(h.RunDir))}
		case errors.Is(runErr, sweep.ErrCannotRun):
			return bad(setupErr.Err)
		case ctx.Err() != nil:
			return &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("interrupted while bringing the %s up; nothing measured", f.provider)}
		}
		return setupErr.Err
	}
	dir := rec.Dir
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
		if rec.Run.Status == runs.StatusInterrupted {
			// One line: where it stopped, what is kept, how to go on. The
			// error's chain (the load command line, its URLs, the signal)
			// is for -v.
			g.logger.Debug("interrupted", "err", runErr)
			kept := 0
			if points, err := runs.ReadPoints(dir); err == nil {
				kept = len(points)
			}
			where := "setting up"
			if current != "" {
				where = current
			}
			return &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("interrupted during %s; %d %s kept in %s; continue with: kpbench run --resume %s",
				where, kept, plural(kept, "point", "points"), dir, dir)}
		}
		return fmt.Errorf("%w (finished points are in %s)", runErr, dir)
	}
	return nil
}

// newProvider builds the provider --provider names, for the scenario.
// The lab reports its binary build to progress.
func (f *runFlags) newProvider(g *globals, sc *scenarios.Scenario, progress func(build.Progress)) (clusters.Provider, error) {
	o := f.cluster.providerOptions(g, sc.Spec, f.keep)
	o.Lab = lab.Config{Name: f.labName, K8sVersion: f.k8sVersion, BinDir: f.binDir, BuildProgress: progress}
	f.node.apply(&o.Lab)
	if f.nodeCPUs != "" {
		cpus, err := cpuset.Parse(f.nodeCPUs)
		if err != nil {
			return nil, &ExitError{Code: 2, Err: fmt.Errorf("--node-cpus: %w", err)}
		}
		o.Lab.NodeCPUs = cpus
	}
	p, err := providers.New(f.provider, o)
	if errors.Is(err, lab.ErrBadConfig) {
		return nil, &ExitError{Code: 2, Err: err}
	}
	return p, err
}

func labDefaultVersion() string { return build.DefaultVersion }
