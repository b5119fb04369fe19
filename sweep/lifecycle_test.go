package sweep

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// holding is a provider a run holds; holdErr refuses the hold.
type holding struct {
	targetProvider
	holdErr  error
	holders  []string
	released int
}

func (h *holding) Features(ctx context.Context) clusters.Features {
	f := h.targetProvider.Features(ctx)
	f.Hold = h.Hold
	return f
}

func (h *holding) Hold(_ context.Context, runID, _ string) (func(), error) {
	if h.holdErr != nil {
		return nil, h.holdErr
	}
	h.holders = append(h.holders, runID)
	return func() { h.released++ }, nil
}

func TestExecuteHoldsTheClusterAndReleasesIt(t *testing.T) {
	out := t.TempDir()
	t.Run("held by another run", func(t *testing.T) {
		busy := errors.New("lab kpbench is held by run other")
		p := &holding{targetProvider: targetProvider{modes: map[scenarios.Mode]string{scenarios.ModeIPTables: ""}, backends: 1}, holdErr: busy}
		rec := runs.NewRecord(out, *scenarioWith(scenarios.ModeIPTables), nil, "v1", time.Now())
		prepared := false
		err := Execute(context.Background(), rec, RunConfig{Provider: p, Prepared: func() { prepared = true }})
		var setup *SetupError
		if !errors.As(err, &setup) || !errors.Is(err, busy) {
			t.Fatalf("Execute = %v; want a SetupError wrapping the hold's refusal", err)
		}
		if len(p.ups) != 0 {
			t.Errorf("brought the cluster up under another run's hold: %v", p.ups)
		}
		if !prepared {
			t.Error("Prepared not called")
		}
		if _, err := os.Stat(filepath.Join(rec.Dir, "run.json")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("run.json written by a run that never started: %v", err)
		}
	})
	t.Run("released when the run cannot start", func(t *testing.T) {
		p := &holding{targetProvider: targetProvider{modes: map[scenarios.Mode]string{scenarios.ModeIPTables: "no iptables"}}}
		rec := runs.NewRecord(out, *scenarioWith(scenarios.ModeIPTables), nil, "v1", time.Now())
		err := Execute(context.Background(), rec, RunConfig{Provider: p})
		if !errors.Is(err, ErrCannotRun) {
			t.Fatalf("Execute = %v; want ErrCannotRun", err)
		}
		if len(p.holders) != 1 || p.holders[0] != rec.Run.ID || p.released != 1 {
			t.Errorf("holds %v, released %d; want one hold by %s, released", p.holders, p.released, rec.Run.ID)
		}
	})
}
