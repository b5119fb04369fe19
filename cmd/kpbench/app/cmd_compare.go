package app

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/report"
)

func newCompareCmd(g *globals) *cobra.Command {
	var (
		threshold string
		metrics   []string
		format    string
	)
	cmd := &cobra.Command{
		Use:   "compare BASE NEW",
		Short: "Compare two runs and fail on significant regressions",
		Long: `compare matches the points of two results directories by condition (mode,
Services, requests per connection, targets) and compares each metric over the
valid repetitions the way benchstat does: median ± 95% confidence interval per
side, the change of the medians, and the Mann-Whitney U test's p-value.

A metric regresses when it gets worse (all metrics are costs: higher is worse)
by more than --threshold AND the change is significant (p < 0.05). Detecting
anything needs at least 4 valid repetitions per side (with 3+3 the smallest
possible p-value is 0.1); 6 or more also give the medians finite confidence
intervals. Comparisons too small to detect a change are listed as a note.

Metrics: latency (mean round-trip), latency-p50, latency-p99, cpu (client-node
cores), kube-proxy-cpu, connect (median connect time), connect-p99, sync
(last kube-proxy sync duration).

Exit status: 0 no significant regression beyond the threshold, 1 at least one,
2 bad input (missing directory, unreadable JSON, unknown metric, bad
threshold, no condition in common).`,
		Example: `  kpbench compare results/nightly-base results/nightly-new
  kpbench compare --threshold 5% --metrics latency,cpu,connect-p99 --format markdown BASE NEW >> "$GITHUB_STEP_SUMMARY"`,
		Args: reportExactArgs(2, "two results directories, BASE and NEW"),
		RunE: func(cmd *cobra.Command, args []string) error {
			th, err := report.ParseThreshold(threshold)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("--threshold: %w", err)}
			}
			ms, err := report.LookupMetrics(metrics)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("--metrics: %w", err)}
			}
			write := map[string]func(c *report.Comparison) error{
				"text":     func(c *report.Comparison) error { return c.WriteText(g.stdout) },
				"markdown": func(c *report.Comparison) error { return c.WriteMarkdown(g.stdout) },
				"json":     func(c *report.Comparison) error { return c.WriteJSON(g.stdout) },
			}[format]
			if write == nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("--format %q: want text, markdown or json", format)}
			}
			base, err := report.Load(args[0])
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("base: %w", err)}
			}
			next, err := report.Load(args[1])
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("new: %w", err)}
			}
			c, err := report.Compare(base, next, report.CompareOptions{Metrics: ms, Threshold: th})
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if err := write(c); err != nil {
				return fmt.Errorf("writing comparison: %w", err)
			}
			if c.Regressions > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("%d significant regression(s) beyond %s", c.Regressions, threshold)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&threshold, "threshold", "10%", "relative change beyond which a significant worsening is a regression (percent: 10% or 10)")
	cmd.Flags().StringSliceVar(&metrics, "metrics", report.DefaultMetrics, "metrics to compare, comma-separated")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, markdown or json")
	return cmd
}
