package app

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// measuredRun writes a quick run with its first n points measured (all of
// them when n < 0) and returns its directory and total.
func measuredRun(t *testing.T, n int) (string, int) {
	t.Helper()
	dir := resumableRun(t, Version, "lab")
	r, err := runs.ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	sp := r.Scenario.Spec
	for _, m := range sp.Modes {
		for _, svc := range sp.Services {
			for _, rpc := range sp.Load.RequestsPerConn {
				for _, pl := range sp.Load.Targets {
					for rep := 1; rep <= sp.Repetitions; rep++ {
						if n < 0 || total < n {
							p := &runs.Point{ID: runs.SpecPointID(&sp, m, svc, rpc, pl, rep), Mode: m, Services: svc, RequestsPerConn: rpc,
								Targets: pl, Repetition: rep, Valid: true}
							if err := runs.AppendPoint(dir, p); err != nil {
								t.Fatal(err)
							}
						}
						total++
					}
				}
			}
		}
	}
	if n < 0 {
		r.Status = runs.StatusComplete
		if err := runs.WriteRun(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	return dir, total
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[p] = info.ModTime().String() + "\n" + string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestResumeOfACompleteRunChangesNothing: no cluster brought up, no file
// touched, exit 0, and it says so.
func TestResumeOfACompleteRunChangesNothing(t *testing.T) {
	dir, total := measuredRun(t, -1)
	before := snapshot(t, dir)
	code, stdout, stderr := runKpbench(t, "run", "--resume", dir)
	want := dir + ": all " + strconv.Itoa(total) + " points measured; nothing to do\n"
	if code != 0 || stdout != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %q", code, stdout, stderr, want)
	}
	after := snapshot(t, dir)
	if len(after) != len(before) {
		t.Errorf("files %d → %d", len(before), len(after))
	}
	for f, b := range before {
		if after[f] != b {
			t.Errorf("%s changed", f)
		}
	}
}

// TestResumeRecordsHistory: a partial resume says how much is measured and
// adds to the run's history; the first start's command and time stay.
func TestResumeRecordsHistory(t *testing.T) {
	dir, total := measuredRun(t, 1)
	run, err := runs.ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	run.Command = []string{"kpbench", "run", "--scenario", "quick"}
	started := run.StartedAt
	var logs bytes.Buffer
	g := &globals{stdout: io.Discard, stderr: &logs}
	g.logger, _ = newLogger(&logs, logHuman, 0)
	if resumeIsDone(g, &runs.Record{Dir: dir, Run: run}) {
		t.Fatal("a run with 1 point measured is done")
	}
	recordResume(g, &runs.Record{Dir: dir, Run: run}, []string{"kpbench", "run", "--resume", dir})
	if want := "resuming " + dir + ": 1 of " + strconv.Itoa(total) + " points measured"; !strings.Contains(logs.String(), want) {
		t.Errorf("log %q lacks %q", logs.String(), want)
	}
	if len(run.Resumes) != 1 || run.Resumes[0].Measured != 1 || strings.Join(run.Resumes[0].Command, " ") != "kpbench run --resume "+dir {
		t.Errorf("resumes %+v", run.Resumes)
	}
	if strings.Join(run.Command, " ") != "kpbench run --scenario quick" || !run.StartedAt.Equal(started) {
		t.Errorf("command %q, started %v: the first start's must stay", run.Command, run.StartedAt)
	}
	for _, p := range run.Problems {
		if strings.Contains(p, "resumed at") {
			t.Errorf("problems %q: a resume is history, not a problem", run.Problems)
		}
	}
}

// TestResumeCountsSkippedModesOut: a mode the run recorded as skipped is
// not owed.
func TestResumeCountsSkippedModesOut(t *testing.T) {
	dir, _ := measuredRun(t, -1)
	run, err := runs.ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	run.Scenario.Spec.Modes = append(run.Scenario.Spec.Modes, scenarios.ModeIPVS)
	run.SkippedModes = []runs.SkippedMode{{Mode: scenarios.ModeIPVS, Reason: "no IP_VS"}}
	m, total, err := resumeProgress(dir, run)
	if err != nil || m != total {
		t.Errorf("measured %d of %d (%v); a skipped mode is not owed", m, total, err)
	}
}
