package loadgen

import (
	"fmt"
	"io"
	"net/netip"
	"time"
)

// conn is one client connection as the workers use it.
type conn interface {
	io.ReadWriter
	SetDeadline(t time.Time) error
	Close() error
}

// arriver is a conn that knows when the data of its last read reached the
// host (the kernel's receive timestamp), as opposed to when it was read.
type arriver interface {
	arrival() (at time.Time, ok bool)
}

// dialer opens connections and times their TCP handshake.
type dialer interface {
	// prepare readies a resolved target for dialing.
	prepare(t *Target) error
	// dial connects to t before deadline and returns the connection with
	// its deadline set to deadline. It returns the handshake's duration:
	// from just before connect(2) to the socket being connected.
	dial(t *Target, deadline time.Time) (conn, time.Duration, error)
	// close releases what the dialer holds once every connection is closed.
	close()
}

// netipAddrPort parses a resolved host:port.
func netipAddrPort(addr string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return ap, fmt.Errorf("address %q: %w", addr, err)
	}
	return ap, nil
}
