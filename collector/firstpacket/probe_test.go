package firstpacket

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as a second client: with FIRSTPACKET_CONNECT set
// to ADDR,N it opens N connections to ADDR and exits.
func TestMain(m *testing.M) {
	if v := os.Getenv("FIRSTPACKET_CONNECT"); v != "" {
		addr, n, _ := strings.Cut(v, ",")
		count, _ := strconv.Atoi(n)
		if err := connect(addr, count); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func connect(addr string, n int) error {
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

// record is a ring record as the C struct event lays it out.
func record(startNs uint64, spanNs, tgid, kind uint32) []byte {
	b := make([]byte, eventSize)
	binary.LittleEndian.PutUint64(b[0:], startNs)
	binary.LittleEndian.PutUint32(b[8:], spanNs)
	binary.LittleEndian.PutUint32(b[12:], tgid)
	binary.LittleEndian.PutUint32(b[16:], kind)
	return b
}

func TestDecode(t *testing.T) {
	e, err := decode(record(5_000_000_000, 38_300, 4242, 0), 1_000_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if e.Span != 38300*time.Nanosecond || e.TGID != 4242 || !e.Start.Equal(time.Unix(6, 0)) || e.Kind != First {
		t.Errorf("decoded %+v", e)
	}
	// The way back carries its connection's SYN_SENT instant.
	e, err = decode(record(7_000_000_123, 12_500, 4242, 1), 1_000_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if e.Span != 12500*time.Nanosecond || e.TGID != 4242 || !e.Start.Equal(time.Unix(8, 123)) || e.Kind != Return {
		t.Errorf("decoded %+v", e)
	}
	if _, err := decode(record(1, 1, 1, 0)[:16], 0); err == nil {
		t.Error("a short record (the 16-byte layout before the way back) decoded")
	}
	if _, err := decode(record(1, 1, 1, 2), 0); err == nil {
		t.Error("a record of an unknown kind decoded")
	}
	// The layout is the generated type's.
	if n := binary.Size(firstpacketEvent{}); n != eventSize {
		t.Errorf("struct event is %d bytes, decode reads %d", n, eventSize)
	}
}

func rootOrSkip(t *testing.T) {
	t.Helper()
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") != "" {
		t.Skip("KPBENCH_SKIP_INTEGRATION is set")
	}
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root")
	}
}

// acceptAndClose closes every connection ln accepts, until ln is closed.
func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go acceptAndClose(ln)
	return ln
}

// TestProbeCountsOnlyTheClient loads and attaches the probe on this kernel
// and checks that it times every connection of this process, and none of
// another process connecting from the same namespace at the same time.
func TestProbeCountsOnlyTheClient(t *testing.T) {
	rootOrSkip(t)
	p, err := Open(Options{Netns: "/proc/self/ns/net"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ln := listen(t)
	addr := ln.Addr().String()
	if err := p.Discard(); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	other := exec.Command(os.Args[0], "-test.run=^$")
	other.Env = append(os.Environ(), "FIRSTPACKET_CONNECT="+addr+",150")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	const mine = 200
	if err := connect(addr, mine); err != nil {
		t.Fatal(err)
	}
	if err := other.Wait(); err != nil {
		t.Fatalf("the other client: %v", err)
	}
	end := time.Now()

	if p.ReturnUnavailable() != "" {
		t.Fatalf("the way back is not timed: %s", p.ReturnUnavailable())
	}
	checkClients(t, p, os.Getpid(), mine, other.Process.Pid, 150, start, end, "loopback")
	c, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	// Other traffic of this namespace may be received in pages
	// (Unparsed); the namespaces of TestProbeOverVeth have none.
	if c.Timed < mine+150 || c.Returned < mine+150 || c.Lost != 0 || c.Unreadable != 0 {
		t.Errorf("counters %+v", c)
	}
	cost, err := p.Cost()
	if err != nil {
		t.Fatal(err)
	}
	// The SYN_SENT program ran at least once per connection (both
	// processes'), and so did ESTABLISHED's; net_dev_queue and
	// netif_receive_skb once per packet.
	if cost.Runs < 4*(mine+150) || cost.Runtime <= 0 {
		t.Errorf("probe cost %+v: fewer runs than connections", cost)
	}
	t.Logf("probe's own cost: %d runs, %.0f ns per run", cost.Runs, float64(cost.Runtime)/float64(cost.Runs))
}

// checkClients drains p and checks that it timed both spans of each of
// process mine's n connections made between start and end, saw those of
// process theirs (m of each kind), and that Take leaves theirs out.
func checkClients(t *testing.T, p *Probe, mine, n, theirs, m int, start, end time.Time, path string) {
	t.Helper()
	// Take consumes what it drained, so read both processes' share from
	// one drain.
	if err := p.drain(); err != nil {
		t.Fatal(err)
	}
	all := append([]Event(nil), p.events...)
	got, err := p.Take(mine, func(t time.Time) bool { return !t.Before(start) && !t.After(end) })
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []Kind{First, Return} {
		if sp := Spans(got, k); len(sp) != n {
			t.Errorf("timed %d of this client's %d connections, kind %d", len(sp), n, k)
		}
		seen := 0
		for _, e := range all {
			if e.TGID == theirs && e.Kind == k {
				seen++
			}
		}
		if seen != m {
			t.Errorf("the probe saw %d of the other process's %d connections, kind %d (it should see them, and Take should leave them out)", seen, m, k)
		}
	}
	for _, e := range got {
		if e.Span <= 0 || e.Span > time.Second || e.TGID != mine {
			t.Fatalf("implausible event %+v", e)
		}
	}
	for _, c := range []struct {
		k    Kind
		name string
	}{{First, "SYN_SENT → net_dev_queue"}, {Return, "SYN-ACK netif_receive_skb → ESTABLISHED"}} {
		if sp := Spans(got, c.k); len(sp) > 0 {
			t.Logf("%s %s: min %v, median %v, max %v", path, c.name, sp[0], sp[len(sp)/2], sp[len(sp)-1])
		}
	}
}

// TestProbeNamespaceFilter checks that connections from another network
// namespace are not timed at all.
func TestProbeNamespaceFilter(t *testing.T) {
	rootOrSkip(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare(1) is not installed")
	}
	// The probe watches a namespace of the test's own, where nothing
	// connects: the machine's own namespace has other processes'
	// connections (a busy machine's, or a test suite's servers).
	ns := fmt.Sprintf("kpbench-fpt-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	defer func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	}()
	p, err := Open(Options{Netns: "/run/netns/" + ns})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Discard(); err != nil {
		t.Fatal(err)
	}
	before, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	// Another namespace, its own loopback and listener: 50 connections.
	script := fmt.Sprintf("ip link set lo up && (%s -test.run='^TestListenHelper$' & sleep 0.5; FIRSTPACKET_CONNECT=127.0.0.1:39123,50 %s)", os.Args[0], os.Args[0])
	cmd := exec.Command("unshare", "--net", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "FIRSTPACKET_LISTEN=127.0.0.1:39123")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("connecting from another namespace: %v: %s", err, out)
	}
	after, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if after.Starts != before.Starts {
		t.Errorf("the probe counted %d connections of another namespace", after.Starts-before.Starts)
	}
	if after.Arrived != before.Arrived || after.Returned != before.Returned {
		t.Errorf("the probe timed the way back of %d connections of another namespace", after.Returned-before.Returned)
	}
}

// TestProbeOverVeth times connections made from one private network
// namespace to another over a veth pair, the lab's path (the SYN-ACK
// reaches the client's namespace through netif_rx's backlog, not
// loopback), by two processes of the client's namespace: both spans of
// every connection of the one taken, and the other's seen but left out.
func TestProbeOverVeth(t *testing.T) {
	rootOrSkip(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip(8) is not installed")
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	cli, srv := fmt.Sprintf("kpbfp%dc", os.Getpid()), fmt.Sprintf("kpbfp%ds", os.Getpid())
	for _, ns := range []string{cli, srv} {
		ip("netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	ip("-n", cli, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", srv)
	ip("-n", cli, "addr", "add", "198.18.255.1/30", "dev", "veth0")
	ip("-n", srv, "addr", "add", "198.18.255.2/30", "dev", "veth1")
	for _, l := range [][2]string{{cli, "lo"}, {cli, "veth0"}, {srv, "lo"}, {srv, "veth1"}} {
		ip("-n", l[0], "link", "set", l[1], "up")
	}

	p, err := Open(Options{Netns: "/run/netns/" + cli})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.ReturnUnavailable() != "" {
		t.Fatalf("the way back is not timed: %s", p.ReturnUnavailable())
	}
	const addr = "198.18.255.2:39124"
	ln := exec.Command("ip", "netns", "exec", srv, os.Args[0], "-test.run=^TestListenHelper$")
	ln.Env = append(os.Environ(), "FIRSTPACKET_LISTEN="+addr)
	out, err := ln.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ln.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { ln.Process.Kill(); ln.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "listening\n" {
		t.Fatalf("the listener in %s: %q, %v", srv, line, err)
	}
	if err := p.Discard(); err != nil {
		t.Fatal(err)
	}

	// ip netns exec runs the command in its own process: the client's
	// PID is the command's.
	client := func(n int) *exec.Cmd {
		c := exec.Command("ip", "netns", "exec", cli, os.Args[0], "-test.run=^$")
		c.Env = append(os.Environ(), fmt.Sprintf("FIRSTPACKET_CONNECT=%s,%d", addr, n))
		c.Stderr = os.Stderr
		return c
	}
	start := time.Now()
	mine, other := client(120), client(80)
	for _, c := range []*exec.Cmd{mine, other} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*exec.Cmd{mine, other} {
		if err := c.Wait(); err != nil {
			t.Fatalf("a client in %s: %v", cli, err)
		}
	}
	end := time.Now()
	checkClients(t, p, mine.Process.Pid, 120, other.Process.Pid, 80, start, end, "veth")
	c, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Arrived != 200 || c.Returned != 200 || c.Lost != 0 || c.Unreadable != 0 || c.Unparsed != 0 {
		t.Errorf("counters %+v, want 200 SYN-ACKs arrived and returned", c)
	}
}

// TestProbeIPv6 times both spans of connections over IPv6 loopback.
func TestProbeIPv6(t *testing.T) {
	rootOrSkip(t)
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	go acceptAndClose(ln)
	p, err := Open(Options{Netns: "/proc/self/ns/net"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Discard(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := connect(ln.Addr().String(), 50); err != nil {
		t.Fatal(err)
	}
	got, err := p.Take(os.Getpid(), func(t time.Time) bool { return !t.Before(start) })
	if err != nil {
		t.Fatal(err)
	}
	if f, r := len(Spans(got, First)), len(Spans(got, Return)); f != 50 || r != 50 {
		t.Errorf("timed %d first packets and %d ways back of 50 IPv6 connections", f, r)
	}
}

// TestListenHelper serves FIRSTPACKET_LISTEN for a few seconds when set
// (TestProbeNamespaceFilter's listener inside its namespace).
func TestListenHelper(t *testing.T) {
	addr := os.Getenv("FIRSTPACKET_LISTEN")
	if addr == "" {
		t.Skip("a helper of TestProbeNamespaceFilter")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fmt.Println("listening")
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
