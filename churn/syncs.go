package churn

import (
	"context"
	"errors"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/runs"
)

// This file places kube-proxy's syncs on the time axis from its metrics,
// as the collector reads them (collector.ParseKubeProxyMetrics), polled
// through a window. kube-proxy v1.36 stamps
// sync_proxy_rules_last_timestamp_seconds when a sync has written its
// rules, and observes the sync's duration (from its start) in
// sync_proxy_rules_duration_seconds and in the full or partial histogram
// just after; a failed sync observes a duration but stamps nothing. So
// between two scrapes where one sync happened, its end is the new
// timestamp and its duration the histograms' sum delta. kube-proxy syncs at
// most once per --iptables-min-sync-period / min-sync-period (1 s by
// default), so at a few scrapes per second two syncs rarely fall between
// two scrapes; when they do, they are reported as one span ending at the
// last one's end and as long as their summed durations (SyncStats.Merged).

// Scrape reads kube-proxy's metrics once (collector.KubeProxyScraper's
// Scrape, whose raw body it may drop).
type Scrape func(ctx context.Context) (*collector.KubeProxyMetrics, error)

// ScrapeWith adapts the collector's scraper (whose raw body the tracker
// does not keep) to a Scrape.
func ScrapeWith(s collector.KubeProxyScraper) Scrape {
	return func(ctx context.Context) (*collector.KubeProxyMetrics, error) {
		m, _, err := s.Scrape(ctx)
		return m, err
	}
}

// SyncTracker polls kube-proxy's metrics and keeps every scrape.
type SyncTracker struct {
	scrape   Scrape
	interval time.Duration
	// Sleep waits d or until ctx is done (tests pass a fake clock's).
	Sleep func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex
	scrapes []*collector.KubeProxyMetrics
	errs    int
	lastErr string
}

// NewSyncTracker polls scrape every interval (250 ms is a good default:
// each scrape makes kube-proxy render its whole /metrics on the node).
func NewSyncTracker(scrape Scrape, interval time.Duration) *SyncTracker {
	return &SyncTracker{scrape: scrape, interval: interval}
}

// Poll scrapes once and keeps the result (scrapes must carry their Time).
func (t *SyncTracker) Poll(ctx context.Context) error {
	m, err := t.scrape(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.errs++
		t.lastErr = err.Error()
		return err
	}
	t.scrapes = append(t.scrapes, m)
	return nil
}

// Run polls until ctx is done, then returns nil. Failed scrapes are
// counted (SyncStats) and polling goes on.
func (t *SyncTracker) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		_ = t.Poll(ctx)
		if t.sleep(ctx, t.interval) != nil {
			break
		}
	}
	return nil
}

func (t *SyncTracker) sleep(ctx context.Context, d time.Duration) error {
	if t.Sleep != nil {
		return t.Sleep(ctx, d)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// Scrapes returns the scrapes kept so far, oldest first.
func (t *SyncTracker) Scrapes() []*collector.KubeProxyMetrics {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*collector.KubeProxyMetrics(nil), t.scrapes...)
}

// Syncs returns kube-proxy's syncs that overlapped [from, to].
func (t *SyncTracker) Syncs(from, to time.Time) []runs.SyncSpan {
	spans, _ := SyncSpans(t.Scrapes())
	var out []runs.SyncSpan
	for _, s := range spans {
		if !s.End.Before(from) && !s.Start.After(to) {
			out = append(out, s)
		}
	}
	return out
}

// Stats says how well the scrapes pinned the syncs down.
func (t *SyncTracker) Stats() SyncStats {
	_, st := SyncSpans(t.Scrapes())
	t.mu.Lock()
	st.ScrapeErrors, st.LastError = t.errs, t.lastErr
	t.mu.Unlock()
	return st
}

// SyncStats counts what SyncSpans could and could not place.
type SyncStats struct {
	Scrapes int `json:"scrapes"`
	// Exact counts syncs alone between two scrapes: their start and end
	// are kube-proxy's own.
	Exact int `json:"exact"`
	// Merged counts syncs that shared a scrape interval with another and
	// were reported as one span.
	Merged int `json:"merged"`
	// Failed counts syncs that observed a duration but stamped no end:
	// kube-proxy failed to write its rules.
	Failed int `json:"failed"`
	// Restarts counts kube-proxy restarts seen (counters that went down).
	Restarts     int    `json:"restarts"`
	ScrapeErrors int    `json:"scrapeErrors"`
	LastError    string `json:"lastError,omitempty"`
}

// SyncSpans places the syncs between consecutive scrapes (oldest first)
// on the time axis.
func SyncSpans(scrapes []*collector.KubeProxyMetrics) ([]runs.SyncSpan, SyncStats) {
	st := SyncStats{Scrapes: len(scrapes)}
	var spans []runs.SyncSpan
	var used time.Time // the last end a span took
	for i := 1; i < len(scrapes); i++ {
		a, b := scrapes[i-1], scrapes[i]
		if b.SyncProxyRules == nil {
			continue
		}
		prev := collector.Histogram{}
		if a.SyncProxyRules != nil {
			prev = *a.SyncProxyRules
		}
		restarted := false
		d, err := b.SyncProxyRules.Sub(prev)
		if errors.Is(err, collector.ErrCounterReset) {
			// A new kube-proxy: everything it observed is new.
			st.Restarts++
			restarted = true
			d, err = *b.SyncProxyRules, nil
		}
		if err != nil || d.Count == 0 {
			continue
		}
		end := b.LastSync()
		if end.IsZero() || !end.After(used) {
			st.Failed += int(d.Count)
			continue
		}
		full := false
		if b.SyncFullProxyRules != nil {
			var pf collector.Histogram
			if !restarted && a.SyncFullProxyRules != nil {
				pf = *a.SyncFullProxyRules
			}
			if df, err := b.SyncFullProxyRules.Sub(pf); err == nil && df.Count > 0 {
				full = true
			}
		}
		if d.Count == 1 {
			st.Exact++
		} else {
			st.Merged += int(d.Count)
		}
		start := end.Add(-time.Duration(d.Sum * float64(time.Second)))
		spans = append(spans, runs.SyncSpan{Start: start, End: end, Full: full})
		used = end
	}
	return spans, st
}

// NetworkProgramming is kube-proxy's own network_programming_duration_seconds
// over [from, to]: the histogram's delta between the last scrape at or
// before from and the first at or after to, its p50 and p99 (interpolated
// within kube-proxy's buckets: 0.25 s, 0.5 s, then whole seconds) and the
// number of observations. ok is false when kube-proxy observed nothing
// there (it observes only EndpointSlice changes that carry the
// endpoints.kubernetes.io/last-change-trigger-time annotation) or
// restarted inside the window.
func (t *SyncTracker) NetworkProgramming(from, to time.Time) (p50, p99 float64, count uint64, ok bool) {
	sc := t.Scrapes()
	if len(sc) < 2 {
		return 0, 0, 0, false
	}
	i := sort.Search(len(sc), func(i int) bool { return sc[i].Time.After(from) }) - 1
	if i < 0 {
		i = 0
	}
	j := sort.Search(len(sc), func(j int) bool { return !sc[j].Time.Before(to) })
	if j >= len(sc) {
		j = len(sc) - 1
	}
	if j <= i || sc[j].NetworkProgramming == nil {
		return 0, 0, 0, false
	}
	var prev collector.Histogram
	if sc[i].NetworkProgramming != nil {
		prev = *sc[i].NetworkProgramming
	}
	d, err := sc[j].NetworkProgramming.Sub(prev)
	if err != nil || d.Count == 0 {
		return 0, 0, 0, false
	}
	return d.Quantile(0.5), d.Quantile(0.99), d.Count, true
}

// Summarize is the programming latency of a window's changes: from each
// change's API write to the first read of the node's rules that showed it,
// over the changes that were programmed (p50 and p99 interpolated between
// order statistics, as numpy's default), and how many written changes
// were not programmed. Failed writes count in neither.
func Summarize(changes []runs.ChurnChange) (runs.DurationSummary, int) {
	var lat []float64
	unprogrammed := 0
	for _, c := range changes {
		switch {
		case c.Error != "":
		case c.ProgrammedAt == nil:
			unprogrammed++
		default:
			lat = append(lat, c.ProgrammedAt.Sub(c.WrittenAt).Seconds())
		}
	}
	return summarize(lat), unprogrammed
}

// summarize condenses durations in seconds (it sorts them).
func summarize(s []float64) runs.DurationSummary {
	if len(s) == 0 {
		return runs.DurationSummary{}
	}
	sort.Float64s(s)
	return runs.DurationSummary{Count: len(s), P50: quantileSorted(s, 0.5), P99: quantileSorted(s, 0.99), Max: s[len(s)-1]}
}

// quantileSorted is the q-quantile of sorted values, interpolated between
// order statistics (Hyndman–Fan type 7).
func quantileSorted(s []float64, q float64) float64 {
	pos := q * float64(len(s)-1)
	i := int(math.Floor(pos))
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}
