package scaler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseSyncState(t *testing.T) {
	tests := []struct {
		file    string
		want    SyncState
		wantErr string
	}{
		{
			file: "kube-proxy-metrics.txt",
			want: SyncState{
				ServiceChangesPending:  2,
				EndpointChangesPending: 3,
				LastSync:               time.Unix(1795300123, 500000000),
				Syncs:                  42,
				SyncSeconds:            12.75,
			},
		},
		{
			file: "kube-proxy-metrics-unlabelled.txt",
			want: SyncState{LastSync: time.Unix(1795300000, 0), Syncs: 7, SyncSeconds: 0.35},
		},
		{
			file: "kube-proxy-metrics-before-first-sync.txt",
			want: SyncState{ServiceChangesPending: 1, EndpointChangesPending: 1},
		},
		{file: "not-kube-proxy.txt", wantErr: "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseSyncState(b)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ServiceChangesPending != tt.want.ServiceChangesPending || got.EndpointChangesPending != tt.want.EndpointChangesPending ||
				got.Syncs != tt.want.Syncs || got.SyncSeconds != tt.want.SyncSeconds {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if tt.want.LastSync.IsZero() != got.LastSync.IsZero() {
				t.Errorf("LastSync = %v, want %v", got.LastSync, tt.want.LastSync)
			} else if d := got.LastSync.Sub(tt.want.LastSync); d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("LastSync = %v, want %v", got.LastSync, tt.want.LastSync)
			}
		})
	}
}

func TestParseTextErrors(t *testing.T) {
	tests := []struct{ name, in string }{
		{"no value", "metric_without_value\n"},
		{"bad value", "m 12abc\n"},
		{"unterminated labels", "m{a=\"b\" 1\n"},
		{"unquoted label", "m{a=b} 1\n"},
		{"extra fields", "m 1 2 3\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseText([]byte(tt.in)); err == nil || !strings.Contains(err.Error(), "line 1") {
				t.Errorf("err = %v, want an error at line 1", err)
			}
		})
	}
	got, err := parseText([]byte("m{a=\"x\\\"y\",b=\"\"} +Inf 1700000000\n"))
	if err != nil || len(got) != 1 || got[0].labels["a"] != `x"y` || got[0].value <= 1e308 {
		t.Errorf("parse with escapes and timestamp = %+v, %v", got, err)
	}
}

func metricsText(st SyncState) []byte {
	b := fmt.Appendf(nil, `# TYPE kubeproxy_sync_proxy_rules_service_changes_pending gauge
kubeproxy_sync_proxy_rules_service_changes_pending %g
kubeproxy_sync_proxy_rules_endpoint_changes_pending %g
kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} %.9f
# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram
kubeproxy_sync_proxy_rules_duration_seconds_bucket{le="+Inf"} %d
kubeproxy_sync_proxy_rules_duration_seconds_sum %g
kubeproxy_sync_proxy_rules_duration_seconds_count %d
`, st.ServiceChangesPending, st.EndpointChangesPending, float64(st.LastSync.UnixNano())/1e9, st.Syncs, st.SyncSeconds, st.Syncs)
	if !st.LastQueued.IsZero() {
		b = fmt.Appendf(b, "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds{ip_family=\"IPv4\"} %.9f\n", float64(st.LastQueued.UnixNano())/1e9)
	}
	return b
}

// scriptedNode serves one scripted scrape per Metrics call (the last one
// repeats) and fails the first connectFailures connects.
type scriptedNode struct {
	mu              sync.Mutex
	scrapes         []func() ([]byte, error)
	connectFailures int
	connects        []netip.AddrPort
}

func (n *scriptedNode) Metrics(context.Context) ([]byte, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f := n.scrapes[0]
	if len(n.scrapes) > 1 {
		n.scrapes = n.scrapes[1:]
	}
	return f()
}

func (n *scriptedNode) Connect(_ context.Context, addr netip.AddrPort) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.connects = append(n.connects, addr)
	if len(n.connects) <= n.connectFailures {
		return errors.New("connection refused")
	}
	return nil
}

func scrape(st SyncState) func() ([]byte, error) {
	return func() ([]byte, error) { return metricsText(st), nil }
}

func TestWait(t *testing.T) {
	write := time.Now().Add(-50 * time.Millisecond)
	old := write.Add(-time.Second)
	synced := write.Add(20 * time.Millisecond)
	probe := netip.MustParseAddrPort("198.19.0.7:80")
	tests := []struct {
		name            string
		cfg             WaitConfig
		scrapes         []func() ([]byte, error)
		connectFailures int
		wantErr         string
		wantConnects    int
		wantSyncs       uint64
		wantLast        time.Duration
		wantMean        time.Duration
	}{
		{
			name: "pending, then synced, probe refused once",
			cfg:  WaitConfig{LastWrite: write, Probe: probe},
			scrapes: []func() ([]byte, error){
				scrape(SyncState{ServiceChangesPending: 5, EndpointChangesPending: 5, LastSync: old, Syncs: 10, SyncSeconds: 1}),
				scrape(SyncState{LastSync: synced, Syncs: 11, SyncSeconds: 1.25}),
			},
			connectFailures: 1,
			wantConnects:    2,
			wantSyncs:       1,
			wantLast:        250 * time.Millisecond,
			wantMean:        250 * time.Millisecond,
		},
		{
			name: "baseline covers earlier syncs; scrape error retried",
			cfg:  WaitConfig{LastWrite: write, Probe: probe, Baseline: &SyncState{Syncs: 8, SyncSeconds: 0.5}},
			scrapes: []func() ([]byte, error){
				func() ([]byte, error) { return nil, errors.New("connection reset") },
				scrape(SyncState{LastSync: synced, Syncs: 11, SyncSeconds: 1.25}),
			},
			wantConnects: 1,
			wantSyncs:    3,
			wantLast:     250 * time.Millisecond,
			wantMean:     250 * time.Millisecond,
		},
		{
			name:      "scaled to zero: no probe",
			cfg:       WaitConfig{LastWrite: write},
			scrapes:   []func() ([]byte, error){scrape(SyncState{LastSync: synced, Syncs: 4, SyncSeconds: 0.4})},
			wantSyncs: 0,
		},
		{
			name:    "sync older than the write",
			cfg:     WaitConfig{LastWrite: write, Probe: probe},
			scrapes: []func() ([]byte, error){scrape(SyncState{LastSync: old, Syncs: 4})},
			wantErr: "not after the last write",
		},
		{
			name:    "changes stay pending",
			cfg:     WaitConfig{LastWrite: write, Probe: probe},
			scrapes: []func() ([]byte, error){scrape(SyncState{EndpointChangesPending: 1, LastSync: synced, Syncs: 4})},
			wantErr: "1 endpoint changes pending",
		},
		{
			// The VM node at 200 Services: the sync that ended after the
			// write had started before the change was queued; the next
			// one, running with nothing pending and the probe answering,
			// is what programs it.
			name: "a sync that started before the last change does not count",
			cfg:  WaitConfig{LastWrite: write, Probe: probe},
			scrapes: []func() ([]byte, error){
				scrape(SyncState{LastSync: old, Syncs: 4, SyncSeconds: 1, LastQueued: write.Add(5 * time.Millisecond)}),
				scrape(SyncState{LastSync: write.Add(10 * time.Millisecond), Syncs: 5, SyncSeconds: 1.25, LastQueued: write.Add(5 * time.Millisecond)}),
				scrape(SyncState{LastSync: synced, Syncs: 6, SyncSeconds: 1.255, LastQueued: write.Add(5 * time.Millisecond)}),
			},
			wantConnects: 1,
			wantSyncs:    2,
			wantLast:     5 * time.Millisecond,
			wantMean:     127500 * time.Microsecond,
		},
		{
			name: "the sync that takes the last change never ends",
			cfg:  WaitConfig{LastWrite: write, Probe: probe},
			scrapes: []func() ([]byte, error){
				scrape(SyncState{LastSync: old, Syncs: 4, SyncSeconds: 1}),
				scrape(SyncState{LastSync: synced, Syncs: 5, SyncSeconds: 1.25, LastQueued: write.Add(5 * time.Millisecond)}),
			},
			wantErr: "the sync that takes it has not ended",
		},
		{
			name:            "probe never answers",
			cfg:             WaitConfig{LastWrite: write, Probe: probe},
			scrapes:         []func() ([]byte, error){scrape(SyncState{LastSync: synced, Syncs: 4})},
			connectFailures: 1 << 30,
			wantErr:         "connect to 198.19.0.7:80",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := &scriptedNode{scrapes: tt.scrapes, connectFailures: tt.connectFailures}
			tt.cfg.Interval = time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			p, err := Wait(ctx, node, tt.cfg)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNotProgrammed) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrNotProgrammed with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if len(node.connects) != tt.wantConnects {
				t.Errorf("connects = %v, want %d", node.connects, tt.wantConnects)
			}
			if p.TimeToProgrammed < 50*time.Millisecond {
				t.Errorf("TimeToProgrammed = %v, want at least the 50ms since the write", p.TimeToProgrammed)
			}
			if d := p.SyncedAfterWrite - 20*time.Millisecond; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("SyncedAfterWrite = %v, want 20ms", p.SyncedAfterWrite)
			}
			if p.Syncs != tt.wantSyncs || !near(p.LastSyncDuration, tt.wantLast) || !near(p.MeanSyncDuration, tt.wantMean) {
				t.Errorf("syncs %d last %v mean %v, want %d %v %v", p.Syncs, p.LastSyncDuration, p.MeanSyncDuration, tt.wantSyncs, tt.wantLast, tt.wantMean)
			}
		})
	}
}

func near(a, b time.Duration) bool { d := a - b; return d > -time.Microsecond && d < time.Microsecond }

func TestLocalNode(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "kube-proxy-metrics.txt"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	node := LocalNode{MetricsURL: srv.URL}
	st, err := Scrape(context.Background(), node)
	if err != nil || st.Syncs != 42 {
		t.Fatalf("Scrape = %+v, %v", st, err)
	}
	if _, err := Scrape(context.Background(), LocalNode{MetricsURL: srv.URL + "/nope"}); err == nil {
		t.Error("scrape of a 404 succeeded")
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddrPort(l.Addr().String())
	if err := node.Connect(context.Background(), addr); err != nil {
		t.Errorf("connect to a listener: %v", err)
	}
	l.Close()
	if err := node.Connect(context.Background(), addr); err == nil {
		t.Error("connect to a closed port succeeded")
	}
}

func TestWaitProbeOnly(t *testing.T) {
	probe := netip.MustParseAddrPort("198.19.0.7:80")
	write := time.Now().Add(-50 * time.Millisecond)
	noMetrics := []func() ([]byte, error){func() ([]byte, error) { return nil, errors.New("no kube-proxy here") }}
	node := &scriptedNode{scrapes: noMetrics, connectFailures: 2}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p, err := Wait(ctx, node, WaitConfig{ProbeOnly: true, Probe: probe, LastWrite: write, Interval: time.Millisecond})
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if len(node.connects) != 3 || p.TimeToProgrammed < 50*time.Millisecond || p.Syncs != 0 {
		t.Errorf("connects %v, programmed %+v: want 3 connects and the time since the write", node.connects, p)
	}
	// A probe that never answers fails with the connect error.
	node = &scriptedNode{scrapes: noMetrics, connectFailures: 1 << 30}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Wait(ctx, node, WaitConfig{ProbeOnly: true, Probe: probe, Interval: time.Millisecond}); !errors.Is(err, ErrNotProgrammed) || !strings.Contains(err.Error(), "connect to 198.19.0.7:80") {
		t.Errorf("err = %v", err)
	}
	// No probe (scaled to zero): nothing to wait for.
	if _, err := Wait(context.Background(), &scriptedNode{scrapes: noMetrics}, WaitConfig{ProbeOnly: true}); err != nil {
		t.Errorf("no probe: %v", err)
	}
}

// Typed histograms and summaries come back as the series of the text
// format, as kube-proxy and etcd expose them.
func TestParseTextFlattensHistogramsAndSummaries(t *testing.T) {
	body := `# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="0.1"} 3
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="+Inf"} 5
kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family="IPv4"} 1.25
kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"} 5
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.01
rpc_seconds_sum 2
rpc_seconds_count 40
# TYPE up gauge
up 1
`
	got, err := parseText([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ name, labels string }
	values := map[key]float64{}
	for _, s := range got {
		values[key{s.name, fmt.Sprint(s.labels)}] = s.value
	}
	want := map[key]float64{
		{"kubeproxy_sync_proxy_rules_duration_seconds_bucket", "map[ip_family:IPv4 le:0.1]"}:  3,
		{"kubeproxy_sync_proxy_rules_duration_seconds_bucket", "map[ip_family:IPv4 le:+Inf]"}: 5,
		{"kubeproxy_sync_proxy_rules_duration_seconds_sum", "map[ip_family:IPv4]"}:            1.25,
		{"kubeproxy_sync_proxy_rules_duration_seconds_count", "map[ip_family:IPv4]"}:          5,
		{"rpc_seconds", "map[quantile:0.5]"}:                                                  0.01,
		{"rpc_seconds_sum", "map[]"}:                                                          2,
		{"rpc_seconds_count", "map[]"}:                                                        40,
		{"up", "map[]"}:                                                                       1,
	}
	if !maps.Equal(values, want) {
		t.Errorf("parseText =\n%v\nwant\n%v", values, want)
	}
	st, err := ParseSyncState([]byte(body + `kubeproxy_sync_proxy_rules_service_changes_pending 0
kubeproxy_sync_proxy_rules_endpoint_changes_pending 2
`))
	if err != nil || st.Syncs != 5 || st.SyncSeconds != 1.25 || st.Pending() != 2 {
		t.Errorf("ParseSyncState = %+v, %v; want 5 syncs, 1.25 s, 2 pending", st, err)
	}
}

// kube-proxy stamps a sync's start before it takes the queued changes: a
// change queued 8 ms after the stamped start, with nothing pending
// afterwards and no sync since, was that sync's. Wait says so once no sync
// has run for twice the last one's length plus 2 s, not before.
func TestWaitChangeQueuedJustAfterTheStampedStart(t *testing.T) {
	write := time.Now().Add(-50 * time.Millisecond)
	synced := write.Add(20 * time.Millisecond)
	scrapes := func() []func() ([]byte, error) {
		return []func() ([]byte, error){
			scrape(SyncState{LastSync: write.Add(-time.Second), Syncs: 4, SyncSeconds: 1}),
			scrape(SyncState{LastSync: synced, Syncs: 5, SyncSeconds: 1.25, LastQueued: synced.Add(-250*time.Millisecond + 8*time.Millisecond)}),
		}
	}
	cfg := WaitConfig{LastWrite: write, Interval: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := Wait(ctx, &scriptedNode{scrapes: scrapes()}, cfg); err == nil || !strings.Contains(err.Error(), "the sync that takes it has not ended") {
		t.Fatalf("within 1 s: %v, want not yet programmed", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	start := time.Now()
	p, err := Wait(ctx, &scriptedNode{scrapes: scrapes()}, cfg)
	if err != nil {
		t.Fatalf("settled: %v", err)
	}
	if took := time.Since(start); took < 2500*time.Millisecond {
		t.Errorf("programmed after %v, before 2 × 250 ms + 2 s without a sync", took)
	}
	if p.Syncs != 1 || !near(p.LastSyncDuration, 250*time.Millisecond) {
		t.Errorf("%+v", p)
	}
}
