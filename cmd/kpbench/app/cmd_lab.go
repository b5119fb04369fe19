package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/internal/cpuset"
	"github.com/kpbench/kpbench/scenarios"
)

// labFlags are `kpbench lab`'s persistent flags, which every lab
// subcommand inherits; each subcommand's own flags are in its own struct
// type (labUpFlags, ...).
type labFlags struct {
	name     string
	stateDir string
}

func (f *labFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "name", lab.DefaultName, "lab name (lower-case letters and digits); labs of different names coexist")
	fs.StringVar(&f.stateDir, "state-dir", "", "directory of lab state (default $XDG_STATE_HOME/kpbench/labs or ~/.local/state/kpbench/labs)")
}

func (f *labFlags) config(g *globals) lab.Config {
	return lab.Config{Name: f.name, StateDir: f.stateDir, Logger: g.logger}
}

func newLabCmd(g *globals) *cobra.Command {
	f := &labFlags{}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "The local lab: a real control plane and kube-proxy on network namespaces",
		Long: `The lab is a real etcd, kube-apiserver and kube-proxy, built from source for a
pinned Kubernetes version, with kube-proxy programming the real kernel inside
network namespaces of this machine (kpb-<name>-*). Nothing changes in the root
network namespace. It needs root.

  kpbench lab up --mode iptables     # ~10 s once the binaries are built
  kubectl --kubeconfig "$(kpbench lab kubeconfig)" get nodes
  kpbench lab mode nftables
  kpbench lab exec -- nft list table ip kube-proxy
  kpbench lab down`,
	}
	f.register(cmd.PersistentFlags())
	cmd.AddCommand(
		newLabBinariesCmd(g),
		newLabUpCmd(g, f),
		newLabDownCmd(g, f),
		newLabModeCmd(g, f),
		newLabStatusCmd(g, f),
		newLabExecCmd(g, f),
		newLabKubeconfigCmd(g, f),
		newLabForwardCmd(g),
		newLabVMInitCmd(g),
		newLabVMAgentCmd(g),
	)
	return cmd
}

// labFree refuses to go on when a run holds lab l, naming the run; with
// force it warns and goes on.
func labFree(g *globals, l *lab.Lab, force bool) error {
	return holdVerdict(g, l.CheckFree(), force)
}

// holdVerdict turns what a hold check returned into the command's error:
// a *lab.HeldError fails the command (exit 1) unless force.
func holdVerdict(g *globals, err error, force bool) error {
	var held *lab.HeldError
	if !errors.As(err, &held) {
		return err
	}
	if force {
		g.logger.Warn(fmt.Sprintf("lab %s is held by run %s; changing it anyway (--force): that run's points from now on may not measure what they say", held.Lab, held.Hold.RunID))
		return nil
	}
	return &ExitError{Code: ExitFailed, Err: err}
}

// labError maps lab errors to exit statuses: bad input is 2.
func labError(err error) error {
	if errors.Is(err, lab.ErrBadConfig) || errors.Is(err, build.ErrBadVersion) || errors.Is(err, build.ErrMissingBinary) || errors.Is(err, lab.ErrNotFound) {
		return &ExitError{Code: 2, Err: err}
	}
	return err
}

// buildProgress renders a binary build: a bar on a terminal, a log line
// per phase and every 10% (or 30 s) otherwise. Call the returned func when
// the build is over.
func buildProgress(g *globals) (func(build.Progress), func()) {
	if fd, ok := g.stderr.(*os.File); ok && term.IsTerminal(int(fd.Fd())) {
		var (
			mu  sync.Mutex
			p   *mpb.Progress
			bar *mpb.Bar
		)
		report := func(pr build.Progress) {
			mu.Lock()
			defer mu.Unlock()
			if pr.Phase != "compiling" {
				if bar != nil && pr.Phase == "done" {
					bar.SetTotal(-1, true)
				} else {
					fmt.Fprintf(g.stderr, "building Kubernetes binaries: %s (%s)\n", pr.Phase, pr.Elapsed.Round(time.Second))
				}
				return
			}
			if bar == nil {
				p = mpb.New(mpb.WithOutput(g.stderr), mpb.WithWidth(40))
				bar = p.AddBar(int64(pr.Total),
					mpb.PrependDecorators(decor.Name("compiling "), decor.CountersNoUnit("%d/%d packages")),
					mpb.AppendDecorators(decor.Elapsed(decor.ET_STYLE_MMSS)))
			}
			bar.SetCurrent(int64(pr.Done))
		}
		done := func() {
			mu.Lock()
			defer mu.Unlock()
			if bar != nil {
				if !bar.Completed() {
					bar.Abort(false)
				}
				p.Wait()
			}
		}
		return report, done
	}
	var (
		mu       sync.Mutex
		lastPct  = -10
		lastTime time.Time
	)
	report := func(pr build.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if pr.Phase != "compiling" || pr.Total == 0 {
			return // phases are logged by the builder
		}
		pct := 100 * pr.Done / pr.Total
		if pct >= lastPct+10 || time.Since(lastTime) > 30*time.Second {
			lastPct, lastTime = pct, time.Now()
			g.logger.Info("compiling Kubernetes binaries", "packages", fmt.Sprintf("%d/%d", pr.Done, pr.Total), "elapsed", pr.Elapsed.Round(time.Second))
		}
	}
	return report, func() {}
}

func newLabBinariesCmd(g *globals) *cobra.Command {
	var opts build.Options
	cmd := &cobra.Command{
		Use:   "binaries",
		Short: "Build (or find cached) etcd, kube-apiserver and kube-proxy for a Kubernetes version",
		Long: `binaries builds etcd, kube-apiserver and kube-proxy from source through the Go
module proxy: a throwaway module requires k8s.io/kubernetes at the version and
replaces each staging module that version's go.mod lists with its v0.Y.Z
release; etcd is go.etcd.io/etcd/server/v3 at the version Kubernetes pins.
The binaries are cached per version (the first build takes several minutes)
and the directory is printed on stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			report, done := buildProgress(g)
			opts.Logger, opts.Progress = g.logger, report
			b, err := build.Ensure(cmd.Context(), opts)
			done()
			if err != nil {
				return labError(err)
			}
			if b.Cached {
				g.logger.Info("binaries are cached", "version", b.Version, "dir", b.Dir)
			}
			_, err = fmt.Fprintln(g.stdout, b.Dir)
			return err
		},
	}
	cmd.Flags().StringVar(&opts.Version, "k8s-version", build.DefaultVersion, "Kubernetes version to build")
	cmd.Flags().StringVar(&opts.CacheDir, "cache-dir", "", "cache root (default the user cache dir + /kpbench)")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "rebuild even if the version is cached")
	return cmd
}

// labUpFlags are `kpbench lab up`'s flags: most fill the lab's Config
// directly.
type labUpFlags struct {
	mode     string
	nodeCPUs string
	cfg      lab.Config
	node     nodeFlags
}

func (f *labUpFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.mode, "mode", string(scenarios.ModeIPTables), "kube-proxy mode: iptables, nftables or ipvs")
	fs.StringVar(&f.cfg.K8sVersion, "k8s-version", build.DefaultVersion, "Kubernetes version of the binaries to build and run")
	fs.StringVar(&f.cfg.BinDir, "bin-dir", "", "directory holding etcd, kube-apiserver and kube-proxy to use instead of building them")
	fs.StringVar(&f.cfg.CacheDir, "cache-dir", "", "cache root for built binaries (default the user cache dir + /kpbench)")
	fs.IntVar(&f.cfg.Backends, "backends", lab.DefaultBackends, "number of backend pods")
	fs.StringVar(&f.nodeCPUs, "node-cpus", "", "CPUs for the client node's processes, e.g. 1 or 2-3 (default the last CPU)")
	fs.BoolVar(&f.cfg.Retain, "retain", false, "keep what a failed up made, for debugging (remove it with lab down)")
	fs.BoolVar(&f.cfg.Reuse, "reuse", false, "if the lab is already up, use it (switching its mode if needed)")
	fs.DurationVar(&f.cfg.ReadyTimeout, "ready-timeout", 90*time.Second, "how long each component may take to become healthy")
	fs.DurationVar(&f.cfg.SyncTimeout, "sync-timeout", 10*time.Minute, "how long kube-proxy may take to program its rules")
	f.node.register(fs, "")
}

func newLabUpCmd(g *globals, f *labFlags) *cobra.Command {
	var up labUpFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create the lab and wait until every component is healthy",
		Long: `up creates the lab's namespaces and bridge, starts etcd and kube-apiserver
(Service CIDR 198.19.0.0/16, credentials generated for this lab), creates the
Node object, starts ` + "`kpbench serve`" + ` in each backend namespace and kube-proxy in the
client-node namespace, and waits until all are healthy. The client node's
processes are pinned to their own CPUs (--node-cpus, default the last CPU).
On any failure or Ctrl-C it removes everything it made and shows the failing
component's log tail.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := parseMode(up.mode, false)
			if err != nil {
				return err
			}
			cfg := up.cfg
			base := f.config(g)
			cfg.Name, cfg.StateDir, cfg.Logger = base.Name, base.StateDir, base.Logger
			up.node.apply(&cfg)
			if up.nodeCPUs != "" {
				if cfg.NodeCPUs, err = cpuset.Parse(up.nodeCPUs); err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("--node-cpus: %w", err)}
				}
			}
			report, done := buildProgress(g)
			cfg.BuildProgress = report
			l, err := lab.New(cfg)
			if err != nil {
				done()
				return labError(err)
			}
			err = l.Up(cmd.Context(), m)
			done()
			if err != nil {
				return labError(err)
			}
			fmt.Fprintf(g.stdout, "lab %s is up (kube-proxy in %s mode)\n  kubectl --kubeconfig %s get nodes\n  kpbench lab status --name %s\n", l.LabName(), m, l.KubeconfigPath(), l.LabName())
			return nil
		},
	}
	up.register(cmd.Flags())
	return cmd
}

// labDownFlags are `kpbench lab down`'s flags.
type labDownFlags struct {
	all, force bool
}

func (f *labDownFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.all, "all", false, "bring down every lab with state in --state-dir")
	fs.BoolVar(&f.force, "force", false, "bring the lab down even while a run holds it")
}

func newLabDownCmd(g *globals, f *labFlags) *cobra.Command {
	var down labDownFlags
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop every process of the lab and remove its namespaces and files",
		Long: `down stops every process the lab started (by PID, checking each one's start
time), deletes its network namespaces and removes its state directory. It is
safe to run twice and after a crash.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names := []string{f.name}
			if down.all {
				var err error
				if names, err = lab.List(f.stateDir); err != nil {
					return err
				}
			}
			var errs []error
			for _, n := range names {
				cfg := f.config(g)
				cfg.Name = n
				l, err := lab.New(cfg)
				if err != nil {
					return labError(err)
				}
				if err := labFree(g, l, down.force); err != nil {
					errs = append(errs, err)
					continue
				}
				if err := l.Down(cmd.Context()); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(g.stdout, "lab %s is down\n", n)
			}
			return errors.Join(errs...)
		},
	}
	down.register(cmd.Flags())
	return cmd
}

// labModeFlags are `kpbench lab mode`'s flags.
type labModeFlags struct {
	syncTimeout time.Duration
	force       bool
}

func (f *labModeFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&f.syncTimeout, "sync-timeout", 10*time.Minute, "how long kube-proxy may take to program its rules in the new mode")
	fs.BoolVar(&f.force, "force", false, "switch even while a run holds the lab")
}

func newLabModeCmd(g *globals, f *labFlags) *cobra.Command {
	var mode labModeFlags
	cmd := &cobra.Command{
		Use:   "mode MODE",
		Short: "Switch kube-proxy to another mode in place and verify it",
		Long: `mode stops kube-proxy, runs ` + "`kube-proxy --cleanup`" + ` in the client-node namespace,
starts it in MODE (iptables, nftables or ipvs) and verifies the mode through
kube-proxy's /proxyMode and the presence of that mode's rules.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := parseMode(args[0], false)
			if err != nil {
				return err
			}
			cfg := f.config(g)
			cfg.SyncTimeout = mode.syncTimeout
			l, err := lab.Open(cfg)
			if err != nil {
				return labError(err)
			}
			if err := labFree(g, l, mode.force); err != nil {
				return err
			}
			start := time.Now()
			if err := l.SetMode(cmd.Context(), m); err != nil {
				if errors.Is(err, clusters.ErrModeUnavailable) {
					return &ExitError{Code: 1, Err: err}
				}
				return labError(err)
			}
			fmt.Fprintf(g.stdout, "lab %s: kube-proxy runs in %s mode (switched in %s)\n", l.LabName(), m, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	mode.register(cmd.Flags())
	return cmd
}

// labStatusFlags are `kpbench lab status`'s flags.
type labStatusFlags struct {
	json bool
}

func (f *labStatusFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.json, "json", false, "print JSON")
}

func newLabStatusCmd(g *globals, f *labFlags) *cobra.Command {
	var status labStatusFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the lab's components, PIDs, mode, versions, kubeconfig, backends and CPUs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Open(f.config(g))
			if err != nil {
				return labError(err)
			}
			s, err := l.Status(cmd.Context())
			if err != nil {
				return err
			}
			if status.json {
				enc := json.NewEncoder(g.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			return s.WriteText(g.stdout)
		},
	}
	status.register(cmd.Flags())
	return cmd
}

// labExecFlags are `kpbench lab exec`'s flags.
type labExecFlags struct {
	force bool
}

func (f *labExecFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.force, "force", false, "run even while a run holds the lab (the command runs on the CPUs the run measures)")
}

func newLabExecCmd(g *globals, f *labFlags) *cobra.Command {
	var ex labExecFlags
	cmd := &cobra.Command{
		Use:   "exec -- CMD [ARG...]",
		Short: "Run a command in the client-node namespace, pinned to the node CPUs",
		Example: `  kpbench lab exec -- iptables-save -t nat
  kpbench lab exec -- nft list ruleset
  kpbench lab exec -- curl -s http://198.19.0.10/`,
		Long: `exec runs CMD inside the lab's client-node network namespace, pinned to the
node's CPUs, with this terminal's standard input and output. Its exit status
is the command's own (128+N when a signal N ended it); 127 when CMD is not
found and 126 when it cannot be run, as shells report them. Put -- before
CMD so that its flags are not taken for kpbench's.

While a run holds the lab, exec refuses (the command would run on the node
CPUs the run measures, and may change the node) unless --force.`,
		Annotations: map[string]string{annotationRunsCommand: "true"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("no command to run: kpbench lab exec -- CMD [ARG...]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := lab.Open(f.config(g))
			if err != nil {
				return labError(err)
			}
			if err := labFree(g, l, ex.force); err != nil {
				return err
			}
			return execStatus(args[0], l.ClientNode().Run(cmd.Context(), g.stdin, g.stdout, g.stderr, args...))
		},
	}
	ex.register(cmd.Flags())
	return cmd
}

// execStatus turns what running name returned into lab exec's exit status,
// as a shell reports it: the command's own status, 128+N when signal N
// ended it (e.g. SIGPIPE when piped into head), 127 when it is not found,
// 126 when it cannot be run.
func execStatus(name string, err error) error {
	var vmExit interface{ ExitCode() int }
	switch {
	case err == nil:
		return nil
	case errors.Is(err, exec.ErrNotFound):
		return &ExitError{Code: ExitNotFound, Err: fmt.Errorf("lab exec: %s: command not found in the client node's PATH", name)}
	case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.ENOEXEC):
		return &ExitError{Code: ExitCannotRun, Err: fmt.Errorf("lab exec: %s: cannot run it: %w", name, err)}
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &ExitError{Code: 128 + int(ws.Signal())}
		}
		return &ExitError{Code: exitErr.ExitCode()}
	}
	if errors.As(err, &vmExit) {
		return &ExitError{Code: vmExit.ExitCode()} // a command in the node VM
	}
	return err
}

func newLabKubeconfigCmd(g *globals, f *labFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the path of the lab's kubeconfig",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Open(f.config(g))
			if err != nil {
				return labError(err)
			}
			if h, err := l.HeldBy(); err == nil && h != nil {
				g.logger.Warn(fmt.Sprintf("lab %s is held by run %s (kpbench pid %d): changing its cluster changes that run's points", l.LabName(), h.RunID, h.Process.PID))
			}
			_, err = fmt.Fprintln(g.stdout, l.KubeconfigPath())
			return err
		},
	}
}
