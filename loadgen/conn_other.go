//go:build !linux

package loadgen

import (
	"context"
	"net"
	"syscall"
	"time"
)

// netDialer uses net.Dialer where raw sockets are not implemented; the
// handshake is timed from the dialer's Control hook (just before connect).
type netDialer struct{}

func newDialer() dialer { return netDialer{} }

func (netDialer) prepare(*Target) error { return nil }

func (netDialer) close() {}

func (netDialer) dial(t *Target, deadline time.Time) (conn, time.Duration, error) {
	var start time.Time
	d := net.Dialer{
		Deadline:  deadline,
		KeepAlive: -1,
		Control:   func(string, string, syscall.RawConn) error { start = time.Now(); return nil },
	}
	c, err := d.DialContext(context.Background(), "tcp", t.Addr)
	if err != nil {
		return nil, 0, err
	}
	took := time.Since(start)
	if err := c.SetDeadline(deadline); err != nil {
		c.Close()
		return nil, 0, err
	}
	return c, took, nil
}
