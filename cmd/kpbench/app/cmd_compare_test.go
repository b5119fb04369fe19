package app

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// reportFixture is a committed results directory of the report package.
func reportFixture(name string) string {
	return filepath.Join("..", "..", "..", "report", "testdata", name)
}

func TestCompareCommand(t *testing.T) {
	base := reportFixture("compare-base")
	notJSON := t.TempDir()
	os.WriteFile(filepath.Join(notJSON, "run.json"), []byte("{{{"), 0o644)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{"regression exits 1", []string{"compare", base, reportFixture("compare-regressed")}, 1,
			[]string{"REGRESSION", "iptables/services=10000/rpc=1/targets=one", "2 significant regression(s) beyond 10%"},
			[]string{"kpbench: FAIL: 2 significant regression(s) beyond 10%"}},
		{"noise within threshold exits 0", []string{"compare", base, reportFixture("compare-noise")}, 0,
			[]string{"pass", "PASS: no gated row shown to be worse beyond the threshold"}, nil},
		{"tighter threshold catches the small shift", []string{"compare", "--threshold", "1%", base, reportFixture("compare-noise")}, 1,
			[]string{"REGRESSION"}, nil},
		{"one metric shown, the gated rows compared all the same", []string{"compare", "--metrics", "sync", base, reportFixture("compare-regressed")}, 1,
			[]string{"sync: last kube-proxy sync duration (s)", "connect: median TCP connect time", "REGRESSION"}, nil},
		{"markdown", []string{"compare", "--format", "markdown", base, reportFixture("compare-regressed")}, 1,
			[]string{"## kpbench compare", "| condition | base | new |", "**REGRESSION**"}, nil},
		{"missing directory", []string{"compare", base, "/nonexistent/run"}, 2,
			nil, []string{"new: results directory /nonexistent/run does not exist"}},
		{"not a results directory", []string{"compare", t.TempDir(), base}, 2,
			nil, []string{"base:", "not a kpbench results directory (no run.json)"}},
		{"unreadable JSON", []string{"compare", base, notJSON}, 2,
			nil, []string{"new: decoding", "run.json"}},
		{"unknown metric", []string{"compare", "--metrics", "latency,throughput", base, base}, 2,
			nil, []string{`--metrics: unknown metric "throughput" (known: latency,`}},
		{"bad threshold", []string{"compare", "--threshold", "ten", base, base}, 2,
			nil, []string{`--threshold: invalid threshold "ten": want a percentage such as 10%`}},
		{"negative threshold", []string{"compare", "--threshold", "-3%", base, base}, 2,
			nil, []string{"must not be negative"}},
		{"bad format", []string{"compare", "--format", "xml", base, base}, 2,
			nil, []string{`--format "xml": want text, markdown or json`}},
		{"one argument", []string{"compare", base}, 2,
			nil, []string{"want two results directories, BASE and NEW, got 1 argument(s)"}},
		{"churn: doubled stale hits fail the gate on that metric", []string{"compare", reportFixture("churn-base"), reportFixture("churn-stale-doubled")}, 1,
			[]string{"churn-stale-hits: requests answered by a backend after its removal was written", "churn-programming-p99:", "churn-errors:",
				"churn-connect-in-sync:", "REGRESSION"},
			[]string{"kpbench: FAIL: 2 significant regression(s) beyond 10%"}},
		{"churn: another run of the same passes", []string{"compare", reportFixture("churn-base"), reportFixture("churn-aa")}, 0,
			[]string{"churn-stale-hits:", "PASS: no gated row shown to be worse beyond the threshold"}, nil},
		{"churn against no churn exits 2, allowed or not", []string{"compare", "--allow-mismatch", base, reportFixture("churn-base")}, 2,
			nil, []string{"churn points are never compared with points without churn", "spec.churn.rate: base none, new 10/s",
				"spec.churn.kinds: base none, new endpointReplace 1, endpointsToZero 0, serviceCreate 0", "spec.churn.fraction: base none, new 0.01",
				"spec.churn.target: base none, new true", "spec.churn.hold: base none, new 5s", "spec.churn.grace: base none, new 20s"}},
		{"different repetitions exit 2", []string{"compare", base, reportFixture("sweep")}, 2,
			nil, []string{"spec.repetitions: base 6, new 4"}},
		{"conditions in one run only are listed, a point the runner lost is inconclusive", []string{"compare", "--allow-mismatch", base, reportFixture("sweep")}, 2,
			[]string{"only in new: iptables/services=100/rpc=1/targets=one",
				"LOST: iptables/services=10000/rpc=1/targets=one: lost 1 of 4 valid points (runner): 1× achieved rate below 99% of target"},
			[]string{"kpbench: INCONCLUSIVE: 1 condition(s) lost 1 valid point(s) to the runner"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runKpbench(t, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.wantStdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestCompareCommandJSON(t *testing.T) {
	code, stdout, _ := runKpbench(t, "compare", "--format", "json", "--threshold", "15", reportFixture("compare-base"), reportFixture("compare-regressed"))
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var c struct {
		Threshold   float64
		Regressions int
		Metrics     []string
	}
	if err := json.Unmarshal([]byte(stdout), &c); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if c.Threshold != 0.15 || c.Regressions != 2 || strings.Join(c.Metrics, ",") != "latency,cpu,connect" {
		t.Errorf("JSON = %+v", c)
	}
}

func TestCompareThresholdFromEnvironment(t *testing.T) {
	t.Setenv("KPBENCH_THRESHOLD", "1%")
	var out, errb bytes.Buffer
	code := Run(context.Background(), strings.NewReader(""), &out, &errb,
		[]string{"compare", reportFixture("compare-base"), reportFixture("compare-noise")})
	if code != 1 {
		t.Fatalf("exit %d with KPBENCH_THRESHOLD=1%%, want 1\n%s%s", code, out.String(), errb.String())
	}
}

func TestReportCommand(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"run.json", "points.jsonl"} {
		data, err := os.ReadFile(filepath.Join(reportFixture("sweep"), f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), data, 0o644)
	}
	code, stdout, stderr := runKpbench(t, "report", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	for _, w := range []string{"report.html", "10 plots", "Headline findings:", "At 10,000 Services"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout)
		}
	}
	for _, f := range []string{"report.md", "report.html", "points.csv", "plots/latency.png", "plots/cpu.svg", "plots/connect.png", "plots/sync.png", "plots/rules.svg"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}

	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"missing directory", []string{"report", filepath.Join(dir, "nope")}, "does not exist"},
		{"no run.json", []string{"report", t.TempDir()}, "not a kpbench results directory"},
		{"no argument", []string{"report"}, "want a results directory, got 0 argument(s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runKpbench(t, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.stderr)
			}
		})
	}
}

// copyRun writes the reference run at src into a temporary directory with
// its run and points edited.
func copyRun(t *testing.T, src string, editRun func(r *runs.Run), editPoint func(p *runs.Point)) string {
	t.Helper()
	run, err := runs.ReadRun(src)
	if err != nil {
		t.Fatal(err)
	}
	points, err := runs.ReadPoints(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if editRun != nil {
		editRun(run)
	}
	if err := runs.WriteRun(dir, run); err != nil {
		t.Fatal(err)
	}
	for i := range points {
		if editPoint != nil {
			editPoint(&points[i])
		}
		if err := runs.AppendPoint(dir, &points[i]); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCompareReferenceRun is the gate on the committed reference run: a
// new run whose iptables points at 10,000 Services are all invalid fails
// and names them; a run at five times the rate is refused as a different
// scenario; the run against itself passes.
func TestCompareReferenceRun(t *testing.T) {
	ref := filepath.Join("..", "..", "..", "results", "reference", "tigera-2019")
	if code, stdout, stderr := runKpbench(t, "compare", ref, ref); code != 0 {
		t.Fatalf("reference against itself: exit %d\n%s\n%s", code, stdout, stderr)
	}

	invalid := copyRun(t, ref, nil, func(p *runs.Point) {
		if p.Mode == scenarios.ModeIPTables && p.Services == 10000 {
			p.Valid = false
			p.InvalidReasons = append(p.InvalidReasons, runs.ReasonErrors+": 3012 of 30000 requests failed")
		}
	})
	code, stdout, stderr := runKpbench(t, "compare", ref, invalid)
	if code != 1 {
		t.Fatalf("every iptables-10,000 point invalid: exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	for _, w := range []string{
		"LOST: iptables/services=10000/rpc=1/targets=deepest: lost 6 of 6 valid points (dataplane): 6× " + runs.ReasonErrors,
		"LOST: iptables/services=10000/rpc=100/targets=deepest: lost 6 of 6 valid points (dataplane): 6× " + runs.ReasonErrors,
		"LOST: iptables/services=10000/rpc=1/targets=shallowest: lost 6 of 6 valid points (dataplane): 6× " + runs.ReasonErrors,
		"LOST: iptables/services=10000/rpc=100/targets=shallowest: lost 6 of 6 valid points (dataplane): 6× " + runs.ReasonErrors,
		"4 condition(s) lost 24 valid point(s)",
	} {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout)
		}
	}

	fast := copyRun(t, ref, func(r *runs.Run) { r.Scenario.Spec.Load.Rate *= 5 }, func(p *runs.Point) {
		p.Rate.Target *= 5
		p.Rate.Achieved *= 5
	})
	code, stdout, stderr = runKpbench(t, "compare", ref, fast)
	if code != 2 {
		t.Fatalf("5× rate: exit %d, want 2\n%s\n%s", code, stdout, stderr)
	}
	for _, w := range []string{"the runs measured different scenarios", "spec.load.rate: base 1000, new 5000", "--allow-mismatch"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	code, stdout, _ = runKpbench(t, "compare", "--allow-mismatch", ref, fast)
	if code == 2 || !strings.HasPrefix(stdout, "base:") || !strings.Contains(stdout[:strings.Index(stdout, "latency:")], "SCENARIO MISMATCH: spec.load.rate: base 1000, new 5000") {
		t.Errorf("--allow-mismatch: exit %d\n%s", code, stdout)
	}
}

func TestCalibrateCommand(t *testing.T) {
	base := reportFixture("compare-base")
	if code, stdout, stderr := runKpbench(t, "calibrate", base, base); code != 0 || !strings.Contains(stdout, "false alarms (comparisons that fail) at 10%: 0 of 2") {
		t.Errorf("the same run twice: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ := runKpbench(t, "calibrate", base, reportFixture("compare-regressed")); code != 1 || !strings.Contains(stdout, "FALSE ALARM") {
		t.Errorf("a regressed pair: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := runKpbench(t, "calibrate", base); code != 2 || !strings.Contains(stderr, "want two or more results directories") {
		t.Errorf("one run: exit %d\n%s", code, stderr)
	}
}
