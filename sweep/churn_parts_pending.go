//go:build !churnparts

package sweep

import (
	"context"
	"time"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// This file stands in for churn_parts.go while package churn's watcher,
// syncs and traffic are not in the tree: a build without them refuses a
// scenario with spec.churn (Target.Engine), so these are never called.
// Merging those parts deletes this file.

// churnPartsBuilt says whether this build can run a churn point.
const churnPartsBuilt = false

// Watcher implements ChurnParts.
func (s *ServiceChurn) Watcher(scenarios.Mode) ChurnWatcher { panic(churnPartsMissing) }

// Summarize implements ChurnParts.
func (s *ServiceChurn) Summarize([]runs.ChurnChange) (runs.DurationSummary, int) {
	panic(churnPartsMissing)
}

// Syncs implements ChurnParts.
func (s *ServiceChurn) Syncs(context.Context, time.Time, time.Time) ([]runs.SyncSpan, error) {
	panic(churnPartsMissing)
}

// Traffic implements ChurnParts.
func (s *ServiceChurn) Traffic(string, []runs.ChurnChange, []runs.SyncSpan) (*runs.ChurnTraffic, error) {
	panic(churnPartsMissing)
}
