// Package loadgen drives open-loop, fixed-rate HTTP load and serves the
// backend that answers it.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBodyBytes matches the size of nginx's default index page, the
// backend of the published experiments.
const DefaultBodyBytes = 612

// Server timeouts, nginx's defaults.
const (
	serverIdleTimeout     = 75 * time.Second // keepalive_timeout
	serverShutdownTimeout = 5 * time.Second
)

// ServerConfig configures the backend server.
type ServerConfig struct {
	// BodyBytes is the size of every response body.
	BodyBytes int
	// MaxRequestsPerConn closes a connection after this many requests
	// (nginx's keepalive_requests); 0 means no limit.
	MaxRequestsPerConn int
}

// Server is a minimal HTTP/1.1 backend: every request gets 200 and a fixed
// body, naming the backend when asked (BackendHeader). It counts what it
// served.
//
// Serve speaks HTTP/1.1 itself rather than through net/http: the backend's
// CPU is part of what a benchmark machine spends, and a fixed answer needs
// only the request's framing (request line, Connection, Content-Length),
// not a general server. It keeps connections alive (HTTP/1.1 default),
// answers pipelined requests in order, honours "Connection: close" and
// HTTP/1.0, rejects what it cannot frame with 400 and closes after
// MaxRequestsPerConn requests, announcing it as nginx does.
type Server struct {
	cfg      ServerConfig
	body     []byte
	bodyLen  string
	requests atomic.Int64
	conns    atomic.Int64

	// Pre-serialized responses: keep-alive and closing, GET and HEAD,
	// without BackendHeader.
	answers
	// byAddr holds the answers naming each local address connections
	// were accepted on (netip.AddrPort → *answers): built at the first
	// connection to the address, so that a request's answer is still one
	// write of fixed bytes.
	byAddr sync.Map
}

// answers are the pre-serialized responses of one backend address.
type answers struct {
	resp, respClose, head, headClose []byte
}

// BackendHeader is the header of a request that asks kpbench serve to name
// the backend that answers, and of the answer in which it does: the local
// address (IP:port) of the connection it accepted. Behind a Service the
// client dials the ClusterIP and the dataplane rewrites it (DNAT) to one
// endpoint; only the backend knows which, and a load client that records
// it (load --requests-log) can tell which endpoint each request reached.
// Requests that do not ask get the answers of old, byte for byte.
const BackendHeader = "Kpbench-Backend"

type connCountKey struct{}

// NewServer returns a backend with cfg; it rejects a negative body size or
// request limit.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.BodyBytes < 0 {
		return nil, fmt.Errorf("body size must not be negative, got %d", cfg.BodyBytes)
	}
	if cfg.MaxRequestsPerConn < 0 {
		return nil, fmt.Errorf("max requests per connection must not be negative, got %d", cfg.MaxRequestsPerConn)
	}
	body := bytes.Repeat([]byte{'k'}, cfg.BodyBytes)
	s := &Server{cfg: cfg, body: body, bodyLen: strconv.Itoa(len(body))}
	s.answers = s.build("")
	return s, nil
}

// build serializes the answers naming backend ("": without BackendHeader).
func (s *Server) build(backend string) answers {
	head := "HTTP/1.1 200 OK\r\nServer: kpbench\r\nContent-Type: text/html\r\nContent-Length: " + s.bodyLen + "\r\n"
	if backend != "" {
		head += BackendHeader + ": " + backend + "\r\n"
	}
	var a answers
	a.head = []byte(head + "\r\n")
	a.headClose = []byte(head + "Connection: close\r\n\r\n")
	a.resp = append(append([]byte(nil), a.head...), s.body...)
	a.respClose = append(append([]byte(nil), a.headClose...), s.body...)
	return a
}

// answersFor returns the answers of a connection accepted on local: built
// once per address, then shared by every connection to it.
func (s *Server) answersFor(local net.Addr) *answers {
	ap, ok := backendAddr(local)
	if !ok {
		return &s.answers
	}
	if a, ok := s.byAddr.Load(ap); ok {
		return a.(*answers)
	}
	a := s.build(ap.String())
	got, _ := s.byAddr.LoadOrStore(ap, &a)
	return got.(*answers)
}

// backendAddr is a connection's local address as BackendHeader gives it:
// IPv4 addresses unmapped (a dual-stack listener sees ::ffff:10.0.0.1).
func backendAddr(local net.Addr) (netip.AddrPort, bool) {
	ta, ok := local.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := ta.AddrPort()
	if !ap.Addr().IsValid() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// Requests returns the number of requests served so far.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Connections returns the number of connections accepted so far.
func (s *Server) Connections() int64 { return s.conns.Load() }

// ServeHTTP answers every request with 200 and the fixed body, for use
// inside a net/http server.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	h := w.Header()
	if n, ok := r.Context().Value(connCountKey{}).(*atomic.Int64); ok && s.cfg.MaxRequestsPerConn > 0 {
		if n.Add(1) >= int64(s.cfg.MaxRequestsPerConn) {
			h.Set("Connection", "close")
		}
	}
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", s.bodyLen)
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && r.Header.Get(BackendHeader) != "" {
		if ap, ok := backendAddr(local); ok {
			h.Set(BackendHeader, ap.String())
		}
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(s.body)
	}
}

// ConnContext counts connections for ServeHTTP's request limit; set it as
// an http.Server's ConnContext.
func (s *Server) ConnContext(ctx context.Context, _ net.Conn) context.Context {
	s.conns.Add(1)
	return context.WithValue(ctx, connCountKey{}, new(atomic.Int64))
}

// Serve accepts connections on l until ctx is done, then shuts down
// gracefully: it stops accepting, closes idle connections and lets requests
// being answered finish (up to 5 seconds).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	var (
		mu     sync.Mutex
		active = map[*serverConn]struct{}{}
		wg     sync.WaitGroup
	)
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		l.Close()
	}()
	var err error
	for {
		var c net.Conn
		c, err = l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			break
		}
		s.conns.Add(1)
		sc := &serverConn{s: s, c: c}
		mu.Lock()
		active[sc] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc.serve()
			mu.Lock()
			delete(active, sc)
			mu.Unlock()
		}()
	}
	close(stopped)
	if ctx.Err() == nil {
		wg.Wait()
		return fmt.Errorf("accepting: %w", err)
	}
	// Wake connections waiting for a request; one being answered finishes
	// its answer first (only reads are interrupted).
	mu.Lock()
	for sc := range active {
		sc.shutdown()
	}
	mu.Unlock()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(serverShutdownTimeout):
		mu.Lock()
		for sc := range active {
			sc.c.Close()
		}
		mu.Unlock()
		<-done
		return fmt.Errorf("shutting down: %d connections did not finish in %v", len(active), serverShutdownTimeout)
	}
}

// serverConn is one accepted connection.
type serverConn struct {
	s        *Server
	c        net.Conn
	named    *answers // the answers naming this connection's backend, once asked for
	closing  atomic.Bool
	served   int
	buf      []byte
	pos, end int // unparsed bytes are buf[pos:end]
}

var (
	errBadRequest = errors.New("bad request")
	resp400       = []byte("HTTP/1.1 400 Bad Request\r\nServer: kpbench\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
)

func (sc *serverConn) shutdown() {
	sc.closing.Store(true)
	_ = sc.c.SetReadDeadline(time.Now())
}

func (sc *serverConn) serve() {
	defer sc.c.Close()
	sc.buf = make([]byte, 4096)
	for {
		req, err := sc.next()
		if err != nil {
			if errors.Is(err, errBadRequest) {
				_, _ = sc.c.Write(resp400)
				sc.lingerClose()
			}
			return
		}
		sc.s.requests.Add(1)
		sc.served++
		closing := req.close || sc.closing.Load() ||
			(sc.s.cfg.MaxRequestsPerConn > 0 && sc.served >= sc.s.cfg.MaxRequestsPerConn)
		a := &sc.s.answers
		if req.backend {
			if sc.named == nil {
				sc.named = sc.s.answersFor(sc.c.LocalAddr())
			}
			a = sc.named
		}
		var out []byte
		switch {
		case req.head && closing:
			out = a.headClose
		case req.head:
			out = a.head
		case closing:
			out = a.respClose
		default:
			out = a.resp
		}
		if _, err := sc.c.Write(out); err != nil {
			return
		}
		if closing {
			sc.lingerClose()
			return
		}
	}
}

// lingerClose closes the way nginx and net/http do: send FIN, let the
// client read the answer and close its side, then close. Closing with
// unread request bytes would send a RST that can destroy the answer.
func (sc *serverConn) lingerClose() {
	if tc, ok := sc.c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		_ = sc.c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.Copy(io.Discard, sc.c)
	}
}

type serverRequest struct {
	head, close bool
	// backend: the request carries BackendHeader, asking the server to
	// name itself.
	backend bool
}

// next reads and parses the next request, discarding any body.
func (sc *serverConn) next() (serverRequest, error) {
	var req serverRequest
	for {
		if i := bytes.Index(sc.buf[sc.pos:sc.end], crlfcrlf); i >= 0 {
			headEnd := sc.pos + i + 4
			req, bodyLen, err := parseRequestHead(sc.buf[sc.pos:headEnd])
			sc.pos = headEnd
			if err != nil {
				return req, err
			}
			return req, sc.discard(bodyLen)
		}
		if sc.pos == sc.end {
			sc.pos, sc.end = 0, 0
		} else if sc.end == len(sc.buf) {
			if sc.pos == 0 {
				return req, fmt.Errorf("request head larger than %d bytes: %w", len(sc.buf), errBadRequest)
			}
			sc.end = copy(sc.buf, sc.buf[sc.pos:sc.end])
			sc.pos = 0
		}
		if sc.closing.Load() {
			return req, net.ErrClosed
		}
		if sc.pos == sc.end {
			// Waiting for a new request: the idle timeout applies.
			_ = sc.c.SetReadDeadline(time.Now().Add(serverIdleTimeout))
		}
		n, err := sc.c.Read(sc.buf[sc.end:])
		sc.end += n
		if err != nil && n == 0 {
			return req, err
		}
	}
}

// discard skips n body bytes.
func (sc *serverConn) discard(n int) error {
	have := min(n, sc.end-sc.pos)
	sc.pos += have
	n -= have
	for n > 0 {
		m, err := sc.c.Read(sc.buf[:min(n, len(sc.buf))])
		n -= m
		if err != nil && n > 0 {
			return err
		}
	}
	return nil
}

// parseRequestHead parses a request line and headers (ending with the
// blank line): what matters to a fixed answer is the method (HEAD has no
// body), whether the connection stays open and the request body's length.
func parseRequestHead(head []byte) (serverRequest, int, error) {
	var req serverRequest
	line, rest, _ := bytes.Cut(head, crlf)
	method, line, ok1 := bytes.Cut(line, []byte(" "))
	_, proto, ok2 := bytes.Cut(line, []byte(" "))
	if !ok1 || !ok2 || len(method) == 0 || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(proto) != 8 {
		return req, 0, fmt.Errorf("request line %q: %w", head[:min(len(head), 64)], errBadRequest)
	}
	req.head = string(method) == http.MethodHead
	req.close = proto[7] == '0' // HTTP/1.0 closes unless asked not to
	bodyLen := 0
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, crlf)
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return req, 0, fmt.Errorf("header line %q: %w", line, errBadRequest)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				req.close = true
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				req.close = false
			}
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 {
				return req, 0, fmt.Errorf("Content-Length %q: %w", value, errBadRequest)
			}
			bodyLen = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return req, 0, fmt.Errorf("request bodies with Transfer-Encoding are not supported: %w", errBadRequest)
		case bytes.EqualFold(name, backendHeader):
			req.backend = true
		}
	}
	return req, bodyLen, nil
}
