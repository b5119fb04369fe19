package scaler

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/kpbench/kpbench/collector"
)

// dualStack is a dual-stack kube-proxy's /metrics: each family's proxier
// syncs on its own, v4Syncs and v6Syncs times so far, the IPv4 one with
// v4Pending changes still to write.
func dualStack(v4Syncs, v6Syncs int, v4Pending float64) []byte {
	return fmt.Appendf(nil, `# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv4",le="+Inf"} %d
kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family="IPv4"} %g
kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv4"} %d
kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family="IPv6",le="+Inf"} %d
kubeproxy_sync_proxy_rules_duration_seconds_sum{ip_family="IPv6"} %g
kubeproxy_sync_proxy_rules_duration_seconds_count{ip_family="IPv6"} %d
# TYPE kubeproxy_sync_proxy_rules_last_timestamp_seconds gauge
kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} %d
kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv6"} %d
# TYPE kubeproxy_sync_proxy_rules_service_changes_pending gauge
kubeproxy_sync_proxy_rules_service_changes_pending{ip_family="IPv4"} %g
kubeproxy_sync_proxy_rules_service_changes_pending{ip_family="IPv6"} 0
# TYPE kubeproxy_sync_proxy_rules_endpoint_changes_pending gauge
kubeproxy_sync_proxy_rules_endpoint_changes_pending{ip_family="IPv4"} 0
kubeproxy_sync_proxy_rules_endpoint_changes_pending{ip_family="IPv6"} 0
`, v4Syncs, 0.1*float64(v4Syncs), v4Syncs, v6Syncs, 0.2*float64(v6Syncs), v6Syncs,
		1000+v4Syncs, 2000+v6Syncs, v4Pending)
}

// TestScalerAndCollectorAgreeOnSyncedDualStack: on a dual-stack
// kube-proxy the scaler's "programmed" state and the collector's syncs
// read the same series, so they agree on whether and when kube-proxy
// synced: an IPv6 sync alone is not the IPv4 rules the load uses.
func TestScalerAndCollectorAgreeOnSyncedDualStack(t *testing.T) {
	lab, err := os.ReadFile("../collector/testdata/lab/kube-proxy-metrics-nftables-20svc.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"lab fixture", lab},
		{"synced", dualStack(3, 3, 0)},
		{"IPv6 synced, IPv4 pending", dualStack(3, 4, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := ParseSyncState(tc.body)
			if err != nil {
				t.Fatal(err)
			}
			m, err := collector.ParseKubeProxyMetrics(bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if st.Syncs != m.SyncProxyRules.Count || st.SyncSeconds != m.SyncProxyRules.Sum || !st.LastSync.Equal(m.LastSync()) ||
				st.Pending() != m.ServiceChangesPending+m.EndpointChangesPending {
				t.Errorf("scaler %+v, collector syncs %+v, last %v, pending %v/%v", st, m.SyncProxyRules, m.LastSync(), m.ServiceChangesPending, m.EndpointChangesPending)
			}
		})
	}
	// From "synced" to an IPv6-only sync: neither counts a sync, and the
	// scaler still sees the IPv4 change pending; then the IPv4 proxier
	// syncs and both count one.
	base, _ := ParseSyncState(dualStack(3, 3, 0))
	b0, _ := collector.ParseKubeProxyMetrics(bytes.NewReader(dualStack(3, 3, 0)))
	for _, step := range []struct {
		body    []byte
		syncs   uint64
		pending float64
	}{
		{dualStack(3, 4, 1), 0, 1},
		{dualStack(4, 4, 0), 1, 0},
	} {
		st, _ := ParseSyncState(step.body)
		m, _ := collector.ParseKubeProxyMetrics(bytes.NewReader(step.body))
		w, err := collector.KubeProxyDelta(b0, m)
		if err != nil {
			t.Fatal(err)
		}
		if st.Syncs-base.Syncs != step.syncs || w.Sync.Count != step.syncs || st.Pending() != step.pending {
			t.Errorf("scaler: %d syncs, %v pending; collector: %d syncs; want %d syncs and %v pending",
				st.Syncs-base.Syncs, st.Pending(), w.Sync.Count, step.syncs, step.pending)
		}
	}
}
