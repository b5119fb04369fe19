package kubeproxy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/scenarios"
)

func TestAtLeast(t *testing.T) {
	for _, tt := range []struct {
		version, min string
		want         bool
	}{
		{"6.18.44-fc-v657", "5.13", true},
		{"5.13.0", "5.13", true},
		{"5.12.19", "5.13", false},
		{"4.19.0-26-amd64", "5.13", false},
		{"5.15.0-1051-azure", "5.13", true},
		{"6.1-rc1", "6.2", false},
		{"weird", "5.13", true}, // unreadable: the mode's start will tell
		{"v1.31.2", "v1.31", true},
		{"v1.30.9", "v1.31", false},
		{"v1.36.3", "v1.31", true},
		{"1.31", "v1.31", true},
		{"v2.0.0", "v1.31", true},
		{"", "v1.31", true},
	} {
		if got := AtLeast(tt.version, tt.min); got != tt.want {
			t.Errorf("AtLeast(%q, %q) = %v, want %v", tt.version, tt.min, got, tt.want)
		}
	}
}

func TestIPTablesBackend(t *testing.T) {
	for in, want := range map[string]string{
		"iptables v1.8.9 (nf_tables)\n": "nft",
		"iptables v1.8.7 (legacy)\n":    "legacy",
		"iptables v1.6.1\n":             "legacy", // before 1.8: legacy only
		"bash: iptables: not found":     "",
		"":                              "",
	} {
		if got := IPTablesBackend([]byte(in)); got != want {
			t.Errorf("IPTablesBackend(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseProxyMode(t *testing.T) {
	for _, tc := range []struct {
		body string
		want scenarios.Mode
		bad  bool
	}{
		{body: "iptables", want: scenarios.ModeIPTables},
		{body: "ipvs\n", want: scenarios.ModeIPVS},
		{body: " nftables ", want: scenarios.ModeNFTables},
		{body: "kernelspace", bad: true},
		{body: "", bad: true},
		{body: "<html>404 page not found</html>", bad: true},
	} {
		got, err := ParseProxyMode([]byte(tc.body))
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("ParseProxyMode(%q) = %q, %v", tc.body, got, err)
		}
		if tc.bad && !errors.Is(err, ErrUnknownProxyMode) {
			t.Errorf("ParseProxyMode(%q) error %v, want ErrUnknownProxyMode", tc.body, err)
		}
	}
}

func TestLastSyncIsOneRule(t *testing.T) {
	for _, tc := range []struct {
		name   string
		series []Series
		want   float64
	}{
		{"unlabelled", []Series{{Value: 100}}, 100},
		{"dual stack: the IPv4 family's", []Series{{IPFamily: "IPv6", Value: 200}, {IPFamily: "IPv4", Value: 100}}, 100},
		{"no IPv4 series: the oldest", []Series{{IPFamily: "IPv6", Value: 200}, {IPFamily: "X", Value: 150}}, 150},
		{"before the first sync", []Series{{IPFamily: "IPv4", Value: 0}}, 0},
		{"no series", nil, 0},
	} {
		if got := LastSync(tc.series); got != tc.want {
			t.Errorf("%s: LastSync = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// node answers /proxyMode and the rule listings like a client node.
type node struct {
	mode  string
	out   map[string]string // first word of the command -> stdout
	fails map[string]bool
}

func (n node) get(_ context.Context, path string) ([]byte, error) {
	if path != "/proxyMode" {
		return nil, errors.New("404")
	}
	return []byte(n.mode + "\n"), nil
}

func (n node) run(_ context.Context, args ...string) ([]byte, error) {
	key := strings.Join(args, " ")
	if n.fails[args[0]] {
		return nil, errors.New(key + ": exit status 1")
	}
	return []byte(n.out[args[0]]), nil
}

func TestVerify(t *testing.T) {
	ok := map[string]string{
		"iptables-save": "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n",
		"nft":           "table ip kube-proxy {\n\tchain services {\n\t}\n}\n",
		"ip":            "5: kube-ipvs0: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN\n    inet 198.19.0.1/32 scope global kube-ipvs0\n",
	}
	for _, tc := range []struct {
		name     string
		n        node
		mode     scenarios.Mode
		want     string // "" = passes
		mismatch bool
	}{
		{name: "iptables", n: node{mode: "iptables", out: ok}, mode: scenarios.ModeIPTables},
		{name: "nftables", n: node{mode: "nftables", out: ok}, mode: scenarios.ModeNFTables},
		{name: "ipvs", n: node{mode: "ipvs", out: ok}, mode: scenarios.ModeIPVS},
		{name: "another mode", n: node{mode: "iptables", out: ok}, mode: scenarios.ModeNFTables, want: `kube-proxy reports "iptables", want "nftables"`, mismatch: true},
		{name: "no chain yet", n: node{mode: "iptables", out: map[string]string{"iptables-save": "*nat\nCOMMIT\n"}}, mode: scenarios.ModeIPTables,
			want: "no KUBE-SERVICES chain in the nat table yet", mismatch: true},
		{name: "ipvs without kube-ipvs0", n: node{mode: "ipvs", out: ok, fails: map[string]bool{"ip": true}}, mode: scenarios.ModeIPVS,
			want: "no kube-ipvs0 device with a Service address yet", mismatch: true},
		{name: "ipvs before the first sync", n: node{mode: "ipvs", out: map[string]string{"iptables-save": ok["iptables-save"],
			"ip": "5: kube-ipvs0: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN\n"}}, mode: scenarios.ModeIPVS,
			want: "no kube-ipvs0 device with a Service address yet", mismatch: true},
		{name: "no nftables table", n: node{mode: "nftables", out: ok, fails: map[string]bool{"nft": true}}, mode: scenarios.ModeNFTables,
			want: "no services chain in nftables table ip kube-proxy yet", mismatch: true},
		{name: "external has no rules", n: node{mode: "", out: ok}, mode: scenarios.ModeExternal, want: "want \"external\"", mismatch: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(context.Background(), tc.n.get, tc.n.run, tc.mode)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if tc.mismatch != errors.Is(err, ErrModeMismatch) {
				t.Errorf("errors.Is(err, ErrModeMismatch) = %v, want %v", !tc.mismatch, tc.mismatch)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	look := func(missing ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			for _, m := range missing {
				if m == name {
					return "", errors.New("not found")
				}
			}
			return "/usr/sbin/" + name, nil
		}
	}
	noIPVS := func() (bool, string) { return false, "kernel 6.18 has no IP_VS" }
	withIPVS := func() (bool, string) { return true, "" }
	for _, tc := range []struct {
		mode scenarios.Mode
		host Host
		want string // "" = available
	}{
		{scenarios.ModeIPTables, Host{LookPath: look(), KernelRelease: "4.19.0"}, ""},
		{scenarios.ModeIPTables, Host{LookPath: look("iptables-restore")}, "missing iptables-restore"},
		{scenarios.ModeNFTables, Host{LookPath: look(), KernelRelease: "6.1.0"}, ""},
		{scenarios.ModeNFTables, Host{LookPath: look(), KernelRelease: "5.10.0"}, "older than 5.13"},
		{scenarios.ModeNFTables, Host{LookPath: look("nft"), KernelRelease: "5.10.0"}, "missing nft"},
		{scenarios.ModeIPVS, Host{LookPath: look(), IPVS: noIPVS}, "has no IP_VS"},
		{scenarios.ModeIPVS, Host{LookPath: look("ipset"), IPVS: withIPVS}, "missing ipset"},
		{scenarios.ModeIPVS, Host{LookPath: look(), IPVS: withIPVS}, ""},
	} {
		m, ok := For(tc.mode)
		if !ok {
			t.Fatalf("no descriptor for %s", tc.mode)
		}
		got := m.Unavailable(tc.host)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s on %+v: Unavailable = %q, want %q", tc.mode, tc.host.KernelRelease, got, tc.want)
		}
	}
	nft, _ := For(scenarios.ModeNFTables)
	if got := nft.KubeProxyTooOld("v1.30.2"); !strings.Contains(got, "needs kube-proxy v1.31 or later (this one is v1.30.2)") {
		t.Errorf("KubeProxyTooOld(v1.30.2) = %q", got)
	}
	if got := nft.KubeProxyTooOld("v1.33.1"); got != "" {
		t.Errorf("KubeProxyTooOld(v1.33.1) = %q", got)
	}
	if _, ok := For(scenarios.ModeExternal); ok {
		t.Error("external has a kube-proxy descriptor")
	}
}

func TestEveryModeIsDescribed(t *testing.T) {
	for _, mode := range scenarios.Modes {
		m, ok := For(mode)
		if !ok || m.Name != mode || len(m.Tools) == 0 || len(m.Present) == 0 || len(m.List) == 0 || m.Depth.Where == "" {
			t.Errorf("%s: incomplete descriptor %+v", mode, m)
		}
	}
	ipt, _ := For(scenarios.ModeIPTables)
	ipt.List[0] = "changed"
	if again, _ := For(scenarios.ModeIPTables); again.List[0] != "iptables-save" {
		t.Error("For hands out the table's own slices")
	}
}

func TestIPVSVirtualServers(t *testing.T) {
	table := "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n" +
		"TCP  0A600001:01BB rr\n  -> AC120003:1A0A      Masq    1      0          0\nUDP  0A60000A:0035 rr\nSCTP 0A600002:0050 rr\nFWM  00000001 rr\n"
	if n := IPVSVirtualServers(table); n != 4 {
		t.Errorf("IPVSVirtualServers = %d, want 4 (TCP, UDP, SCTP, FWM)", n)
	}
	if n := IPVSVirtualServers("IP Virtual Server version 1.2.1 (size=4096)\n"); n != 0 {
		t.Errorf("empty table: %d", n)
	}
}
