package app

// The hidden `kpbench cluster agent` commands: what the CPU agent pod runs
// and what kpbench execs into it on kind and existing clusters. Not for
// people.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/clusters/existing"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/clusters/manifests"
	"github.com/kpbench/kpbench/collector"
)

// newClusterAgentCmd is what the CPU agent pod runs: it idles until
// SIGTERM so kpbench can exec its probes into the pod, which shares the
// client node's PID and network namespaces.
func newClusterAgentCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "Idle in the CPU agent pod until terminated",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g.logger.Info("kpbench agent ready", "procRoot", manifests.HostProcPath, "hostRoot", manifests.HostRootPath)
			<-cmd.Context().Done()
			return nil
		},
	}
	get := &cobra.Command{
		Use:   "get URL",
		Short: "GET a loopback URL (kube-proxy's metrics port) and print the body",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return existing.AgentGet(cmd.Context(), args[0], g.stdout)
		},
	}
	var procRoot, rootFS string
	pid := &cobra.Command{
		Use:   "pid NAME",
		Short: "Print the PID of the process named NAME",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := existing.FindPID(procRoot, args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(g.stdout, p)
			return err
		},
	}
	pid.Flags().StringVar(&procRoot, "proc", manifests.HostProcPath, "proc filesystem to search")
	cat := &cobra.Command{
		Use:   "cat FILE",
		Short: "Print a file under the node's /proc",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !strings.HasPrefix(args[0], manifests.HostProcPath+"/") {
				return &ExitError{Code: 2, Err: fmt.Errorf("cat reads files under %s only", manifests.HostProcPath)}
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(b)
			return err
		},
	}
	ipvs := &cobra.Command{
		Use:   "ipvs",
		Short: "Exit 0 when the node's kernel can run IPVS, else explain on stderr and exit 1",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ok, reason := kubeproxy.IPVSAvailable(procRoot, rootFS); !ok {
				fmt.Fprintln(g.stderr, reason)
				return &ExitError{Code: 1}
			}
			return nil
		},
	}
	ipvs.Flags().StringVar(&procRoot, "proc", manifests.HostProcPath, "the node's proc filesystem")
	ipvs.Flags().StringVar(&rootFS, "root", manifests.HostRootPath, "the node's root filesystem")
	host := &cobra.Command{
		Use:                "host -- COMMAND [ARGS...]",
		Short:              "Run a command from the node's root filesystem (iptables-save, nft, ipvsadm)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			if len(args) == 0 {
				return badInput(errors.New("host: no command: kpbench cluster agent host -- COMMAND [ARGS...]"))
			}
			c, err := existing.HostCommand(cmd.Context(), manifests.HostRootPath, args)
			if err != nil {
				return &ExitError{Code: 127, Err: err}
			}
			c.Stdin, c.Stdout, c.Stderr = g.stdin, g.stdout, g.stderr
			err = c.Run()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return &ExitError{Code: exit.ExitCode()}
			}
			return err
		},
	}
	cmd.AddCommand(get, pid, cat, ipvs, host, newAgentPointCmd(g))
	return cmd
}

// newAgentPointCmd measures one point's window on the node the agent runs
// on: what `kpbench run` on kind or an existing cluster execs into the
// agent pod (and what the lab's in-cluster path tests run in its node).
func newAgentPointCmd(g *globals) *cobra.Command {
	var (
		procRoot, cpuList, metricsURL string
		kpPID, netnsPID               int
		noKubeProxy                   bool
		interval, maxDuration         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "point [--proc DIR] [--cpus LIST] [--kube-proxy-pid N] [--interval 1s]",
		Short: "Measure node CPU, kube-proxy, conntrack and sync metrics until stdin closes",
		Long: `point starts the collector's point measurement, prints {"ready":true} once
sampling runs, waits for a line or the end of its standard input (or
--max-duration), then
prints the point's result as JSON: CPU series and summary, conntrack and
kube-proxy sync deltas, raw metrics. kube-proxy is found by name under --proc
unless --kube-proxy-pid is given; its metrics are read from --metrics-url,
which must be on loopback.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fs, cpus, err := procFlags(procRoot, cpuList)
			if err != nil {
				return err
			}
			if noKubeProxy {
				kpPID, metricsURL = 0, ""
			} else if kpPID == 0 {
				if kpPID, err = existing.FindPID(procRoot, "kube-proxy"); err != nil {
					return err
				}
			}
			if netnsPID == 0 {
				netnsPID = kpPID // 0 without kube-proxy: the agent's own, the node's (hostNetwork)
			}
			cfg := collector.PointConfig{CPUs: cpus, KubeProxyPID: kpPID, NetnsPID: netnsPID, Interval: interval}
			if metricsURL != "" {
				base := strings.TrimRight(metricsURL, "/")
				cfg.KubeProxy = &collector.KubeProxyScraper{Fetch: func(ctx context.Context, path string) ([]byte, error) {
					var b bytes.Buffer
					err := existing.AgentGet(ctx, base+path, &b)
					return b.Bytes(), err
				}}
			}
			return collector.ServeRemotePoint(cmd.Context(), fs, cfg, g.stdin, g.stdout, maxDuration)
		},
	}
	f := cmd.Flags()
	f.StringVar(&procRoot, "proc", manifests.HostProcPath, "the node's proc filesystem")
	f.StringVar(&cpuList, "cpus", "", "CPUs whose time is the node's (default: all)")
	f.IntVar(&kpPID, "kube-proxy-pid", 0, "kube-proxy's PID under --proc (default: found by name)")
	f.BoolVar(&noKubeProxy, "no-kube-proxy", false, "the node has no kube-proxy (a replacement, mode external): node CPU and conntrack only")
	f.IntVar(&netnsPID, "netns-pid", 0, "a process in the node's network namespace, for conntrack (default: kube-proxy)")
	f.StringVar(&metricsURL, "metrics-url", existing.KubeProxyMetricsURL, "kube-proxy's metrics server (loopback only; empty: do not scrape)")
	f.DurationVar(&interval, "interval", time.Second, "CPU sampling interval")
	f.DurationVar(&maxDuration, "max-duration", time.Hour, "end the window after this long even if stdin stays open")
	return cmd
}
