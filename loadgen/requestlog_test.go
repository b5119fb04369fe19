package loadgen

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestRoundTripKeepsTheBackend: the backend's name survives the body's
// reads, also when the body arrives after the headers in reads of its own;
// with too little room after the headers the body overwrites them, and
// the name is dropped rather than returned corrupted.
func TestRoundTripKeepsTheBackend(t *testing.T) {
	srv, err := NewServer(ServerConfig{BodyBytes: DefaultBodyBytes})
	if err != nil {
		t.Fatal(err)
	}
	a := srv.build("10.244.1.23:8080")
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, chunk := range []int{len(a.resp), 100, 7} {
		c := &chunkConn{resp: a.resp, chunk: chunk}
		resp, err := roundTrip(c, req, make([]byte, 4096))
		if err != nil {
			t.Fatalf("chunks of %d: %v", chunk, err)
		}
		if string(resp.backend) != "10.244.1.23:8080" || resp.status != 200 || resp.bytes != len(a.resp) {
			t.Errorf("chunks of %d: backend %q, status %d, %d bytes", chunk, resp.backend, resp.status, resp.bytes)
		}
	}
	// Headers that leave less than minBodyBuf of a small buffer.
	c := &chunkConn{resp: a.resp, chunk: 200}
	resp, err := roundTrip(c, req, make([]byte, 600))
	if err != nil {
		t.Fatal(err)
	}
	if resp.backend != nil {
		t.Errorf("body read over the headers, backend %q, want none", resp.backend)
	}
	// A server that does not name itself.
	c = &chunkConn{resp: srv.resp, chunk: len(srv.resp)}
	if resp, err = roundTrip(c, req, make([]byte, 4096)); err != nil || resp.backend != nil {
		t.Errorf("no header: backend %q, %v", resp.backend, err)
	}
}

// chunkConn answers with resp, at most chunk bytes per read.
type chunkConn struct {
	resp  []byte
	chunk int
	off   int
}

func (c *chunkConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *chunkConn) Read(p []byte) (int, error) {
	n := copy(p[:min(len(p), c.chunk)], c.resp[c.off:])
	c.off += n
	return n, nil
}

// TestRequestLogRoundTrip: what WriteRequestLog writes, ReadRequestLog
// reads back the same; bad lines are counted and named.
func TestRequestLogRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 123456789, time.UTC)
	recs := []RequestRecord{
		{Start: t0, Connect: 45 * time.Microsecond, NewConn: true, Target: "10.96.0.10:80", Backend: "10.244.0.5:8080"},
		{Start: t0.Add(time.Millisecond), NewConn: true, Target: "10.96.0.10:80", Error: KindConnectRefused},
		{Start: t0.Add(2 * time.Millisecond), Target: "10.96.0.10:80", Backend: "10.244.0.6:8080"},
	}
	var b bytes.Buffer
	if err := WriteRequestLog(&b, recs); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "start_unix_ns,connect_ns,new_conn,target,backend,error\n") {
		t.Errorf("header: %q", b.String())
	}
	got, err := ReadRequestLog(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(recs) {
		t.Fatalf("read %d records, wrote %d", len(got), len(recs))
	}
	for i := range recs {
		if !got[i].Start.Equal(recs[i].Start) || got[i].Connect != recs[i].Connect || got[i].NewConn != recs[i].NewConn ||
			got[i].Target != recs[i].Target || got[i].Backend != recs[i].Backend || got[i].Error != recs[i].Error {
			t.Errorf("record %d: read %+v, wrote %+v", i, got[i], recs[i])
		}
	}
	bad := b.String() + "x,1,1,a,b,\n5,-1,1,a,b,\n6,1,2,a,b,\n"
	_, err = ReadRequestLog(strings.NewReader(bad))
	if err == nil || !strings.Contains(err.Error(), "3 bad lines") || !strings.Contains(err.Error(), "line 5") ||
		!strings.Contains(err.Error(), "line 6") || !strings.Contains(err.Error(), "line 7") {
		t.Errorf("bad lines: %v", err)
	}
	if _, err := ReadRequestLog(strings.NewReader("start,connect\n")); err == nil {
		t.Error("a foreign header was accepted")
	}
}

// TestRunLogsRequests: asked to, a run keeps one record per request of
// its measured window, by start time, inside the window: with a new
// connection per request each opened its connection, timed its connect
// and names the backend that answered; a refused connect is a new
// connection with no connect time, no backend and its error kind. Not
// asked, it keeps none.
func TestRunLogsRequests(t *testing.T) {
	_, url := startServer(t, ServerConfig{BodyBytes: DefaultBodyBytes})
	backend := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	cfg := Config{URLs: []string{url}, Rate: 400, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond,
		RequestsPerConn: 1, LogRequests: true, Seed: 1}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary
	if int64(len(res.Requests)) != s.Requests || s.Requests < 100 || res.RequestsNotLogged != 0 {
		t.Fatalf("%d records (%d not logged) for %d requests", len(res.Requests), res.RequestsNotLogged, s.Requests)
	}
	start, end := s.Window()
	answered := 0
	for i, r := range res.Requests {
		if i > 0 && r.Start.Before(res.Requests[i-1].Start) {
			t.Fatalf("record %d starts before record %d", i, i-1)
		}
		// Sends may run a little early (wakeAdvance) or late.
		if r.Start.Before(start.Add(-5*time.Millisecond)) || r.Start.After(end.Add(sendGrace)) {
			t.Errorf("record %d starts at %v, outside the window %v – %v", i, r.Start, start, end)
		}
		if !r.NewConn || r.Target != backend {
			t.Errorf("record %d: %+v, want a new connection to %s", i, r, backend)
		}
		if r.Error == "" {
			answered++
			if r.Backend != backend || r.Connect <= 0 {
				t.Errorf("record %d: %+v, want backend %s and a connect time", i, r, backend)
			}
		}
	}
	if int64(answered) != s.Answered {
		t.Errorf("%d answered records, the summary says %d", answered, s.Answered)
	}

	// Kept-alive, without a warm-up: the window opens the few connections
	// it uses, the other requests reuse them and still name the backend.
	cfg.RequestsPerConn, cfg.Warmup = 0, 0
	if res, err = Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	opened := 0
	for _, r := range res.Requests {
		if r.NewConn {
			opened++
		} else if r.Connect != 0 {
			t.Errorf("a reused connection has a connect time: %+v", r)
		}
		if r.Error == "" && r.Backend != backend {
			t.Errorf("kept-alive record %+v, want backend %s", r, backend)
		}
	}
	if opened == 0 || int64(opened) != res.Summary.Connect.Count || opened > len(res.Requests)/10 {
		t.Errorf("%d of %d records opened a connection, the summary counts %d connects", opened, len(res.Requests), res.Summary.Connect.Count)
	}

	// Refused: nothing listens on the port any more.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/"
	l.Close()
	cfg = Config{URLs: []string{closed}, Rate: 200, Duration: 100 * time.Millisecond, Warmup: 0, RequestsPerConn: 1, LogRequests: true}
	if res, err = Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if len(res.Requests) == 0 {
		t.Fatal("no records of refused requests")
	}
	for _, r := range res.Requests {
		if !r.NewConn || r.Connect != 0 || r.Backend != "" || r.Error != KindConnectRefused {
			t.Errorf("refused request recorded as %+v", r)
		}
	}

	cfg.LogRequests = false
	if res, err = Run(context.Background(), cfg); err != nil || res.Requests != nil {
		t.Errorf("not asked: %d records (%v)", len(res.Requests), err)
	}
}

// TestRequestLogBound: the log's room is what the schedule can send in
// the window; beyond it requests are counted, not kept; a run that would
// keep too many is refused before it starts.
func TestRequestLogBound(t *testing.T) {
	p, err := NewConstantPacer(1000, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n := loggedRequests(p, Config{Rate: 1000, Warmup: time.Second, Duration: 2 * time.Second}); n != 2001 {
		t.Errorf("room for %d requests in a 2 s window at 1000/s, want 2001", n)
	}
	l := newRequestLog(2)
	for i := range 3 {
		l.add(logSlot{start: int64(3 - i), backend: l.intern([]byte("b"))})
	}
	recs, dropped := l.records(time.Unix(0, 0), nil)
	if len(recs) != 2 || dropped != 1 || recs[0].Start.UnixNano() != 2 || recs[0].Backend != "b" {
		t.Errorf("records %+v, dropped %d", recs, dropped)
	}
	cfg := Config{URLs: []string{"http://127.0.0.1:1/"}, Rate: 100000, Duration: 200 * time.Second, LogRequests: true}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "requests log") {
		t.Errorf("a log of 20 million requests: %v", err)
	}
}
