package collector

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"math"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

const eps = 1e-9

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func mustFS(t *testing.T, root string) FS {
	t.Helper()
	fs, err := NewFS(root)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// fixtureSnapshots reads the t0 and t1 fixture trees as two readings 2 s
// apart.
func fixtureSnapshots(t *testing.T) (Snapshot, Snapshot) {
	t.Helper()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, err := mustFS(t, "testdata/proc-t0").Snapshot(nil, []int{4242, 4343, 9999})
	if err != nil {
		t.Fatal(err)
	}
	b, err := mustFS(t, "testdata/proc-t1").Snapshot(nil, []int{4242, 4343, 9999})
	if err != nil {
		t.Fatal(err)
	}
	a.Time, b.Time = t0, t0.Add(2*time.Second)
	return a, b
}

func TestCPUsFixtureInSeconds(t *testing.T) {
	cpus, err := mustFS(t, "testdata/proc-t0").CPUs()
	if err != nil {
		t.Fatal(err)
	}
	want := CPUTimes{User: 10, Nice: 0.1, System: 5, Idle: 80, IOWait: 0.2, IRQ: 0.05, SoftIRQ: 0.3, Guest: 0.4}
	got := cpus[0]
	if !near(got.User, want.User, eps) || !near(got.System, want.System, eps) || !near(got.Idle, want.Idle, eps) ||
		!near(got.SoftIRQ, want.SoftIRQ, eps) || !near(got.Guest, want.Guest, eps) || !near(got.IRQ, want.IRQ, eps) {
		t.Errorf("cpu0 = %+v, want %+v (ticks / 100)", got, want)
	}
	// Guest is inside User already: Busy must not add it.
	if b := got.Busy(); !near(b, 10+0.1+5+0.05+0.3, eps) {
		t.Errorf("cpu0 busy = %v", b)
	}
	if len(cpus) != 2 {
		t.Errorf("got %d CPUs, want 2 (the aggregate line is not a CPU)", len(cpus))
	}
}

func TestProcTicksToSeconds(t *testing.T) {
	fs := mustFS(t, "testdata/proc-t0")
	p, err := fs.Proc(4242)
	if err != nil {
		t.Fatal(err)
	}
	// utime 250 and stime 150 clock ticks at USER_HZ=100.
	if p.Comm != "kube-proxy" || !near(p.UserSeconds, 2.5, eps) || !near(p.SystemSeconds, 1.5, eps) || p.StartTicks != 60000 {
		t.Fatalf("Proc(4242) = %+v", p)
	}
	// procfs's own conversion agrees (it hard-codes USER_HZ too).
	pfs, _ := procfs.NewFS("testdata/proc-t0")
	pp, _ := pfs.Proc(4242)
	st, err := pp.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if !near(st.CPUTime(), p.Seconds(), eps) {
		t.Errorf("procfs CPUTime %v != %v", st.CPUTime(), p.Seconds())
	}
	if _, err := fs.Proc(9999); !errors.Is(err, ErrNoSuchProcess) {
		t.Errorf("Proc(9999) error = %v, want ErrNoSuchProcess", err)
	}
}

func TestSnapshotUnknownCPU(t *testing.T) {
	_, err := mustFS(t, "testdata/proc-t0").Snapshot([]int{0, 7}, nil)
	if !errors.Is(err, ErrNoSuchCPU) {
		t.Fatalf("error = %v, want ErrNoSuchCPU", err)
	}
}

func TestDeltaFixture(t *testing.T) {
	a, b := fixtureSnapshots(t)
	procs := []Process{{Name: ProcessKubeProxy, PID: 4242}, {Name: "reused", PID: 4343}, {Name: "gone", PID: 9999}}
	for _, tc := range []struct {
		name string
		cpus []int
		want Cores
	}{
		// cpu0 over 2 s: user +120 ticks (incl. guest +20), system +40,
		// irq +1, softirq +9, idle +28, iowait +2 (200 ticks in all).
		{name: "cpu0", cpus: []int{0}, want: Cores{User: 0.6, System: 0.2, IRQ: 0.005, SoftIRQ: 0.045, Total: 0.85, Idle: 0.14, IOWait: 0.01}},
		// cpu1: user +30, nice +4, system +10, softirq +4, steal +2, idle +150.
		{name: "cpu1", cpus: []int{1}, want: Cores{User: 0.15, Nice: 0.02, System: 0.05, SoftIRQ: 0.02, Steal: 0.01, Total: 0.25, Idle: 0.75}},
		{name: "both", cpus: []int{0, 1}, want: Cores{User: 0.75, Nice: 0.02, System: 0.25, IRQ: 0.005, SoftIRQ: 0.065, Steal: 0.01, Total: 1.1, Idle: 0.89, IOWait: 0.01}},
		{name: "all by default", cpus: nil, want: Cores{User: 0.75, Nice: 0.02, System: 0.25, IRQ: 0.005, SoftIRQ: 0.065, Steal: 0.01, Total: 1.1, Idle: 0.89, IOWait: 0.01}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Delta(a, b, tc.cpus, procs)
			if s.Seconds != 2 {
				t.Fatalf("seconds = %v", s.Seconds)
			}
			g, w := s.Node, tc.want
			for _, f := range [][3]any{{"user", g.User, w.User}, {"nice", g.Nice, w.Nice}, {"system", g.System, w.System},
				{"irq", g.IRQ, w.IRQ}, {"softirq", g.SoftIRQ, w.SoftIRQ}, {"steal", g.Steal, w.Steal},
				{"total", g.Total, w.Total}, {"idle", g.Idle, w.Idle}, {"iowait", g.IOWait, w.IOWait}} {
				if !near(f[1].(float64), f[2].(float64), 1e-9) {
					t.Errorf("%s = %v, want %v", f[0], f[1], f[2])
				}
			}
			// kube-proxy: utime +80, stime +40 ticks over 2 s; 4343's PID
			// was reused (new start time) and 9999 never existed.
			if len(s.Processes) != 1 {
				t.Fatalf("processes = %+v, want only kube-proxy", s.Processes)
			}
			p := s.Processes[0]
			if p.PID != 4242 || !near(p.User, 0.4, eps) || !near(p.System, 0.2, eps) || !near(p.Total, 0.6, eps) {
				t.Errorf("kube-proxy = %+v, want 0.4 user + 0.2 system cores", p)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	a, b := fixtureSnapshots(t)
	// A middle reading splitting the 2 s window unevenly: cpu0 spends its
	// whole second second in user time and everything else in the first;
	// cpu1 does all its work in the first second and idles in the second.
	mid := Snapshot{Time: a.Time.Add(time.Second), CPUs: map[int]CPUTimes{}, Procs: map[int]ProcTimes{}}
	mid.CPUs[0] = a.CPUs[0].Add(CPUTimes{User: 0.2, Guest: 0.2, System: 0.4, IRQ: 0.01, SoftIRQ: 0.09, Idle: 0.28, IOWait: 0.02})
	mid.CPUs[1] = a.CPUs[1].Add(CPUTimes{User: 0.3, Nice: 0.04, System: 0.1, SoftIRQ: 0.04, Steal: 0.02, Idle: 0.5})
	mid.Procs[4242] = a.Procs[4242]
	procs := []Process{{Name: ProcessKubeProxy, PID: 4242}, {Name: "client", PID: 4343}}
	s1 := Delta(a, mid, nil, procs)
	s2 := Delta(mid, b, nil, procs)
	sum := Summarize(a, b, []Sample{s1, s2}, nil, procs, time.Second)
	if !near(sum.Mean.Total, 1.1, 1e-9) || sum.Seconds != 2 {
		t.Errorf("mean total = %v over %v s, want 1.1 over 2", sum.Mean.Total, sum.Seconds)
	}
	if !near(s1.Node.Total, 1.2, 1e-9) || !near(s2.Node.Total, 1.0, 1e-9) {
		t.Fatalf("interval totals = %v, %v; want 1.2, 1.0", s1.Node.Total, s2.Node.Total)
	}
	if !near(sum.MaxTotal, 1.2, 1e-9) {
		t.Errorf("max total = %v, want 1.2", sum.MaxTotal)
	}
	if !reflect.DeepEqual(sum.CPUs, []int{0, 1}) {
		t.Errorf("cpus = %v", sum.CPUs)
	}
	pc := sum.ProcessesCPU()
	if !near(pc.KubeProxy, 0.6, eps) || pc.Client != 0 {
		t.Errorf("ProcessesCPU = %+v, want kube-proxy 0.6 and no client (PID reused)", pc)
	}
	if kp := sum.Processes[0]; kp.Exited || !near(kp.Max, 1.2, eps) {
		t.Errorf("kube-proxy summary = %+v, want max 1.2 in the second interval", kp)
	}
	if cl := sum.Processes[1]; !cl.Exited {
		t.Errorf("client summary = %+v, want exited (PID reused)", cl)
	}
	n := sum.NodeCPU()
	if !near(n.Total, 1.1, eps) || !near(n.MaxTotal, 1.2, eps) || !near(n.SoftIRQ, 0.065, eps) {
		t.Errorf("NodeCPU = %+v", n)
	}

	// A short trailing interval does not set the max.
	short := Delta(b, Snapshot{Time: b.Time.Add(100 * time.Millisecond), CPUs: map[int]CPUTimes{0: b.CPUs[0].Add(CPUTimes{User: 0.1}), 1: b.CPUs[1].Add(CPUTimes{User: 0.1})}}, nil, nil)
	if short.Node.Total < 1.5 {
		t.Fatalf("short interval total = %v", short.Node.Total)
	}
	sum = Summarize(a, b, []Sample{s1, s2, short}, nil, nil, time.Second)
	if !near(sum.MaxTotal, 1.2, eps) {
		t.Errorf("max with short tail = %v, want 1.2", sum.MaxTotal)
	}
}

func TestWriteCSV(t *testing.T) {
	a, b := fixtureSnapshots(t)
	procs := []Process{{Name: ProcessKubeProxy, PID: 4242}, {Name: "gone", PID: 9999}}
	ser := &Series{Processes: procs, Samples: []Sample{Delta(a, b, []int{0}, procs)}}
	var buf bytes.Buffer
	if err := ser.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := "time,seconds,user,nice,system,irq,softirq,steal,total,idle,iowait,proc_kube-proxy_4242,proc_gone_9999"
	if len(rows) != 2 || strings.Join(rows[0], ",") != wantHeader {
		t.Fatalf("csv = %q", buf.String())
	}
	want := []string{"2026-01-02T03:04:07Z", "2.000000", "0.600000", "0.000000", "0.200000", "0.005000", "0.045000", "0.000000", "0.850000", "0.140000", "0.010000", "0.600000", ""}
	if !reflect.DeepEqual(rows[1], want) {
		t.Errorf("row = %q\nwant  %q", rows[1], want)
	}
}

func TestSamplerLifecycle(t *testing.T) {
	fs := mustFS(t, "testdata/proc-t0")
	s, err := fs.NewSampler(SamplerConfig{Interval: 10 * time.Millisecond, Processes: []Process{{Name: ProcessKubeProxy, PID: 4242}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stop(); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Stop before Start = %v", err)
	}
	var seen atomic.Int32
	s.cfg.OnSample = func(Sample) { seen.Add(1) }
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	time.Sleep(100 * time.Millisecond)
	ser, err := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ser.Samples); n < 2 || int(seen.Load()) != n {
		t.Errorf("%d samples, OnSample called %d times", n, seen.Load())
	}
	// A fixture tree never changes: the window is all zeros, and the
	// process is still there.
	if ser.Summary.Mean.Total != 0 || len(ser.Summary.Processes) != 1 || ser.Summary.Processes[0].Exited ||
		!reflect.DeepEqual(ser.CPUs, []int{0, 1}) || ser.IntervalSeconds != 0.01 {
		t.Errorf("series = %+v", ser.Summary)
	}
	if _, err := s.Stop(); err == nil {
		t.Error("second Stop succeeded")
	}
	if _, err := fs.NewSampler(SamplerConfig{Interval: -time.Second}); err == nil {
		t.Error("negative interval accepted")
	}
	missing, _ := fs.NewSampler(SamplerConfig{Processes: []Process{{Name: "gone", PID: 9999}}})
	if err := missing.Start(context.Background()); !errors.Is(err, ErrNoSuchProcess) {
		t.Errorf("Start with a missing process = %v, want ErrNoSuchProcess", err)
	}
}

// TestReconcileAliasedTicks: on a tickless kernel, idle is measured and the
// busy columns are tick samples. A fixed-rate load that wakes the CPU in
// step with the tick makes the busy columns alias (here 0.99 cores of
// ticks against 0.25 s not idle); the node figure follows the idle time and
// keeps the columns' proportions.
func TestReconcileAliasedTicks(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := Snapshot{Time: t0, CPUs: map[int]CPUTimes{1: {User: 10, System: 10, SoftIRQ: 10, Idle: 10}}}
	b := Snapshot{Time: t0.Add(time.Second), CPUs: map[int]CPUTimes{1: {User: 10.03, System: 10.62, SoftIRQ: 10.34, Idle: 10.75}}}
	s := Delta(a, b, []int{1}, nil)
	n := s.Node
	if !near(n.Total, 0.25, 1e-9) {
		t.Errorf("total = %v, want 0.25 (wall - idle)", n.Total)
	}
	if !near(n.User+n.System+n.SoftIRQ, n.Total, 1e-9) || !near(n.System/n.SoftIRQ, 0.62/0.34, 1e-9) {
		t.Errorf("columns %+v do not keep their proportions and add up to the total", n)
	}
	// Columns that already add up to the wall time are left alone.
	c := Snapshot{Time: t0.Add(time.Second), CPUs: map[int]CPUTimes{1: {User: 10.2, System: 10.1, SoftIRQ: 10, Idle: 10.7}}}
	if got := Delta(a, c, []int{1}, nil).Node; !near(got.User, 0.2, 1e-9) || !near(got.Total, 0.3, 1e-9) {
		t.Errorf("consistent columns changed: %+v", got)
	}
}

// TestReconcileNoBusyTick: an interval in which no tick found the CPU busy
// (the columns did not move) while the idle loop counted only 0.68 s of a
// second idle. The 0.32 s busy count in Total, unattributed; the per-CPU
// figure and the node's agree. Summing such samples must not lose them.
func TestReconcileNoBusyTick(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := Snapshot{Time: t0, CPUs: map[int]CPUTimes{1: {User: 10, System: 10, Idle: 10}}}
	b := Snapshot{Time: t0.Add(time.Second), CPUs: map[int]CPUTimes{1: {User: 10, System: 10, Idle: 10.68}}}
	s := Delta(a, b, []int{1}, nil)
	if !near(s.Node.Total, 0.32, 1e-9) || !near(s.PerCPU[1].Total, 0.32, 1e-9) {
		t.Errorf("node %+v, cpu 1 %+v: want total 0.32 (wall - idle)", s.Node, s.PerCPU[1])
	}
	if s.Node.User != 0 || s.Node.System != 0 {
		t.Errorf("columns invented for an interval without busy ticks: %+v", s.Node)
	}
	// A truly idle interval stays at zero.
	c := Snapshot{Time: t0.Add(time.Second), CPUs: map[int]CPUTimes{1: {User: 10, System: 10, Idle: 11}}}
	if got := Delta(a, c, []int{1}, nil).Node.Total; got != 0 {
		t.Errorf("idle interval total = %v", got)
	}
}
