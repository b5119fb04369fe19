package loadgen

import (
	"testing"
	"time"
)

// Go benchmarks of the client's hot path. The side-by-side comparison with
// fortio and wrk is hack/perf-loadgen (make perf).

func BenchmarkPace(b *testing.B) {
	p := ConstantPacer{Rate: 10000, Total: time.Hour}
	var hits uint64
	for b.Loop() {
		_, _ = p.Pace(p.Due(hits), hits)
		hits++
	}
}

func BenchmarkParseResponse(b *testing.B) { benchmarkParseResponse(b, "") }

// BenchmarkParseResponseBackend parses kpbench serve's answer as it comes,
// naming its backend (BackendHeader).
func BenchmarkParseResponseBackend(b *testing.B) { benchmarkParseResponse(b, "10.244.1.23:8080") }

func benchmarkParseResponse(b *testing.B, backend string) {
	srv, err := NewServer(ServerConfig{BodyBytes: DefaultBodyBytes})
	if err != nil {
		b.Fatal(err)
	}
	c := &replayConn{resp: srv.build(backend).resp}
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(c.resp)))
	for b.Loop() {
		c.off = 0
		if _, err := roundTrip(c, req, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// replayConn answers every request with the same bytes.
type replayConn struct {
	resp []byte
	off  int
}

func (c *replayConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *replayConn) Read(p []byte) (int, error) {
	n := copy(p, c.resp[c.off:])
	c.off += n
	return n, nil
}

func BenchmarkParseRequestHead(b *testing.B) {
	head := []byte("GET / HTTP/1.1\r\nHost: 198.19.0.10\r\nUser-Agent: kpbench\r\n\r\n")
	for b.Loop() {
		if _, _, err := parseRequestHead(head); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordSample(b *testing.B) {
	w := &worker{r: &runner{hist: newHistograms()}}
	var i int64
	for b.Loop() {
		i++
		w.samples[w.nsamples] = sample{lag: i % 1000, latency: 100_000 + i%5000, service: 90_000 + i%5000}
		w.nsamples++
		if w.nsamples == len(w.samples) {
			w.flush()
		}
	}
}

// BenchmarkLoopback* measure one request, client and server together, on a
// persistent connection and on a new connection per request: the cost the
// open-loop runner adds (pacing, hand-off) comes on top.
func BenchmarkLoopbackPersistent(b *testing.B) { benchmarkLoopback(b, false) }
func BenchmarkLoopbackNewConn(b *testing.B)    { benchmarkLoopback(b, true) }

func benchmarkLoopback(b *testing.B, newConn bool) {
	_, url := startServerB(b)
	tgt, err := ParseTarget(url)
	if err != nil {
		b.Fatal(err)
	}
	d := newDialer()
	if err := d.prepare(&tgt); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	var c conn
	for b.Loop() {
		if c == nil {
			if c, _, err = d.dial(&tgt, time.Now().Add(5*time.Second)); err != nil {
				b.Fatal(err)
			}
		}
		req := tgt.req
		if newConn {
			req = tgt.reqClose
		}
		if _, err := roundTrip(c, req, buf); err != nil {
			b.Fatal(err)
		}
		if newConn {
			for {
				if _, err := c.Read(buf); err != nil {
					break
				}
			}
			c.Close()
			c = nil
		}
	}
	if c != nil {
		c.Close()
	}
	d.close()
}

func startServerB(b *testing.B) (*Server, string) {
	return startServer(b, ServerConfig{BodyBytes: DefaultBodyBytes})
}
