//go:build linux

package loadgen

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkWorker* measure one request through worker.do, the hot path a
// load runs per request (connect when needed, deadline, round trip,
// recording), on a persistent connection and on a new connection per
// request, against a loopback server in the same process. -benchmem shows
// what each request allocates.
func BenchmarkWorkerPersistent(b *testing.B) { benchmarkWorker(b, 0, false) }
func BenchmarkWorkerNewConn(b *testing.B)    { benchmarkWorker(b, 1, false) }

// BenchmarkWorker*Logged are the same with the requests log on
// (Config.LogRequests): what keeping a record of every request adds.
func BenchmarkWorkerPersistentLogged(b *testing.B) { benchmarkWorker(b, 0, true) }
func BenchmarkWorkerNewConnLogged(b *testing.B)    { benchmarkWorker(b, 1, true) }

func benchmarkWorker(b *testing.B, perConn int, logged bool) {
	_, url := startServerB(b)
	tgt, err := ParseTarget(url)
	if err != nil {
		b.Fatal(err)
	}
	d := newDialer()
	if err := d.prepare(&tgt); err != nil {
		b.Fatal(err)
	}
	r := &runner{
		cfg:      Config{RequestsPerConn: perConn, Timeout: 5 * time.Second, MaxInflight: 1, idleReuse: maxIdleReuse},
		targets:  []Target{tgt},
		dialer:   d,
		t0:       time.Now(),
		timeline: newTimeline(0, time.Hour),
		hist:     newHistograms(),
	}
	if logged {
		r.log = newRequestLog(1 << 20) // room for the default benchtime; beyond, records are counted, not kept
		r.targets[0].askBackend()
	}
	w := r.startWorker()
	close(w.jobs) // the benchmark drives w.do itself
	r.wg.Wait()
	b.ResetTimer()
	for b.Loop() {
		w.do(r.now(), true)
	}
	b.StopTimer()
	if w.conn != nil {
		w.conn.Close()
	}
	d.close()
	if w.errors > 0 {
		b.Fatalf("%d of %d requests failed: %v", w.errors, w.requests, w.byKind)
	}
	if logged {
		recs, _ := r.log.records(r.t0, r.targets)
		if len(recs) == 0 || recs[len(recs)-1].Backend == "" {
			b.Fatalf("%d records, the last without its backend", len(recs))
		}
	}
}

// BenchmarkSleeper measures one precise wait of 100 µs, as the dispatcher
// makes one per request: the CPU it costs (cpu-ns/op, the process's rusage)
// and its wake-ups (wakes/op: voluntary context switches).
func BenchmarkSleeper(b *testing.B) {
	origin := time.Now()
	s, err := newSleeper(origin)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	ctx := context.Background()
	var ru0, ru1 unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	cpu0 := processCPU()
	n := 0
	for b.Loop() {
		if err := s.sleepUntil(ctx, origin, time.Since(origin)+100*time.Microsecond); err != nil {
			b.Fatal(err)
		}
		n++
	}
	cpu := processCPU() - cpu0
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
	b.ReportMetric(float64(ru1.Nvcsw-ru0.Nvcsw)/float64(n), "wakes/op")
}

// TestSleeperWakesAtTheInstant: the timer is armed inside the poller's
// wait; a wait never ends early, ends close to its instant, and one whose
// instant has just passed (armed in the past) still returns.
func TestSleeperWakesAtTheInstant(t *testing.T) {
	origin := time.Now()
	s, err := newSleeper(origin)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	ctx := context.Background()
	const n = 200
	lates := make([]time.Duration, 0, n)
	for range n {
		at := time.Since(origin) + 200*time.Microsecond
		done := make(chan error, 1)
		go func() { done <- s.sleepUntil(ctx, origin, at) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a 200 µs wait did not end within 5 s")
		}
		late := time.Since(origin) - at
		if late < 0 {
			t.Fatalf("woke %v before the instant", -late)
		}
		lates = append(lates, late)
	}
	// Half the waits end within 5 ms even on a busy machine; a runtime
	// timer or a missed expiry would be late by a millisecond or more in
	// most of them, or hang.
	var within int
	for _, l := range lates {
		if l < 5*time.Millisecond {
			within++
		}
	}
	if within < n/2 {
		t.Errorf("only %d of %d waits ended within 5 ms of their instant", within, n)
	}
	// An instant that passes between the caller's check and the arming:
	// the expiry is already due when the timer is armed.
	s.its = unix.ItimerSpec{Value: unix.NsecToTimespec(s.base + int64(time.Since(origin)) - int64(time.Millisecond))}
	s.armed, s.armErr = false, 0
	done := make(chan error, 1)
	go func() { done <- s.rc.Read(s.readFn) }()
	select {
	case err := <-done:
		if err != nil || s.armErr != 0 {
			t.Fatalf("wait for an instant in the past: %v, arming: %v", err, s.armErr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a timer armed in the past did not end the wait")
	}
}
