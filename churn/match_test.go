package churn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/scenarios"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func labFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../collector/testdata/lab/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The chain names kube-proxy v1.36's own tests expect
// (pkg/proxy/iptables/proxier_test.go, pkg/proxy/nftables/proxier_test.go)
// and those in the lab's real rules.
func TestChainNamesAreKubeProxys(t *testing.T) {
	ns1 := ServiceRef{Namespace: "ns1", Name: "svc1", PortName: "p80", Protocol: "TCP"}
	for _, tc := range []struct{ got, want string }{
		{IPTablesServiceChain(ns1), "KUBE-SVC-XPGD46QRK7WJZT7O"},
		{IPTablesServiceChain(ServiceRef{Namespace: "ns2", Name: "svc2", PortName: "p80"}), "KUBE-SVC-GNZBNJ2PO5MGZ6GT"},
		{IPTablesEndpointChain(ns1, "10.180.0.1:80"), "KUBE-SEP-SXIVWICOYRO3J4NJ"},
		{IPTablesEndpointChain(ns1, "10.0.0.0:80"), "KUBE-SEP-DKGQUZGBKLTPAR56"},
		{IPTablesEndpointChain(ServiceRef{Namespace: "ns3", Name: "svc3", PortName: "p8081"}, "203.0.113.4:8081"), "KUBE-SEP-RUVVH7YV3PHQBDOS"},
		{NFTServiceChain(ns1), "service-ULMVA6XW-ns1/svc1/tcp/p80"},
		{NFTServiceChain(ServiceRef{Namespace: "ns5", Name: "svc5", PortName: "p80"}), "service-HVFWP5L3-ns5/svc5/tcp/p80"},
		// The lab's real dumps (kube-proxy v1.36.3).
		{IPTablesServiceChain(ServiceRef{Namespace: "kpbench-fixture", Name: "svc-006", PortName: "http"}), "KUBE-SVC-TOPYST43CYXH7VBE"},
		{IPTablesEndpointChain(ServiceRef{Namespace: "kpbench-fixture", Name: "svc-006", PortName: "http"}, "198.18.1.10:80"), "KUBE-SEP-GZS26CK6PIJ2WO6O"},
		{NFTServiceChain(ServiceRef{Namespace: "kpbench-fixture", Name: "svc-007", PortName: "http"}), "service-RJLTX2XU-kpbench-fixture/svc-007/tcp/http"},
		{NFTServiceChain(ServiceRef{Namespace: "default", Name: "kubernetes", PortName: "https"}), "service-2QRHZV4L-default/kubernetes/tcp/https"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
	// Every KUBE-SVC chain of the lab's dump is the hash of the Service
	// its KUBE-SERVICES comment names.
	svcs, err := ParseIPTablesServices(labFixture(t, "iptables-save-nat-20svc.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 21 {
		t.Fatalf("%d ClusterIP rules, want 21 (20 Services and kubernetes)", len(svcs))
	}
	dump := string(labFixture(t, "iptables-save-nat-20svc.txt"))
	for i := 0; i < 20; i++ {
		ref := ServiceRef{Namespace: "kpbench-fixture", Name: "svc-" + pad3(i), PortName: "http"}
		if !strings.Contains(dump, `--comment "kpbench-fixture/svc-`+pad3(i)+`:http cluster IP" -m tcp --dport 80 -j `+IPTablesServiceChain(ref)) {
			t.Errorf("%s: no KUBE-SERVICES rule to %s", ref.portName(), IPTablesServiceChain(ref))
		}
	}
}

func pad3(i int) string { return fmt.Sprintf("%03d", i) }

func TestParseIPTables(t *testing.T) {
	svcs, err := ParseIPTablesServices(fixture(t, "ipt-S-KUBE-SERVICES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := svcs["198.19.224.16:80/tcp"]; got != "KUBE-SVC-TOPYST43CYXH7VBE" {
		t.Errorf("svc-006's ClusterIP goes to %q", got)
	}
	if got := svcs["198.19.0.1:443/tcp"]; got == "" {
		t.Error("no rule for the kubernetes Service")
	}
	// kube-proxy's own restore input (its tests' expectations): matches
	// before the destination, no /32.
	kp := "*nat\n:KUBE-SERVICES - [0:0]\n" +
		`-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 10.20.30.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O` + "\n" +
		`-A KUBE-SERVICES -m comment --comment "ns2/svc2:p53 cluster IP" -m udp -p udp -d 10.20.30.42 --dport 53 -j KUBE-SVC-IBUBGP27PW3R7ONJ` + "\nCOMMIT\n"
	m, err := ParseIPTablesServices([]byte(kp))
	if err != nil || m["10.20.30.41:80/tcp"] != "KUBE-SVC-XPGD46QRK7WJZT7O" || m["10.20.30.42:53/udp"] != IPTablesServiceChain(ServiceRef{Namespace: "ns2", Name: "svc2", PortName: "p53", Protocol: "UDP"}) {
		t.Errorf("kube-proxy's restore format: %v, %v", m, err)
	}
	if _, err := ParseIPTablesServices([]byte("-N KUBE-NODEPORTS\n")); !errors.Is(err, ErrRules) {
		t.Errorf("a listing of another chain: %v", err)
	}

	jumps, err := ParseIPTablesServiceChain(fixture(t, "ipt-S-svc006.txt"), "KUBE-SVC-TOPYST43CYXH7VBE")
	if err != nil {
		t.Fatal(err)
	}
	if len(jumps) != 10 || jumps[0] != (IPTablesJump{Chain: "KUBE-SEP-GZS26CK6PIJ2WO6O", Endpoint: "198.18.1.10:80"}) {
		t.Errorf("jumps %+v", jumps)
	}
	ep, err := ParseIPTablesEndpointChain(fixture(t, "ipt-S-sep.txt"), "KUBE-SEP-GZS26CK6PIJ2WO6O")
	if err != nil || ep != "198.18.1.10:80" {
		t.Errorf("endpoint %q, %v", ep, err)
	}

	// Large cluster mode (no comments) and session affinity (two rules
	// per endpoint).
	chains := fixture(t, "ipt-S-synth-chains.txt")
	jumps, err = ParseIPTablesServiceChain(chains, "KUBE-SVC-3WR6BDTCWX2RGXJC")
	if err != nil {
		t.Fatal(err)
	}
	want := []IPTablesJump{{Chain: "KUBE-SEP-QRN3LSAGA63CADGN"}, {Chain: "KUBE-SEP-X2UUEHY3VTQUSKVQ"}, {Chain: "KUBE-SEP-27OSR6MZMMHQEOG2"}}
	if !reflect.DeepEqual(jumps, want) {
		t.Errorf("large cluster mode jumps %+v", jumps)
	}
	jumps, err = ParseIPTablesServiceChain(chains, "KUBE-SVC-P2ENLBZ2XWKPSZSR")
	if err != nil || len(jumps) != 2 || jumps[1].Endpoint != "198.18.1.5:8080" {
		t.Errorf("affinity jumps %+v, %v", jumps, err)
	}
	if ep, err := ParseIPTablesEndpointChain(chains, "KUBE-SEP-4QQFPI7XO65BBWEX"); err != nil || ep != "198.18.1.5:8080" {
		t.Errorf("affinity endpoint %q, %v", ep, err)
	}
	if _, err := ParseIPTablesServiceChain(chains, "KUBE-SVC-NOTTHERE"); !errors.Is(err, ErrRules) {
		t.Errorf("a listing without the chain: %v", err)
	}
}

func TestParseNFT(t *testing.T) {
	for _, f := range []string{"nft-list-map.txt", "../../collector/testdata/lab/nft-list-table-ip-kube-proxy-20svc.txt"} {
		m, err := ParseNFTServiceIPs(fixture(t, f))
		if err != nil {
			t.Fatal(f, err)
		}
		if len(m) != 21 || m["198.19.224.16:80/tcp"] != "service-3QNQWBMA-kpbench-fixture/svc-006/tcp/http" {
			t.Errorf("%s: %d elements, svc-006 → %q", f, len(m), m["198.19.224.16:80/tcp"])
		}
	}
	m, err := ParseNFTServiceIPs(fixture(t, "nft-get-element.txt"))
	if err != nil || len(m) != 1 {
		t.Errorf("get element: %v, %v", m, err)
	}
	m, err = ParseNFTServiceIPs(fixture(t, "nft-list-map-after-delete.txt"))
	if err != nil || len(m) != 20 || m["198.19.224.16:80/tcp"] != "" {
		t.Errorf("after the element's deletion: %d elements, %v", len(m), err)
	}
	if _, err := ParseNFTServiceIPs([]byte("table ip kube-proxy {\n}\n")); !errors.Is(err, ErrRules) {
		t.Errorf("no map: %v", err)
	}

	eps, err := ParseNFTServiceChain(fixture(t, "nft-list-chain.txt"), "service-3QNQWBMA-kpbench-fixture/svc-006/tcp/http")
	if err != nil || len(eps) != 10 || eps[0] != "198.18.1.10:80" || eps[9] != "198.18.1.9:80" {
		t.Errorf("endpoints %v, %v", eps, err)
	}
	eps, err = ParseNFTServiceChain(fixture(t, "nft-list-chain-flushed.txt"), "service-3QNQWBMA-kpbench-fixture/svc-006/tcp/http")
	if err != nil || len(eps) != 0 {
		t.Errorf("flushed chain: %v, %v", eps, err)
	}
	eps, err = ParseNFTServiceChain(fixture(t, "nft-list-chain-affinity.txt"), "service-HVFWP5L3-ns5/svc5/tcp/p80")
	if err != nil || !reflect.DeepEqual(eps, []string{"10.180.0.3:80", "10.180.0.4:80"}) {
		t.Errorf("affinity endpoints %v, %v", eps, err)
	}
	eps, err = ParseNFTServiceChain(fixture(t, "nft-list-chain-ns1svc1.txt"), "service-ULMVA6XW-ns1/svc1/tcp/p80")
	if err != nil || !reflect.DeepEqual(eps, []string{"10.180.0.1:80"}) {
		t.Errorf("one endpoint %v, %v", eps, err)
	}
	if _, err := ParseNFTServiceChain(fixture(t, "nft-list-chain.txt"), "service-OTHER"); !errors.Is(err, ErrRules) {
		t.Errorf("another chain: %v", err)
	}
	truncated := fixture(t, "nft-list-chain.txt")
	truncated = truncated[:len(truncated)-6]
	if _, err := ParseNFTServiceChain(truncated, "service-3QNQWBMA-kpbench-fixture/svc-006/tcp/http"); !errors.Is(err, ErrRules) {
		t.Errorf("truncated listing: %v", err)
	}
}

func TestParseIPVS(t *testing.T) {
	out := "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  198.19.0.11:80 rr\n  -> 198.18.1.1:80                Masq    1      0          0\n  -> 198.18.1.2:80                Masq    0      3          1\n"
	eps, err := ParseIPVSService([]byte(out))
	if err != nil || !reflect.DeepEqual(eps, []string{"198.18.1.1:80"}) {
		t.Errorf("real servers of weight > 0: %v, %v", eps, err)
	}
	if _, err := ParseIPVSService([]byte("IP Virtual Server version 1.2.1 (size=4096)\n")); !errors.Is(err, ErrRules) {
		t.Errorf("no virtual server: %v", err)
	}
}

// node answers the commands a NodeReader runs from canned outputs.
type node struct {
	out  map[string][]byte // command line (without the prefix) → stdout
	errs map[string]string // command line → error text
	ran  []string
}

func (n *node) run(_ context.Context, args ...string) ([]byte, error) {
	line := strings.Join(args, " ")
	n.ran = append(n.ran, line)
	cmd, ok := strings.CutPrefix(line, "nice -n 19 ")
	if !ok {
		return nil, errors.New("not run at low priority: " + line)
	}
	if e, ok := n.errs[cmd]; ok {
		return nil, errors.New(cmd + ": exit status 1: " + e)
	}
	if o, ok := n.out[cmd]; ok {
		return o, nil
	}
	return nil, errors.New(cmd + ": exit status 2: unexpected command")
}

func TestNodeReaderIPTables(t *testing.T) {
	svcs := fixture(t, "ipt-S-KUBE-SERVICES.txt")
	n := &node{out: map[string][]byte{
		"iptables -w -t nat -S KUBE-SERVICES":             svcs,
		"iptables -w -t nat -S KUBE-SVC-TOPYST43CYXH7VBE": fixture(t, "ipt-S-svc006.txt"),
	}}
	r, err := NewNodeReader(scenarios.ModeIPTables, n.run, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	svc006 := ServiceRef{Namespace: "kpbench-fixture", Name: "svc-006", ClusterIP: "198.19.224.16", Port: 80, PortName: "http"}
	got, err := r.Read(ctx, svc006)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Present || len(got.Endpoints) != 10 || got.Endpoints[0] != "198.18.1.10:80" {
		t.Errorf("svc-006: %+v", got)
	}
	// A Service without a ClusterIP rule reads absent, from the same
	// listing: no command runs.
	before := len(n.ran)
	gone := svc006
	gone.ClusterIP = "198.19.224.99"
	if got, err := r.Read(ctx, gone); err != nil || got.Present {
		t.Errorf("absent Service: %+v, %v", got, err)
	}
	if len(n.ran) != before {
		t.Errorf("the round's listing was read again: %v", n.ran[before:])
	}
	// The wrong port name: the chain is not kube-proxy's name for it.
	wrong := svc006
	wrong.PortName = ""
	if _, err := r.Read(ctx, wrong); !errors.Is(err, ErrRules) || !strings.Contains(err.Error(), "KUBE-SVC-TOPYST43CYXH7VBE") {
		t.Errorf("wrong port name: %v", err)
	}
	// The next round lists KUBE-SERVICES again; the chain has gone since
	// (iptables-nft 1.8.9's words for a missing chain).
	r.StartRound()
	n.errs = map[string]string{"iptables -w -t nat -S KUBE-SVC-TOPYST43CYXH7VBE": "iptables v1.8.9 (nf_tables): chain `KUBE-SVC-TOPYST43CYXH7VBE' in table `nat' is incompatible, use 'nft' tool."}
	if got, err := r.Read(ctx, svc006); err != nil || got.Present {
		t.Errorf("chain deleted after the listing: %+v, %v", got, err)
	}
	cost := r.Cost()
	if cost[CommandServices].Count != 2 || cost[CommandServiceChain].Count != 2 || cost[CommandServiceChain].Errors != 1 ||
		cost[CommandServices].Bytes != 2*int64(len(svcs)) {
		t.Errorf("cost %+v", cost)
	}
	// A failure to run is an error, not an absent Service.
	r.StartRound()
	n.errs = map[string]string{"iptables -w -t nat -S KUBE-SERVICES": "Another app is currently holding the xtables lock"}
	if _, err := r.Read(ctx, svc006); err == nil {
		t.Error("a failed listing read as a result")
	}
}

func TestNodeReaderIPTablesLargeCluster(t *testing.T) {
	chains := string(fixture(t, "ipt-S-synth-chains.txt"))
	chain := func(name string) []byte {
		var b strings.Builder
		for _, l := range strings.Split(chains, "\n") {
			if strings.HasPrefix(l, "-N "+name) || strings.HasPrefix(l, "-A "+name+" ") {
				b.WriteString(l + "\n")
			}
		}
		return []byte(b.String())
	}
	n := &node{out: map[string][]byte{"iptables -w -t nat -S KUBE-SERVICES": fixture(t, "ipt-S-KUBE-SERVICES-synth.txt")}}
	for _, c := range []string{"KUBE-SVC-3WR6BDTCWX2RGXJC", "KUBE-SEP-QRN3LSAGA63CADGN", "KUBE-SEP-X2UUEHY3VTQUSKVQ", "KUBE-SEP-27OSR6MZMMHQEOG2"} {
		n.out["iptables -w -t nat -S "+c] = chain(c)
	}
	r, _ := NewNodeReader(scenarios.ModeIPTables, n.run, ReaderOptions{})
	svc := ServiceRef{Namespace: "kpbench", Name: "kpb-svc-00001", ClusterIP: "198.19.0.11", Port: 80}
	want := []string{"198.18.1.1:80", "198.18.1.2:80", "198.18.1.3:80"}
	for round := 0; round < 2; round++ {
		r.StartRound()
		got, err := r.Read(context.Background(), svc)
		if err != nil || !got.Present || !reflect.DeepEqual(got.Endpoints, want) {
			t.Fatalf("round %d: %+v, %v", round, got, err)
		}
	}
	// Each endpoint chain was read once: its name is a hash of the
	// endpoint, so what it DNATs to never changes.
	if c := r.Cost()[CommandEndpointChain]; c.Count != 3 {
		t.Errorf("endpoint chains read %d times, want 3", c.Count)
	}
	// An endpoint chain whose DNAT does not hash to its name is not
	// kube-proxy's.
	n.out["iptables -w -t nat -S KUBE-SEP-QRN3LSAGA63CADGN"] = []byte("-N KUBE-SEP-QRN3LSAGA63CADGN\n-A KUBE-SEP-QRN3LSAGA63CADGN -p tcp -m tcp -j DNAT --to-destination 198.18.9.9:80\n")
	r2, _ := NewNodeReader(scenarios.ModeIPTables, n.run, ReaderOptions{})
	if _, err := r2.Read(context.Background(), svc); !errors.Is(err, ErrRules) {
		t.Errorf("endpoint chain of another endpoint: %v", err)
	}
}

func TestNodeReaderNFT(t *testing.T) {
	chain := "service-3QNQWBMA-kpbench-fixture/svc-006/tcp/http"
	n := &node{out: map[string][]byte{
		"nft list map ip kube-proxy service-ips": fixture(t, "nft-list-map.txt"),
		"nft list chain ip kube-proxy " + chain:  fixture(t, "nft-list-chain.txt"),
	}}
	r, _ := NewNodeReader(scenarios.ModeNFTables, n.run, ReaderOptions{})
	ctx := context.Background()
	svc := ServiceRef{Namespace: "kpbench-fixture", Name: "svc-006", ClusterIP: "198.19.224.16", Port: 80, PortName: "http"}
	got, err := r.Read(ctx, svc)
	if err != nil || !got.Present || len(got.Endpoints) != 10 {
		t.Fatalf("svc-006: %+v, %v", got, err)
	}
	// Endpoints to zero, as kube-proxy leaves it: the element gone, the
	// chain flushed.
	r.StartRound()
	n.out["nft list map ip kube-proxy service-ips"] = fixture(t, "nft-list-map-after-delete.txt")
	n.out["nft list chain ip kube-proxy "+chain] = fixture(t, "nft-list-chain-flushed.txt")
	if got, err := r.Read(ctx, svc); err != nil || got.Present {
		t.Errorf("after to-zero: %+v, %v", got, err)
	}
	// The element still there but the chain flushed by a sync in between.
	r.StartRound()
	n.out["nft list map ip kube-proxy service-ips"] = fixture(t, "nft-list-map.txt")
	if got, err := r.Read(ctx, svc); err != nil || got.Present {
		t.Errorf("flushed chain: %+v, %v", got, err)
	}
	// No kube-proxy table at all: nothing is programmed.
	r.StartRound()
	n.errs = map[string]string{"nft list map ip kube-proxy service-ips": "Error: No such file or directory\nlist map ip kube-proxy service-ips\n            ^^^^^^^^^^"}
	if got, err := r.Read(ctx, svc); err != nil || got.Present {
		t.Errorf("no table: %+v, %v", got, err)
	}
	if _, err := NewNodeReader(scenarios.ModeExternal, n.run, ReaderOptions{}); err == nil {
		t.Error("a reader for external mode")
	}
}

func TestNodeReaderIPVSAndPrefix(t *testing.T) {
	var ran [][]string
	run := func(_ context.Context, args ...string) ([]byte, error) {
		ran = append(ran, args)
		if args[len(args)-1] == "198.19.0.99:80" {
			return nil, errors.New("exit status 1: Memory allocation problem? No such service")
		}
		return []byte("Prot LocalAddress:Port Scheduler Flags\nTCP  198.19.0.11:80 rr\n  -> 198.18.1.1:80  Masq  1  0  0\n"), nil
	}
	clock := time.Unix(1000, 0)
	now := func() time.Time { clock = clock.Add(3 * time.Millisecond); return clock }
	r, _ := NewNodeReader(scenarios.ModeIPVS, run, ReaderOptions{Prefix: []string{}, Now: now})
	got, err := r.Read(context.Background(), ServiceRef{ClusterIP: "198.19.0.11", Port: 80})
	if err != nil || !reflect.DeepEqual(got, ServiceRules{Present: true, Endpoints: []string{"198.18.1.1:80"}}) {
		t.Errorf("ipvs: %+v, %v", got, err)
	}
	if got, err := r.Read(context.Background(), ServiceRef{ClusterIP: "198.19.0.99", Port: 80}); err != nil || got.Present {
		t.Errorf("no virtual server: %+v, %v", got, err)
	}
	if !reflect.DeepEqual(ran[0], []string{"ipvsadm", "-Ln", "-t", "198.19.0.11:80"}) {
		t.Errorf("ran %q (an empty prefix runs the tool directly)", ran[0])
	}
	if c := r.Cost()[CommandServiceChain]; c.Count != 2 || c.Seconds < 0.0059 || c.Seconds > 0.0061 || c.MaxSeconds < 0.0029 || c.Mean() < 0.0029 {
		t.Errorf("cost %+v", c)
	}
}

func TestCheckReader(t *testing.T) {
	n := &node{out: map[string][]byte{
		"nft list map ip kube-proxy service-ips":                                         fixture(t, "nft-list-map.txt"),
		"nft list chain ip kube-proxy service-3QNQWBMA-kpbench-fixture/svc-006/tcp/http": fixture(t, "nft-list-chain.txt"),
	}}
	r, _ := NewNodeReader(scenarios.ModeNFTables, n.run, ReaderOptions{})
	ok := ServiceRef{Namespace: "kpbench-fixture", Name: "svc-006", ClusterIP: "198.19.224.16", Port: 80, PortName: "http"}
	if err := CheckReader(context.Background(), r, []ServiceRef{ok}); err != nil {
		t.Fatal(err)
	}
	unnamed := ok
	unnamed.PortName = ""
	gone := ok
	gone.ClusterIP = "198.19.9.9"
	err := CheckReader(context.Background(), r, []ServiceRef{ok, unnamed, gone})
	if err == nil || !strings.Contains(err.Error(), "2 of 3") || !strings.Contains(err.Error(), "198.19.9.9") ||
		!strings.Contains(err.Error(), "kube-proxy's cluster-policy chain") {
		t.Errorf("err = %v, want both problems named", err)
	}
}

// A round that reads several Services' chains in nftables mode dumps the
// table once and answers every read of the round, the listing included,
// from it; a round of fewer reads lists chain by chain.
func TestNodeReaderNFTTableDump(t *testing.T) {
	chain := "service-3QNQWBMA-kpbench-fixture/svc-006/tcp/http"
	inner := func(name string) string {
		lines := strings.Split(strings.TrimRight(string(fixture(t, name)), "\n"), "\n")
		return strings.Join(lines[1:len(lines)-1], "\n") // without "table ip kube-proxy {" and its "}"
	}
	dump := []byte("table ip kube-proxy {\n" + inner("nft-list-map.txt") + "\n" + inner("nft-list-chain.txt") + "\n}\n")
	n := &node{out: map[string][]byte{
		"nft list table ip kube-proxy":           dump,
		"nft list map ip kube-proxy service-ips": fixture(t, "nft-list-map.txt"),
		"nft list chain ip kube-proxy " + chain:  fixture(t, "nft-list-chain.txt"),
	}}
	r, _ := NewNodeReader(scenarios.ModeNFTables, n.run, ReaderOptions{})
	ctx := context.Background()
	svc := ServiceRef{Namespace: "kpbench-fixture", Name: "svc-006", ClusterIP: "198.19.224.16", Port: 80, PortName: "http"}
	r.StartRound()
	r.PlanRound(NFTDumpFrom)
	for range NFTDumpFrom {
		got, err := r.Read(ctx, svc)
		if err != nil || !got.Present || len(got.Endpoints) != 10 {
			t.Fatalf("svc-006 from the dump: %+v, %v", got, err)
		}
	}
	if want := []string{"nice -n 19 nft list table ip kube-proxy"}; !reflect.DeepEqual(n.ran, want) {
		t.Errorf("a round of %d chains ran %q, want one dump", NFTDumpFrom, n.ran)
	}
	// The element still there but the chain gone from the dump (deleted
	// by the sync that will remove the element): not programmed.
	n.out["nft list table ip kube-proxy"] = []byte("table ip kube-proxy {\n" + inner("nft-list-map.txt") + "\n}\n")
	r.StartRound()
	r.PlanRound(NFTDumpFrom)
	if got, err := r.Read(ctx, svc); err != nil || got.Present {
		t.Errorf("a chain the dump does not hold: %+v, %v", got, err)
	}
	// The next round reads one chain: the listing and that chain.
	n.ran = nil
	r.StartRound()
	r.PlanRound(1)
	if got, err := r.Read(ctx, svc); err != nil || len(got.Endpoints) != 10 {
		t.Fatalf("svc-006 chain by chain: %+v, %v", got, err)
	}
	if want := []string{"nice -n 19 nft list map ip kube-proxy service-ips", "nice -n 19 nft list chain ip kube-proxy " + chain}; !reflect.DeepEqual(n.ran, want) {
		t.Errorf("a round of one chain ran %q, want %q", n.ran, want)
	}
	// No kube-proxy table: nothing is programmed.
	n.ran = nil
	n.errs = map[string]string{"nft list table ip kube-proxy": "Error: No such file or directory"}
	r.StartRound()
	r.PlanRound(5)
	if got, err := r.Read(ctx, svc); err != nil || got.Present {
		t.Errorf("no table: %+v, %v", got, err)
	}
	if c := r.Cost()[CommandTable]; c.Count != 3 || c.Errors != 1 {
		t.Errorf("table dumps counted %+v, want 3 (one failed)", c)
	}
}
