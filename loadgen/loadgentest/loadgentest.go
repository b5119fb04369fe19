// Package loadgentest starts kpbench's backend server for tests of the
// packages that drive load at it.
package loadgentest

import (
	"context"
	"net"
	"testing"

	"github.com/kpbench/kpbench/loadgen"
)

// Serve starts a loadgen server with cfg on 127.0.0.1 (a free port) and
// returns it with its URL, "http://127.0.0.1:PORT/". The server stops when
// the test ends; an error it returns then fails the test. (loadgen's own
// tests keep a copy of this: they cannot import this package.)
func Serve(t testing.TB, cfg loadgen.ServerConfig) (*loadgen.Server, string) {
	t.Helper()
	srv, err := loadgen.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
