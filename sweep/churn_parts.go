//go:build churnparts

package sweep

import (
	"context"
	"strings"
	"time"

	"github.com/kpbench/kpbench/churn"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// This file binds a churn point's watcher of the node's rules, its syncs
// and its traffic to package churn's (churn/watch.go, churn/syncs.go,
// churn/traffic.go). Until those are in the tree it is left out of the
// build (tag churnparts) and churn_parts_pending.go stands in: merging them
// removes that file and this file's build line.

// churnPartsBuilt says whether this build can run a churn point.
const churnPartsBuilt = true

// Watcher implements ChurnParts: churn's watcher over a reader of the
// client node's rules (it runs iptables-save, nft or ipvsadm there).
func (s *ServiceChurn) Watcher(mode scenarios.Mode) ChurnWatcher {
	reader := churn.NewNodeRuleReader(mode, kubeproxy.NodeRunner(s.Node.Run))
	return &ruleWatcher{w: churn.NewWatcher(mode, reader, s.interval(), time.Now), port: s.Template.Port}
}

// ruleWatcher hands churn's watcher each change with the Service it
// touched.
type ruleWatcher struct {
	w    *churn.Watcher
	port int32
}

func (r *ruleWatcher) Add(c *runs.ChurnChange) {
	ns, name, _ := strings.Cut(c.Service, "/")
	r.w.Add(c, churn.ServiceRef{Namespace: ns, Name: name, ClusterIP: c.ClusterIP, Port: r.port})
}

func (r *ruleWatcher) Run(ctx context.Context) error { return r.w.Run(ctx) }

func (r *ruleWatcher) Drain(ctx context.Context, grace time.Duration) { r.w.Drain(ctx, grace) }

// Summarize implements ChurnParts.
func (s *ServiceChurn) Summarize(changes []runs.ChurnChange) (runs.DurationSummary, int) {
	return churn.Summarize(changes)
}

// Syncs implements ChurnParts: kube-proxy's syncs on the client node.
func (s *ServiceChurn) Syncs(ctx context.Context, from, to time.Time) ([]runs.SyncSpan, error) {
	return churn.Syncs(ctx, s.Node, from, to)
}

// Traffic implements ChurnParts: the load's per-request records in the
// point's raw directory against the changes and the syncs.
func (s *ServiceChurn) Traffic(rawDir string, changes []runs.ChurnChange, syncs []runs.SyncSpan) (*runs.ChurnTraffic, error) {
	reqs, err := churn.ReadRequests(rawDir)
	if err != nil || reqs == nil {
		return nil, err
	}
	t := churn.Traffic(reqs, changes, syncs)
	return &t, nil
}
