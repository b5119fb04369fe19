package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// resumeProgress counts the points of run's scenario that dir holds, out
// of those the run plans: every mode not recorded as skipped, every Service
// step, connection variant, placement and repetition.
func resumeProgress(dir string, run *runs.Run) (measured, total int, err error) {
	points, err := runs.ReadPoints(dir)
	if err != nil {
		return 0, 0, err
	}
	have := map[string]bool{}
	for _, p := range points {
		have[p.ID] = true
	}
	skipped := map[scenarios.Mode]bool{}
	for _, s := range run.SkippedModes {
		skipped[s.Mode] = true
	}
	sp := run.Scenario.Spec
	for _, m := range sp.Modes {
		if skipped[m] {
			continue
		}
		for _, id := range runs.PlanIDs(&sp, m) {
			total++
			if have[id] {
				measured++
			}
		}
	}
	return measured, total, nil
}

// resumeIsDone says, before anything is brought up, whether the run of rec
// has every point it plans: then resuming has nothing to do and changes
// nothing.
func resumeIsDone(g *globals, rec *runs.Record) bool {
	dir := rec.Dir
	measured, total, err := resumeProgress(dir, rec.Run)
	if err != nil || total == 0 || measured < total {
		return false
	}
	fmt.Fprintf(g.stdout, "%s: all %d %s measured; nothing to do\n", dir, total, plural(total, "point", "points"))
	return true
}

// recordResume adds this resume to the run's history, keeping the command
// and start time of the run as it was first started.
func recordResume(g *globals, rec *runs.Record, argv []string) {
	measured, total, err := resumeProgress(rec.Dir, rec.Run)
	if err != nil {
		g.logger.Warn("counting the measured points", "dir", rec.Dir, "err", err)
	}
	g.logger.Info(fmt.Sprintf("resuming %s: %d of %d %s measured", rec.Dir, measured, total, plural(total, "point", "points")))
	rec.Resume(argv, Version, measured, time.Now())
}

// announceLabReuse says what a run will do to a lab that is already up
// (and that it leaves it up), before it does it: `lab up` asks for --reuse
// in the same case; a run names the changes instead.
func announceLabReuse(ctx context.Context, g *globals, name string, sc *scenarios.Scenario) {
	l, err := lab.Open(lab.Config{Name: name})
	if err != nil {
		return
	}
	st, err := l.Status(ctx)
	if err != nil || !st.Healthy {
		return
	}
	modes := make([]string, len(sc.Spec.Modes))
	for i, m := range sc.Spec.Modes {
		modes[i] = string(m)
	}
	change := "keep kube-proxy in " + string(st.Mode) + " mode"
	if len(modes) != 1 || modes[0] != string(st.Mode) {
		change = fmt.Sprintf("switch kube-proxy from %s to %s mode", st.Mode, strings.Join(modes, ", then "))
	}
	steps := make([]string, len(sc.Spec.Services))
	for i, n := range sc.Spec.Services {
		steps[i] = fmt.Sprint(n)
	}
	g.logger.Warn(fmt.Sprintf("lab %s is already up: the run uses it and leaves it up; it will %s, and scale the Services of namespace kpbench to %s (use --lab-name for a lab of its own)",
		name, change, strings.Join(steps, ", ")))
}

// plural picks the word for n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
