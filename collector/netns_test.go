package collector

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

func TestConntrackFixture(t *testing.T) {
	fs := mustFS(t, "testdata/proc-t0")
	got, err := fs.Conntrack(4242)
	if err != nil {
		t.Fatal(err)
	}
	// Two CPU lines summed; entries is the namespace's count (0x3e8).
	want := ConntrackStats{Entries: 1000, Max: 262144, Found: 30, Invalid: 7, Insert: 1200, InsertFailed: 5,
		Drop: 1, EarlyDrop: 5, SearchRestart: 4, ClashResolve: 1, ChainTooLong: 1}
	if got != want {
		t.Errorf("Conntrack(4242) = %+v\nwant %+v", got, want)
	}
	// The reader's own namespace (the proc root's net/) is another table.
	own, err := fs.Conntrack(0)
	if err != nil || own.Entries != 18 || own.Insert != 0 {
		t.Errorf("Conntrack(0) = %+v, %v", own, err)
	}
	if _, err := fs.Conntrack(9999); !errors.Is(err, ErrNoSuchProcess) {
		t.Errorf("Conntrack(9999) = %v, want ErrNoSuchProcess", err)
	}
	if _, err := mustFS(t, "testdata/proc-t1").Conntrack(0); !errors.Is(err, ErrConntrackUnavailable) {
		t.Errorf("Conntrack on a tree without nf_conntrack = %v, want ErrConntrackUnavailable", err)
	}

	after := want
	after.Entries, after.Drop, after.InsertFailed = 1500, 4, 9
	if w := ConntrackWindow(want, after); w != (runs.Conntrack{EntriesBefore: 1000, EntriesAfter: 1500, Max: 262144, Drops: 3, InsertFailed: 4}) {
		t.Errorf("ConntrackWindow = %+v", w)
	}
}

func TestParseConntrackStatLayouts(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        string
		want      ConntrackStats
		wantError bool
	}{
		{
			// Kernels before 5.x: searched and delete_list columns.
			name: "old layout",
			in: "entries  searched found new invalid ignore delete delete_list insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n" +
				"00000010  00000005 00000002 00000003 00000001 00000000 00000000 00000000 00000004 00000001 00000002 00000003 00000000  00000000 00000000 00000000 00000001\n",
			want: ConntrackStats{Entries: 16, Found: 2, Invalid: 1, Insert: 4, InsertFailed: 1, Drop: 2, EarlyDrop: 3, SearchRestart: 1},
		},
		{name: "no CPU lines", in: "entries  clashres found\n", wantError: true},
		{name: "ragged line", in: "entries found\n00000001\n", wantError: true},
		{name: "not hex", in: "entries found\n0000000g 00000001\n", wantError: true},
		{name: "wrong file", in: "Inter-|   Receive\n", wantError: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConntrackStat([]byte(tc.in))
			if tc.wantError {
				if !errors.Is(err, ErrParse) {
					t.Fatalf("error = %v, want ErrParse", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestSoftnetFixture(t *testing.T) {
	s, err := mustFS(t, "testdata/proc-t0").Softnet(4242)
	if err != nil {
		t.Fatal(err)
	}
	if s != (SoftnetStats{Processed: 0x3ea6 + 0x1000, Dropped: 2, TimeSqueezed: 4, CPUs: 2}) {
		t.Errorf("Softnet(4242) = %+v", s)
	}
}

// netnsForTest creates a network namespace kpbt-collector-<name>-<pid>
// with loopback up and removes it (and everything in it) on cleanup.
func netnsForTest(t *testing.T, name string) string {
	t.Helper()
	skipIntegration(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	ns := fmt.Sprintf("kpbt-collector-%s-%d", name, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	nsRun(t, ns, "ip", "link", "set", "lo", "up")
	return ns
}

func nsRun(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := nsRunner(ns)(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// nsRunner runs commands inside network namespace ns.
func nsRunner(ns string) Runner {
	run := kubeproxy.ExecRunner()
	return func(ctx context.Context, args ...string) ([]byte, error) {
		return run(ctx, append([]string{"ip", "netns", "exec", ns}, args...)...)
	}
}

// TestConntrackThroughProcessInNetns opens connections inside a network
// namespace and reads the namespace's conntrack table through the PID of
// a process in it, as the collector reads the client node's.
func TestConntrackThroughProcessInNetns(t *testing.T) {
	fs := mustFS(t, "/proc")
	if _, err := fs.Conntrack(0); errors.Is(err, ErrConntrackUnavailable) {
		t.Skip("nf_conntrack is not loaded on this machine")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft to make conntrack track the namespace's traffic")
	}
	ns := netnsForTest(t, "ct")
	// Conntrack only tracks a namespace's packets once a rule there needs it.
	nsRun(t, ns, "nft", "add table ip kpbt; add chain ip kpbt out { type filter hook output priority 0; }; add rule ip kpbt out ct state new counter accept")

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const conns = 25
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=conns:%d", childEnv, conns))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	// ip netns exec execs the child in place: the PID is the child's.
	pid := cmd.Process.Pid
	var before ConntrackStats
	deadline := time.Now().Add(5 * time.Second)
	for {
		before, err = fs.Conntrack(pid)
		if err == nil {
			// Wait until the exec into the namespace happened.
			self, _ := os.Readlink("/proc/self/ns/net")
			theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
			if theirs != "" && theirs != self {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("child never entered the namespace: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := fmt.Fprintln(stdin, "go"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("child said %q, %v", line, err)
	}
	after, err := fs.Conntrack(pid)
	if err != nil {
		t.Fatal(err)
	}
	own, err := fs.Conntrack(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("namespace %s via pid %d: entries %d -> %d, inserts %d -> %d; this process's namespace: %d entries; max %d",
		ns, pid, before.Entries, after.Entries, before.Insert, after.Insert, own.Entries, after.Max)
	if before.Entries != 0 {
		t.Errorf("fresh namespace had %d entries before the connections", before.Entries)
	}
	if after.Entries != conns {
		t.Errorf("namespace has %d entries, want %d (one per held connection)", after.Entries, conns)
	}
	// (The insert column no longer counts on recent kernels: not checked.)
	if w := ConntrackWindow(before, after); w.EntriesAfter-w.EntriesBefore != conns || w.Drops != 0 {
		t.Errorf("window = %+v", w)
	}
	// The conntrack tool, run inside the namespace, agrees.
	if _, err := exec.LookPath("conntrack"); err == nil {
		out := strings.TrimSpace(nsRun(t, ns, "conntrack", "-C"))
		if n, err := strconv.ParseInt(out, 10, 64); err != nil || n != after.Entries {
			t.Errorf("conntrack -C in the namespace says %q; /proc/%d says %d", out, pid, after.Entries)
		}
	}
	sn, err := fs.Softnet(pid)
	if err != nil || sn.CPUs == 0 {
		t.Errorf("Softnet(%d) = %+v, %v", pid, sn, err)
	}
}

// TestCountRulesInNetns loads a kube-proxy-shaped nftables table and a
// kube-proxy-shaped iptables nat table into a namespace of its own and
// counts them with the real tools.
func TestCountRulesInNetns(t *testing.T) {
	for _, tool := range []string{"nft", "iptables-save", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	ns := netnsForTest(t, "rules")
	run := nsRunner(ns)
	nsRun(t, ns, "nft", "-f", "testdata/rules/nft-kube-proxy-input.nft")
	rc, err := CountRules(context.Background(), scenarios.ModeNFTables, run)
	if err != nil {
		t.Fatal(err)
	}
	if r := rc.RunsRules(); r != (runs.Rules{Total: 93, MapElements: 9}) {
		t.Errorf("nftables: %+v", r)
	}

	var b strings.Builder
	b.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n")
	const services = 40
	for i := 0; i < services; i++ {
		fmt.Fprintf(&b, ":KUBE-SVC-%016d - [0:0]\n", i)
	}
	b.WriteString("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n")
	b.WriteString("-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n")
	b.WriteString("-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n")
	for i := 0; i < services; i++ {
		fmt.Fprintf(&b, "-A KUBE-SERVICES -d 198.19.1.%d/32 -p tcp -m comment --comment \"kpbench/svc-%05d:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-%016d\n", i+1, i, i)
		fmt.Fprintf(&b, "-A KUBE-SVC-%016d -j KUBE-MARK-MASQ\n", i)
	}
	b.WriteString("COMMIT\n")
	cmd := exec.Command("ip", "netns", "exec", ns, "iptables-restore")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("iptables-restore: %v: %s", err, out)
	}
	rc, err = CountRules(context.Background(), scenarios.ModeIPTables, run)
	if err != nil {
		t.Fatal(err)
	}
	if r := rc.RunsRules(); r != (runs.Rules{Total: 3 + 2*services, ChainLength: services}) {
		t.Errorf("iptables: %+v", r)
	}
	if rc.IPTables.ServiceChains != services {
		t.Errorf("service chains = %d", rc.IPTables.ServiceChains)
	}
}
