package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	opErr := func(op string, err error) error {
		return &net.OpError{Op: op, Net: "tcp", Err: &os.SyscallError{Syscall: op, Err: err}}
	}
	tests := []struct {
		name   string
		err    error
		status int
		want   string
	}{
		{"200 is success", nil, 200, ""},
		{"204 is success", nil, 204, ""},
		{"301 is success", nil, 301, ""},
		{"404 by status", nil, 404, "http_404"},
		{"503 by status", nil, 503, "http_503"},
		{"no status at all", nil, 0, "http_0"},
		{"connect refused", opErr("connect", syscall.ECONNREFUSED), 0, KindConnectRefused},
		{"connection reset on read", opErr("read", syscall.ECONNRESET), 0, KindReset},
		{"broken pipe on write", opErr("write", syscall.EPIPE), 0, KindReset},
		{"deadline exceeded", fmt.Errorf("reading response: %w", os.ErrDeadlineExceeded), 0, KindTimeout},
		{"dial timeout", &net.OpError{Op: "dial", Err: timeoutErr{}}, 0, KindTimeout},
		{"context deadline", fmt.Errorf("dialing: %w", context.DeadlineExceeded), 0, KindTimeout},
		{"kernel connect timeout", opErr("connect", syscall.ETIMEDOUT), 0, KindTimeout},
		{"eof before response", fmt.Errorf("reading response: %w", io.EOF), 0, KindEOF},
		{"eof inside body", fmt.Errorf("reading body: %w", io.ErrUnexpectedEOF), 0, KindEOF},
		{"closed connection", net.ErrClosed, 0, KindEOF},
		{"host unreachable", opErr("connect", syscall.EHOSTUNREACH), 0, KindUnreachable},
		{"network unreachable", opErr("connect", syscall.ENETUNREACH), 0, KindUnreachable},
		{"out of local ports", opErr("connect", syscall.EADDRNOTAVAIL), 0, KindAddrUnavailable},
		{"malformed response", fmt.Errorf("status line %q: %w", "FOO", ErrBadResponse), 0, KindBadResponse},
		{"anything else", errors.New("boom"), 0, KindOther},
		{"transport error wins over status", opErr("read", syscall.ECONNRESET), 200, KindReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err, tt.status); got != tt.want {
				t.Errorf("Classify(%v, %d) = %q, want %q", tt.err, tt.status, got, tt.want)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestCoarseKind: every kind Classify returns falls in one coarse kind,
// by what the dataplane did to the connection.
func TestCoarseKind(t *testing.T) {
	opErr := func(op string, err error) error {
		return &net.OpError{Op: op, Net: "tcp", Err: &os.SyscallError{Syscall: op, Err: err}}
	}
	tests := []struct {
		err    error
		status int
		want   string
	}{
		{nil, 200, ""},
		{opErr("connect", syscall.ECONNREFUSED), 0, CoarseRefused},
		{opErr("connect", syscall.EHOSTUNREACH), 0, CoarseRefused},
		{opErr("connect", syscall.ENETUNREACH), 0, CoarseRefused},
		{opErr("read", syscall.ECONNRESET), 0, CoarseReset},
		{opErr("write", syscall.EPIPE), 0, CoarseReset},
		{fmt.Errorf("reading response headers: %w", io.EOF), 0, CoarseReset},
		{fmt.Errorf("reading body: %w", io.ErrUnexpectedEOF), 0, CoarseReset},
		{opErr("connect", syscall.ETIMEDOUT), 0, CoarseTimeout},
		{&net.OpError{Op: "dial", Err: timeoutErr{}}, 0, CoarseTimeout},
		{fmt.Errorf("reading response: %w", os.ErrDeadlineExceeded), 0, CoarseTimeout},
		{opErr("connect", syscall.EADDRNOTAVAIL), 0, CoarseOther},
		{fmt.Errorf("status line: %w", ErrBadResponse), 0, CoarseOther},
		{nil, 503, CoarseOther},
		{errors.New("boom"), 0, CoarseOther},
	}
	for _, tt := range tests {
		kind := Classify(tt.err, tt.status)
		if got := CoarseKind(kind); got != tt.want {
			t.Errorf("CoarseKind(%q) (from %v, %d) = %q, want %q", kind, tt.err, tt.status, got, tt.want)
		}
	}
}
