package app

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/report"
)

func newCalibrateCmd(g *globals) *cobra.Command {
	var (
		threshold string
		metrics   []string
		format    string
	)
	cmd := &cobra.Command{
		Use:   "calibrate RUN RUN [RUN...]",
		Short: "Measure compare's false-alarm rate on runs of one build (A/A) and recommend a threshold and repetitions",
		Long: `calibrate takes two or more runs of the same kpbench build, scenario and
machine — nothing changed between them, so any failure of compare is a false
alarm — and compares every ordered pair with compare's method (A against B
and B against A). It reports, for each comparison, the tests made, how many
rows reached p < 0.05 before and after Holm's correction, regressions, lost
conditions and the largest change of medians; then the false-alarm rate at
--threshold and at a range of thresholds, and recommends:
  - a threshold: the smallest that raised no false alarm and is above the
    largest A/A change of medians (drift between runs that more repetitions
    would eventually make significant);
  - repetitions: the fewest per side with which a change can reach p < 0.05
    after Holm's correction over the comparisons' tests.

The runs must measure the same scenario (see compare); the procedure, and the
numbers measured for the nightly scenario on the lab, are in docs/report.md.

Exit status: 0 no false alarm at --threshold, 1 at least one, 2 bad input.`,
		Example: `  for i in 1 2 3; do kpbench run -f calibration.yaml --out results/aa; done
  kpbench calibrate results/aa/*`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return &ExitError{Code: 2, Err: fmt.Errorf("%s: want two or more results directories of one build, got %d (see %s --help)", cmd.CommandPath(), len(args), cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			th, err := report.ParseThreshold(threshold)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("--threshold: %w", err)}
			}
			ms, err := report.LookupMetrics(metrics)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("--metrics: %w", err)}
			}
			if format != "text" && format != "json" {
				return &ExitError{Code: 2, Err: fmt.Errorf("--format %q: want text or json", format)}
			}
			var data []*report.Data
			for _, a := range args {
				d, err := report.Load(a)
				if err != nil {
					return &ExitError{Code: 2, Err: err}
				}
				data = append(data, d)
			}
			c, err := report.Calibrate(data, report.CompareOptions{Metrics: ms, Threshold: th}, report.DefaultCandidates)
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if format == "json" {
				err = c.WriteJSON(g.stdout)
			} else {
				err = c.WriteText(g.stdout)
			}
			if err != nil {
				return fmt.Errorf("writing calibration: %w", err)
			}
			if c.FalseAlarms > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d A/A comparisons fail at %s: false alarms", c.FalseAlarms, len(c.Pairs), threshold)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&threshold, "threshold", "10%", "compare's threshold to measure the false-alarm rate of (percent)")
	cmd.Flags().StringSliceVar(&metrics, "metrics", report.DefaultMetrics, "metrics to compare, comma-separated")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}
