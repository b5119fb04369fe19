package scaler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/internal/httpget"
)

// ErrNotProgrammed is wrapped by Wait when its context ends before
// kube-proxy has programmed the change.
var ErrNotProgrammed = errors.New("kube-proxy has not programmed the change")

// Node is where kube-proxy runs: Wait scrapes its metrics and probes a
// Service from there. The lab's client node, a kind node or the local
// machine each provide one.
type Node interface {
	// Metrics returns kube-proxy's /metrics (Prometheus text format).
	Metrics(ctx context.Context) ([]byte, error)
	// Connect opens a TCP connection to addr from the node and closes it;
	// nil means the handshake completed.
	Connect(ctx context.Context, addr netip.AddrPort) error
}

// SyncState is kube-proxy's rule-sync state from one metrics scrape.
type SyncState struct {
	// ServiceChangesPending and EndpointChangesPending are changes kube-
	// proxy has seen but not yet written to the dataplane.
	ServiceChangesPending  float64
	EndpointChangesPending float64
	// LastQueued is when kube-proxy last queued a sync for a change it
	// received (zero where it does not export it).
	LastQueued time.Time
	// LastSync is when kube-proxy last finished writing rules (zero before
	// its first sync).
	LastSync time.Time
	// Syncs and SyncSeconds are the cumulative count and total duration
	// of rule syncs (the duration histogram's _count and _sum).
	Syncs       uint64
	SyncSeconds float64
}

// Pending is the number of changes kube-proxy has not programmed yet.
func (s SyncState) Pending() float64 { return s.ServiceChangesPending + s.EndpointChangesPending }

// ParseSyncState reads the sync metrics from a kube-proxy /metrics body
// with the collector's parser (collector.ParseKubeProxyMetrics), so that
// "programmed" and a point's syncs count the same series. Before
// kube-proxy's first sync LastSync is zero.
func ParseSyncState(metrics []byte) (SyncState, error) {
	m, err := collector.ParseKubeProxyMetrics(bytes.NewReader(metrics))
	if err != nil {
		return SyncState{}, err
	}
	// Before its first sync kube-proxy exports no timestamp or histogram;
	// the pending gauges are always there.
	if len(m.MissingPending) > 0 {
		return SyncState{}, fmt.Errorf("parsing kube-proxy metrics: missing %v", m.MissingPending)
	}
	st := SyncState{ServiceChangesPending: m.ServiceChangesPending, EndpointChangesPending: m.EndpointChangesPending, LastSync: m.LastSync(), LastQueued: m.LastQueued()}
	if h := m.SyncProxyRules; h != nil {
		st.Syncs, st.SyncSeconds = h.Count, h.Sum
	}
	return st, nil
}

// Programmed tells how long kube-proxy took to program a scale step.
type Programmed struct {
	// TimeToProgrammed is from the scaler's last write until Wait saw every
	// condition hold (resolution: the poll interval plus one probe).
	TimeToProgrammed time.Duration
	// SyncedAfterWrite is from the last write to the end of kube-proxy's
	// most recent sync as kube-proxy timestamps it: the rules were active
	// from then. Zero when nothing was written.
	SyncedAfterWrite time.Duration
	// LastSyncDuration is how long kube-proxy's most recent sync took,
	// from its duration histogram (exact when Wait saw that sync alone
	// between two scrapes, else the mean of the syncs it saw together).
	LastSyncDuration time.Duration
	// Syncs and MeanSyncDuration cover every sync since the baseline.
	Syncs            uint64
	MeanSyncDuration time.Duration
	// Probe is the address whose connect succeeded (invalid when none was
	// asked for).
	Probe netip.AddrPort
}

// WaitConfig says what Wait waits for.
type WaitConfig struct {
	// Baseline is a scrape taken before scaling; it makes the sync counts
	// cover exactly this step. Nil: the first scrape in Wait.
	Baseline *SyncState
	// LastWrite is the scaler's last write (Result.LastWrite); kube-proxy
	// must have synced after it. Zero: any sync counts.
	LastWrite time.Time
	// Probe is dialled once the metrics say the change is programmed:
	// the last-created Service's ClusterIP and port. Invalid: no probe
	// (scaled to zero).
	Probe netip.AddrPort
	// Interval between scrapes. Default 100 ms.
	Interval time.Duration
	// ProbeTimeout bounds one connect. Default 1 s.
	ProbeTimeout time.Duration
	// ProbeOnly waits for the probe alone, without kube-proxy's metrics:
	// for a dataplane that replaces kube-proxy (mode external). Without a
	// valid Probe it returns at once.
	ProbeOnly bool
}

// Scrape reads node's kube-proxy sync state once.
func Scrape(ctx context.Context, node Node) (SyncState, error) {
	b, err := node.Metrics(ctx)
	if err != nil {
		return SyncState{}, fmt.Errorf("scraping kube-proxy metrics: %w", err)
	}
	return ParseSyncState(b)
}

// Wait returns once kube-proxy on node has programmed everything written
// up to cfg.LastWrite: no changes pending, its last sync ended after the
// last write and started after the last change it queued (a sync takes
// the changes queued before it starts; one that started before the last
// change leaves it to the next sync, which may be running — with nothing
// pending and the new Service already answering, since IPVS writes its
// virtual servers first), and a TCP connect to cfg.Probe succeeds. Scrape errors and
// failed connects are retried until ctx ends; then the error wraps
// ErrNotProgrammed and says which condition was still unmet.
func Wait(ctx context.Context, node Node, cfg WaitConfig) (Programmed, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = time.Second
	}
	var (
		base, prev *SyncState
		lastSync   time.Duration
		// lastStart is when the last completed sync started, known when
		// it ended alone between two scrapes; zero while unknown.
		lastStart time.Time
		// quietSince is when the sync count last changed (the first
		// scrape's time until it does).
		quietSince time.Time
		unmet      error
	)
	if cfg.Baseline != nil {
		b := *cfg.Baseline
		base, prev = &b, &b
	}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	if cfg.ProbeOnly {
		return waitProbe(ctx, node, cfg, t.C)
	}
	for {
		st, err := Scrape(ctx, node)
		switch {
		case err != nil:
			unmet = err
		default:
			if base == nil {
				base = &st
			}
			if prev == nil || st.Syncs != prev.Syncs {
				quietSince = time.Now()
			}
			if prev != nil && st.Syncs > prev.Syncs {
				lastSync = seconds((st.SyncSeconds - prev.SyncSeconds) / float64(st.Syncs-prev.Syncs))
				lastStart = time.Time{}
				if st.Syncs == prev.Syncs+1 {
					lastStart = st.LastSync.Add(-seconds(st.SyncSeconds - prev.SyncSeconds))
				}
			}
			prev = &st
			// Settled: nothing pending and no sync for twice the last
			// one's length plus kube-proxy's default minSyncPeriod and a
			// second: a sync that had taken the last change would have
			// ended by now, so the last one took it.
			settled := st.Pending() == 0 && time.Since(quietSince) > 2*lastSync+2*time.Second
			unmet = check(ctx, node, cfg, st, lastStart, settled)
			if unmet == nil {
				now := time.Now()
				p := Programmed{LastSyncDuration: lastSync, Probe: cfg.Probe}
				if !cfg.LastWrite.IsZero() {
					p.TimeToProgrammed = now.Sub(cfg.LastWrite)
					p.SyncedAfterWrite = st.LastSync.Sub(cfg.LastWrite)
				}
				if st.Syncs >= base.Syncs {
					p.Syncs = st.Syncs - base.Syncs
				}
				if p.Syncs > 0 {
					p.MeanSyncDuration = seconds((st.SyncSeconds - base.SyncSeconds) / float64(p.Syncs))
				}
				if p.LastSyncDuration == 0 {
					p.LastSyncDuration = p.MeanSyncDuration
				}
				return p, nil
			}
		}
		select {
		case <-ctx.Done():
			return Programmed{}, fmt.Errorf("%w: %w (%w)", ErrNotProgrammed, unmet, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// waitProbe dials cfg.Probe until it connects.
func waitProbe(ctx context.Context, node Node, cfg WaitConfig, tick <-chan time.Time) (Programmed, error) {
	p := Programmed{Probe: cfg.Probe}
	if !cfg.Probe.IsValid() {
		return p, nil
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, cfg.ProbeTimeout)
		err := node.Connect(pctx, cfg.Probe)
		cancel()
		if err == nil {
			if !cfg.LastWrite.IsZero() {
				p.TimeToProgrammed = time.Since(cfg.LastWrite)
			}
			return p, nil
		}
		select {
		case <-ctx.Done():
			return Programmed{}, fmt.Errorf("%w: connect to %s: %w (%w)", ErrNotProgrammed, cfg.Probe, err, context.Cause(ctx))
		case <-tick:
		}
	}
}

// check returns nil when st and a probe say the change is programmed, else
// the first unmet condition; settled: nothing has been pending and no sync
// has run for longer than a sync that took the last change could take.
func check(ctx context.Context, node Node, cfg WaitConfig, st SyncState, lastStart time.Time, settled bool) error {
	if p := st.Pending(); p > 0 {
		return fmt.Errorf("%v service and %v endpoint changes pending", st.ServiceChangesPending, st.EndpointChangesPending)
	}
	if !cfg.LastWrite.IsZero() && !st.LastSync.After(cfg.LastWrite) {
		return fmt.Errorf("last sync at %s is not after the last write at %s",
			st.LastSync.Format(time.RFC3339Nano), cfg.LastWrite.Format(time.RFC3339Nano))
	}
	if !cfg.LastWrite.IsZero() && !st.LastQueued.IsZero() {
		// kube-proxy stamps a sync's start before it takes the queued
		// changes, so a change queued a few ms after that start can
		// still be the sync's. Without a known start (several syncs ended between two scrapes,
		// or none since the first), its end is the bound.
		start := lastStart
		if start.IsZero() {
			start = st.LastSync
		}
		// A change queued up to 50 ms after the stamped start, with nothing
		// pending and no sync since (settled), was taken by that sync.
		if st.LastQueued.After(start) && !(settled && st.LastQueued.Sub(start) <= 50*time.Millisecond) {
			return fmt.Errorf("a change queued at %s came after the last sync started (%s): the sync that takes it has not ended",
				st.LastQueued.Format(time.RFC3339Nano), start.Format(time.RFC3339Nano))
		}
	}
	if !cfg.Probe.IsValid() {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.ProbeTimeout)
	defer cancel()
	if err := node.Connect(pctx, cfg.Probe); err != nil {
		return fmt.Errorf("connect to %s: %w", cfg.Probe, err)
	}
	return nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// LocalNode is a Node on this machine: kube-proxy's metrics over HTTP
// (e.g. http://127.0.0.1:10249) and connects from this process's network
// namespace. It fits a run on a cluster node.
type LocalNode struct {
	// MetricsURL is kube-proxy's metrics base URL, without /metrics.
	MetricsURL string
	Client     *http.Client // default: a client with a 5 s timeout
}

// Metrics implements Node.
func (n LocalNode) Metrics(ctx context.Context) ([]byte, error) {
	c := n.Client
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	return httpget.Get(ctx, c, n.MetricsURL+"/metrics")
}

// Connect implements Node.
func (LocalNode) Connect(ctx context.Context, addr netip.AddrPort) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return err
	}
	return c.Close()
}

// ClientNode adapts a provider's client node: metrics through
// KubeProxyGet, connects through a bash /dev/tcp probe run on the node
// (inside its network namespace in the lab), bounded by timeout(1).
type ClientNode struct {
	Node clusters.ClientNode
}

// Metrics implements Node.
func (n ClientNode) Metrics(ctx context.Context) ([]byte, error) {
	return n.Node.KubeProxyGet(ctx, "/metrics")
}

// Connect implements Node. A node that can dial from inside itself
// (clusters.ClientNode implementations with a DialContext method, such as
// the lab's) is dialled directly; otherwise a bash /dev/tcp probe runs on
// the node under timeout(1) with SIGKILL, so a connect stuck behind a stale
// conntrack entry cannot outlive the probe.
func (n ClientNode) Connect(ctx context.Context, addr netip.AddrPort) error {
	if d, ok := n.Node.(interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}); ok {
		c, err := d.DialContext(ctx, "tcp", addr.String())
		if err != nil {
			return fmt.Errorf("probe %s: %w", addr, err)
		}
		return c.Close()
	}
	secs := "2"
	if dl, ok := ctx.Deadline(); ok {
		secs = strconv.FormatFloat(max(time.Until(dl).Seconds(), 0.05), 'f', 2, 64)
	}
	var stderr bytes.Buffer
	script := fmt.Sprintf("exec 3<>/dev/tcp/%s/%d", addr.Addr(), addr.Port())
	if err := n.Node.Run(ctx, nil, nil, &stderr, "timeout", "-s", "KILL", secs, "bash", "-c", script); err != nil {
		return fmt.Errorf("probe %s: %w: %s", addr, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}
