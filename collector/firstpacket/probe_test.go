package firstpacket

import (
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

func TestDecode(t *testing.T) {
	b := make([]byte, eventSize)
	binary.LittleEndian.PutUint64(b[0:], 5_000_000_000)
	binary.LittleEndian.PutUint32(b[8:], 38_300)
	binary.LittleEndian.PutUint32(b[12:], 4242)
	e, err := decode(b, 1_000_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if e.Span != 38300*time.Nanosecond || e.TGID != 4242 || !e.Start.Equal(time.Unix(6, 0)) {
		t.Errorf("decoded %+v", e)
	}
	if _, err := decode(b[:12], 0); err == nil {
		t.Error("a short record decoded")
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

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
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

	// Take consumes what it drained, so read both processes' share from
	// one drain.
	if err := p.drain(); err != nil {
		t.Fatal(err)
	}
	all := append([]Event(nil), p.events...)
	got, err := p.Take(os.Getpid(), func(t time.Time) bool { return !t.Before(start) && !t.After(end) })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != mine {
		t.Errorf("timed %d of this process's %d connections", len(got), mine)
	}
	theirs := 0
	for _, e := range all {
		if e.TGID == other.Process.Pid {
			theirs++
		}
	}
	if theirs != 150 {
		t.Errorf("the probe saw %d of the other process's 150 connections (it should see them, and Take should leave them out)", theirs)
	}
	for _, e := range got {
		if e.Span <= 0 || e.Span > time.Second {
			t.Fatalf("implausible span %v", e.Span)
		}
	}
	sp := Spans(got)
	t.Logf("loopback SYN_SENT → net_dev_queue: min %v, median %v, max %v", sp[0], sp[len(sp)/2], sp[len(sp)-1])
	c, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Timed < mine+150 || c.Lost != 0 || c.Unreadable != 0 {
		t.Errorf("counters %+v", c)
	}
	cost, err := p.Cost()
	if err != nil {
		t.Fatal(err)
	}
	// The SYN_SENT program ran at least once per connection (both
	// processes'); net_dev_queue once per packet.
	if cost.Runs < 2*(mine+150) || cost.Runtime <= 0 {
		t.Errorf("probe cost %+v: fewer runs than connections", cost)
	}
	t.Logf("probe's own cost: %d runs, %.0f ns per run", cost.Runs, float64(cost.Runtime)/float64(cost.Runs))
}

// TestProbeNamespaceFilter checks that connections from another network
// namespace are not timed at all.
func TestProbeNamespaceFilter(t *testing.T) {
	rootOrSkip(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare(1) is not installed")
	}
	p, err := Open(Options{Netns: "/proc/self/ns/net"})
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
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
