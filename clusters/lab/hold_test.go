package lab

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// writeHold records a hold by the process p, as another kpbench run would.
func writeHold(t *testing.T, l *Lab, runID string, p Proc) {
	t.Helper()
	b, err := json.Marshal(Hold{RunID: runID, Process: p})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.cfg.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(holdPath(l.cfg.StateDir, l.cfg.Name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHold(t *testing.T) {
	ctx := context.Background()
	l, err := New(Config{Name: "held", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := l.HeldBy(); err != nil || h != nil {
		t.Fatalf("a new lab is held: %+v, %v", h, err)
	}

	release, err := l.Hold(ctx, "run-a", "/results/run-a")
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.HeldBy()
	if err != nil || h == nil || h.RunID != "run-a" || h.RunDir != "/results/run-a" || h.Process.PID != os.Getpid() {
		t.Fatalf("held by %+v, %v", h, err)
	}
	var held *HeldError
	if err := l.CheckFree(); !errors.As(err, &held) || !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "run-a") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("CheckFree = %v; want a HeldError naming run-a and --force", err)
	}
	// The same process may hold it again (one run after another).
	release2, err := l.Hold(ctx, "run-b", "")
	if err != nil {
		t.Fatalf("second hold by the same process: %v", err)
	}
	release() // run-a's release leaves run-b's hold alone
	if h, _ := l.HeldBy(); h == nil || h.RunID != "run-b" {
		t.Errorf("after run-a's release: held by %+v, want run-b", h)
	}
	release2()
	if h, _ := l.HeldBy(); h != nil {
		t.Errorf("released, still held by %+v", h)
	}
	if l.CheckFree() != nil {
		t.Errorf("released lab: CheckFree = %v", l.CheckFree())
	}

	// Another live process's hold refuses; once it is gone, the hold is
	// stale and counts as none.
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	_, start, err := procStat("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	writeHold(t, l, "run-other", Proc{Name: "run", PID: cmd.Process.Pid, StartTime: start})
	if _, err := l.Hold(ctx, "run-c", ""); !errors.As(err, &held) || held.Hold.RunID != "run-other" {
		t.Errorf("hold over a live run's: %v; want a HeldError naming run-other", err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if h, err := l.HeldBy(); err != nil || h != nil {
		t.Errorf("a dead process's hold: %+v, %v; want none", h, err)
	}
	release3, err := l.Hold(ctx, "run-c", "")
	if err != nil {
		t.Fatalf("a stale hold is not replaced: %v", err)
	}
	release3()
}

func TestHoldFileOf(t *testing.T) {
	if got, want := HoldFileOf("/state/labs/kpbench/"), holdPath("/state/labs", "kpbench"); got != want {
		t.Errorf("HoldFileOf = %q, want %q", got, want)
	}
}

// The lab declares its hold and its conntrack flush in its Features, where
// a run finds them.
func TestFeaturesHoldTheLab(t *testing.T) {
	ctx := context.Background()
	l, err := New(Config{Name: "feat", StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	f := l.Features(ctx)
	if f.Hold == nil || f.Client.FlushConntrack == nil {
		t.Fatalf("features %+v: no Hold or no FlushConntrack", f)
	}
	release, err := f.Hold(ctx, "run-f", "")
	if err != nil {
		t.Fatal(err)
	}
	if h, err := l.HeldBy(); err != nil || h == nil || h.RunID != "run-f" {
		t.Errorf("held by %+v (%v), want run-f", h, err)
	}
	release()
	if h, _ := l.HeldBy(); h != nil {
		t.Errorf("still held by %+v after release", h)
	}
}
