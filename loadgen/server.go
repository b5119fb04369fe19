// Package loadgen drives open-loop, fixed-rate HTTP load and serves the
// backend that answers it.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// DefaultBodyBytes matches the size of nginx's default index page, the
// backend of the published experiments.
const DefaultBodyBytes = 612

// ServerConfig configures the backend server.
type ServerConfig struct {
	// BodyBytes is the size of every response body.
	BodyBytes int
	// MaxRequestsPerConn closes a connection after this many requests
	// (nginx's keepalive_requests); 0 means no limit.
	MaxRequestsPerConn int
}

// Server is a minimal HTTP/1.1 backend: every request gets 200 and a fixed
// body. It counts what it served.
type Server struct {
	cfg      ServerConfig
	body     []byte
	bodyLen  string
	requests atomic.Int64
	conns    atomic.Int64
}

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
	body := make([]byte, cfg.BodyBytes)
	for i := range body {
		body[i] = 'k'
	}
	return &Server{cfg: cfg, body: body, bodyLen: strconv.Itoa(len(body))}, nil
}

// Requests returns the number of requests served so far.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Connections returns the number of connections accepted so far.
func (s *Server) Connections() int64 { return s.conns.Load() }

// ServeHTTP answers every request with 200 and the fixed body.
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
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(s.body)
	}
}

// Serve accepts connections on l until ctx is done, then shuts down
// gracefully (in-flight requests finish, up to 5 seconds).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       75 * time.Second, // nginx's keepalive_timeout
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			s.conns.Add(1)
			return context.WithValue(ctx, connCountKey{}, new(atomic.Int64))
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			return fmt.Errorf("shutting down: %w", err)
		}
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
