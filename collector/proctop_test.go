package collector

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kpbench/kpbench/runs"
)

func TestParseProcStat(t *testing.T) {
	b, err := os.ReadFile("testdata/procscan/stat-lines.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]procStat{}
	for line := range bytes.Lines(b) {
		st, err := parseProcStat(line)
		if err != nil {
			t.Fatal(err)
		}
		got[st.Key.PID] = st
	}
	want := map[int]procStat{
		// Real lines of this machine's kernel threads.
		24:    {Key: procKey{24, 25}, Comm: "ksoftirqd/1", KernelThread: true, STime: 202, Processor: 1},
		47:    {Key: procKey{47, 36}, Comm: "kworker/1:1H-kblockd", KernelThread: true, STime: 287, Processor: 1},
		14233: {Key: procKey{14233, 855407}, Comm: "kworker/1:0-virtio_vsock", KernelThread: true, STime: 130, Processor: 1},
		2:     {Key: procKey{2, 25}, Comm: "kthreadd", KernelThread: true, Processor: 1},
		// Constructed: a user process with reaped children, and a
		// command name with spaces and parentheses (and a negative
		// cutime, read as 0).
		4242: {Key: procKey{4242, 5000}, Comm: "kube-proxy", UTime: 1234, STime: 567, CUTime: 89, CSTime: 12, Processor: 1},
		777:  {Key: procKey{777, 6000}, Comm: "a (b) c", UTime: 7, STime: 3, Processor: 0},
	}
	if len(got) != len(want) {
		t.Fatalf("parsed %d processes, want %d", len(got), len(want))
	}
	for pid, w := range want {
		if got[pid] != w {
			t.Errorf("process %d: got %+v, want %+v", pid, got[pid], w)
		}
	}
	for _, bad := range []string{"", "12 kube-proxy S 1", "x (a) S 1 2 3", "5 (a) S 1 2 3 4 5 6"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) succeeded", bad)
		}
	}
}

// fakeProc is a constructed proc mount: /proc/PID/stat and status.
type fakeProc struct {
	t    *testing.T
	root string
}

type fakeTask struct {
	pid                          int
	comm                         string
	kthread                      bool
	utime, stime, cutime, cstime uint64
	start                        uint64
	allowed                      string
}

func (f fakeProc) write(p fakeTask) {
	f.t.Helper()
	dir := filepath.Join(f.root, strconv.Itoa(p.pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	flags := 0x400100
	if p.kthread {
		flags = 0x4208040
	}
	fields := make([]string, 50)
	for i := range fields {
		fields[i] = "0"
	}
	set := func(n int, v any) { fields[n-3] = fmt.Sprint(v) }
	set(3, "S")
	set(9, flags)
	set(14, p.utime)
	set(15, p.stime)
	set(16, p.cutime)
	set(17, p.cstime)
	set(22, p.start)
	set(39, strings.Split(p.allowed, "-")[0])
	line := fmt.Sprintf("%d (%s) %s\n", p.pid, p.comm, strings.Join(fields, " "))
	status := fmt.Sprintf("Name:\t%s\nCpus_allowed:\tff\nCpus_allowed_list:\t%s\n", p.comm, p.allowed)
	for name, s := range map[string]string{"stat": line, "status": status} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f fakeProc) remove(pid int) {
	if err := os.RemoveAll(filepath.Join(f.root, strconv.Itoa(pid))); err != nil {
		f.t.Fatal(err)
	}
}

// TestProcessSamplerFakeProc scans a constructed /proc once a second for
// 6 s; the load's window is 1 s – 5 s. Every process's rate is constant
// inside the window and different outside it, so a figure that leaks an
// edge sample is off.
func TestProcessSamplerFakeProc(t *testing.T) {
	fp := fakeProc{t, t.TempDir()}
	if err := os.WriteFile(filepath.Join(fp.root, "stat"), []byte("cpu  1 2 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	clock := t0
	s := NewProcessSampler(fp.root, []int{1}, time.Second)
	s.now = func() time.Time { return clock }
	in := func(sec int) bool { return sec >= 1 && sec < 5 } // second [sec, sec+1] is in the window
	rate := func(sec, inside, outside uint64) uint64 {
		if in(int(sec)) {
			return inside
		}
		return outside
	}
	cum := map[string]uint64{}
	add := func(key string, v uint64) uint64 { cum[key] += v; return cum[key] }
	for sec := 0; sec <= 6; sec++ {
		clock = t0.Add(time.Duration(sec) * time.Second)
		if sec > 0 {
			i := uint64(sec - 1) // the second that just ended
			// The load client: 0.5 user + 0.1 system cores in the
			// window, 1 core outside it.
			fp.write(fakeTask{pid: 10, comm: "kpbench", utime: add("10u", rate(i, 50, 100)), stime: add("10s", rate(i, 10, 0)), start: 100, allowed: "1"})
			// etcd on the other CPU: never counted.
			fp.write(fakeTask{pid: 11, comm: "etcd", utime: add("11", 90), start: 50, allowed: "0"})
			// A process allowed everywhere: counted, shared.
			fp.write(fakeTask{pid: 12, comm: "systemd", stime: add("12", rate(i, 2, 0)), start: 1, allowed: "0-1"})
			fp.write(fakeTask{pid: 13, comm: "ksoftirqd/1", kthread: true, stime: add("13", rate(i, 5, 0)), start: 25, allowed: "1"})
			fp.write(fakeTask{pid: 14, comm: "kworker/1:0-events", kthread: true, stime: add("14", rate(i, 1, 0)), start: 30, allowed: "1"})
			fp.write(fakeTask{pid: 15, comm: "kworker/1:2H-kblockd", kthread: true, stime: add("15", rate(i, 3, 0)), start: 31, allowed: "1"})
			fp.write(fakeTask{pid: 16, comm: "ipvs-e:0:0", kthread: true, stime: add("16", rate(i, 7, 0)), start: 40, allowed: "0-1"})
			// kube-proxy reaps 6 ticks of children a second.
			fp.write(fakeTask{pid: 18, comm: "kube-proxy", utime: add("18u", 3), cutime: add("18c", rate(i, 6, 0)), start: 60, allowed: "1"})
			// An idle process: never listed.
			fp.write(fakeTask{pid: 21, comm: "sleep", start: 70, allowed: "1"})
		}
		// A child that lives from 2 s to 4 s (scanned at 3 s and 4 s,
		// gone at 5 s): 9 ticks a second while it lives.
		switch sec {
		case 3, 4:
			fp.write(fakeTask{pid: 17, comm: "iptables-restor", stime: add("17", 9), start: 900, allowed: "1"})
		case 5:
			fp.remove(17)
		}
		// PID 20 is reused at 3 s.
		switch {
		case sec >= 1 && sec < 3:
			fp.write(fakeTask{pid: 20, comm: "old", utime: add("20a", 10), start: 200, allowed: "1"})
		case sec >= 3:
			fp.write(fakeTask{pid: 20, comm: "new", utime: add("20b", 20), start: 800, allowed: "1"})
		}
		if sec == 0 {
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			s.cancel() // the test takes the scans itself
			<-s.done
			continue
		}
		s.take()
	}
	ser := s.ser
	ser.Covers = s.covers()
	if len(ser.Samples) != 6 || ser.Scans != 7 {
		t.Fatalf("%d samples from %d scans, want 6 from 7", len(ser.Samples), ser.Scans)
	}
	load := Span{t0.Add(time.Second), t0.Add(5 * time.Second)}
	shares, span, err := ser.Within(load)
	if err != nil {
		t.Fatal(err)
	}
	if !span.Start.Equal(load.Start) || !span.End.Equal(load.End) {
		t.Errorf("kept span %v – %v, want the load's", span.Start, span.End)
	}
	byPID := map[string]runs.ProcessShare{}
	for _, sh := range shares {
		byPID[sh.Name] = sh
	}
	type exp struct {
		cores, user, children float64
		shared, started       bool
		exited, kthread       bool
	}
	want := map[string]exp{
		"kpbench":              {cores: 0.6, user: 0.5},
		"systemd":              {cores: 0.02, shared: true},
		"ksoftirqd/1":          {cores: 0.05, kthread: true},
		"kworker/1:0-events":   {cores: 0.01, kthread: true},
		"kworker/1:2H-kblockd": {cores: 0.03, kthread: true},
		"ipvs-e:0:0":           {cores: 0.07, kthread: true, shared: true},
		"kube-proxy":           {cores: 0.03, user: 0.03, children: 0.06},
		// Scanned at 3 s (its first 9 ticks, in the sample 2 s – 3 s)
		// and at 4 s; gone by 5 s.
		"iptables-restor": {cores: 0.045, started: true, exited: true},
		// PID 20 before its reuse: 10 ticks in 1 s – 2 s, gone at 3 s.
		"old": {cores: 0.025, user: 0.025, exited: true},
		// PID 20 after: 20 ticks a second from 2 s.
		"new": {cores: 0.15, user: 0.15, started: true},
	}
	for name, w := range want {
		g, ok := byPID[name]
		if !ok {
			t.Errorf("%s not listed", name)
			continue
		}
		if !near(g.Cores, w.cores, 1e-9) || !near(g.User, w.user, 1e-9) || !near(g.Children, w.children, 1e-9) ||
			g.Shared != w.shared || g.Started != w.started || g.Exited != w.exited || g.KernelThread != w.kthread {
			t.Errorf("%s: got %+v, want %+v", name, g, w)
		}
	}
	for _, name := range []string{"etcd", "sleep"} {
		if _, ok := byPID[name]; ok {
			t.Errorf("%s listed", name)
		}
	}
	if len(shares) != len(want) {
		t.Errorf("%d processes listed, want %d", len(shares), len(want))
	}
	if shares[0].Name != "kpbench" {
		t.Errorf("busiest %q, want kpbench", shares[0].Name)
	}

	top := ProcessTopOf(&ser, load, map[int]string{10: "load client", 18: ProcessKubeProxy})
	if top.Unavailable != "" || !strings.Contains(top.Covers, "CPUs 1") {
		t.Fatalf("top %+v", top)
	}
	if !near(top.Total, 1.03, 1e-9) {
		t.Errorf("total %.4f cores, want 1.03", top.Total)
	}
	var names []string
	for _, p := range top.Processes {
		names = append(names, p.Name)
	}
	// Ten processes in nine entries (the two kworkers of pool 1 are one);
	// the eight busiest are listed.
	wantNames := []string{"kpbench", "new", "ipvs-e:0:0", "ksoftirqd/1", "iptables-restor", "kworker/1:*", "kube-proxy", "old"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("top %v, want %v", names, wantNames)
	}
	if top.OtherCount != 1 || !near(top.Other, 0.02, 1e-9) {
		t.Errorf("other %d processes %.3f cores, want systemd's 1, 0.02", top.OtherCount, top.Other)
	}
	for _, p := range top.Processes {
		switch p.Name {
		case "kpbench":
			if p.Role != "load client" || p.PID != 10 {
				t.Errorf("load client %+v", p)
			}
		case "kube-proxy":
			if p.Role != ProcessKubeProxy {
				t.Errorf("kube-proxy %+v", p)
			}
		case "kworker/1:*":
			if p.Count != 2 || p.PID != 0 || !near(p.Cores, 0.04, 1e-9) {
				t.Errorf("kworker group %+v", p)
			}
		}
	}

	// A window no sample lies in: the reason, never a failure.
	late := ProcessTopOf(&ser, Span{t0.Add(time.Hour), t0.Add(time.Hour + time.Second)}, nil)
	if !strings.Contains(late.Unavailable, "no CPU sample inside the load window") {
		t.Errorf("a window after the samples: %+v", late)
	}
}

func TestGroupName(t *testing.T) {
	for _, c := range []struct {
		comm    string
		kthread bool
		want    string
	}{
		{"kworker/1:0-events", true, "kworker/1:*"},
		{"kworker/1:2H-kblockd", true, "kworker/1:*"},
		{"kworker/1:2", true, "kworker/1:*"},
		{"kworker/u8:3-events_unbound", true, "kworker/u8:*"},
		{"kworker/R-kblockd", true, "kworker/R-*"},
		{"ksoftirqd/1", true, ""},
		{"ipvs-e:0:1", true, ""},
		// A user process that names itself like a kworker is itself.
		{"kworker/1:0", false, ""},
	} {
		g, ok := GroupName(c.comm, c.kthread)
		if g != c.want || ok != (c.want != "") {
			t.Errorf("GroupName(%q, %v) = %q, %v; want %q", c.comm, c.kthread, g, ok, c.want)
		}
	}
}

func TestTopProcessesOther(t *testing.T) {
	shares := []runs.ProcessShare{
		{Name: "a", PID: 1, Cores: 0.5},
		{Name: "kworker/0:1", KernelThread: true, PID: 2, Cores: 0.1},
		{Name: "kworker/0:2-mm", KernelThread: true, PID: 3, Cores: 0.15},
		{Name: "b", PID: 4, Cores: 0.2},
		{Name: "c", PID: 5, Cores: 0.01},
		{Name: "d", PID: 6, Cores: 0.02},
	}
	top := TopProcesses(shares, 2)
	if len(top.Processes) != 2 || top.Processes[0].Name != "a" || top.Processes[1].Name != "kworker/0:*" ||
		!near(top.Processes[1].Cores, 0.25, 1e-12) || top.Processes[1].Count != 2 {
		t.Errorf("top %+v", top.Processes)
	}
	if top.OtherCount != 3 || !near(top.Other, 0.23, 1e-12) || !near(top.Total, 0.98, 1e-12) {
		t.Errorf("other %d × %.3f, total %.3f; want 3 × 0.23, 0.98", top.OtherCount, top.Other, top.Total)
	}
}

func TestProcessTopUnavailable(t *testing.T) {
	r := &PointResult{Problems: []string{"per-process CPU: listing processes: permission denied"}}
	if got := r.processTop(Load{}); !strings.Contains(got.Unavailable, "permission denied") {
		t.Errorf("a sampler that did not start: %+v", got)
	}
	if got := (&PointResult{}).processTop(Load{}); got.Unavailable == "" {
		t.Errorf("an agent that sent no processes: %+v", got)
	}
	// A proc mount that cannot be listed: StartPoint still runs, and
	// says why per-process CPU is missing.
	fs := mustFS(t, "testdata/proc-t0")
	s := NewProcessSampler(filepath.Join(fs.Root(), "missing"), nil, time.Second)
	if err := s.Start(context.Background()); err == nil {
		t.Error("a sampler of a missing proc mount started")
	}
}

// busyChild starts a shell busy loop.
func busyChild(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Skipf("no shell: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// TestPointFindsABusyProcess measures a busy loop through the node's
// whole collector on this machine's /proc (as the lab's client node is
// read) and finds it as the load client with the CPU the kernel's
// rusage gives it, within a sampling tick at each end.
func TestPointFindsABusyProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("burns CPU for a second")
	}
	fs := mustFS(t, "/proc")
	self := os.Getpid()
	m, err := fs.StartPoint(context.Background(), PointConfig{KubeProxyPID: self, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cmd := busyChild(t)
	time.Sleep(200 * time.Millisecond)
	start, ref0 := time.Now(), childCPU(t, cmd.Process.Pid)
	time.Sleep(1200 * time.Millisecond)
	end, ref1 := time.Now(), childCPU(t, cmd.Process.Pid)
	time.Sleep(300 * time.Millisecond)
	res, err := m.Stop(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Processes == nil || res.Processes.Scans < 10 {
		t.Fatalf("process series %+v", res.Processes)
	}
	top := res.processTop(Load{Span: Span{start, end}, PID: cmd.Process.Pid})
	if top.Unavailable != "" {
		t.Fatal(top.Unavailable)
	}
	var got *runs.ProcessShare
	for i, p := range top.Processes {
		if p.PID == cmd.Process.Pid {
			got = &top.Processes[i]
		}
	}
	if got == nil {
		t.Fatalf("the busy loop (PID %d) is not in the top %d: %+v", cmd.Process.Pid, TopN, top.Processes)
	}
	if got.Role != "load client" || got.Name != "sh" || got.KernelThread {
		t.Errorf("busy loop listed as %+v", got)
	}
	// The scheduler's own count over the same window; the sampler's
	// kept samples match the window to within half a tick (50 ms of
	// 1.2 s) at each end, and utime+stime count in 10 ms ticks.
	ref := (ref1 - ref0) / end.Sub(start).Seconds()
	if ref < 0.05 {
		t.Skipf("the busy loop got %.3f cores: the machine is too busy to tell", ref)
	}
	if math.Abs(got.Cores-ref) > 0.02+0.15*ref {
		t.Errorf("busy loop %.3f cores from /proc/PID/stat, %.3f from schedstat over the window; want within 0.02 + 15%%", got.Cores, ref)
	}
}

// childCPU is a live process's CPU-seconds from /proc/PID/schedstat
// (nanoseconds on CPU): another count than utime+stime.
func childCPU(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		t.Skipf("no schedstat: %v", err)
	}
	f := strings.Fields(string(b))
	ns, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return ns / 1e9
}

// BenchmarkProcessScan is the cost of one scan of this machine's /proc,
// the per-process sampler's work per tick.
func BenchmarkProcessScan(b *testing.B) {
	sc := newProcScanner("/proc")
	defer sc.close()
	out := map[procKey]procStat{}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0 := cpu()
	for b.Loop() {
		if err := sc.scan(out); err != nil {
			b.Fatal(err)
		}
	}
	// Wall time per scan includes waiting for a shared CPU; this is the
	// scan's own CPU.
	b.ReportMetric(float64(cpu()-c0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(len(out)), "processes")
}

// TestAgentObserverSendsProcesses: the in-cluster agent's result carries
// the process series through its JSON, and the caller narrows it to the
// load's window and names the load client.
func TestAgentObserverSendsProcesses(t *testing.T) {
	o := &AgentObserver{Node: &fakeAgentNode{}, Interval: 50 * time.Millisecond}
	w, err := o.Begin(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	spin(t, 200*time.Millisecond)
	end := time.Now()
	time.Sleep(100 * time.Millisecond)
	p := &runs.Point{}
	if err := w.End(context.Background(), Load{Span: Span{start, end}, PID: os.Getpid()}, p); err != nil {
		t.Fatal(err)
	}
	top := p.CPU.Processes.Top
	if top == nil || top.Unavailable != "" {
		t.Fatalf("no process list through the agent: %+v", top)
	}
	if !strings.Contains(top.Covers, "every process of the client node's PID namespace") {
		t.Errorf("covers %q", top.Covers)
	}
	for _, sh := range top.Processes {
		if sh.PID == os.Getpid() {
			if sh.Role != "load client" || sh.Cores <= 0 {
				t.Errorf("this process listed as %+v", sh)
			}
			return
		}
	}
	t.Errorf("this process (spinning) is not in the list: %+v", top.Processes)
}

// TestProcessSamplerClosesItsFiles: the stat files kept open between
// scans are closed when the sampler stops.
func TestProcessSamplerClosesItsFiles(t *testing.T) {
	fds := func() int {
		es, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip(err)
		}
		return len(es)
	}
	before := fds()
	s := NewProcessSampler("/proc", nil, 20*time.Millisecond)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if during := fds(); during < before+10 {
		t.Errorf("%d files open while sampling, %d before: the stat files are not kept", during, before)
	}
	ser := s.Stop()
	if ser.Scans < 2 {
		t.Errorf("%d scans", ser.Scans)
	}
	if after := fds(); after > before {
		t.Errorf("%d files open after Stop, %d before", after, before)
	}
}
