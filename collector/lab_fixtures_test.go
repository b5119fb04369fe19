package collector

import (
	"os"
	"reflect"
	"testing"

	"github.com/kpbench/kpbench/runs"
)

// Fixtures under testdata/lab are real output of the kpbench lab
// (kube-proxy v1.36.3, iptables 1.8.9 nf_tables backend, nft, dual-stack)
// with 20 Services of 10 endpoints plus default/kubernetes.

func openLab(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open("testdata/lab/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestLabIPTablesSave(t *testing.T) {
	c, err := ParseIPTablesSave(openLab(t, "iptables-save-nat-20svc.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// 21 Services (20 + kubernetes) → 21 KUBE-SVC chains, 201 KUBE-SEP
	// chains (20×10 + 1); KUBE-SERVICES has one rule per Service port plus
	// the nodeports rule.
	want := IPTablesCounts{Rules: 653, Chains: 231, KubeServices: 22, KubeRules: 650, ServiceChains: 21, EndpointChains: 201}
	got := c
	got.RulesByTable, got.RulesByChain = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("counts = %+v\nwant     %+v", got, want)
	}
	if r := (RuleCounts{IPTables: &c}).RunsRules(); r != (runs.Rules{Total: 653, ChainLength: 22}) {
		t.Errorf("RunsRules = %+v", r)
	}

	// kube-proxy's own count of its IPv4 nat rules, scraped at the same
	// time, is the rules in its KUBE-* chains.
	m, err := ParseKubeProxyMetrics(openLab(t, "kube-proxy-metrics-iptables-20svc.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if own := m.IPTablesRules["IPv4/nat"]; int(own) != c.KubeRules {
		t.Errorf("kube-proxy counts %v IPv4 nat rules, the dump has %d in KUBE-* chains", own, c.KubeRules)
	}
}

func TestLabIPTablesAfterSwitchToNFTables(t *testing.T) {
	// After `kube-proxy --cleanup` and a restart in nftables mode, the
	// iptables side holds only the firewall jumps iptables-nft keeps.
	c, err := ParseIPTablesSave(openLab(t, "iptables-save-after-switch-to-nftables.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Rules != 2 || c.KubeServices != 0 || !reflect.DeepEqual(c.RulesByTable, map[string]int{"mangle": 0, "filter": 2, "nat": 0}) {
		t.Errorf("counts = %+v", c)
	}
}

func TestLabNFTListTable(t *testing.T) {
	c, err := ParseNFTList(openLab(t, "nft-list-table-ip-kube-proxy-20svc.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// v1.36 programs one chain per Service with a single dnat-via-numgen
	// rule (no per-endpoint chains): 15 base chains + 21 Service chains.
	if c.Tables != 1 || c.Chains != 36 || c.Rules != 43 || c.Sets != 3 || c.Maps != 5 {
		t.Errorf("tables %d chains %d rules %d sets %d maps %d; want 1 36 43 3 5", c.Tables, c.Chains, c.Rules, c.Sets, c.Maps)
	}
	const tb = "ip kube-proxy/"
	if c.Elements[tb+"service-ips"] != 21 || c.Elements[tb+"cluster-ips"] != 21 || c.Elements[tb+"nodeport-ips"] != 1 ||
		c.Elements[tb+"hairpin-connections"] != 0 || c.MapElements != 21 || c.SetElements != 22 {
		t.Errorf("elements %v (maps %d, sets %d)", c.Elements, c.MapElements, c.SetElements)
	}
	if c.RulesByChain[tb+"services"] != 3 || c.RulesByChain[tb+"reject-chain"] != 1 || c.RulesByChain[tb+"service-2QRHZV4L-default/kubernetes/tcp/https"] != 1 {
		t.Errorf("rules by chain %v", c.RulesByChain)
	}
	if r := (RuleCounts{NFT: &c}).RunsRules(); r != (runs.Rules{Total: 43, MapElements: 43}) {
		t.Errorf("RunsRules = %+v", r)
	}
}

func TestLabNFTListRuleset(t *testing.T) {
	// The whole ruleset: iptables-nft's tables, and kube-proxy's ip and ip6
	// tables (the ip6 one empty of Services).
	c, err := ParseNFTList(openLab(t, "nft-list-ruleset-20svc.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Tables != 8 || c.Chains != 65 || c.Rules != 67 || c.Sets != 5 || c.Maps != 10 {
		t.Errorf("tables %d chains %d rules %d sets %d maps %d; want 8 65 67 5 10", c.Tables, c.Chains, c.Rules, c.Sets, c.Maps)
	}
	if c.Elements["ip kube-proxy/service-ips"] != 21 || c.Elements["ip6 kube-proxy/service-ips"] != 0 || c.MapElements != 21 || c.SetElements != 22 {
		t.Errorf("elements %v", c.Elements)
	}
}

func TestLabKubeProxyMetrics(t *testing.T) {
	for _, tc := range []struct {
		file                      string
		syncs, full               uint64
		partial                   *uint64
		sum                       float64
		iptablesNAT, iptablesNAT6 float64
		lastSync                  float64
	}{
		// Dual-stack: only the IPv4 family's series count
		// (kubeproxy.Counts); the IPv6 syncs and rules are left out.
		{file: "kube-proxy-metrics-iptables-20svc.txt", syncs: 3, full: 1, partial: ptr(uint64(2)), sum: 0.34117773,
			iptablesNAT: 650, lastSync: 1.7953144200723975e+09},
		// The last sync is the IPv4 family's, not the IPv6 one that
		// ended 0.25 s later.
		{file: "kube-proxy-metrics-nftables-20svc.txt", syncs: 1, full: 1, sum: 0.103355159,
			lastSync: 1.7953144280128105e+09},
	} {
		t.Run(tc.file, func(t *testing.T) {
			m, err := ParseKubeProxyMetrics(openLab(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if m.SyncProxyRules == nil || m.SyncProxyRules.Count != tc.syncs || !near(m.SyncProxyRules.Sum, tc.sum, 1e-9) {
				t.Errorf("sync = %+v, want %d syncs summing %v s", m.SyncProxyRules, tc.syncs, tc.sum)
			}
			if m.SyncFullProxyRules == nil || m.SyncFullProxyRules.Count != tc.full {
				t.Errorf("full syncs = %+v, want %d", m.SyncFullProxyRules, tc.full)
			}
			switch {
			case tc.partial == nil && m.SyncPartialProxyRules != nil:
				t.Errorf("partial syncs = %+v, want none exported", m.SyncPartialProxyRules)
			case tc.partial != nil && (m.SyncPartialProxyRules == nil || m.SyncPartialProxyRules.Count != *tc.partial):
				t.Errorf("partial syncs = %+v, want %d", m.SyncPartialProxyRules, *tc.partial)
			}
			if m.IPTablesRules["IPv4/nat"] != tc.iptablesNAT || m.IPTablesRules["IPv6/nat"] != tc.iptablesNAT6 {
				t.Errorf("iptables rules = %v", m.IPTablesRules)
			}
			if m.LastSyncTimestamp != tc.lastSync || m.ServiceChangesPending != 0 || m.EndpointChangesPending != 0 {
				t.Errorf("last sync %v, pending %v/%v", m.LastSyncTimestamp, m.ServiceChangesPending, m.EndpointChangesPending)
			}
			// Every sync so far is in the window from an empty scrape.
			w, err := KubeProxyDelta(&KubeProxyMetrics{}, m)
			if err != nil || w.Sync.Count != tc.syncs || w.Sync.P50 <= 0 || w.Sync.P99 < w.Sync.P50 {
				t.Errorf("window from nothing = %+v, %v", w.Sync, err)
			}
			if w.NetworkProgramming.Count != 0 {
				t.Errorf("network programming = %+v: no Service changed after kube-proxy started", w.NetworkProgramming)
			}
		})
	}
}

func TestLabKubeProxyMetricsIPv4Only(t *testing.T) {
	// The lab is dual-stack; its Services are IPv4. Keeping the IPv4
	// series leaves out the IPv6 syncs of an empty table.
	m, err := ParseKubeProxyMetrics(openLab(t, "kube-proxy-metrics-iptables-20svc.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if h := m.SyncProxyRules; h.Count != 3 || !near(h.Sum, 0.34117773, 1e-12) {
		t.Errorf("IPv4 syncs = %+v, want 3 summing 0.34117773 s", h)
	}
	if m.SyncFullProxyRules.Count != 1 || !near(m.SyncFullProxyRules.Sum, 0.229542585, 1e-12) || m.SyncPartialProxyRules.Count != 2 {
		t.Errorf("IPv4 full %+v partial %+v", m.SyncFullProxyRules, m.SyncPartialProxyRules)
	}
	if !reflect.DeepEqual(m.IPTablesRules, map[string]float64{"IPv4/nat": 650, "IPv4/filter": 3}) {
		t.Errorf("IPv4 iptables rules = %v", m.IPTablesRules)
	}
	if m.LastSyncTimestamp != 1.7953144200723975e+09 {
		t.Errorf("IPv4 last sync = %v", m.LastSyncTimestamp)
	}
	m, err = ParseKubeProxyMetrics(openLab(t, "kube-proxy-metrics-nftables-20svc.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if h := m.SyncProxyRules; h.Count != 1 || !near(h.Mean(), 0.103355159, 1e-12) {
		t.Errorf("nftables IPv4 syncs = %+v", h)
	}
}

func ptr[T any](v T) *T { return &v }
