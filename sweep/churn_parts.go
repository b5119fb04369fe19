package sweep

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kpbench/kpbench/churn"
	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/internal/cpuset"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// This file binds a churn point's watcher of the node's rules, kube-proxy's
// syncs and the traffic to package churn's (churn/watch.go,
// churn/match_reader.go, churn/syncs.go, churn/traffic.go) and to the
// load's per-request records (LoadRequest.RequestsLog). Until those are in
// the tree it is left out of the build (tag churnparts) and
// churn_parts_pending.go stands in: merging them removes that file and
// this file's build line.

// churnPartsBuilt says whether this build can run a churn point.
const churnPartsBuilt = true

// DefaultSyncScrapeInterval is how often kube-proxy's metrics are read
// during churn to place its syncs on the time axis.
const DefaultSyncScrapeInterval = 250 * time.Millisecond

// Watcher implements ChurnParts: churn's watcher over a reader of the
// client node's rules (iptables, nft or ipvsadm there, at low priority;
// netlink in the lab's node namespace in nftables mode: ruleReader), and a
// tracker of kube-proxy's syncs from its metrics.
func (s *ServiceChurn) Watcher(mode scenarios.Mode) (ChurnWatcher, error) {
	reader, err := ruleReader(mode, s.Node)
	if err != nil {
		return nil, err
	}
	scraper := collector.KubeProxyScraper{Fetch: s.Node.KubeProxyGet}
	scrape := func(ctx context.Context) (*collector.KubeProxyMetrics, error) {
		m, _, err := scraper.Scrape(ctx)
		return m, err
	}
	return &nodeWatcher{w: churn.NewWatcher(mode, reader, s.interval(), time.Now),
		t: churn.NewSyncTracker(scrape, DefaultSyncScrapeInterval), port: s.Template.Port}, nil
}

// nodeWatcher runs churn's watcher and sync tracker together.
type nodeWatcher struct {
	w    *churn.Watcher
	t    *churn.SyncTracker
	port int32
}

func (n *nodeWatcher) Add(c *runs.ChurnChange) {
	ns, name, _ := strings.Cut(c.Service, "/")
	n.w.Add(c, churn.ServiceRef{Namespace: ns, Name: name, ClusterIP: c.ClusterIP, Port: n.port})
}

// Run reads the rules and kube-proxy's metrics until ctx ends.
func (n *nodeWatcher) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.t.Run(ctx)
	}()
	err := n.w.Run(ctx)
	<-done
	return err
}

// Drain reads the rules for the grace, and kube-proxy's metrics
// meanwhile and once after, so that a sync that ended since is placed.
func (n *nodeWatcher) Drain(ctx context.Context, grace time.Duration) {
	tctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.t.Run(tctx)
	}()
	n.w.Drain(ctx, grace)
	cancel()
	<-done
	_ = n.t.Poll(ctx)
}

// Syncs implements ChurnWatcher.
func (n *nodeWatcher) Syncs(from, to time.Time) KubeProxySyncs {
	out := KubeProxySyncs{Spans: n.t.Syncs(from, to)}
	if p50, p99, _, ok := n.t.NetworkProgramming(from, to); ok {
		out.ProgrammingP50Seconds, out.ProgrammingP99Seconds = p50, p99
	}
	var problems []string
	st := n.t.Stats()
	if st.ScrapeErrors > 0 {
		problems = append(problems, fmt.Sprintf("%d of kube-proxy's metrics scrapes failed (%s)", st.ScrapeErrors, st.LastError))
	}
	if st.Restarts > 0 {
		problems = append(problems, fmt.Sprintf("kube-proxy restarted %d times", st.Restarts))
	}
	if st.Failed > 0 {
		problems = append(problems, fmt.Sprintf("%d of kube-proxy's syncs failed to write its rules", st.Failed))
	}
	ws := n.w.Stats()
	if ws.ReadErrors > 0 {
		problems = append(problems, fmt.Sprintf("%d reads of the node's rules failed (%s)", ws.ReadErrors, ws.LastError))
	}
	out.Reads = churnReads(ws)
	out.Problem = strings.Join(problems, "; ")
	return out
}

// Summarize implements ChurnParts.
func (s *ServiceChurn) Summarize(changes []runs.ChurnChange) (runs.DurationSummary, int) {
	return churn.Summarize(changes)
}

// RequestsLog implements ChurnParts.
func (s *ServiceChurn) RequestsLog(req *LoadRequest) { req.RequestsLog = true }

// Traffic implements ChurnParts: the load's per-request records against
// the changes and the syncs.
func (s *ServiceChurn) Traffic(res *LoadResult, changes []runs.ChurnChange, syncs []runs.SyncSpan) (*runs.ChurnTraffic, error) {
	if res == nil || res.RequestLog == nil {
		return nil, nil
	}
	t := churn.Traffic(churn.RequestsFrom(res.RequestLog), changes, syncs)
	return &t, nil
}

// SyncCost implements ChurnParts with churn.SyncCostProbe: kube-proxy
// restarted on a node without its rules (restart), its cold sync timed
// from its metrics, then incremental syncs after one endpoint change each
// to the step's last Service (no load runs meanwhile), timed on the node's
// rules too; the changes are then undone and programmed.
func (s *ServiceChurn) SyncCost(ctx context.Context, run *runs.Run, mode scenarios.Mode, n int, restart func(context.Context) error, rules RuleCounter) error {
	w := churn.NewWriter(s.Client, s.Template, n, time.Now)
	if err := w.Load(ctx); err != nil {
		return err
	}
	reader, err := ruleReader(mode, s.Node)
	if err != nil {
		return err
	}
	svc := n - 1
	// A replacement where a backend is spare; else the endpoints go to
	// zero and back, one write each.
	spare := len(s.Template.EndpointIPs) > s.Template.EndpointsPerService
	zero := false
	var timeout time.Duration // the probe's default
	if c := run.Scenario.Spec.Churn; c != nil {
		timeout = c.SyncTimeout.D()
	}
	probe := &churn.SyncCostProbe{
		Mode:    mode,
		Timeout: timeout,
		Restart: restart,
		Scrape:  collector.KubeProxyScraper{Fetch: s.Node.KubeProxyGet}.Scrape,
		Reader:  reader,
		Count:   rules.Count,
		Change: func(ctx context.Context) (*runs.ChurnChange, churn.ServiceRef, error) {
			kind := runs.ChurnEndpointReplace
			if !spare {
				kind = runs.ChurnEndpointsToZero
				if zero {
					kind = runs.ChurnEndpointsRestore
				}
			}
			c := w.Apply(ctx, churn.Planned{Kind: kind, Service: svc})
			if c.Error != "" {
				return nil, churn.ServiceRef{}, fmt.Errorf("%s", c.Error)
			}
			if !spare {
				zero = !zero
			}
			ns, name, _ := strings.Cut(c.Service, "/")
			return &c, churn.ServiceRef{Namespace: ns, Name: name, ClusterIP: c.ClusterIP, Port: s.Template.Port}, nil
		},
	}
	cost, err := probe.Measure(ctx, n)
	last, rerr := w.Restore(ctx)
	if rerr == nil && !last.IsZero() {
		rerr = s.Programmed(ctx, n, last)
	}
	if err != nil {
		return err
	}
	run.RecordSyncCost(cost)
	if rerr != nil {
		return fmt.Errorf("putting the step back after the incremental syncs: %w", rerr)
	}
	return nil
}

// observerNode is a client node with CPUs of its machine that are not the
// node's (the lab's: the control plane's and the backends'), where an
// observer's commands can run in the node's network namespace without
// taking the node's CPUs from kube-proxy and the load client, or adding to
// the node CPU a point measures.
type observerNode interface {
	ObserverCPUs() []int
}

// netnsNode is a client node whose network namespace is on this machine
// (the lab's), at NetNSPath.
type netnsNode interface {
	NetNSPath() string
}

// ruleReader is the reader of the client node's rules in mode: in
// nftables mode on a node whose network namespace is on this machine (the
// lab), churn's netlink reader, in-process, on the node's observer CPUs;
// else a NodeReader running iptables, nft or ipvsadm on the node.
func ruleReader(mode scenarios.Mode, node clusters.ClientNode) (churn.RuleReader, error) {
	if n, ok := node.(netnsNode); ok && mode == scenarios.ModeNFTables {
		var cpus []int
		if o, ok := node.(observerNode); ok {
			cpus = o.ObserverCPUs()
		}
		r, err := churn.NewNFTNetlinkReader(n.NetNSPath(), churn.NetlinkOptions{CPUs: cpus})
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	r, err := churn.NewNodeReader(mode, kubeproxy.NodeRunner(node.Run), readerOptions(node))
	if err != nil {
		return nil, err
	}
	return r, nil
}

// readerOptions runs the rule reads at nice 19 on the node's observer
// CPUs where it has them (the lab), else at nice 19 on the node itself
// (a VM node's guest, a kind node's container, a real node), as an
// observer on a real node would.
func readerOptions(node clusters.ClientNode) churn.ReaderOptions {
	if o, ok := node.(observerNode); ok {
		if cpus := o.ObserverCPUs(); len(cpus) > 0 {
			return churn.ReaderOptions{Prefix: append([]string{"taskset", "-c", cpuset.Format(cpus)}, churn.LowPriority...)}
		}
	}
	return churn.ReaderOptions{}
}

// churnReads is the point's record of the watcher's reads.
func churnReads(ws churn.WatchStats) *runs.ChurnReads {
	r := &runs.ChurnReads{Rounds: ws.Rounds, Reads: ws.Reads, ReadErrors: ws.ReadErrors, Window: ws.Window}
	for kind, c := range ws.Cost {
		if r.Commands == nil {
			r.Commands = map[string]runs.ReadCommand{}
		}
		r.Commands[kind] = runs.ReadCommand{Count: c.Count, MeanSeconds: c.Mean(), MaxSeconds: c.MaxSeconds, Errors: c.Errors}
	}
	return r
}
