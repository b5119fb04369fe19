package loadgen

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kpbench/kpbench/runs"
)

func hasReason(s *Summary, reason string) bool {
	for _, r := range s.InvalidReasons {
		if strings.HasPrefix(r, reason) {
			return true
		}
	}
	return false
}

// TestRunStopsAtItsDuration asks for a rate no client reaches: the run
// still ends at warm-up plus duration (plus at most one timeout for what is
// in flight), counts what it could not send, and is invalid for it.
func TestRunStopsAtItsDuration(t *testing.T) {
	skipIntegration(t)
	_, url := startServer(t, ServerConfig{BodyBytes: DefaultBodyBytes})
	cfg := Config{URLs: []string{url}, Rate: 1e7, Warmup: time.Second, Duration: time.Second, Timeout: time.Second, MaxInflight: 64}
	start := time.Now()
	s := mustRun(t, cfg)
	took := time.Since(start)
	if limit := cfg.Warmup + cfg.Duration + cfg.Timeout + 500*time.Millisecond; took > limit {
		t.Errorf("run took %v, want at most %v (warm-up + duration + one timeout)", took, limit)
	}
	if s.Valid || !hasReason(s, runs.ReasonNotSent) {
		t.Errorf("valid %v, reasons %q; want invalid for %q", s.Valid, s.InvalidReasons, runs.ReasonNotSent)
	}
	// The window owed 10 million requests; what was not sent is counted.
	if s.NotSent+s.Requests != 10_000_000 {
		t.Errorf("not sent %d + sent %d = %d, want the window's 10,000,000", s.NotSent, s.Requests, s.NotSent+s.Requests)
	}
	if s.Warmup.NotSent == 0 {
		t.Errorf("warm-up not sent = 0; the warm-up cannot have sent 10 million requests")
	}
	if s.BehindSeconds < 0.5 || s.BehindSeconds > 1 {
		t.Errorf("behind %.3fs, want most of the 1 s window", s.BehindSeconds)
	}
	text := textOf(t, s)
	if !strings.Contains(text, "requests not sent: the client fell") || !strings.Contains(text, "; "+runs.ReasonNotSent+": ") {
		t.Errorf("summary does not say how far behind the client fell:\n%s", text)
	}
}

// TestRunStopsAtItsDurationWithSlowServer: a server that never answers
// keeps every worker busy; sends that wait for a worker give up at the
// run's end, and requests in flight at most one timeout later.
func TestRunStopsAtItsDurationWithSlowServer(t *testing.T) {
	skipIntegration(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // never answered
		}
	}()
	cfg := Config{URLs: []string{"http://" + l.Addr().String() + "/"}, Rate: 1000, Warmup: 0, Duration: time.Second, Timeout: 700 * time.Millisecond, MaxInflight: 4}
	start := time.Now()
	s := mustRun(t, cfg)
	if took, limit := time.Since(start), cfg.Duration+cfg.Timeout+300*time.Millisecond; took > limit {
		t.Errorf("run took %v, want at most %v", took, limit)
	}
	if s.Answered != 0 || s.AchievedRate != 0 || s.NotSent == 0 {
		t.Errorf("answered %d, achieved %.1f, not sent %d; want none answered and sends counted as not sent", s.Answered, s.AchievedRate, s.NotSent)
	}
}

// TestRunInterruptedCountsTheTimeRun: rates are over the time the run
// lasted, not over the duration asked for, and the summary says so.
func TestRunInterruptedCountsTheTimeRun(t *testing.T) {
	skipIntegration(t)
	_, url := startServer(t, ServerConfig{BodyBytes: DefaultBodyBytes})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{URLs: []string{url}, Rate: 20, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := &res.Summary
	if s.MeasuredSeconds < 1.9 || s.MeasuredSeconds > 2.2 {
		t.Errorf("measured %.3fs, want the 2 s run", s.MeasuredSeconds)
	}
	if s.SentRate < 18 || s.SentRate > 22 || s.AchievedRate < 18 || s.AchievedRate > 22 {
		t.Errorf("sent %.1f/s, achieved %.1f/s over an interrupted run; want about the 20/s asked", s.SentRate, s.AchievedRate)
	}
	if !hasReason(s, runs.ReasonInterrupted) || hasReason(s, runs.ReasonRateShort) || s.NotSent != 0 {
		t.Errorf("reasons %q, not sent %d; want interrupted only", s.InvalidReasons, s.NotSent)
	}
	text := textOf(t, s)
	if !strings.Contains(text, "INTERRUPTED after 2.0") || !strings.Contains(text, "of the 10s window") {
		t.Errorf("summary does not say it was interrupted:\n%s", text)
	}
}

// TestRunAllRefusedAchievesNothing: achieved counts answers, so a load
// whose every request was refused never reads as the target rate.
func TestRunAllRefusedAchievesNothing(t *testing.T) {
	skipIntegration(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String() + "/"
	l.Close() // nothing listens: every connect is refused
	s := mustRun(t, Config{URLs: []string{url}, Rate: 100, Duration: time.Second})
	if s.AchievedRate != 0 || s.Answered != 0 || s.Requests != 100 || s.SentRate < 99 {
		t.Errorf("achieved %.1f/s, answered %d, sent %d at %.1f/s; want 0 answered of 100 sent", s.AchievedRate, s.Answered, s.Requests, s.SentRate)
	}
	text := textOf(t, s)
	if !strings.Contains(text, "100 requests sent (100.0 req/s), 0 answered: 0.0 req/s achieved (0.00% of target)") {
		t.Errorf("summary:\n%s", text)
	}
}

// TestRunWarnsAndAbortsWhenBehind: progress reports say early that the
// rate is out of reach, and AbortWhenBehind ends the run there.
func TestRunWarnsAndAbortsWhenBehind(t *testing.T) {
	skipIntegration(t)
	_, url := startServer(t, ServerConfig{BodyBytes: DefaultBodyBytes})
	var reports, behind atomic.Int64
	cfg := Config{URLs: []string{url}, Rate: 1e7, Duration: 10 * time.Second, MaxInflight: 64, AbortWhenBehind: true,
		Progress: func(p Progress) {
			reports.Add(1)
			if p.IsBehind {
				behind.Add(1)
			}
		}}
	start := time.Now()
	s := mustRun(t, cfg)
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("aborted run took %v; want about a second", took)
	}
	if reports.Load() == 0 || behind.Load() == 0 {
		t.Errorf("%d progress reports, %d behind; want a report saying the client is behind", reports.Load(), behind.Load())
	}
	if !s.Aborted || !hasReason(s, runs.ReasonAborted) || s.Valid {
		t.Errorf("aborted %v, reasons %q", s.Aborted, s.InvalidReasons)
	}
	if s.MeasuredSeconds > 3 {
		t.Errorf("measured %.3fs; an aborted run's rates count the time it ran", s.MeasuredSeconds)
	}
}

// textOf is s's table, as kpbench load prints it.
func textOf(t *testing.T, s *Summary) string {
	t.Helper()
	var b strings.Builder
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
