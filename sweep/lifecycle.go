package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/runs"
)

// This file is a run from start to end: hold the cluster, bring it up,
// describe it, measure, record the outcome, take it down. run.json is
// written through the run's runs.Record only.

// RunConfig is what Execute needs besides the run's record.
type RunConfig struct {
	Provider clusters.Provider
	Engine   EngineOptions
	Log      *slog.Logger
	// Prepared, when set, is called once bringing the cluster up is over,
	// whatever its outcome.
	Prepared func()
	// Described, when set, is called once the provider has described the
	// cluster into the record, before run.json is written and anything is
	// measured; an error stops the run there (a resumed run whose
	// environment changed).
	Described func(run *runs.Run) error
	// Progress, when set, is told about every point as it starts.
	Progress func(done, total int, id string)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// SetupError is returned by Execute when the run stopped before the
// engine started: nothing was measured by this call and run.json was not
// written by it. It wraps the cause.
type SetupError struct{ Err error }

func (e *SetupError) Error() string { return e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

// Execute runs rec's scenario on cfg.Provider: it holds the cluster for
// the run (Features.Hold), brings it up or attaches to it (Prepare), records
// the cluster in run.json (Describe), measures every point not yet
// measured (Engine.Run), records the outcome (Record.Finish), and takes the
// cluster down (Teardown) and releases the hold, also when ctx was
// cancelled. A failure before the engine started is a *SetupError; after
// it, the engine's error (wrapping ErrInterrupted when ctx ended).
func Execute(ctx context.Context, rec *runs.Record, cfg RunConfig) error {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	prepared := func() {
		if cfg.Prepared != nil {
			cfg.Prepared()
			cfg.Prepared = nil
		}
	}
	defer prepared()
	setup := func(err error) error { return &SetupError{Err: err} }
	p := cfg.Provider
	run := rec.Run
	if hold := p.Features(ctx).Hold; hold != nil {
		release, err := hold(ctx, run.ID, rec.Dir)
		if err != nil {
			return setup(err)
		}
		defer release()
	}
	sc := &run.Scenario
	target, err := Prepare(ctx, p, sc, log)
	prepared()
	if err != nil {
		return setup(err)
	}
	defer target.Teardown(ctx)
	if target.Modes != nil {
		sc.Spec.Modes = target.Modes
	}
	if target.Note != "" {
		run.Problems = append(run.Problems, target.Note)
	}
	if err := target.Describe(ctx, run); err != nil {
		return setup(err)
	}
	if cfg.Described != nil {
		if err := cfg.Described(run); err != nil {
			return setup(err)
		}
	}
	if err := rec.Save(); err != nil {
		return setup(err)
	}
	log.Info("run", "dir", rec.Dir, "scenario", sc.Metadata.Name, "provider", p.Name())
	engine, err := target.Engine(ctx, sc, cfg.Engine)
	if err != nil {
		return setup(err)
	}
	if cfg.Progress != nil {
		prev := engine.Progress
		engine.Progress = func(done, total int, id string) {
			cfg.Progress(done, total, id)
			if prev != nil {
				prev(done, total, id)
			}
		}
	}
	runErr := engine.Run(ctx, rec)
	interrupted := errors.Is(runErr, ErrInterrupted) || ctx.Err() != nil
	if err := rec.Finish(runErr, interrupted, now()); err != nil {
		if runErr == nil {
			return fmt.Errorf("recording the run's end: %w", err)
		}
		log.Error("recording the run's end", "err", err)
	}
	if interrupted && runErr != nil && !errors.Is(runErr, ErrInterrupted) {
		runErr = fmt.Errorf("%w: %w", ErrInterrupted, runErr)
	}
	return runErr
}
