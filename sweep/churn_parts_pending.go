//go:build !churnparts

package sweep

import (
	"context"

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
func (s *ServiceChurn) Watcher(scenarios.Mode) (ChurnWatcher, error) { panic(churnPartsMissing) }

// Summarize implements ChurnParts.
func (s *ServiceChurn) Summarize([]runs.ChurnChange) (runs.DurationSummary, int) {
	panic(churnPartsMissing)
}

// RequestsLog implements ChurnParts.
func (s *ServiceChurn) RequestsLog(*LoadRequest) { panic(churnPartsMissing) }

// Traffic implements ChurnParts.
func (s *ServiceChurn) Traffic(*LoadResult, []runs.ChurnChange, []runs.SyncSpan) (*runs.ChurnTraffic, error) {
	panic(churnPartsMissing)
}

// SyncCost implements ChurnParts.
func (s *ServiceChurn) SyncCost(context.Context, *runs.Run, scenarios.Mode, int, func(context.Context) error, RuleCounter) error {
	panic(churnPartsMissing)
}
