package churn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/runs"
)

// kp is one scrape of kube-proxy's /metrics, written as kube-proxy v1.36
// writes them (names, ip_family label, histogram layout) and parsed by the
// collector's parser.
type kp struct {
	at                             time.Duration // scrape time after t0
	count, full, partial           uint64
	sum, fullSum, partialSum, last float64 // last: seconds after t0 (0: never synced)
	np                             []float64
}

var npBuckets = []float64{0.25, 0.5, 1, 2, 3, 4, 5}

func hist(b *strings.Builder, name string, les []float64, obs []float64, count uint64, sum float64) {
	fmt.Fprintf(b, "# HELP %s x\n# TYPE %s histogram\n", name, name)
	for _, le := range les {
		n := 0
		for _, o := range obs {
			if o <= le {
				n++
			}
		}
		if obs == nil {
			n = int(count) // sync histograms: every sync below the one bucket
		}
		fmt.Fprintf(b, "%s_bucket{ip_family=\"IPv4\",le=\"%g\"} %d\n", name, le, n)
	}
	fmt.Fprintf(b, "%s_bucket{ip_family=\"IPv4\",le=\"+Inf\"} %d\n%s_sum{ip_family=\"IPv4\"} %g\n%s_count{ip_family=\"IPv4\"} %d\n", name, count, name, sum, name, count)
}

func (k kp) metrics(t *testing.T) *collector.KubeProxyMetrics {
	t.Helper()
	var b strings.Builder
	hist(&b, "kubeproxy_sync_proxy_rules_duration_seconds", []float64{60}, nil, k.count, k.sum)
	if k.full > 0 {
		hist(&b, "kubeproxy_sync_full_proxy_rules_duration_seconds", []float64{60}, nil, k.full, k.fullSum)
	}
	if k.partial > 0 {
		hist(&b, "kubeproxy_sync_partial_proxy_rules_duration_seconds", []float64{60}, nil, k.partial, k.partialSum)
	}
	if k.np != nil {
		s := 0.0
		for _, o := range k.np {
			s += o
		}
		hist(&b, "kubeproxy_network_programming_duration_seconds", npBuckets, k.np, uint64(len(k.np)), s)
	}
	last := 0.0
	if k.last > 0 {
		last = float64(t0.UnixNano())/1e9 + k.last
	}
	fmt.Fprintf(&b, "# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge\nkubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv4\"} %.6f\n", last)
	b.WriteString("# TYPE kubeproxy_sync_proxy_rules_service_changes_pending gauge\nkubeproxy_sync_proxy_rules_service_changes_pending{ip_family=\"IPv4\"} 0\n")
	b.WriteString("# TYPE kubeproxy_sync_proxy_rules_endpoint_changes_pending gauge\nkubeproxy_sync_proxy_rules_endpoint_changes_pending{ip_family=\"IPv4\"} 0\n")
	m, err := collector.ParseKubeProxyMetrics(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	m.Time = at(k.at)
	return m
}

func scrapes(t *testing.T, ks ...kp) []*collector.KubeProxyMetrics {
	var out []*collector.KubeProxyMetrics
	for _, k := range ks {
		out = append(out, k.metrics(t))
	}
	return out
}

// nearTime: within 10 µs (kube-proxy's timestamps are float Unix seconds).
func nearTime(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -10*time.Microsecond && d < 10*time.Microsecond
}

func TestSyncSpansFromKubeProxysMetrics(t *testing.T) {
	// The lab's real /metrics right after kube-proxy's first (full) sync,
	// and the same process a moment before it, when no sync had been
	// observed nor stamped.
	after := labFixture(t, "kube-proxy-metrics-nftables-20svc.txt")
	var before bytes.Buffer
	stamp := regexp.MustCompile(`^(kubeproxy_sync_proxy_rules_last_timestamp_seconds\{[^}]*\}) .*$`)
	for _, l := range strings.Split(string(after), "\n") {
		if strings.HasPrefix(l, "kubeproxy_sync_proxy_rules_duration_seconds") || strings.HasPrefix(l, "kubeproxy_sync_full_proxy_rules_duration_seconds") {
			continue
		}
		before.WriteString(stamp.ReplaceAllString(l, "$1 0") + "\n")
	}
	a, err := collector.ParseKubeProxyMetrics(&before)
	if err != nil {
		t.Fatal(err)
	}
	b, err := collector.ParseKubeProxyMetrics(bytes.NewReader(after))
	if err != nil {
		t.Fatal(err)
	}
	b.Time = time.Unix(1795314429, 0)
	a.Time = b.Time.Add(-time.Second)
	spans, st := SyncSpans([]*collector.KubeProxyMetrics{a, b})
	if len(spans) != 1 || st.Exact != 1 {
		t.Fatalf("spans %+v, stats %+v", spans, st)
	}
	end := time.Unix(1795314428, 12810500) // 1.7953144280128105e+09
	if !nearTime(spans[0].End, end) || !spans[0].Full {
		t.Errorf("span %+v, want a full sync ending at %v", spans[0], end)
	}
	if d := spans[0].End.Sub(spans[0].Start); d < 103355*time.Microsecond || d > 103356*time.Microsecond {
		t.Errorf("duration %v, want kube-proxy's 0.103355159 s (IPv4; the IPv6 proxier's 0.248 s left out)", d)
	}
}

func TestSyncSpans(t *testing.T) {
	sc := scrapes(t,
		kp{at: 0, count: 1, full: 1, sum: 2, fullSum: 2, last: -10},
		// One partial sync, 50 ms, ending at 0.4 s.
		kp{at: ms(250), count: 1, full: 1, sum: 2, fullSum: 2, last: -10},
		kp{at: ms(500), count: 2, full: 1, partial: 1, sum: 2.05, fullSum: 2, partialSum: 0.05, last: 0.4},
		// Stamped at 0.9 s, observed after the 1 s scrape (the histogram
		// lags the timestamp): 80 ms.
		kp{at: ms(1000), count: 2, full: 1, partial: 1, sum: 2.05, fullSum: 2, partialSum: 0.05, last: 0.9},
		kp{at: ms(1250), count: 3, full: 1, partial: 2, sum: 2.13, fullSum: 2, partialSum: 0.13, last: 0.9},
		// Two syncs between two scrapes (300 ms in all), the last ending
		// at 1.45 s.
		kp{at: ms(1500), count: 5, full: 1, partial: 4, sum: 2.43, fullSum: 2, partialSum: 0.43, last: 1.45},
		// A failed sync: a duration, no stamp.
		kp{at: ms(1750), count: 6, full: 1, partial: 5, sum: 2.53, fullSum: 2, partialSum: 0.53, last: 1.45},
		// kube-proxy restarted and made its first, full, sync: 1.5 s
		// ending at 3.4 s.
		kp{at: ms(3500), count: 1, full: 1, sum: 1.5, fullSum: 1.5, last: 3.4},
	)
	spans, st := SyncSpans(sc)
	want := []runs.SyncSpan{
		{Start: at(ms(350)), End: at(ms(400))},
		{Start: at(ms(820)), End: at(ms(900))},
		{Start: at(ms(1150)), End: at(ms(1450))},
		{Start: at(ms(1900)), End: at(ms(3400)), Full: true},
	}
	if len(spans) != len(want) {
		t.Fatalf("spans %+v", spans)
	}
	for i := range want {
		if !nearTime(spans[i].Start, want[i].Start) || !nearTime(spans[i].End, want[i].End) || spans[i].Full != want[i].Full {
			t.Errorf("span %d: %v–%v full=%v, want %v–%v full=%v", i, spans[i].Start.Sub(t0), spans[i].End.Sub(t0), spans[i].Full,
				want[i].Start.Sub(t0), want[i].End.Sub(t0), want[i].Full)
		}
	}
	if st.Exact != 3 || st.Merged != 2 || st.Failed != 1 || st.Restarts != 1 || st.Scrapes != 8 {
		t.Errorf("stats %+v", st)
	}

	tr := NewSyncTracker(nil, 0)
	tr.scrapes = sc
	got := tr.Syncs(at(ms(850)), at(ms(1200)))
	if len(got) != 2 || !nearTime(got[0].End, at(ms(900))) || !nearTime(got[1].End, at(ms(1450))) {
		t.Errorf("syncs overlapping 0.85–1.2 s: %+v", got)
	}
}

func TestNetworkProgramming(t *testing.T) {
	old := []float64{3, 3, 3, 3, 3}
	in := append(append([]float64(nil), old...), 0.1, 0.2, 0.2, 0.25, 0.3, 0.4, 0.45, 0.5, 1.5, 1.8)
	tr := NewSyncTracker(nil, 0)
	tr.scrapes = scrapes(t,
		kp{at: 0, count: 1, np: old},
		kp{at: ms(500), count: 1, np: old},
		kp{at: ms(5000), count: 2, np: in},
		kp{at: ms(6000), count: 3, np: append(append([]float64(nil), in...), 4)},
	)
	p50, p99, n, ok := tr.NetworkProgramming(at(ms(600)), at(ms(4000)))
	// The window's ten observations: 4 ≤ 0.25 s, 4 in (0.25, 0.5], 2 in
	// (1, 2]: the median interpolates in the second bucket, the p99 in
	// the (1, 2] one.
	if !ok || n != 10 || !near(p50, 0.3125) || !near(p99, 1.95) {
		t.Errorf("p50 %v p99 %v n %d ok %v; want 0.3125, 1.95, 10", p50, p99, n, ok)
	}
	if _, _, _, ok := tr.NetworkProgramming(at(ms(100)), at(ms(400))); ok {
		t.Error("a window without observations reported some")
	}
	tr.scrapes = append(tr.scrapes, kp{at: ms(7000), count: 1, np: []float64{0.1}}.metrics(t))
	if _, _, _, ok := tr.NetworkProgramming(at(ms(5500)), at(ms(7000))); ok {
		t.Error("a window across a restart reported a delta")
	}
}

func TestSyncTrackerRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &fakeClock{t: t0, stop: at(time.Second), cancel: cancel}
	i := 0
	scrape := func(context.Context) (*collector.KubeProxyMetrics, error) {
		i++
		if i == 2 {
			return nil, errors.New("connection refused")
		}
		k := kp{at: c.t.Sub(t0), count: 1, sum: 0.1, last: -1}
		if c.t.After(at(ms(500))) {
			k = kp{at: c.t.Sub(t0), count: 2, sum: 0.15, last: 0.55}
		}
		return k.metrics(t), nil
	}
	tr := NewSyncTracker(scrape, ms(250))
	tr.Sleep = c.sleep
	if err := tr.Run(ctx); err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	if st.Scrapes != 3 || st.ScrapeErrors != 1 || st.LastError != "connection refused" || st.Exact != 1 {
		t.Errorf("stats %+v", st)
	}
	if got := tr.Syncs(t0, at(time.Second)); len(got) != 1 || !nearTime(got[0].Start, at(ms(500))) {
		t.Errorf("syncs %+v", got)
	}
}

func TestSummarize(t *testing.T) {
	var cs []runs.ChurnChange
	for i := 1; i <= 10; i++ {
		p := at(time.Duration(i) * 100 * time.Millisecond)
		cs = append(cs, runs.ChurnChange{Seq: i, WrittenAt: t0, ProgrammedAt: &p})
	}
	cs = append(cs, runs.ChurnChange{Seq: 11, WrittenAt: t0}, runs.ChurnChange{Seq: 12, WrittenAt: t0, Error: "conflict"})
	sum, un := Summarize(cs)
	if sum.Count != 10 || !near(sum.P50, 0.55) || !near(sum.P99, 0.991) || !near(sum.Max, 1) || un != 1 {
		t.Errorf("%+v, %d unprogrammed; want p50 0.55, p99 0.991, max 1, 1 unprogrammed", sum, un)
	}
	if sum, un := Summarize(nil); sum != (runs.DurationSummary{}) || un != 0 {
		t.Errorf("no changes: %+v, %d", sum, un)
	}
	if math.IsNaN(median(nil)) || median([]float64{3, 1, 2}) != 2 {
		t.Error("median")
	}
}
