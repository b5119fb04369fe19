package churn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kpbench/kpbench/clusters/lab/netns"
	"github.com/kpbench/kpbench/scenarios"
)

// These tests load rules in kube-proxy's layout into a private network
// namespace they create (and delete), and read them with the kernel's
// netlink: they need root, ip, nft and python3, and skip without them or
// with KPBENCH_SKIP_INTEGRATION=1.

// nftNamespace creates a network namespace holding the nft input script
// (gen.py's nft.in for services > 0), and returns its name.
func nftNamespace(tb testing.TB, services int, script string) string {
	tb.Helper()
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		tb.Skip("kernel test skipped: KPBENCH_SKIP_INTEGRATION=1")
	}
	if os.Geteuid() != 0 {
		tb.Skip("kernel test skipped: needs root")
	}
	for _, tool := range []string{"ip", "nft", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("kernel test skipped: %s is not installed", tool)
		}
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "kpbtest-" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if err := netns.Add(ctx, name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := netns.Delete(context.Background(), name); err != nil {
			tb.Error(err)
		}
	})
	if services > 0 {
		gen, err := filepath.Abs("testdata/readcost/gen.py")
		if err != nil {
			tb.Fatal(err)
		}
		dir := tb.TempDir()
		cmd := exec.Command("python3", gen, fmt.Sprint(services), "10")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("gen.py: %v: %s", err, out)
		}
		in, err := os.ReadFile(filepath.Join(dir, "nft.in"))
		if err != nil {
			tb.Fatal(err)
		}
		script = string(in) + script
	}
	nftIn(tb, name, script)
	return name
}

// nftIn runs nft -f - with script in the namespace: one transaction.
func nftIn(tb testing.TB, ns, script string) {
	tb.Helper()
	if _, err := nftRunner(ns)(context.Background(), "nft", "-f", "-", script); err != nil {
		tb.Fatal(err)
	}
}

// nftRunner runs commands in the namespace (as the lab's client node
// does); a last argument after "-" is the command's stdin.
func nftRunner(ns string) Runner {
	return func(ctx context.Context, args ...string) ([]byte, error) {
		var stdin string
		if len(args) > 1 && args[len(args)-2] == "-" {
			stdin, args = args[len(args)-1], args[:len(args)-1]
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := netns.Start(cmd, netns.Path(ns), nil); err != nil {
			return nil, err
		}
		if err := cmd.Wait(); err != nil {
			return nil, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return stdout.Bytes(), nil
	}
}

// genService is gen.py's Service i: kpbench/kpb-svc-<i>, unnamed TCP port 80.
func genService(i int) ServiceRef {
	return ServiceRef{Namespace: "kpbench", Name: fmt.Sprintf("kpb-svc-%05d", i),
		ClusterIP: fmt.Sprintf("198.19.%d.%d", i/250, i%250+1), Port: 80}
}

// readBoth reads svc with the nft CLI's NodeReader and the netlink reader
// and fails unless they agree; it returns what they read.
func readBoth(t *testing.T, cli *NodeReader, nl *NFTNetlinkReader, svc ServiceRef) ServiceRules {
	t.Helper()
	ctx := context.Background()
	cli.StartRound()
	want, err := cli.Read(ctx, svc)
	if err != nil {
		t.Fatalf("%s, nft CLI: %v", svc, err)
	}
	got, err := nl.Read(ctx, svc)
	if err != nil {
		t.Fatalf("%s, netlink: %v", svc, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: netlink read %+v, the nft CLI %+v", svc, got, want)
	}
	cli.StartRound()
	wantP, err1 := cli.ReadPresence(ctx, svc)
	gotP, err2 := nl.ReadPresence(ctx, svc)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(gotP, wantP) {
		t.Fatalf("%s presence: netlink %+v, %v; nft CLI %+v, %v", svc, gotP, err2, wantP, err1)
	}
	return got
}

func TestNFTNetlinkReaderKernel(t *testing.T) {
	ns := nftNamespace(t, 1000, "")
	nl, err := NewNFTNetlinkReader(netns.Path(ns), NetlinkOptions{CPUs: []int{0}})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewNodeReader(scenarios.ModeNFTables, nftRunner(ns), ReaderOptions{Prefix: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	recordNetlink(t, nl, "gen", genService(0))
	for _, i := range []int{0, 1, 249, 250, 499, 998, 999} {
		if got := readBoth(t, cli, nl, genService(i)); len(got.Endpoints) != 10 {
			t.Errorf("Service %d: %d endpoints, want gen.py's 10", i, len(got.Endpoints))
		}
	}
	if got := readBoth(t, cli, nl, genService(1000)); got.Present {
		t.Errorf("a Service gen.py did not write reads present: %+v", got)
	}

	// An endpoint set replaced, as kube-proxy's sync does: the chain
	// flushed and its rule written again with a new anonymous map.
	svc := genService(499)
	ch := NFTServiceChain(svc)
	nftIn(t, ns, fmt.Sprintf("flush chain ip kube-proxy %s\nadd rule ip kube-proxy %s meta l4proto tcp dnat ip addr . port to numgen random mod 2 map { 0 : 198.18.9.9 . 80, 1 : 198.18.9.10 . 8080 }\n", ch, ch))
	if got := readBoth(t, cli, nl, svc); !reflect.DeepEqual(got.Endpoints, []string{"198.18.9.10:8080", "198.18.9.9:80"}) {
		t.Errorf("after the replacement: %+v", got)
	}
	// Endpoints to zero: the service-ips element deleted and the chain
	// flushed in one transaction.
	nftIn(t, ns, fmt.Sprintf("delete element ip kube-proxy service-ips { %s . tcp . 80 }\nflush chain ip kube-proxy %s\n", svc.ClusterIP, ch))
	if got := readBoth(t, cli, nl, svc); got.Present {
		t.Errorf("after the element's deletion: %+v", got)
	}
	// The chain flushed while the element stays (a read between two
	// syncs' halves): no endpoints.
	svc = genService(250)
	nftIn(t, ns, fmt.Sprintf("flush chain ip kube-proxy %s\n", NFTServiceChain(svc)))
	if got := readBoth(t, cli, nl, svc); got.Present {
		t.Errorf("flushed chain: %+v", got)
	}
	// The Service deleted: element and chain gone.
	svc = genService(998)
	nftIn(t, ns, fmt.Sprintf("delete element ip kube-proxy service-ips { %s . tcp . 80 }\ndelete chain ip kube-proxy %s\n", svc.ClusterIP, NFTServiceChain(svc)))
	if got := readBoth(t, cli, nl, svc); got.Present {
		t.Errorf("deleted Service: %+v", got)
	}
	cost := nl.Cost()
	if cost[NetlinkServiceElement].Count == 0 || cost[NetlinkChainRules].Count == 0 || cost[NetlinkMapElements].Count == 0 {
		t.Errorf("cost %+v", cost)
	}
	for k, c := range cost {
		if c.Errors != 0 {
			t.Errorf("%s: %d failed requests", k, c.Errors)
		}
	}
	t.Logf("netlink cost: %+v", cost)

	// No kube-proxy table: nothing is programmed.
	nftIn(t, ns, "delete table ip kube-proxy\n")
	if got, err := nl.Read(context.Background(), genService(0)); err != nil || got.Present {
		t.Errorf("no table: %+v, %v", got, err)
	}
}

// recordNetlink, with KPBENCH_NETLINK_RECORD=<dir>, reads svc and writes
// the kernel's replies to each request, one message's data in hex a line,
// to <dir>/netlink-<name>-<kind>.hex: the fixtures of TestDecodeNFTRecorded.
func recordNetlink(t *testing.T, nl *NFTNetlinkReader, name string, svc ServiceRef) {
	t.Helper()
	dir := os.Getenv("KPBENCH_NETLINK_RECORD")
	if dir == "" {
		return
	}
	files := map[string]*strings.Builder{}
	nl.record = func(kind string, msgs []netlink.Message) {
		b := files[kind]
		if b == nil {
			b = &strings.Builder{}
			files[kind] = b
		}
		for _, m := range msgs {
			fmt.Fprintf(b, "%x\n", m.Data)
		}
	}
	defer func() { nl.record = nil }()
	if _, err := nl.Read(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	for kind, b := range files {
		f := filepath.Join(dir, fmt.Sprintf("netlink-%s-%s.hex", name, strings.TrimPrefix(kind, "netlink-")))
		if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Session affinity, from kube-proxy's own test layout (affinity.nft).
func TestNFTNetlinkReaderKernelAffinity(t *testing.T) {
	script, err := os.ReadFile("testdata/affinity.nft")
	if err != nil {
		t.Fatal(err)
	}
	ns := nftNamespace(t, 0, string(script))
	nl, err := NewNFTNetlinkReader(netns.Path(ns), NetlinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := NewNodeReader(scenarios.ModeNFTables, nftRunner(ns), ReaderOptions{Prefix: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	svc1 := ServiceRef{Namespace: "ns1", Name: "svc1", ClusterIP: "172.30.0.41", Port: 80, PortName: "p80"}
	svc5 := ServiceRef{Namespace: "ns5", Name: "svc5", ClusterIP: "172.30.0.45", Port: 80, PortName: "p80"}
	recordNetlink(t, nl, "affinity", svc5)
	if got := readBoth(t, cli, nl, svc1); !reflect.DeepEqual(got.Endpoints, []string{"10.180.0.1:80"}) {
		t.Errorf("svc1: %+v", got)
	}
	if got := readBoth(t, cli, nl, svc5); !reflect.DeepEqual(got.Endpoints, []string{"10.180.0.3:80", "10.180.0.4:80"}) {
		t.Errorf("svc5: %+v", got)
	}
}

// BenchmarkNFTRead times one Service's read at 1,000 and 10,000 Services
// (× 10 endpoints, gen.py) with the netlink reader and with the nft CLI
// (`nft list chain`, what NodeReader runs per Service), plus the presence
// read (one service-ips element) and a netlink dump of the whole
// service-ips map (what a round's listing would cost over netlink).
func BenchmarkNFTRead(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			ns := nftNamespace(b, n, "")
			nl, err := NewNFTNetlinkReader(netns.Path(ns), NetlinkOptions{})
			if err != nil {
				b.Fatal(err)
			}
			svc := genService(n / 2)
			ctx := context.Background()
			b.Run("netlink-read", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if got, err := nl.Read(ctx, svc); err != nil || len(got.Endpoints) != 10 {
						b.Fatal(got, err)
					}
				}
			})
			b.Run("netlink-presence", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if got, err := nl.ReadPresence(ctx, svc); err != nil || !got.Present {
						b.Fatal(got, err)
					}
				}
			})
			b.Run("netlink-dump-service-ips", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					err := nl.do(func(c *netlink.Conn) error {
						els, err := nl.mapElements(c, unix.NFPROTO_IPV4, nftServiceIPs)
						if err == nil && len(els) != n {
							err = fmt.Errorf("%d elements, want %d", len(els), n)
						}
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			run := nftRunner(ns)
			b.Run("nft-list-chain", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := run(ctx, "nft", "list", "chain", "ip", "kube-proxy", NFTServiceChain(svc)); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
