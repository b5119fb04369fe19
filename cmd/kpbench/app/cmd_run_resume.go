package app

import (
	"fmt"
	"strings"

	"github.com/kpbench/kpbench/runs"
)

// resumeTrust refuses to continue a run with another build or on another
// provider than the one that started it, before anything is brought up:
// the resumed points would sit beside the old ones in one curve, one
// comparison, as if measured alike. With force it goes on and records the
// difference among the run's problems (and every point carries its own
// version and environment fingerprint). A provider not given on the
// command line is the run's own.
func resumeTrust(run *runs.Run, f *runFlags, version string) error {
	if !f.providerSet && run.Provider.Name != "" {
		f.provider = run.Provider.Name
	}
	var diffs []string
	if run.KpbenchVersion != version {
		diffs = append(diffs, fmt.Sprintf("kpbench version: %s → %s", orNone(run.KpbenchVersion), version))
	}
	if run.Provider.Name != "" && run.Provider.Name != f.provider {
		diffs = append(diffs, fmt.Sprintf("provider: %s → %s", run.Provider.Name, f.provider))
	}
	return refuseOrNote(run, f.force, diffs)
}

// resumeEnvironment compares the environment the resumed run recorded with
// the one the provider describes now (kernel, CPU model and count,
// Kubernetes and kube-proxy versions, iptables backend).
func resumeEnvironment(run *runs.Run, prevProvider string, prev runs.Environment, force bool) error {
	if prev == (runs.Environment{}) {
		return nil // nothing recorded yet (the run stopped before its provider came up)
	}
	return refuseOrNote(run, force, runs.EnvironmentDifferences(prevProvider, prev, run.Provider.Name, run.Environment))
}

func refuseOrNote(run *runs.Run, force bool, diffs []string) error {
	if len(diffs) == 0 {
		return nil
	}
	if !force {
		return &ExitError{Code: 2, Err: fmt.Errorf("will not resume %s: it was measured otherwise (%s), and the new points would be mixed with the old as if measured alike; "+
			"start a new run, or pass --force to resume anyway (the difference is then recorded in run.json, and every point carries its kpbench version and environment fingerprint)",
			run.ID, strings.Join(diffs, "; "))}
	}
	run.Problems = append(run.Problems, "resumed with --force although "+strings.Join(diffs, "; "))
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
