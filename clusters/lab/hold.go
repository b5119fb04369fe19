package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// A run holds the lab it measures: while it does, a command that would
// change the lab (scale, lab mode, lab down, lab exec, which runs on the
// node's CPUs) refuses unless forced, and read-only commands say who holds
// it. The hold is a file beside the lab's state directory
// (StateDir/<name>.hold.json), so that it outlives a Down and Up of the
// lab within the run. It names the holding process with its start time: a
// hold whose process is gone (killed, crashed) is stale and counts as no
// hold.

// Hold is a run's claim on a lab.
type Hold struct {
	// RunID and RunDir name the run and its results directory.
	RunID  string    `json:"runID"`
	RunDir string    `json:"runDir,omitempty"`
	Since  time.Time `json:"since"`
	// Process is the kpbench process that runs it.
	Process Proc `json:"process"`
}

// ErrHeld is wrapped by HeldError.
var ErrHeld = errors.New("held by a run")

// HeldError says which run holds a lab that a command would change.
type HeldError struct {
	Lab  string
	Hold Hold
}

func (e *HeldError) Error() string {
	h := e.Hold
	where := ""
	if h.RunDir != "" {
		where = ", results in " + h.RunDir
	}
	return fmt.Sprintf("lab %s is held by run %s (kpbench pid %d, since %s%s): wait for the run to end or stop it (Ctrl-C in its terminal, or kill %d), or pass --force to go ahead and change the lab under it",
		e.Lab, h.RunID, h.Process.PID, h.Since.Local().Format(time.DateTime), where, h.Process.PID)
}

func (e *HeldError) Unwrap() error { return ErrHeld }

func holdPath(stateDir, name string) string { return filepath.Join(stateDir, name+".hold.json") }

// HoldFileOf is where the hold of the lab whose state directory is dir
// (the directory of its kubeconfig) would be.
func HoldFileOf(dir string) string {
	dir = filepath.Clean(dir)
	return holdPath(filepath.Dir(dir), filepath.Base(dir))
}

// ReadHoldFile returns the live hold recorded in path; nil when there is
// none or its process is gone.
func ReadHoldFile(path string) (*Hold, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading lab hold: %w", err)
	}
	var h Hold
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	if !h.Process.Alive() {
		return nil, nil // stale: its run ended without releasing it
	}
	return &h, nil
}

// ProcOf returns the running process pid as a hold or state file records
// it (with its start time).
func ProcOf(pid int) (Proc, error) {
	_, start, err := procStat("/proc", pid)
	if err != nil {
		return Proc{}, err
	}
	return Proc{PID: pid, StartTime: start}, nil
}

// HeldBy returns the run that holds the lab, nil when none does.
func (l *Lab) HeldBy() (*Hold, error) {
	return ReadHoldFile(holdPath(l.cfg.StateDir, l.cfg.Name))
}

// CheckFree returns a *HeldError when a run holds the lab.
func (l *Lab) CheckFree() error {
	h, err := l.HeldBy()
	if err != nil || h == nil {
		return err
	}
	return &HeldError{Lab: l.cfg.Name, Hold: *h}
}

// Hold claims the lab for the run runID (results in runDir) until release
// is called. It fails with a *HeldError when another live run holds it; a
// stale hold is replaced. Within one process a later hold replaces an
// earlier one.
func (l *Lab) Hold(ctx context.Context, runID, runDir string) (release func(), err error) {
	unlock, err := lock(ctx, l.cfg.StateDir, l.cfg.Name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	h0, err := l.HeldBy()
	if err != nil {
		return nil, err
	}
	if h0 != nil && h0.Process.PID != os.Getpid() {
		return nil, &HeldError{Lab: l.cfg.Name, Hold: *h0}
	}
	self := l.ownerProc()
	if self == nil {
		return nil, errors.New("holding the lab: cannot read this process's start time")
	}
	self.Name = "run"
	h := Hold{RunID: runID, RunDir: runDir, Since: time.Now().UTC(), Process: *self}
	data, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return nil, err
	}
	path := holdPath(l.cfg.StateDir, l.cfg.Name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("holding lab %s: %w", l.cfg.Name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("holding lab %s: %w", l.cfg.Name, err)
	}
	return func() {
		// Only this hold: a forced later run may have replaced it.
		if cur, err := ReadHoldFile(path); err == nil && cur != nil && cur.RunID == runID && cur.Process.PID == self.PID {
			_ = os.Remove(path)
		}
	}, nil
}
