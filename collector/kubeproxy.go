package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

var (
	// ErrCounterReset is wrapped when a counter or histogram went down
	// between two scrapes: kube-proxy restarted inside the window.
	ErrCounterReset = errors.New("counter reset (kube-proxy restarted?)")
	// ErrBucketLayout is wrapped when two histograms have different bucket
	// bounds and cannot be subtracted.
	ErrBucketLayout = errors.New("histogram bucket layouts differ")
)

// Bucket is one cumulative histogram bucket: how many observations were
// ≤ UpperBound.
type Bucket struct {
	UpperBound float64 `json:"le"`
	Count      uint64  `json:"count"`
}

// Histogram is a Prometheus histogram: cumulative buckets sorted by upper
// bound, the last one +Inf.
type Histogram struct {
	Count   uint64   `json:"count"`
	Sum     float64  `json:"sum"`
	Buckets []Bucket `json:"buckets"`
}

// Mean is Sum/Count (NaN without observations).
func (h Histogram) Mean() float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	return h.Sum / float64(h.Count)
}

// Quantile estimates the q-quantile (0 ≤ q ≤ 1) like Prometheus'
// histogram_quantile: find the bucket holding the rank q×count and
// interpolate linearly within it (from 0 for the first bucket, when its
// bound is positive). A rank in the +Inf bucket returns the highest finite
// bound. NaN without observations.
func (h Histogram) Quantile(q float64) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	}
	b := h.Buckets
	if len(b) < 2 || !math.IsInf(b[len(b)-1].UpperBound, 1) {
		return math.NaN()
	}
	total := b[len(b)-1].Count
	if total == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	i := sort.Search(len(b)-1, func(i int) bool { return float64(b[i].Count) >= rank })
	if i == len(b)-1 {
		return b[len(b)-2].UpperBound
	}
	if i == 0 && b[0].UpperBound <= 0 {
		return b[0].UpperBound
	}
	start, end := 0.0, b[i].UpperBound
	count := float64(b[i].Count)
	if i > 0 {
		start = b[i-1].UpperBound
		count -= float64(b[i-1].Count)
		rank -= float64(b[i-1].Count)
	}
	if count == 0 {
		return end
	}
	return start + (end-start)*(rank/count)
}

// Sub returns h - prev: the observations made between two scrapes.
func (h Histogram) Sub(prev Histogram) (Histogram, error) {
	if len(prev.Buckets) == 0 && prev.Count == 0 {
		return h, nil
	}
	if len(h.Buckets) != len(prev.Buckets) {
		return Histogram{}, fmt.Errorf("%w: %d vs %d buckets", ErrBucketLayout, len(h.Buckets), len(prev.Buckets))
	}
	if h.Count < prev.Count {
		return Histogram{}, fmt.Errorf("histogram count %d < %d: %w", h.Count, prev.Count, ErrCounterReset)
	}
	out := Histogram{Count: h.Count - prev.Count, Sum: h.Sum - prev.Sum, Buckets: make([]Bucket, len(h.Buckets))}
	for i := range h.Buckets {
		a, p := h.Buckets[i], prev.Buckets[i]
		if a.UpperBound != p.UpperBound {
			return Histogram{}, fmt.Errorf("%w: bucket %d is le=%g vs le=%g", ErrBucketLayout, i, a.UpperBound, p.UpperBound)
		}
		if a.Count < p.Count {
			return Histogram{}, fmt.Errorf("bucket le=%g went from %d to %d: %w", a.UpperBound, p.Count, a.Count, ErrCounterReset)
		}
		out.Buckets[i] = Bucket{UpperBound: a.UpperBound, Count: a.Count - p.Count}
	}
	return out, nil
}

// HistogramSummary condenses a histogram (usually a window's delta).
// Quantiles are NaN-free: zero when there were no observations.
type HistogramSummary struct {
	Count uint64  `json:"count"`
	Sum   float64 `json:"sum"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
}

// Summary condenses h.
func (h Histogram) Summary() HistogramSummary {
	if h.Count == 0 {
		return HistogramSummary{}
	}
	return HistogramSummary{Count: h.Count, Sum: h.Sum, Mean: h.Mean(), P50: h.Quantile(0.5), P90: h.Quantile(0.9), P99: h.Quantile(0.99)}
}

// KubeProxyMetrics is one scrape of kube-proxy's /metrics, reduced to the
// families kpbench reads, of the series kubeproxy.Counts keeps. Histograms
// with several series are summed across them; a family kube-proxy
// does not export in its mode (IPVS has no full/partial split) is nil.
type KubeProxyMetrics struct {
	Time time.Time `json:"time"`

	SyncProxyRules        *Histogram `json:"syncProxyRules,omitempty"`
	SyncFullProxyRules    *Histogram `json:"syncFullProxyRules,omitempty"`
	SyncPartialProxyRules *Histogram `json:"syncPartialProxyRules,omitempty"`
	NetworkProgramming    *Histogram `json:"networkProgramming,omitempty"`

	// LastSyncTimestamp is when rules were last synced successfully (Unix
	// seconds, by kubeproxy.LastSync's rule; 0 when absent).
	LastSyncTimestamp float64 `json:"lastSyncTimestamp"`
	// LastQueuedTimestamp is when kube-proxy last queued a sync for a
	// change it received (Unix seconds, the newest of the kept series; 0
	// when absent).
	LastQueuedTimestamp    float64 `json:"lastQueuedTimestamp,omitempty"`
	ServiceChangesPending  float64 `json:"serviceChangesPending"`
	EndpointChangesPending float64 `json:"endpointChangesPending"`
	// IPTablesRules is kube-proxy's own count of its iptables rules (iptables
	// mode only), keyed by table, or "<ip_family>/<table>" where kube-proxy
	// labels the family (v1.36: "IPv4/nat"). It counts the rules in
	// kube-proxy's KUBE-* chains.
	IPTablesRules map[string]float64 `json:"iptablesRules,omitempty"`
	// MissingPending names the pending-changes gauges the scrape lacked
	// (kube-proxy always exports both; a body without them is not its).
	MissingPending []string `json:"-"`
}

// LastSync is LastSyncTimestamp as a time (zero when absent).
func (m *KubeProxyMetrics) LastSync() time.Time { return unixTime(m.LastSyncTimestamp) }

// LastQueued is LastQueuedTimestamp as a time (zero when absent).
func (m *KubeProxyMetrics) LastQueued() time.Time { return unixTime(m.LastQueuedTimestamp) }

func unixTime(ts float64) time.Time {
	if ts <= 0 {
		return time.Time{}
	}
	sec, frac := math.Modf(ts)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// ParseKubeProxyMetrics parses kube-proxy's /metrics (Prometheus text
// exposition format). It is kpbench's one reader of those metrics: the
// collector's sync figures and the scaler's "programmed" both come from
// it. Series of a family kubeproxy.Counts leaves out (a dual-stack
// kube-proxy's IPv6 proxier) are dropped before anything is summed.
func ParseKubeProxyMetrics(r io.Reader) (*KubeProxyMetrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing kube-proxy metrics: %w", err)
	}
	for _, f := range fams {
		kept := f.Metric[:0]
		for _, mt := range f.Metric {
			if kubeproxy.Counts(label(mt, kubeproxy.LabelIPFamily)) {
				kept = append(kept, mt)
			}
		}
		f.Metric = kept
	}
	m := &KubeProxyMetrics{}
	hist := func(name string) (*Histogram, error) {
		f, ok := fams[name]
		if !ok {
			return nil, nil
		}
		h, err := mergeHistograms(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return h, nil
	}
	for name, dst := range map[string]**Histogram{
		kubeproxy.MetricSyncProxyRules:        &m.SyncProxyRules,
		kubeproxy.MetricSyncFullProxyRules:    &m.SyncFullProxyRules,
		kubeproxy.MetricSyncPartialProxyRules: &m.SyncPartialProxyRules,
		kubeproxy.MetricNetworkProgramming:    &m.NetworkProgramming,
	} {
		if *dst, err = hist(name); err != nil {
			return nil, err
		}
	}
	if f, ok := fams[kubeproxy.MetricLastSyncTimestamp]; ok {
		var series []kubeproxy.Series
		for _, mt := range f.GetMetric() {
			fam, _ := label(mt, kubeproxy.LabelIPFamily)
			series = append(series, kubeproxy.Series{IPFamily: fam, Value: value(mt)})
		}
		m.LastSyncTimestamp = kubeproxy.LastSync(series)
	}
	if f, ok := fams[kubeproxy.MetricLastQueuedTimestamp]; ok {
		for _, mt := range f.GetMetric() {
			m.LastQueuedTimestamp = math.Max(m.LastQueuedTimestamp, value(mt))
		}
	}
	for name, dst := range map[string]*float64{
		kubeproxy.MetricServiceChangesPending:  &m.ServiceChangesPending,
		kubeproxy.MetricEndpointChangesPending: &m.EndpointChangesPending,
	} {
		if f, ok := fams[name]; !ok {
			m.MissingPending = append(m.MissingPending, name)
		} else {
			for _, mt := range f.GetMetric() {
				*dst += value(mt)
			}
		}
	}
	if f, ok := fams[kubeproxy.MetricIPTablesTotal]; ok {
		m.IPTablesRules = map[string]float64{}
		for _, mt := range f.GetMetric() {
			table, _ := label(mt, "table")
			if fam, ok := label(mt, kubeproxy.LabelIPFamily); ok {
				table = fam + "/" + table
			}
			m.IPTablesRules[table] += value(mt)
		}
	}
	return m, nil
}

func label(m *dto.Metric, name string) (string, bool) {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue(), true
		}
	}
	return "", false
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// mergeHistograms sums a family's histogram series bucket by bucket.
func mergeHistograms(f *dto.MetricFamily) (*Histogram, error) {
	if f.GetType() != dto.MetricType_HISTOGRAM {
		return nil, fmt.Errorf("type is %s, want histogram", f.GetType())
	}
	if len(f.GetMetric()) == 0 {
		return nil, nil // declared, but no series observed yet
	}
	counts := map[float64]uint64{}
	out := &Histogram{}
	for _, mt := range f.GetMetric() {
		h := mt.GetHistogram()
		n := h.GetSampleCount()
		if h.SampleCountFloat != nil {
			n = uint64(h.GetSampleCountFloat())
		}
		out.Count += n
		out.Sum += h.GetSampleSum()
		for _, b := range h.GetBucket() {
			if math.IsInf(b.GetUpperBound(), 1) {
				continue // the sample count is the +Inf bucket
			}
			c := b.GetCumulativeCount()
			if b.CumulativeCountFloat != nil {
				c = uint64(b.GetCumulativeCountFloat())
			}
			counts[b.GetUpperBound()] += c
		}
		counts[math.Inf(1)] += n
	}
	for le, c := range counts {
		out.Buckets = append(out.Buckets, Bucket{UpperBound: le, Count: c})
	}
	sort.Slice(out.Buckets, func(i, j int) bool { return out.Buckets[i].UpperBound < out.Buckets[j].UpperBound })
	return out, nil
}

// KubeProxyScraper reads kube-proxy's metrics port through Fetch.
type KubeProxyScraper struct {
	// Fetch reaches kube-proxy's metrics port: clusters.ClientNode's
	// KubeProxyGet (inside the node's network namespace), or the agent's
	// GET of the loopback metrics server.
	Fetch kubeproxy.Fetch
	// Now is the clock for scrape times; time.Now when nil.
	Now func() time.Time
}

// Scrape fetches and parses /metrics. It also returns the raw text, which
// a run keeps under raw/<point>/.
func (s KubeProxyScraper) Scrape(ctx context.Context) (*KubeProxyMetrics, []byte, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now()
	body, err := s.Fetch(ctx, "/metrics")
	if err != nil {
		return nil, nil, fmt.Errorf("fetching kube-proxy /metrics: %w", err)
	}
	m, err := ParseKubeProxyMetrics(bytes.NewReader(body))
	if err != nil {
		return nil, body, err
	}
	m.Time = t
	return m, body, nil
}

// ProxyMode asks kube-proxy which mode it runs (GET /proxyMode), as a
// mode kpbench knows.
func (s KubeProxyScraper) ProxyMode(ctx context.Context) (scenarios.Mode, error) {
	got, err := kubeproxy.ReadProxyMode(ctx, s.Fetch)
	if err != nil {
		return "", err
	}
	return kubeproxy.ParseProxyMode([]byte(got))
}

// KubeProxyWindow is what kube-proxy did between two scrapes.
type KubeProxyWindow struct {
	Seconds float64 `json:"seconds"`
	// Syncs of every kind, full and partial syncs (iptables and nftables
	// modes), and network-programming latency of the changes synced.
	Sync               HistogramSummary `json:"sync"`
	FullSync           HistogramSummary `json:"fullSync"`
	PartialSync        HistogramSummary `json:"partialSync"`
	NetworkProgramming HistogramSummary `json:"networkProgramming"`
	// LastSyncSeconds is the duration of the window's last sync when the
	// window holds exactly one (LastSyncExact); with several it is their
	// mean; with none, 0.
	LastSyncSeconds float64 `json:"lastSyncSeconds"`
	LastSyncExact   bool    `json:"lastSyncExact"`
	// The after scrape's gauges.
	LastSyncTimestamp      float64            `json:"lastSyncTimestamp"`
	ServiceChangesPending  float64            `json:"serviceChangesPending"`
	EndpointChangesPending float64            `json:"endpointChangesPending"`
	IPTablesRules          map[string]float64 `json:"iptablesRules,omitempty"`
}

// KubeProxyDelta compares two scrapes of the same kube-proxy. It wraps
// ErrCounterReset when kube-proxy restarted in between.
func KubeProxyDelta(before, after *KubeProxyMetrics) (KubeProxyWindow, error) {
	w := KubeProxyWindow{
		Seconds:                after.Time.Sub(before.Time).Seconds(),
		LastSyncTimestamp:      after.LastSyncTimestamp,
		ServiceChangesPending:  after.ServiceChangesPending,
		EndpointChangesPending: after.EndpointChangesPending,
		IPTablesRules:          after.IPTablesRules,
	}
	for _, x := range []struct {
		name string
		b, a *Histogram
		dst  *HistogramSummary
	}{
		{kubeproxy.MetricSyncProxyRules, before.SyncProxyRules, after.SyncProxyRules, &w.Sync},
		{kubeproxy.MetricSyncFullProxyRules, before.SyncFullProxyRules, after.SyncFullProxyRules, &w.FullSync},
		{kubeproxy.MetricSyncPartialProxyRules, before.SyncPartialProxyRules, after.SyncPartialProxyRules, &w.PartialSync},
		{kubeproxy.MetricNetworkProgramming, before.NetworkProgramming, after.NetworkProgramming, &w.NetworkProgramming},
	} {
		if x.a == nil {
			continue
		}
		var prev Histogram
		if x.b != nil {
			prev = *x.b
		}
		d, err := x.a.Sub(prev)
		if err != nil {
			return KubeProxyWindow{}, fmt.Errorf("%s: %w", x.name, err)
		}
		*x.dst = d.Summary()
	}
	if w.Sync.Count > 0 {
		w.LastSyncSeconds = w.Sync.Mean
		w.LastSyncExact = w.Sync.Count == 1
	}
	return w, nil
}

// RunsSync maps the window onto the results schema.
func (w KubeProxyWindow) RunsSync() runs.Sync {
	return runs.Sync{
		LastDurationSeconds:          w.LastSyncSeconds,
		FullSyncs:                    int64(w.FullSync.Count),
		FullSyncMeanSeconds:          w.FullSync.Mean,
		PartialSyncs:                 int64(w.PartialSync.Count),
		PartialMeanSeconds:           w.PartialSync.Mean,
		NetworkProgrammingP50Seconds: w.NetworkProgramming.P50,
	}
}
