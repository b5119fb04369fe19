package kubeproxy

import "math"

// kube-proxy's metric names (pkg/proxy/metrics), the ones kpbench reads.
const (
	MetricSyncProxyRules         = "kubeproxy_sync_proxy_rules_duration_seconds"
	MetricSyncFullProxyRules     = "kubeproxy_sync_full_proxy_rules_duration_seconds"
	MetricSyncPartialProxyRules  = "kubeproxy_sync_partial_proxy_rules_duration_seconds"
	MetricNetworkProgramming     = "kubeproxy_network_programming_duration_seconds"
	MetricLastSyncTimestamp      = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
	MetricLastQueuedTimestamp    = "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds"
	MetricServiceChangesPending  = "kubeproxy_sync_proxy_rules_service_changes_pending"
	MetricEndpointChangesPending = "kubeproxy_sync_proxy_rules_endpoint_changes_pending"
	MetricIPTablesTotal          = "kubeproxy_sync_proxy_rules_iptables_total"
)

// LabelIPFamily is the label newer kube-proxies put on per-family series
// ("IPv4", "IPv6").
const LabelIPFamily = "ip_family"

// Family is the IP family kpbench measures: its synthetic Services, and
// so its load, are IPv4.
const Family = "IPv4"

// Counts is the one rule for a dual-stack kube-proxy, whose IPv4 and IPv6
// proxiers sync separately and label their series with ip_family: a
// series counts when it is unlabelled (single-stack) or of Family. Summing
// both families would count each change's syncs twice and let the IPv6
// proxier's sync stand for the IPv4 rules the load goes through.
func Counts(family string, labelled bool) bool { return !labelled || family == Family }

// Series is one series of a kube-proxy gauge: its ip_family label ("" when
// unlabelled) and value.
type Series struct {
	IPFamily string
	Value    float64
}

// LastSync is the one rule for when kube-proxy last synced, from the
// series of MetricLastSyncTimestamp (Unix seconds): the IPv4 family's when
// there is one, since kpbench's Services are IPv4; else the oldest, so a
// dual-stack proxy has synced only when both families have. 0 when there
// is no series or no sync yet.
func LastSync(series []Series) float64 {
	oldest, ipv4 := math.Inf(1), math.NaN()
	for _, s := range series {
		oldest = math.Min(oldest, s.Value)
		if s.IPFamily == "IPv4" {
			ipv4 = s.Value
		}
	}
	ts := oldest
	if !math.IsNaN(ipv4) {
		ts = ipv4
	}
	if ts <= 0 || math.IsInf(ts, 0) || math.IsNaN(ts) {
		return 0
	}
	return ts
}
