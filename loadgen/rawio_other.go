//go:build !linux

package loadgen

import (
	"io"
	"net"
)

// newRawIO uses the connection itself where raw calls are not implemented.
func newRawIO(c net.Conn) (io.ReadWriter, error) { return c, nil }
