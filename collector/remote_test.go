package collector

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// inProcess runs ServeRemotePoint in this process as if it were the agent
// command that run executed.
func inProcess(fs FS, cfg PointConfig, max time.Duration) RunFunc {
	return func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
		if len(args) != 1 || args[0] != "agent-point" {
			return errors.New("unexpected command " + strings.Join(args, " "))
		}
		return ServeRemotePoint(ctx, fs, cfg, stdin, stdout, max)
	}
}

func TestRemotePointRoundTrip(t *testing.T) {
	fs := mustFS(t, "/proc")
	before, _ := os.ReadFile("testdata/metrics/kube-proxy-before.txt")
	after, _ := os.ReadFile("testdata/metrics/kube-proxy-after.txt")
	n := 0
	kp := &KubeProxyScraper{Fetch: func(context.Context, string) ([]byte, error) {
		n++
		if n == 1 {
			return before, nil
		}
		return after, nil
	}}
	self := os.Getpid()
	cfg := PointConfig{KubeProxyPID: self, Interval: 50 * time.Millisecond, KubeProxy: kp}
	ctx := context.Background()
	ref0, err := processCPUTime(self)
	if err != nil {
		t.Fatal(err)
	}
	w0 := time.Now()
	p, err := StartRemotePoint(ctx, inProcess(fs, cfg, time.Minute), "agent-point")
	if err != nil {
		t.Fatal(err)
	}
	// Spin for 200 ms of CPU time and at least 300 ms of wall time: on a
	// machine others load, a wall-clock spin can get almost no CPU, and
	// then there is nothing to compare.
	deadline := time.Now().Add(300 * time.Millisecond)
	for {
		used, err := processCPUTime(self)
		if err != nil {
			t.Fatal(err)
		}
		if used-ref0 >= 200*time.Millisecond && !time.Now().Before(deadline) {
			break
		}
	}
	r, err := p.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ref1, _ := processCPUTime(self)
	ref := (ref1 - ref0).Seconds() / time.Since(w0).Seconds()
	// The result crossed the pipe as JSON: everything the sweep reads
	// must survive it.
	if r.Series == nil || len(r.Series.Samples) < 3 {
		t.Fatalf("series = %+v, want ≥ 3 samples over 300 ms at 50 ms", r.Series)
	}
	// This process spun for the window; its own CPU clock is the
	// reference (10 ms ticks: 0.07 over 300 ms).
	if got := r.CPU.Processes.KubeProxy; !near(got, ref, 0.1*ref+0.07) {
		t.Errorf("this process spun for the window: sampled %.3f cores, its CPU clock says %.3f", got, ref)
	}
	if r.Sync.FullSyncs != 1 || r.Sync.PartialSyncs != 3 {
		t.Errorf("sync = %+v, want the fixtures' 1 full and 3 partial", r.Sync)
	}
	for _, pr := range r.Problems {
		if !strings.HasPrefix(pr, "conntrack") && !strings.HasPrefix(pr, "softnet") {
			t.Errorf("problem: %s", pr)
		}
	}
}

func TestRemotePointAgentLimit(t *testing.T) {
	fs := mustFS(t, "/proc")
	ctx := context.Background()
	p, err := StartRemotePoint(ctx, inProcess(fs, PointConfig{Interval: 20 * time.Millisecond}, 100*time.Millisecond), "agent-point")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	r, err := p.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, pr := range r.Problems {
		found = found || strings.Contains(pr, "agent's limit")
	}
	if !found {
		t.Errorf("problems %q do not say the agent's limit ended the window", r.Problems)
	}
	if s := r.Series.Summary.Seconds; s > 0.25 {
		t.Errorf("window %.3f s, want it cut at the 0.1 s limit", s)
	}
}

func TestRemotePointStartFailures(t *testing.T) {
	ctx := context.Background()
	cases := map[string]RunFunc{
		"command fails": func(_ context.Context, _ io.Reader, _, stderr io.Writer, _ ...string) error {
			io.WriteString(stderr, "kpbench: unknown command \"point\"")
			return errors.New("exit status 1")
		},
		"garbage": func(_ context.Context, _ io.Reader, stdout, _ io.Writer, _ ...string) error {
			io.WriteString(stdout, "hello\n")
			return nil
		},
		"sampler cannot start": inProcess(mustFS(t, "/proc"), PointConfig{CPUs: []int{4096}}, time.Second),
	}
	for name, run := range cases {
		t.Run(name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := StartRemotePoint(ctx, run, "agent-point")
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), "starting the remote point") {
					t.Fatalf("err = %v", err)
				}
				if name == "command fails" && !strings.Contains(err.Error(), "unknown command") {
					t.Errorf("err %v lacks the remote stderr", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("StartRemotePoint hangs")
			}
		})
	}
}

func TestSeriesWithin(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sec := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	// Ten one-second samples: the node is idle (0.1 cores) while a pod
	// starts for three seconds, then busy (0.5) for five, then idle.
	s := &Series{CPUs: []int{0}, IntervalSeconds: 1, Processes: []Process{{Name: ProcessKubeProxy, PID: 7}}}
	for i := 0; i < 10; i++ {
		busy := 0.1
		if i >= 3 && i < 8 {
			busy = 0.5
		}
		s.Samples = append(s.Samples, Sample{
			Start: sec(i), End: sec(i + 1), Seconds: 1,
			Node:      Cores{User: busy * 0.6, System: busy * 0.4, Total: busy, Idle: 1 - busy},
			Processes: []ProcessCores{{Name: ProcessKubeProxy, PID: 7, User: busy / 10, Total: busy / 10}},
		})
	}
	s.Summary = Summary{Start: sec(0), End: sec(10)}
	sum, err := s.Within(Span{sec(3), sec(8)})
	if err != nil {
		t.Fatal(err)
	}
	if !near(sum.Mean.Total, 0.5, 1e-9) || !near(sum.Mean.User, 0.3, 1e-9) || sum.Seconds != 5 || !sum.Start.Equal(sec(3)) || !sum.End.Equal(sec(8)) {
		t.Errorf("within the busy seconds: %+v", sum)
	}
	if len(sum.Processes) != 1 || !near(sum.Processes[0].Mean.Total, 0.05, 1e-9) || sum.Processes[0].Exited {
		t.Errorf("processes = %+v", sum.Processes)
	}
	// A window that starts mid-sample keeps the samples whose middle is
	// inside: [2.6, 8.4] keeps 3..7 plus none of the idle edges.
	sum, _ = s.Within(Span{sec(2).Add(600 * time.Millisecond), sec(8).Add(400 * time.Millisecond)})
	if !near(sum.Mean.Total, 0.5, 1e-9) {
		t.Errorf("mid-sample window: mean %.3f, want 0.5", sum.Mean.Total)
	}
	// The whole series is the plain mean.
	sum, _ = s.Within(Span{sec(0), sec(10)})
	if !near(sum.Mean.Total, (0.1*5+0.5*5)/10, 1e-9) || sum.MaxTotal != 0.5 {
		t.Errorf("whole: %+v", sum)
	}
	// Samples in which no tick landed on a busy CPU (Total without
	// columns) still count, and the window's columns are scaled back up
	// to its Total keeping their split.
	s.Samples[4].Node = Cores{Total: 0.5, Idle: 0.5}
	s.Samples[6].Node = Cores{Total: 0.5, Idle: 0.5}
	sum, _ = s.Within(Span{sec(3), sec(8)})
	if m := sum.Mean; !near(m.Total, 0.5, 1e-9) || !near(m.User, 0.3, 1e-9) || !near(m.System, 0.2, 1e-9) {
		t.Errorf("window with column-less samples: %+v, want total 0.5 split 0.3/0.2", m)
	}
	// A process that vanished halfway is marked exited.
	for i := 5; i < 10; i++ {
		s.Samples[i].Processes = nil
	}
	sum, _ = s.Within(Span{sec(3), sec(8)})
	if !sum.Processes[0].Exited {
		t.Errorf("kube-proxy missing from 3 of 5 samples is not marked exited")
	}
	if _, err := s.Within(Span{sec(20), sec(30)}); err == nil {
		t.Error("a window after every sample gives no error")
	}
	// Round trip through JSON keeps what Within needs.
	b, _ := json.Marshal(s)
	var back Series
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got, _ := back.Within(Span{sec(0), sec(10)}); !near(got.Mean.Total, 0.3, 1e-9) {
		t.Errorf("after JSON: %+v", got)
	}
}

// An exec stream that cannot half-close stdin delivers the stop line but
// never EOF: the window must still end.
func TestServeRemotePointStopsOnALine(t *testing.T) {
	fs := mustFS(t, "/proc")
	stopR, stopW := io.Pipe()
	defer stopW.Close()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- ServeRemotePoint(context.Background(), fs, PointConfig{Interval: 20 * time.Millisecond}, stopR, outW, time.Minute)
		outW.Close()
	}()
	dec := json.NewDecoder(outR)
	var ready remoteReady
	if err := dec.Decode(&ready); err != nil || !ready.Ready {
		t.Fatalf("ready line: %v %+v", err, ready)
	}
	// A pipe's Write waits until every byte is read; the agent reads one.
	time.Sleep(100 * time.Millisecond)
	go func() { _, _ = stopW.Write([]byte("stop\n")) }()
	var res PointResult
	if err := dec.Decode(&res); err != nil {
		t.Fatal(err)
	}
	// The result's trailing newline may still be in the pipe (the decoder
	// stops at the object's end), and the agent's write waits for it to be
	// read, as an exec stream's reader does.
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the agent kept measuring after the stop line")
	}
	if res.Series == nil || res.Series.Summary.Seconds <= 0 {
		t.Errorf("result %+v", res)
	}
}
