package app

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/report"
)

func newReportCmd(g *globals) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "report DIR",
		Short: "Write plots, report.md, report.html and points.csv for a results directory",
		Long: `report reads run.json and points.jsonl of a results directory (nothing else,
so a report can be redrawn at any time) and writes into the same directory:

  plots/latency, cpu, connect, sync, rules (.png and .svg)
  report.md      Markdown report; figures link to plots/*.png
  report.html    the same report as one self-contained file (plots embedded)
  points.csv     one row per point, every field of points.jsonl flattened

It prints the headline findings: differences between modes at the largest
Service count they share and growth across Service counts, each with its 95%
confidence interval and Mann-Whitney p-value.`,
		Example: `  kpbench report results/2026-11-20T220000_quick`,
		Args:    reportExactArgs(1, "a results directory"),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := report.Load(args[0])
			if err != nil {
				return reportBadInput(err)
			}
			if len(d.Points) == 0 {
				g.logger.Warn("no points in the results directory yet; the report shows the run's settings only", "dir", args[0])
			}
			res, err := report.Generate(d)
			if err != nil {
				return err
			}
			for _, f := range res.Files {
				g.logger.Debug("wrote", "file", f)
			}
			for _, p := range res.Plots {
				if p.Skipped != "" {
					g.logger.Info("plot not drawn", "plot", p.Name, "reason", p.Skipped)
				}
			}
			if quiet {
				return nil
			}
			fmt.Fprintf(g.stdout, "wrote %s/report.html, report.md, points.csv and %d plots\n", d.Dir, len(res.Files)-3)
			if len(res.Findings) > 0 {
				fmt.Fprintln(g.stdout, "\nHeadline findings:")
				for _, f := range res.Findings {
					fmt.Fprintf(g.stdout, "- %s\n", f.Text)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing on success")
	return cmd
}

// reportBadInput marks errors caused by what the user pointed kpbench at
// (missing directory, unreadable or foreign JSON) as exit status 2.
func reportBadInput(err error) error {
	var exit *ExitError
	if errors.As(err, &exit) {
		return err
	}
	return &ExitError{Code: 2, Err: err}
}

// reportExactArgs is cobra.ExactArgs with exit status 2 and a message naming
// what is missing.
func reportExactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &ExitError{Code: 2, Err: fmt.Errorf("%s: want %s, got %d argument(s) (see %s --help)", cmd.CommandPath(), what, len(args), cmd.CommandPath())}
		}
		return nil
	}
}
