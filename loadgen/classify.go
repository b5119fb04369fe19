package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
)

// Error kinds, the keys of errors.byKind. HTTP statuses other than 2xx and
// 3xx are counted as "http_<code>" (e.g. http_503).
const (
	KindConnectRefused = "connect_refused"
	KindTimeout        = "timeout"
	KindReset          = "reset"
	KindEOF            = "eof"
	KindUnreachable    = "unreachable"
	// KindAddrUnavailable is EADDRNOTAVAIL: the client ran out of local
	// ports (TIME_WAIT), a client-side limit rather than the dataplane's.
	KindAddrUnavailable = "addr_unavailable"
	KindBadResponse     = "bad_response"
	KindOther           = "other"
)

// ErrBadResponse marks a response kpbench's HTTP/1.1 client cannot parse.
var ErrBadResponse = errors.New("malformed HTTP response")

// HTTPKind is the error kind of an unsuccessful HTTP status.
func HTTPKind(status int) string { return "http_" + strconv.Itoa(status) }

// Classify returns the error kind of a failed request: err is the transport
// error (nil when a response arrived) and status the HTTP status otherwise.
// It returns "" for a success (no error and a 1xx–3xx status).
func Classify(err error, status int) string {
	if err == nil {
		if status >= 100 && status < 400 {
			return ""
		}
		return HTTPKind(status)
	}
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindConnectRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return KindReset
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return KindEOF
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return KindUnreachable
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return KindAddrUnavailable
	case errors.Is(err, ErrBadResponse):
		return KindBadResponse
	}
	return KindOther
}

// Coarse error kinds: what a request met in the dataplane, as the traffic
// during churn is reported (package churn, docs/churn-traffic.md).
const (
	// CoarseRefused: the connection was refused, by a RST to its SYN or
	// by the ICMP unreachable a REJECT rule sends (kube-proxy's rule for
	// a Service without endpoints).
	CoarseRefused = "refused"
	// CoarseReset: an established connection broke before the answer: a
	// RST, a broken pipe, or a close without an answer.
	CoarseReset = "reset"
	// CoarseTimeout: no answer in time: a SYN or a request that went
	// nowhere (a rule leading to an address nobody answers).
	CoarseTimeout = "timeout"
	// CoarseOther: everything else (local ports exhausted, a malformed
	// response, an HTTP error status, an unknown error).
	CoarseOther = "other"
)

// CoarseKind groups an error kind of Classify into CoarseRefused,
// CoarseReset, CoarseTimeout or CoarseOther; "" (a success) stays "".
func CoarseKind(kind string) string {
	switch kind {
	case "":
		return ""
	case KindConnectRefused, KindUnreachable:
		return CoarseRefused
	case KindReset, KindEOF:
		return CoarseReset
	case KindTimeout:
		return CoarseTimeout
	}
	return CoarseOther
}
