package collector

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary act as a child process instead of
// running tests (see TestMain).
const childEnv = "KPBENCH_COLLECTOR_CHILD"

func TestMain(m *testing.M) {
	if h := os.Getenv(childEnv); h != "" {
		if err := runChild(h); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(spec string) error {
	kind, args, _ := strings.Cut(spec, ":")
	switch kind {
	case "burn":
		duty, dur, ok := strings.Cut(args, ":")
		if !ok {
			return fmt.Errorf("burn wants duty:duration, got %q", args)
		}
		d, err := strconv.ParseFloat(duty, 64)
		if err != nil {
			return err
		}
		t, err := time.ParseDuration(dur)
		if err != nil {
			return err
		}
		return burn(d, t)
	case "conns":
		return holdConnections(args)
	}
	return fmt.Errorf("unknown child role %q", spec)
}

// burn spends duty cores of CPU for dur. It works in bursts of 5-25 ms
// of CPU time (random lengths, so its on/off pattern cannot phase-lock
// with the scheduler tick that /proc/stat's per-CPU accounting samples)
// and sleeps until it is due again; the schedule is cumulative on the
// process's CPU time (CLOCK_PROCESS_CPUTIME_ID, the scheduler's precise
// runtime, not /proc's ticks), so it catches up after being preempted and
// its average is exact.
func burn(duty float64, dur time.Duration) error {
	runtime.LockOSThread()
	cpu := func() time.Duration {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts); err != nil {
			panic(err)
		}
		return time.Duration(ts.Nano())
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	start, cpu0 := time.Now(), cpu()
	x := 1.0
	for time.Since(start) < dur {
		burst := 5*time.Millisecond + time.Duration(rng.Int64N(int64(20*time.Millisecond)))
		goal := cpu() - cpu0 + burst
		for cpu()-cpu0 < goal {
			// ≈ 50-100 µs of work between clock reads, which are
			// syscalls (system time) for this clock.
			for i := 0; i < 50000; i++ {
				x = x*1.0000001 + 1e-9
			}
		}
		// Due again when wall time catches up with CPU time / duty.
		due := time.Duration(float64(cpu()-cpu0) / duty)
		if wait := due - time.Since(start); wait > 0 {
			time.Sleep(wait)
		}
	}
	fmt.Printf("burned %v cpu over %v (x=%v)\n", cpu()-cpu0, time.Since(start), x > 0)
	return nil
}

// holdConnections waits for a line on stdin, then opens n TCP connections
// to a listener of its own on 127.0.0.1 and holds them open (so each keeps
// its conntrack entry) until stdin closes. It prints "ready" once they are
// established.
func holdConnections(args string) error {
	n, err := strconv.Atoi(args)
	if err != nil {
		return err
	}
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return err
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			return err
		}
		s, err := l.Accept()
		if err != nil {
			return err
		}
		conns = append(conns, c, s)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, in)
	return nil
}
