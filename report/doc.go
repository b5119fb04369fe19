// Package report turns a results directory (run.json and points.jsonl) into
// statistics, plots, a Markdown/HTML report and points.csv, and compares two
// runs the way benchstat does: medians with confidence intervals, and the
// Mann-Whitney U test for significance.
package report
