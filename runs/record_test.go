package runs

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kpbench/kpbench/scenarios"
)

func TestRecordLifecycle(t *testing.T) {
	out := t.TempDir()
	var sc scenarios.Scenario
	sc.Metadata.Name = "quick"
	start := time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC)
	rec := NewRecord(out, sc, []string{"kpbench", "run"}, "v1", start)
	if rec.Dir != filepath.Join(out, rec.Run.ID) || rec.Run.Status != StatusRunning || rec.Run.KpbenchVersion != "v1" {
		t.Fatalf("new record %+v in %s", rec.Run, rec.Dir)
	}
	if err := rec.Problem("kube-proxy restarted"); err != nil {
		t.Fatal(err)
	}
	if err := rec.Finish(errors.New("boom"), false, start.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err := OpenRecord(rec.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Run.Status != StatusFailed || len(got.Run.Problems) != 2 || got.Run.Problems[1] != "boom" || got.Run.FinishedAt == nil {
		t.Errorf("on disk: status %s, problems %q, finished %v", got.Run.Status, got.Run.Problems, got.Run.FinishedAt)
	}

	got.Resume([]string{"kpbench", "run", "--resume", rec.Dir}, "v2", 3, start.Add(time.Hour))
	if got.Run.Status != StatusRunning || got.Run.FinishedAt != nil || got.Run.KpbenchVersion != "v2" || len(got.Run.Resumes) != 1 || got.Run.Resumes[0].Measured != 3 {
		t.Errorf("resumed: %+v", got.Run)
	}
	if err := got.Finish(errors.New("signal"), true, start.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if again, _ := OpenRecord(rec.Dir); again.Run.Status != StatusInterrupted || len(again.Run.Problems) != 2 {
		t.Errorf("interrupted: status %s, problems %q (an interruption is no problem)", again.Run.Status, again.Run.Problems)
	}
	if err := got.Finish(nil, false, start.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if again, _ := OpenRecord(rec.Dir); again.Run.Status != StatusComplete {
		t.Errorf("complete: status %s", again.Run.Status)
	}
}
