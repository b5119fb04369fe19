package runs

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kpbench/kpbench/scenarios"
)

// Record is a run's run.json over the run's life: the one writer of the
// file. A run starts (NewRecord) or continues (OpenRecord) a record, the
// engine adds what it finds (Problem, Save after a change to Run), and
// Finish sets the outcome. Every change is on disk when the method
// returns, so an interrupted run leaves a run.json that says how far it
// got.
type Record struct {
	// Dir is the run directory; it is made by the first Save.
	Dir string
	// Run is the record's content. Change it, then Save.
	Run *Run

	mu sync.Mutex
}

// NewRecord starts the record of a new run of sc in a directory of its own
// under out, named by the run's id.
func NewRecord(out string, sc scenarios.Scenario, command []string, version string, now time.Time) *Record {
	r := &Run{ID: NewID(now, sc.Metadata.Name), Scenario: sc, StartedAt: now.UTC(), Command: command,
		Status: StatusRunning, KpbenchVersion: version}
	return &Record{Dir: filepath.Join(out, r.ID), Run: r}
}

// OpenRecord reads the record of the run in dir to continue it.
func OpenRecord(dir string) (*Record, error) {
	r, err := ReadRun(dir)
	if err != nil {
		return nil, err
	}
	return &Record{Dir: dir, Run: r}, nil
}

// Resume marks the record as running again under version, by command,
// with measured points already in its directory.
func (r *Record) Resume(command []string, version string, measured int, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Run.Resumes = append(r.Run.Resumes, Resume{At: now.UTC(), Command: command, KpbenchVersion: version, Measured: measured})
	r.Run.Status = StatusRunning
	r.Run.KpbenchVersion = version
	r.Run.FinishedAt = nil
}

// Save writes run.json, making the run directory when needed.
func (r *Record) Save() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.save()
}

func (r *Record) save() error {
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	return WriteRun(r.Dir, r.Run)
}

// Problem adds msg to the run's problems and saves.
func (r *Record) Problem(msg string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Run.Problems = append(r.Run.Problems, msg)
	return r.save()
}

// Finish records how the run ended at now and saves: complete when err is
// nil, interrupted when interrupted, failed otherwise (err goes into the
// problems).
func (r *Record) Finish(err error, interrupted bool, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	fin := now.UTC()
	r.Run.FinishedAt = &fin
	switch {
	case err == nil:
		r.Run.Status = StatusComplete
	case interrupted:
		r.Run.Status = StatusInterrupted
	default:
		r.Run.Status = StatusFailed
		r.Run.Problems = append(r.Run.Problems, err.Error())
	}
	return r.save()
}
