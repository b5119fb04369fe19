package app

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/report"
)

func newCompareCmd(g *globals) *cobra.Command {
	var (
		threshold string
		metrics   []string
		format    string
		allow     bool
	)
	cmd := &cobra.Command{
		Use:   "compare BASE NEW",
		Short: "Compare two runs and fail on significant regressions",
		Long: `compare matches the points of two results directories by condition (mode,
Services, requests per connection, targets) and compares each metric over the
valid repetitions the way benchstat does: median ± 95% confidence interval per
side, the change of the medians, and the Mann-Whitney U test's p-value.

The two runs must measure the same thing: rate, duration, warm-up, endpoints
per Service, backends, clients, targets, timeout, in-flight bound and
spec.churn (rate, kinds, fraction, target, hold, grace) (from run.json and
from the points). Otherwise compare names every difference and exits 2,
unless --allow-mismatch. A run with churn and one without are never
compared, even with --allow-mismatch. Differences of environment (kernel,
CPU model, kube-proxy version, kpbench version) are printed at the top.

The gated rows are the base scenario's spec.gate (by default: median connect
time and client-node CPU at the largest Service step, every mode and
connection variant). Each tests the threshold directly: H0 new/base <= 1 +
--threshold, one-sided, exact Mann-Whitney over the repetitions, Holm's
correction over the gated rows only. Every other row is descriptive and
never fails; the mean latency is shown, not tested.

Exit 1 (fail) when:
  - a gated row is worse beyond --threshold (its one-sided interval, printed
    at the level the verdict used, lies beyond the threshold);
  - a condition lost valid points to the dataplane (request errors,
    kube-proxy not running, the wrong mode);
  - the share of invalid points rose significantly (Fisher's exact test).
Exit 2 (inconclusive: never a pass) when:
  - a gated row has too few repetitions to reach significance at all;
  - a condition lost points to the runner (schedule fell behind, no CPU
    sample, in-flight bound, rate short, never measured): each is named;
  - the runs differ in repetitions, provider, CPU coverage, pinning, order,
    sampling or kpbench build (or anything measured), unless --allow-mismatch.

Metrics: latency (mean round-trip), latency-p50, latency-p99, latency-p999,
cpu (client-node cores), kube-proxy-cpu, connect-p01, connect (median connect
time), connect-p90, connect-p99, cpu-per-request (all client-node CPU per
request, ns; cpu-per-connection is its former name), sync (last kube-proxy sync duration, over the points that
measured a programming sync only), time-to-programmed, the first-packet
metrics (docs/firstpacket.md). Between two runs with churn (spec.churn) the churn metrics are
compared as well, listed or not: churn-errors and churn-stale-hits (per
10,000 requests), churn-programming-p50 and churn-programming-p99 (s),
churn-connect-in-sync (µs); a point without churn has none of them.

Exit status: 0 pass, 1 fail, 2 inconclusive or bad input (missing directory,
unreadable JSON, unknown metric, bad threshold, no condition in common,
different scenarios without --allow-mismatch).`,
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
			c, err := report.Compare(base, next, report.CompareOptions{Metrics: ms, Threshold: th, AllowMismatch: allow})
			if err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if err := write(c); err != nil {
				return fmt.Errorf("writing comparison: %w", err)
			}
			if code := c.ExitCode(); code != report.ExitPass {
				return &ExitError{Code: code, Err: errors.New(c.Summary())}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&threshold, "threshold", "10%", "relative change beyond which a significant worsening is a regression (percent: 10% or 10)")
	cmd.Flags().StringSliceVar(&metrics, "metrics", report.DefaultMetrics, "metrics to compare, comma-separated")
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, markdown or json")
	cmd.Flags().BoolVar(&allow, "allow-mismatch", false, "compare runs whose scenarios differ (rate, duration, endpoints, backends, clients, targets, ...) instead of exiting 2")
	return cmd
}
