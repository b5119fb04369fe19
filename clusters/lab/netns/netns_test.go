package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func threadCPUs(t *testing.T) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for c := 0; c < 1024; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// Do pins the locked thread to the CPUs for fn and restores it after.
func TestDoPinsAndRestores(t *testing.T) {
	before := threadCPUs(t)
	if len(before) < 2 {
		t.Skip("needs two CPUs to tell pinned from unpinned")
	}
	want := []int{before[len(before)-1]}
	var inside []int
	if err := Do("", want, func() error { inside = threadCPUs(t); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inside, want) {
		t.Errorf("CPUs inside Do = %v, want %v", inside, want)
	}
	// The same goroutine may now run on any thread; every thread must have
	// been restored, so the set is the full one again.
	if after := threadCPUs(t); !slices.Equal(after, before) {
		t.Errorf("CPUs after Do = %v, want %v", after, before)
	}
}

func TestDoMissingNamespace(t *testing.T) {
	err := Do(Path("kpbt-lab-does-not-exist"), nil, func() error { t.Fatal("fn ran"); return nil })
	if err == nil {
		t.Fatal("no error for a missing namespace")
	}
}

// testNS makes a namespace for the test and removes it afterwards.
func testNS(t *testing.T) string {
	t.Helper()
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("namespace test skipped: KPBENCH_SKIP_INTEGRATION=1")
	}
	if os.Geteuid() != 0 {
		t.Skip("namespace test skipped: needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("namespace test skipped: ip (iproute2) is not installed")
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "kpbt-lab-" + hex.EncodeToString(b[:])
	ctx := context.Background()
	if err := Add(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Delete(ctx, name); err != nil {
			t.Error(err)
		}
		if Exists(name) {
			t.Errorf("namespace %s survived Delete", name)
		}
	})
	if _, err := Run(ctx, "ip", "-n", name, "link", "set", "lo", "up"); err != nil {
		t.Fatal(err)
	}
	return name
}

// A listener made inside a namespace is reachable by the namespace dialer
// and not from the caller's namespace.
func TestDialInsideNamespace(t *testing.T) {
	name := testNS(t)
	var ln net.Listener
	if err := Do(Path(name), nil, func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("inside"))
			c.Close()
		}
	}()
	conn, err := Dialer{NSPath: Path(name), Timeout: 2 * time.Second}.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(conn)
	conn.Close()
	if string(got) != "inside" {
		t.Errorf("read %q", got)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), 300*time.Millisecond); err == nil {
		// Another listener of the root namespace may own the same port by
		// chance; it must not be ours.
		b := make([]byte, 6)
		n, _ := c.Read(b)
		c.Close()
		if string(b[:n]) == "inside" {
			t.Error("the namespace's listener is reachable from the root namespace")
		}
	}
	names, err := List("kpbt-lab-")
	if err != nil || !slices.Contains(names, name) {
		t.Errorf("List = %v, %v; want it to hold %s", names, err, name)
	}
}

// Start puts a process in the namespace and on the CPUs; PIDsIn finds it.
func TestStartInNamespacePinned(t *testing.T) {
	name := testNS(t)
	cmd := exec.Command("sleep", "30")
	var cpus []int
	if all := threadCPUs(t); len(all) > 1 {
		cpus = all[len(all)-1:]
	}
	if err := Start(cmd, Path(name), cpus); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pids, err := PIDsIn("/proc", Path(name))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Errorf("PIDsIn = %v, want [%d]", pids, cmd.Process.Pid)
	}
	if len(cpus) > 0 {
		status, err := os.ReadFile("/proc/" + itoa(cmd.Process.Pid) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(status), "Cpus_allowed_list:\t"+itoa(cpus[0])+"\n") {
			t.Errorf("process not pinned to CPU %d", cpus[0])
		}
	}
	self, _ := InodeOf("/proc/self/ns/net")
	child, _ := InodeOf("/proc/" + itoa(cmd.Process.Pid) + "/ns/net")
	if self == child {
		t.Error("the process runs in the caller's namespace")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
