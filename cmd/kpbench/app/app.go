// Package app is the kpbench command line: cobra commands whose flags viper
// fills from the environment (KPBENCH_*) and an optional config file. It is
// the only package that reads configuration or exits the process.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Version is stamped at build time (-ldflags -X).
var Version = "dev"

// ExitError carries a specific exit status (compare exits 1 on a
// regression, 2 on bad input).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Main runs kpbench with the process's arguments and exits with its status.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Stdin, os.Stdout, os.Stderr, os.Args[1:])
	stop()
	os.Exit(code)
}

// Run executes one kpbench command line and returns the exit status.
func Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args []string) int {
	g := &globals{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Err != nil {
			fmt.Fprintln(stderr, "kpbench:", exit.Err)
		}
		return exit.Code
	}
	fmt.Fprintln(stderr, "kpbench:", err)
	if g.verbose > 0 {
		fmt.Fprintf(stderr, "%+v\n", err)
	}
	if ctx.Err() != nil {
		return 130
	}
	return 1
}

// globals are the settings and streams every command shares.
type globals struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	configFile     string
	verbose        int
	logger         *slog.Logger
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
			level := slog.LevelInfo
			if g.verbose > 0 {
				level = slog.LevelDebug
			}
			g.logger = slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
			return bindConfig(cmd, g.configFile)
		},
	}
	root.PersistentFlags().StringVar(&g.configFile, "config", "", "YAML config file of flag values (default $KPBENCH_CONFIG, else ~/.config/kpbench/config.yaml if it exists)")
	root.PersistentFlags().CountVarP(&g.verbose, "verbose", "v", "more logging (debug level, error details)")
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
		newImageCmd(g),
		newVersionCmd(g),
	)
	return root
}

// bindConfig fills every flag of cmd that was not given on the command line
// from KPBENCH_<FLAG> or, failing that, the config file. Commands then read
// their plain flag variables; nothing else consults viper.
func bindConfig(cmd *cobra.Command, configFile string) error {
	v := viper.New()
	v.SetEnvPrefix("KPBENCH")
	v.SetEnvKeyReplacer(strings.NewReplacer("-", "_"))
	v.AutomaticEnv()
	if configFile == "" {
		configFile = os.Getenv("KPBENCH_CONFIG")
	}
	if configFile != "" {
		v.SetConfigFile(configFile)
		if err := v.ReadInConfig(); err != nil {
			return &ExitError{Code: 2, Err: fmt.Errorf("reading config file %s: %w", configFile, err)}
		}
	} else if dir, err := os.UserConfigDir(); err == nil {
		def := dir + "/kpbench/config.yaml"
		if _, err := os.Stat(def); err == nil {
			v.SetConfigFile(def)
			if err := v.ReadInConfig(); err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("reading config file %s: %w", def, err)}
			}
		}
	}
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" || f.Name == "help" || f.Name == "version" {
			return
		}
		if !v.IsSet(f.Name) {
			return
		}
		var err error
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			err = sv.Replace(v.GetStringSlice(f.Name))
		} else {
			err = f.Value.Set(v.GetString(f.Name))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s from environment or config: %w", f.Name, err))
		}
	})
	if len(errs) > 0 {
		return &ExitError{Code: 2, Err: errors.Join(errs...)}
	}
	return nil
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
