package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/kpbench/kpbench/clusters/lab/netns"
)

// Forward accepts connections on ln (in the caller's namespace, normally a
// loopback port of the root namespace) and joins each to a connection
// dialed to addr from inside the namespace at nsPath. It is how kubectl and
// kpbench in the root namespace reach the lab's apiserver without a route
// or firewall rule in the root namespace. It returns when ctx ends.
func Forward(ctx context.Context, ln net.Listener, nsPath, addr string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dialer := netns.Dialer{NSPath: nsPath, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	logger.Info("forwarding", "listen", ln.Addr().String(), "netns", nsPath, "to", addr)
	for {
		conn, err := ln.Accept()
		if err != nil {
			wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accepting on %s: %w", ln.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			up, err := dialer.DialContext(ctx, "tcp", addr)
			if err != nil {
				logger.Warn("dial failed", "to", addr, "err", err)
				return
			}
			defer up.Close()
			join(conn, up)
		}()
	}
}

// join copies both ways until both directions end, passing half-closes on.
func join(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
			_ = src.Close()
		}
		if err != nil && !errors.Is(err, net.ErrClosed) {
			_ = dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}
