// Package app is the kpbench command line: cobra commands whose flags viper
// fills from the environment (KPBENCH_*) and an optional config file. It is
// the only package that reads configuration or exits the process.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Version is stamped at build time (-ldflags -X).
var Version = "dev"

// Main runs kpbench with the process's arguments and exits with its status.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Stdin, os.Stdout, os.Stderr, os.Args[1:])
	stop()
	os.Exit(code)
}

// Run executes one kpbench command line and returns the exit status.
func Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args []string) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr, sources: map[string]string{}}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	return exitCode(ctx, stderr, explainSources(err, g.sources), g.verbose)
}

// globals are the settings and streams every command shares.
type globals struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	configFile     string
	logFormat      string
	verbose        int
	logger         *slog.Logger
	// sources says where each flag set from the environment or the config
	// file got its value, for error messages (see explainSources).
	sources map[string]string
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "kpbench",
		Short: "Measure what a Kubernetes Service dataplane costs",
		Long: `kpbench measures kube-proxy's iptables, IPVS and nftables modes: it scales
synthetic Services, drives a fixed request rate with and without keepalive,
samples the client node's CPU from /proc, and reports latency and CPU curves.

Flags can also be set with KPBENCH_<FLAG> environment variables (dashes become
underscores, e.g. KPBENCH_KUBECONFIG) or in a YAML config file (--config);
a flag on the command line wins over the environment, which wins over the file.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindConfig(cmd, g.configFile, g.sources); err != nil {
				return err
			}
			logger, err := newLogger(g.stderr, g.logFormat, g.verbose)
			if err != nil {
				return badInput(err)
			}
			g.logger = logger
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.configFile, "config", "", "YAML config file of flag values (default $KPBENCH_CONFIG, else ~/.config/kpbench/config.yaml if it exists)")
	root.PersistentFlags().CountVarP(&g.verbose, "verbose", "v", "more logging (debug level, error details)")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "auto", "log lines on stderr: human (short step lines), text (slog key=value), json, or auto (human on a terminal, text otherwise)")
	root.AddCommand(
		newScenarioCmd(g),
		newRunCmd(g),
		newLabCmd(g),
		newClusterCmd(g),
		newScaleCmd(g),
		newLoadCmd(g),
		newServeCmd(g),
		newSampleCmd(g),
		newReportCmd(g),
		newCompareCmd(g),
		newCalibrateCmd(g),
		newImageCmd(g),
		newVersionCmd(g),
	)
	// cobra adds these when it runs; add them now so that the usage
	// contract covers them too.
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	enforceUsageContract(root)
	return root
}

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kpbench's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(g.stdout, "kpbench", Version)
			return err
		},
	}
}
