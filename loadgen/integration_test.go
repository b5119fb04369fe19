package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kpbench/kpbench/runs"
)

// These tests drive real load over loopback against kpbench's own backend
// (Server) and against misbehaving listeners. They need no privileges.
func skipIntegration(t *testing.T) {
	t.Helper()
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	if testing.Short() {
		t.Skip("loopback load test skipped in -short mode")
	}
}

func startServer(t testing.TB, cfg ServerConfig) (*Server, string) {
	t.Helper()
	return startServerOn(t, cfg, func(l net.Listener) net.Listener { return l })
}

// startServerOn serves on a loopback listener as wrap returns it.
func startServerOn(t testing.TB, cfg ServerConfig, wrap func(net.Listener) net.Listener) (*Server, string) {
	t.Helper()
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := wrap(inner)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return srv, "http://" + l.Addr().String() + "/"
}

func mustRun(t *testing.T, cfg Config) *Summary {
	t.Helper()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("requests %d achieved %.1f/s errors %+v connect %+v latency p50 %.1fµs lag p99 %.1fµs peak %d",
		res.Summary.Requests, res.Summary.AchievedRate, res.Summary.Errors, res.Summary.Connect,
		res.Summary.Latency.P50Us, res.Summary.Lag.P99Us, res.Summary.PeakInflight)
	return &res.Summary
}

func TestRunRequestsPerConnAccounting(t *testing.T) {
	skipIntegration(t)
	tests := []struct {
		name string
		k    int
		// connections the server must have accepted, given the number of
		// workers (each holds at most one connection at a time).
		min, max func(requests, peak int64) int64
	}{
		{"new connection per request", 1,
			func(r, _ int64) int64 { return r }, func(r, _ int64) int64 { return r }},
		{"100 requests per connection", 100,
			func(r, _ int64) int64 { return r / 100 }, func(r, p int64) int64 { return r/100 + p }},
		{"persistent", 0,
			func(_, _ int64) int64 { return 1 }, func(_, p int64) int64 { return p }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, url := startServer(t, ServerConfig{BodyBytes: DefaultBodyBytes})
			s := mustRun(t, Config{URLs: []string{url}, Rate: 2000, Duration: time.Second, RequestsPerConn: tt.k})
			// A machine too busy to open 2000 connections a second sends
			// fewer by the window's end (and says so); the accounting
			// below holds for what was sent.
			if s.Requests+s.NotSent != 2000 || s.Errors.Total != 0 {
				t.Fatalf("requests %d + not sent %d, errors %+v; want 2000 and none", s.Requests, s.NotSent, s.Errors)
			}
			if got := srv.Requests(); got != s.Requests {
				t.Errorf("server answered %d requests, client sent %d", got, s.Requests)
			}
			conns, workers := srv.Connections(), int64(s.Workers)
			if lo, hi := tt.min(s.Requests, workers), tt.max(s.Requests, workers); conns < lo || conns > hi {
				t.Errorf("server accepted %d connections, want %d..%d (%d workers)", conns, lo, hi, workers)
			}
			if s.Connect.Count != conns {
				t.Errorf("client timed %d connects, server accepted %d connections", s.Connect.Count, conns)
			}
		})
	}
}

func TestRunHoldsRate(t *testing.T) {
	skipIntegration(t)
	srv, url := startServer(t, ServerConfig{BodyBytes: DefaultBodyBytes})
	res, err := Run(context.Background(), Config{URLs: []string{url}, Rate: 2000, Duration: 2 * time.Second, Warmup: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary
	if s.Requests != 4000 || s.Warmup.Requests != 500 {
		t.Fatalf("sent %d measured and %d warm-up requests, want 4000 and 500", s.Requests, s.Warmup.Requests)
	}
	if srv.Requests() != 4500 {
		t.Errorf("server answered %d requests, want 4500", srv.Requests())
	}
	// The schedule is fixed; only a stall of the whole machine at the very
	// end stretches the window. 5% leaves room for a busy CI machine.
	if s.AchievedRate < 1900 || s.AchievedRate > 2000.5 {
		t.Errorf("achieved %.1f req/s, want 1900..2000", s.AchievedRate)
	}
	if len(res.Timeline) != 2 {
		t.Fatalf("timeline has %d seconds, want 2", len(res.Timeline))
	}
	var sent, completed int64
	for _, sec := range res.Timeline {
		sent += sec.Sent
		completed += sec.Completed
		if sec.P50Us <= 0 {
			t.Errorf("second %d has no latency", sec.Second)
		}
	}
	if sent != s.Requests || completed != s.Requests {
		t.Errorf("timeline counts %d sent and %d completed, want %d", sent, completed, s.Requests)
	}
	if s.Latency.P50Us <= 0 || s.Latency.P50Us > s.Latency.P99Us || s.ServiceTime.P50Us > s.Latency.P50Us+1 {
		t.Errorf("implausible latency %+v / service time %+v", s.Latency, s.ServiceTime)
	}
	if s.ClientCPUCores <= 0 || s.ClientCPUCores > 4 {
		t.Errorf("client CPU %.3f cores", s.ClientCPUCores)
	}
}

func TestRunRedialsConnectionsIdleTooLong(t *testing.T) {
	skipIntegration(t)
	srv, url := startServer(t, ServerConfig{})
	// 50 ms between requests, connections reused for at most 10 ms idle:
	// every request opens a connection although K is 0.
	s := mustRun(t, Config{URLs: []string{url}, Rate: 20, Duration: time.Second, idleReuse: 10 * time.Millisecond})
	if s.Requests != 20 || s.Errors.Total != 0 || srv.Connections() != 20 {
		t.Errorf("%d requests, %d errors, %d connections; want 20, 0, 20", s.Requests, s.Errors.Total, srv.Connections())
	}
}

func TestRunTickSendsInBatches(t *testing.T) {
	skipIntegration(t)
	var l *arrivalListener
	srv, url := startServerOn(t, ServerConfig{}, func(inner net.Listener) net.Listener {
		l = &arrivalListener{Listener: inner}
		return l
	})

	// 1,000 req/s in 10 ms ticks: 100 batches of ten.
	s := mustRun(t, Config{URLs: []string{url}, Rate: 1000, Duration: time.Second, Tick: 10 * time.Millisecond})
	if s.Requests != 1000 || srv.Requests() != 1000 || s.Errors.Total != 0 {
		t.Fatalf("sent %d, served %d, %d errors; want 1000, 1000, 0", s.Requests, srv.Requests(), s.Errors.Total)
	}
	// Requests reach the server in bursts: arrivals less than 500 µs apart
	// belong to one burst. Sent one by one they would be 1 ms apart (1,000
	// bursts); a stall of the machine can merge or split a few.
	at := l.arrivals()
	bursts := 1
	for i := 1; i < len(at); i++ {
		if at[i].Sub(at[i-1]) >= 500*time.Microsecond {
			bursts++
		}
	}
	if bursts < 50 || bursts > 200 {
		t.Errorf("%d requests arrived in %d bursts, want about 100", len(at), bursts)
	}
	// A batch leaves at its tick's start and its lag and latency count from
	// there, not from each request's own due time (which would put the
	// median near 5 ms).
	if s.Lag.P50Us > 2500 || s.Latency.P50Us > 2500 {
		t.Errorf("lag p50 %.0fµs, latency p50 %.0fµs; want both under 2.5 ms", s.Lag.P50Us, s.Latency.P50Us)
	}
}

// TestRunAutoTick: by default (auto) a run above 1,000 req/s sends in 1 ms
// batches and says so; at 1,000 req/s and with --tick 0 each request
// leaves on its own.
func TestRunAutoTick(t *testing.T) {
	skipIntegration(t)
	bursts := func(rate float64, tick time.Duration) (int, *Summary) {
		var l *arrivalListener
		_, url := startServerOn(t, ServerConfig{}, func(inner net.Listener) net.Listener {
			l = &arrivalListener{Listener: inner}
			return l
		})
		s := mustRun(t, Config{URLs: []string{url}, Rate: rate, Duration: time.Second, Tick: tick})
		if want := int64(rate); s.Requests != want || s.Errors.Total != 0 {
			t.Fatalf("%g req/s, tick %v: sent %d with %d errors, want %d and none", rate, tick, s.Requests, s.Errors.Total, want)
		}
		at := l.arrivals()
		n := 1
		for i := 1; i < len(at); i++ {
			if at[i].Sub(at[i-1]) >= 250*time.Microsecond {
				n++
			}
		}
		return n, s
	}
	auto, s := bursts(2000, TickAuto)
	if s.TickSeconds != 0.001 {
		t.Errorf("2,000 req/s, auto: tickSeconds %g, want 0.001", s.TickSeconds)
	}
	if text := textOf(t, s); !strings.Contains(text, "at 2000 req/s in 1ms batches @") {
		t.Errorf("the table does not say the requests went in 1 ms batches:\n%s", text)
	}
	precise, s := bursts(2000, 0)
	if s.TickSeconds != 0 {
		t.Errorf("2,000 req/s, --tick 0: tickSeconds %g, want 0", s.TickSeconds)
	}
	if text := textOf(t, s); strings.Contains(text, "batches") {
		t.Errorf("the table of a precisely paced run speaks of batches:\n%s", text)
	}
	// Batched: about 1,000 bursts of two (a stall of the machine can merge
	// a few); one by one, 500 µs apart: about 2,000.
	if auto < 500 || auto > 1400 || float64(precise) < 1.4*float64(auto) {
		t.Errorf("2,000 requests arrived in %d bursts with the automatic tick and %d with --tick 0; want about 1,000 and 2,000", auto, precise)
	}
	if _, s := bursts(1000, TickAuto); s.TickSeconds != 0 {
		t.Errorf("1,000 req/s, auto: tickSeconds %g, want 0 (each request on its own)", s.TickSeconds)
	}
}

// arrivalListener records when each read on an accepted connection
// returned data: with one small request per read, when requests arrived.
type arrivalListener struct {
	net.Listener
	mu sync.Mutex
	at []time.Time
}

func (l *arrivalListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &arrivalConn{Conn: c, l: l}, nil
}

func (l *arrivalListener) arrivals() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	at := slices.Clone(l.at)
	slices.SortFunc(at, time.Time.Compare)
	return at
}

type arrivalConn struct {
	net.Conn
	l *arrivalListener
}

func (c *arrivalConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		now := time.Now()
		c.l.mu.Lock()
		c.l.at = append(c.l.at, now)
		c.l.mu.Unlock()
	}
	return n, err
}

// The published keepalive experiments let the server end each connection
// after 100 requests (nginx's keepalive_requests); the client follows.
func TestRunFollowsServerRequestLimit(t *testing.T) {
	skipIntegration(t)
	srv, url := startServer(t, ServerConfig{BodyBytes: DefaultBodyBytes, MaxRequestsPerConn: 100})
	s := mustRun(t, Config{URLs: []string{url}, Rate: 2000, Duration: time.Second})
	if s.Requests != 2000 || s.Errors.Total != 0 {
		t.Fatalf("requests %d errors %+v, want 2000 and none", s.Requests, s.Errors)
	}
	if c := srv.Connections(); c < 20 || c > 20+int64(s.Workers) {
		t.Errorf("server accepted %d connections, want 20..%d", c, 20+s.Workers)
	}
}

func TestRunOverIPv6(t *testing.T) {
	skipIntegration(t)
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	srv, err := NewServer(ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	s := mustRun(t, Config{URLs: []string{"http://" + l.Addr().String() + "/"}, Rate: 200, Duration: 250 * time.Millisecond, RequestsPerConn: 1})
	if s.Requests != 50 || s.Errors.Total != 0 || srv.Connections() != 50 {
		t.Errorf("%d requests, errors %+v, %d connections; want 50, none, 50", s.Requests, s.Errors, srv.Connections())
	}
}

func TestRunSpreadsConnectionsOverURLs(t *testing.T) {
	skipIntegration(t)
	a, urlA := startServer(t, ServerConfig{})
	b, urlB := startServer(t, ServerConfig{})
	s := mustRun(t, Config{URLs: []string{urlA, urlB}, Rate: 2000, Duration: 500 * time.Millisecond, RequestsPerConn: 1, Seed: 42})
	if s.Requests != 1000 || s.Errors.Total != 0 {
		t.Fatalf("requests %d errors %+v", s.Requests, s.Errors)
	}
	// Binomial(1000, 0.5): 400..600 is more than 6 standard deviations wide.
	ca, cb := a.Connections(), b.Connections()
	if ca < 400 || cb < 400 || ca+cb != 1000 {
		t.Errorf("connections split %d/%d, want both near 500", ca, cb)
	}
	// The summary counts what each server saw (the depth of random
	// targets is weighted by these counts).
	if want := []int64{int64(ca), int64(cb)}; !reflect.DeepEqual(s.TargetConnects, want) {
		t.Errorf("targetConnects %v, want the servers' counts %v", s.TargetConnects, want)
	}
}

// misbehave starts a listener whose connections are handled by fn and
// returns its URL.
func misbehave(t *testing.T, fn func(c *net.TCPConn)) string {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); fn(c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + l.Addr().String() + "/"
}

func readRequest(c net.Conn) error {
	buf := make([]byte, 4096)
	n := 0
	for !strings.Contains(string(buf[:n]), "\r\n\r\n") {
		m, err := c.Read(buf[n:])
		if err != nil {
			return err
		}
		n += m
	}
	return nil
}

func TestRunErrorKinds(t *testing.T) {
	skipIntegration(t)
	refused := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + l.Addr().String() + "/"
		l.Close()
		return url
	}
	silent := func(t *testing.T) string {
		return misbehave(t, func(c *net.TCPConn) { _ = readRequest(c); _, _ = io.Copy(io.Discard, c) })
	}
	reset := func(t *testing.T) string {
		return misbehave(t, func(c *net.TCPConn) {
			_ = readRequest(c)
			_ = c.SetLinger(0) // close with RST
			c.Close()
		})
	}
	hangup := func(t *testing.T) string {
		return misbehave(t, func(c *net.TCPConn) { _ = readRequest(c); c.Close() })
	}
	unavailable := func(t *testing.T) string {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}))
		t.Cleanup(ts.Close)
		return ts.URL + "/"
	}
	tests := []struct {
		name    string
		url     func(t *testing.T) string
		k       int
		want    string
		rate    float64
		timeout time.Duration
	}{
		{"connection refused", refused, 1, KindConnectRefused, 200, time.Second},
		{"no answer", silent, 0, KindTimeout, 20, 100 * time.Millisecond},
		{"reset after the request", reset, 0, KindReset, 200, time.Second},
		{"closed without an answer", hangup, 0, KindEOF, 200, time.Second},
		{"HTTP 503", unavailable, 0, "http_503", 200, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustRun(t, Config{URLs: []string{tt.url(t)}, Rate: tt.rate, Duration: 250 * time.Millisecond, RequestsPerConn: tt.k, Timeout: tt.timeout})
			if s.Requests == 0 || s.Errors.Total != s.Requests || s.Errors.ByKind[tt.want] != s.Requests {
				t.Fatalf("%d requests, errors %+v, want all %q", s.Requests, s.Errors, tt.want)
			}
			if s.Valid || !strings.Contains(strings.Join(s.InvalidReasons, ";"), runs.ReasonErrors) {
				t.Errorf("valid %v reasons %q, want invalid for errors", s.Valid, s.InvalidReasons)
			}
			if s.Latency.P50Us != 0 {
				t.Errorf("failed requests entered the latency histogram: %+v", s.Latency)
			}
		})
	}
}

// A server that stalls must not slow the schedule: with one worker allowed,
// the requests queued behind the stall are late, their latency counts from
// when they were due, and the run is invalid.
func TestRunCountsLatencyFromIntendedSendTime(t *testing.T) {
	skipIntegration(t)
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) == 50 {
			time.Sleep(100 * time.Millisecond)
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(ts.Close)
	s := mustRun(t, Config{URLs: []string{ts.URL}, Rate: 1000, Duration: 500 * time.Millisecond, MaxInflight: 1})
	if s.InflightBoundHits == 0 || s.Valid {
		t.Fatalf("bound hits %d valid %v, want the inflight bound hit", s.InflightBoundHits, s.Valid)
	}
	if !strings.Contains(strings.Join(s.InvalidReasons, ";"), runs.ReasonInflightBound) {
		t.Errorf("reasons %q lack %q", s.InvalidReasons, runs.ReasonInflightBound)
	}
	// About 100 requests were due during the stall: p90 of 500 sits inside.
	if s.Latency.MaxUs < 90_000 || s.Latency.P90Us < 10_000 {
		t.Errorf("latency %+v does not show the stall", s.Latency)
	}
	if s.ServiceTime.P90Us > s.Latency.P90Us/5 {
		t.Errorf("service time p90 %.0fµs should be far below latency p90 %.0fµs", s.ServiceTime.P90Us, s.Latency.P90Us)
	}
	if s.Lag.MaxUs < 90_000 {
		t.Errorf("lag max %.0fµs does not show the stall", s.Lag.MaxUs)
	}
}

// TestRunClientStallInvalidates stops the client's dispatcher in the
// middle of the window (as a descheduled process would be): the backend
// is fast, the dataplane is loopback, and yet the requests due during
// the stall are charged its length as latency. The point must be
// invalid, and say why. The stall is 60 ms, three times the bound of a
// 1 s window (20 ms) and under the 100 ms the bound used to be, at which
// it passed.
func TestRunClientStallInvalidates(t *testing.T) {
	skipIntegration(t)
	_, url := startServer(t, ServerConfig{})
	cfg := Config{URLs: []string{url}, Rate: 1000, Warmup: 200 * time.Millisecond, Duration: time.Second, RequestsPerConn: 1,
		stallAt: 700 * time.Millisecond, stallFor: 60 * time.Millisecond}
	s := mustRun(t, cfg)
	if s.Valid {
		t.Fatalf("valid after a 60 ms stall: lag %+v", s.Lag)
	}
	reasons := strings.Join(s.InvalidReasons, "; ")
	if !strings.Contains(reasons, runs.ReasonScheduleBehind+": a send started ") || !strings.Contains(reasons, "ms late (bound 20ms, 2.0% of the 1s window") {
		t.Errorf("reasons %q lack the stall", reasons)
	}
	if s.Latency.MaxUs < 55_000 {
		t.Errorf("latency %+v does not show the stall", s.Latency)
	}
	// The same run without the stall is valid (the bound sits above
	// loopback jitter).
	cfg.stallFor = 0
	if s := mustRun(t, cfg); !s.Valid {
		t.Errorf("without the stall: invalid: %q (lag %+v)", s.InvalidReasons, s.Lag)
	}
}

func TestRunStartsWorkersWhenAllAreBusy(t *testing.T) {
	skipIntegration(t)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(20 * time.Millisecond)
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(ts.Close)
	// 500 req/s × 20 ms = 10 in flight on average.
	s := mustRun(t, Config{URLs: []string{ts.URL}, Rate: 500, Duration: 500 * time.Millisecond})
	if s.InflightBoundHits != 0 || s.PeakInflight < 8 || s.Errors.Total != 0 {
		t.Errorf("bound hits %d, peak in flight %d, errors %d: want about 10 in flight, no waiting", s.InflightBoundHits, s.PeakInflight, s.Errors.Total)
	}
	if s.Latency.P50Us < 20_000 {
		t.Errorf("latency p50 %.0fµs below the server's 20 ms", s.Latency.P50Us)
	}
}

func TestRunCancelled(t *testing.T) {
	skipIntegration(t)
	_, url := startServer(t, ServerConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Config{URLs: []string{url}, Rate: 100, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("cancelled run took %v", el)
	}
	if res.Summary.Valid || !strings.Contains(strings.Join(res.Summary.InvalidReasons, ";"), runs.ReasonInterrupted) {
		t.Errorf("reasons %q, want interrupted", res.Summary.InvalidReasons)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"empty", Config{}, []string{"at least one URL", "rate must be", "duration must be positive"}},
		{"negative everything", Config{URLs: []string{"ftp://x"}, Rate: 10, Duration: time.Second, Warmup: -1, RequestsPerConn: -1, Timeout: -1, MaxInflight: -1},
			[]string{"only http", "warmup", "requests per connection", "timeout", "max inflight"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
