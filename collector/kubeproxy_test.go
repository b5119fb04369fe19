package collector

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/internal/httpget"
	"github.com/kpbench/kpbench/scenarios"
)

func readMetricsFixture(t *testing.T, name string) *KubeProxyMetrics {
	t.Helper()
	f, err := os.Open("testdata/metrics/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := ParseKubeProxyMetrics(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	// 10 observations: 2 in (0,1], 4 in (1,2], 4 in (2,4].
	h := Histogram{Count: 10, Sum: 22, Buckets: []Bucket{{1, 2}, {2, 6}, {4, 10}, {inf, 10}}}
	for _, tc := range []struct {
		name string
		h    Histogram
		q    float64
		want float64
	}{
		{name: "first bucket interpolates from zero", h: h, q: 0.1, want: 0.5},
		{name: "bucket edge", h: h, q: 0.2, want: 1},
		{name: "median", h: h, q: 0.5, want: 1.75},
		{name: "p90", h: h, q: 0.9, want: 3.5},
		{name: "max", h: h, q: 1, want: 4},
		{name: "rank in +Inf bucket gives highest finite bound", h: Histogram{Count: 4, Buckets: []Bucket{{1, 1}, {2, 2}, {inf, 4}}}, q: 0.9, want: 2},
		{name: "no observations", h: Histogram{Buckets: []Bucket{{1, 0}, {inf, 0}}}, q: 0.5, want: math.NaN()},
		{name: "no +Inf bucket", h: Histogram{Count: 1, Buckets: []Bucket{{1, 1}}}, q: 0.5, want: math.NaN()},
		{name: "q below 0", h: h, q: -0.1, want: math.Inf(-1)},
		{name: "q above 1", h: h, q: 1.1, want: math.Inf(1)},
		{name: "non-positive first bound", h: Histogram{Count: 2, Buckets: []Bucket{{0, 1}, {1, 2}, {inf, 2}}}, q: 0.25, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.h.Quantile(tc.q)
			if math.IsNaN(tc.want) != math.IsNaN(got) || (!math.IsNaN(got) && got != tc.want && !near(got, tc.want, 1e-12)) {
				t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
	if m := h.Mean(); m != 2.2 {
		t.Errorf("Mean = %v, want 2.2", m)
	}
}

func TestHistogramSub(t *testing.T) {
	inf := math.Inf(1)
	a := Histogram{Count: 3, Sum: 2, Buckets: []Bucket{{1, 1}, {inf, 3}}}
	b := Histogram{Count: 5, Sum: 5, Buckets: []Bucket{{1, 2}, {inf, 5}}}
	d, err := b.Sub(a)
	if err != nil || d.Count != 2 || d.Sum != 3 || d.Buckets[0].Count != 1 || d.Buckets[1].Count != 2 {
		t.Fatalf("b-a = %+v, %v", d, err)
	}
	if _, err := a.Sub(b); !errors.Is(err, ErrCounterReset) {
		t.Errorf("a-b error = %v, want ErrCounterReset", err)
	}
	c := Histogram{Count: 5, Sum: 5, Buckets: []Bucket{{2, 2}, {inf, 5}}}
	if _, err := c.Sub(a); !errors.Is(err, ErrBucketLayout) {
		t.Errorf("layout error = %v, want ErrBucketLayout", err)
	}
	if d, err := b.Sub(Histogram{}); err != nil || d.Count != 5 {
		t.Errorf("b - empty = %+v, %v", d, err)
	}
}

func TestParseKubeProxyMetricsFixture(t *testing.T) {
	m := readMetricsFixture(t, "kube-proxy-after.txt")
	if m.SyncProxyRules == nil || m.SyncFullProxyRules == nil || m.SyncPartialProxyRules == nil || m.NetworkProgramming == nil {
		t.Fatalf("missing histograms: %+v", m)
	}
	if h := m.SyncProxyRules; h.Count != 14 || !near(h.Sum, 2.45, 1e-9) || len(h.Buckets) != 16 || !math.IsInf(h.Buckets[15].UpperBound, 1) {
		t.Errorf("sync histogram = count %d sum %v, %d buckets", h.Count, h.Sum, len(h.Buckets))
	}
	if h := m.NetworkProgramming; h.Count != 9 || len(h.Buckets) != 3+59+12+7+1 {
		t.Errorf("network programming = count %d, %d buckets", h.Count, len(h.Buckets))
	}
	if m.ServiceChangesPending != 3 || m.EndpointChangesPending != 7 {
		t.Errorf("pending = %v services, %v endpoints", m.ServiceChangesPending, m.EndpointChangesPending)
	}
	if m.IPTablesRules["nat"] != 20052 || m.IPTablesRules["filter"] != 8 {
		t.Errorf("iptables rules = %v", m.IPTablesRules)
	}
	if got := m.LastSync().UTC(); got != time.Date(2025, 11, 22, 1, 47, 22, 250e6, time.UTC) {
		t.Errorf("last sync = %v", got)
	}
}

func TestParseKubeProxyMetricsIPv4Family(t *testing.T) {
	// Dual-stack kube-proxy exports one series per IP family; the IPv4
	// one counts (kubeproxy.Counts).
	text := `# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="0.1"} 1
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="+Inf"} 2
kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family="IPv4"} 0.55
kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"} 2
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv6",le="0.1"} 3
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv6",le="+Inf"} 3
kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family="IPv6"} 0.15
kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv6"} 3
# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge
kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} 100
kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv6"} 200
`
	m, err := ParseKubeProxyMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	h := m.SyncProxyRules
	if h.Count != 2 || !near(h.Sum, 0.55, 1e-12) || len(h.Buckets) != 2 || h.Buckets[0].Count != 1 || h.Buckets[1].Count != 2 {
		t.Errorf("IPv4 syncs = %+v", h)
	}
	// One rule for "last sync" (kubeproxy.LastSync): the IPv4 family's.
	if m.LastSyncTimestamp != 100 || m.SyncFullProxyRules != nil {
		t.Errorf("last sync %v, full %v", m.LastSyncTimestamp, m.SyncFullProxyRules)
	}
	if _, err := ParseKubeProxyMetrics(strings.NewReader("kubeproxy_x{ 1\n")); err == nil {
		t.Error("malformed text parsed without error")
	}
}

func TestKubeProxyDeltaFixtures(t *testing.T) {
	before := readMetricsFixture(t, "kube-proxy-before.txt")
	after := readMetricsFixture(t, "kube-proxy-after.txt")
	before.Time = time.Unix(1000, 0)
	after.Time = time.Unix(1042, 0)
	w, err := KubeProxyDelta(before, after)
	if err != nil {
		t.Fatal(err)
	}
	// Four syncs in the window: 0.3 and 0.4 s in (0.256, 0.512], 0.6 and
	// 0.9 s in (0.512, 1.024].
	if w.Sync.Count != 4 || !near(w.Sync.Sum, 2.2, 1e-9) || !near(w.Sync.Mean, 0.55, 1e-9) {
		t.Errorf("sync = %+v", w.Sync)
	}
	if !near(w.Sync.P50, 0.512, 1e-9) || !near(w.Sync.P90, 0.9216, 1e-9) || !near(w.Sync.P99, 1.01376, 1e-9) {
		t.Errorf("sync quantiles = %v %v %v, want 0.512 0.9216 1.01376", w.Sync.P50, w.Sync.P90, w.Sync.P99)
	}
	if w.FullSync.Count != 1 || !near(w.FullSync.Mean, 0.9, 1e-9) || w.PartialSync.Count != 3 || !near(w.PartialSync.Mean, 1.3/3, 1e-9) {
		t.Errorf("full %+v partial %+v", w.FullSync, w.PartialSync)
	}
	// Four network-programming observations, all in (2, 3].
	if w.NetworkProgramming.Count != 4 || !near(w.NetworkProgramming.P50, 2.5, 1e-9) {
		t.Errorf("network programming = %+v", w.NetworkProgramming)
	}
	if w.Seconds != 42 || w.LastSyncExact || !near(w.LastSyncSeconds, 0.55, 1e-9) || w.ServiceChangesPending != 3 {
		t.Errorf("window = %+v", w)
	}
	s := w.RunsSync()
	if s.FullSyncs != 1 || s.PartialSyncs != 3 || !near(s.FullSyncMeanSeconds, 0.9, 1e-9) || !near(s.NetworkProgrammingP50Seconds, 2.5, 1e-9) || !near(s.LastDurationSeconds, 0.55, 1e-9) {
		t.Errorf("runs.Sync = %+v", s)
	}

	// Same scrape twice: nothing happened.
	w, err = KubeProxyDelta(after, after)
	if err != nil || w.Sync.Count != 0 || w.Sync.P50 != 0 || w.LastSyncSeconds != 0 {
		t.Errorf("empty window = %+v, %v", w, err)
	}
	// Reversed: kube-proxy restarted between the scrapes.
	if _, err := KubeProxyDelta(after, before); !errors.Is(err, ErrCounterReset) {
		t.Errorf("reversed error = %v, want ErrCounterReset", err)
	}
}

func TestKubeProxyScraperHTTP(t *testing.T) {
	metrics, err := os.ReadFile("testdata/metrics/kube-proxy-after.txt")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = w.Write(metrics)
		case "/proxyMode":
			_, _ = w.Write([]byte("nftables"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	at := time.Unix(5000, 0)
	s := KubeProxyScraper{Fetch: fetchFrom(srv.Client(), srv.URL), Now: func() time.Time { return at }}
	m, raw, err := s.Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.SyncProxyRules.Count != 14 || !m.Time.Equal(at) || len(raw) != len(metrics) {
		t.Errorf("scrape = count %d at %v, %d raw bytes", m.SyncProxyRules.Count, m.Time, len(raw))
	}
	mode, err := s.ProxyMode(context.Background())
	if err != nil || mode != scenarios.ModeNFTables {
		t.Errorf("ProxyMode = %q, %v", mode, err)
	}
	bad := KubeProxyScraper{Fetch: fetchFrom(srv.Client(), srv.URL+"/nothing")}
	if _, _, err := bad.Scrape(context.Background()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("scrape of a 404 = %v", err)
	}
}

// fetchFrom reaches a metrics server at base over HTTP, as the agent does.
func fetchFrom(client *http.Client, base string) kubeproxy.Fetch {
	return func(ctx context.Context, path string) ([]byte, error) {
		return httpget.Get(ctx, client, base+path)
	}
}
