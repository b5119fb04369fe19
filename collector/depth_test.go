package collector

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/scenarios"
)

func sp(s string) ServicePort {
	ap := netip.MustParseAddrPort(s)
	return ServicePort{IP: ap.Addr(), Port: ap.Port(), Proto: "tcp"}
}

// labServices maps the lab fixture's synthetic Services (svc-000 ...) to
// their ClusterIP ports, read from the fixture's own comments.
func labServices(t *testing.T, dump string) map[string]ServicePort {
	t.Helper()
	re := regexp.MustCompile(`-A KUBE-SERVICES -d ([0-9.]+)/32 -p tcp -m comment --comment "kpbench-fixture/(svc-[0-9]+):http cluster IP" -m tcp --dport 80`)
	out := map[string]ServicePort{}
	for _, m := range re.FindAllStringSubmatch(dump, -1) {
		out[m[2]] = sp(m[1] + ":80")
	}
	if len(out) != 20 {
		t.Fatalf("fixture has %d synthetic Services, want 20", len(out))
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestKubeServicesDepthLab(t *testing.T) {
	// Real iptables-save -t nat of the lab at 20 Services: KUBE-SERVICES
	// holds 21 ClusterIP rules (svc-006 first, svc-008 last, the
	// kubernetes Service 15th) and the nodeports rule at 22.
	dump := readFile(t, "testdata/lab/iptables-save-nat-20svc.txt")
	c, err := ParseKubeServices(strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	if c.Length != 22 {
		t.Errorf("chain length %d, want 22", c.Length)
	}
	svc := labServices(t, dump)
	for _, tc := range []struct {
		name  string
		svc   ServicePort
		depth int
	}{
		{"first", svc["svc-006"], 1},
		{"middle", svc["svc-002"], 10},
		{"after the kubernetes Service", svc["svc-011"], 16},
		{"last before nodeports", svc["svc-008"], 21},
		{"kubernetes", sp("198.19.0.1:443"), 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := c.Depth(tc.svc)
			if err != nil {
				t.Fatal(err)
			}
			if d != tc.depth {
				t.Errorf("depth %d, want %d", d, tc.depth)
			}
		})
	}
	if got := c.Via(svc["svc-008"]); got != "nat KUBE-SERVICES rule 21 of 22 (kpbench-fixture/svc-008:http)" {
		t.Errorf("Via = %q", got)
	}
	// Same port, other protocol; other port, same address: not the rule.
	for _, miss := range []ServicePort{
		{IP: svc["svc-008"].IP, Port: 80, Proto: "udp"},
		{IP: svc["svc-008"].IP, Port: 81, Proto: "tcp"},
		sp("198.19.99.99:80"),
	} {
		_, err := c.Depth(miss)
		if !errors.Is(err, ErrTargetNotFound) || !strings.Contains(err.Error(), miss.String()) || !strings.Contains(err.Error(), "22 rules") {
			t.Errorf("Depth(%s) error = %v, want ErrTargetNotFound naming it and the chain's length", miss, err)
		}
	}
}

func TestKubeServicesDepthSeedMultiPort(t *testing.T) {
	// A real published dump (kube-proxy + Calico), comments unquoted:
	// kube-dns has three ports, each a rule of its own, in the order
	// dns-tcp, metrics, dns (udp).
	c, err := ParseKubeServices(strings.NewReader(readRulesFixture(t, "iptables-save-seed001.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Length != 6 {
		t.Errorf("length %d, want 6", c.Length)
	}
	for _, tc := range []struct {
		svc   ServicePort
		depth int
		name  string
	}{
		{sp("10.96.0.10:53"), 1, "kube-system/kube-dns:dns-tcp"},
		{sp("10.96.0.10:9153"), 2, "kube-system/kube-dns:metrics"},
		{ServicePort{IP: netip.MustParseAddr("10.96.0.10"), Port: 53, Proto: "udp"}, 3, "kube-system/kube-dns:dns"},
		{sp("10.105.250.129:80"), 4, "default/nginx-basic:http"},
		{sp("10.96.0.1:443"), 5, "default/kubernetes:https"},
	} {
		d, err := c.Depth(tc.svc)
		if err != nil || d != tc.depth {
			t.Errorf("Depth(%s) = %d, %v; want %d", tc.svc, d, err, tc.depth)
		}
		if n := c.Name(tc.svc); n != tc.name {
			t.Errorf("Name(%s) = %q, want %q", tc.svc, n, tc.name)
		}
	}
}

func TestKubeServicesFingerprint(t *testing.T) {
	dump := readFile(t, "testdata/lab/iptables-save-nat-20svc.txt")
	a, err := ParseKubeServices(strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ParseKubeServices(strings.NewReader(dump))
	if a.Fingerprint != b.Fingerprint {
		t.Error("one dump, two fingerprints")
	}
	// Swap the first two Services' rules, as a sync may.
	lines := strings.Split(dump, "\n")
	var idx []int
	for i, l := range lines {
		if strings.HasPrefix(l, "-A KUBE-SERVICES -d") {
			idx = append(idx, i)
		}
	}
	lines[idx[0]], lines[idx[1]] = lines[idx[1]], lines[idx[0]]
	c, err := ParseKubeServices(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Fingerprint == a.Fingerprint {
		t.Error("reordered chain has the same fingerprint")
	}
	svc := labServices(t, dump)
	if d, _ := c.Depth(svc["svc-006"]); d != 2 {
		t.Errorf("svc-006 after the swap at %d, want 2", d)
	}
}

func TestKubeServicesErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"no nat table", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", "no nat table"},
		{"no KUBE-SERVICES", "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", "no KUBE-SERVICES chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKubeServices(strings.NewReader(tc.in))
			if !errors.Is(err, ErrParse) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrParse with %q", err, tc.want)
			}
		})
	}
	// KUBE-SERVICES in the filter table (kube-proxy's reject rules) is not
	// the chain a connection walks to its Service.
	in := "*filter\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j REJECT\nCOMMIT\n*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -d 10.0.0.2/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-X\nCOMMIT\n"
	c, err := ParseKubeServices(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if c.Length != 1 {
		t.Errorf("length %d, want 1 (the nat chain only)", c.Length)
	}
	if _, err := c.Depth(sp("10.0.0.1:80")); !errors.Is(err, ErrTargetNotFound) {
		t.Errorf("filter table's rule counted: %v", err)
	}
}

func TestNFTServicesLab(t *testing.T) {
	for _, f := range []string{"nft-list-table-ip-kube-proxy-20svc.txt", "nft-list-ruleset-20svc.txt"} {
		t.Run(f, func(t *testing.T) {
			c, err := ParseNFTServices(strings.NewReader(readFile(t, "testdata/lab/"+f)))
			if err != nil {
				t.Fatal(err)
			}
			d, err := c.Depth(sp("198.19.56.122:80")) // svc-000
			if err != nil || d != 0 {
				t.Errorf("depth %d, %v; want 0", d, err)
			}
			if c.Length != 0 {
				t.Errorf("length %d, want 0", c.Length)
			}
			want := "chain nat-output → services: vmap @service-ips (21 elements) → service-6VVEUG7O-kpbench-fixture/svc-000/tcp/http"
			if got := c.Via(sp("198.19.56.122:80")); got != want {
				t.Errorf("Via = %q\nwant  %q", got, want)
			}
			if n := c.Name(sp("198.19.0.1:443")); n != "default/kubernetes:https" {
				t.Errorf("Name = %q", n)
			}
			_, err = c.Depth(sp("198.19.9.9:80"))
			if !errors.Is(err, ErrTargetNotFound) || !strings.Contains(err.Error(), "service-ips") {
				t.Errorf("missing target: %v", err)
			}
		})
	}
	if _, err := ParseNFTServices(strings.NewReader("table ip other {\n}\n")); !errors.Is(err, ErrParse) {
		t.Errorf("table without service-ips: %v", err)
	}
}

func TestPlace(t *testing.T) {
	dump := readFile(t, "testdata/lab/iptables-save-nat-20svc.txt")
	c, err := ParseKubeServices(strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	svc := labServices(t, dump)
	// Candidates in creation order, as the scaler lists them.
	var cands []ServicePort
	for i := range 20 {
		cands = append(cands, svc["svc-0"+twoDigits(i)])
	}
	for _, tc := range []struct {
		placement scenarios.Targets
		svc       string
		depth     int
	}{
		{scenarios.TargetsDeepest, "svc-008", 21},
		{scenarios.TargetsShallowest, "svc-006", 1},
		// Depths 1..14 and 16..21 (15 is the kubernetes Service): the
		// lower middle of 20 is the 10th, depth 10.
		{scenarios.TargetsMedian, "svc-002", 10},
	} {
		i, d, err := Place(c, cands, tc.placement)
		if err != nil {
			t.Fatal(err)
		}
		if cands[i] != svc[tc.svc] || d != tc.depth {
			t.Errorf("%s: picked %s at %d, want %s at %d", tc.placement, cands[i], d, tc.svc, tc.depth)
		}
	}
	// A Service kube-proxy has not programmed is an error that names it.
	_, _, err = Place(c, append(cands, sp("198.19.7.7:80")), scenarios.TargetsDeepest)
	if !errors.Is(err, ErrTargetNotFound) || !strings.Contains(err.Error(), "198.19.7.7:80/tcp") {
		t.Errorf("unprogrammed candidate: %v", err)
	}
	if _, _, err := Place(c, cands, scenarios.TargetsRandom); err == nil {
		t.Error("random is not a placement by depth")
	}

	// Depth-0 modes: every placement picks the first-created Service.
	nft, err := ParseNFTServices(strings.NewReader(readFile(t, "testdata/lab/nft-list-table-ip-kube-proxy-20svc.txt")))
	if err != nil {
		t.Fatal(err)
	}
	ipvs, _ := ReadServiceChain(context.Background(), scenarios.ModeIPVS, nil)
	for _, ch := range []*ServiceChain{nft, ipvs} {
		for _, pl := range []scenarios.Targets{scenarios.TargetsDeepest, scenarios.TargetsShallowest, scenarios.TargetsMedian} {
			i, d, err := Place(ch, cands, pl)
			if err != nil || i != 0 || d != 0 {
				t.Errorf("%s %s: picked %d at depth %d (%v), want the first Service at 0", ch.Mode, pl, i, d, err)
			}
		}
	}
}

func twoDigits(i int) string {
	return string(rune('0'+i/10)) + string(rune('0'+i%10))
}

func TestReadServiceChain(t *testing.T) {
	dump := readFile(t, "testdata/lab/iptables-save-nat-20svc.txt")
	var ran []string
	run := func(_ context.Context, args ...string) ([]byte, error) {
		ran = append(ran, strings.Join(args, " "))
		return []byte(dump), nil
	}
	c, err := ReadServiceChain(context.Background(), scenarios.ModeIPTables, run)
	if err != nil || c.Length != 22 {
		t.Fatalf("chain %+v, %v", c, err)
	}
	if len(ran) != 1 || ran[0] != "iptables-save -t nat" {
		t.Errorf("ran %q", ran)
	}
	failing := func(context.Context, ...string) ([]byte, error) { return nil, errors.New("nft: not found") }
	if _, err := ReadServiceChain(context.Background(), scenarios.ModeNFTables, failing); err == nil || !strings.Contains(err.Error(), "nft: not found") {
		t.Errorf("error %v", err)
	}
	c, err = ReadServiceChain(context.Background(), scenarios.ModeIPVS, failing)
	if err != nil || c.Lookup == "" {
		t.Errorf("ipvs: %+v, %v (needs no command)", c, err)
	}
	if _, err := ReadServiceChain(context.Background(), scenarios.ModeExternal, failing); err == nil {
		t.Error("external mode has no rules to read")
	}
}

func TestDepthReadingWeighted(t *testing.T) {
	dump := readFile(t, "testdata/lab/iptables-save-nat-20svc.txt")
	c, err := ParseKubeServices(strings.NewReader(dump))
	if err != nil {
		t.Fatal(err)
	}
	svc := labServices(t, dump)
	targets := []ServicePort{svc["svc-006"], svc["svc-002"], svc["svc-008"]} // depths 1, 10, 21
	r, err := c.Reading(targets, []int64{3, 1, 0})
	if err != nil {
		t.Fatal(err)
	}
	// svc-008 got no connection: it bounds nothing.
	if r.Mean != (3*1+1*10)/4.0 || r.Min != 1 || r.Max != 10 || r.ChainLength != 22 {
		t.Errorf("weighted reading %+v, want mean 3.25, min 1, max 10, length 22", r)
	}
	r, err = c.Reading(targets, nil)
	if err != nil || r.Mean != 32/3.0 || r.Min != 1 || r.Max != 21 {
		t.Errorf("unweighted reading %+v, %v", r, err)
	}
	if _, err := c.Reading(targets, []int64{1}); err == nil {
		t.Error("mismatched weights accepted")
	}
	if _, err := c.Reading(append(targets, sp("198.19.1.1:80")), nil); !errors.Is(err, ErrTargetNotFound) {
		t.Errorf("missing target: %v", err)
	}
}
