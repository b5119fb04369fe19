package kubeproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kpbench/kpbench/scenarios"
)

var (
	// ErrModeMismatch is wrapped when kube-proxy runs another mode than
	// asked, or that mode's rules are missing.
	ErrModeMismatch = errors.New("proxy mode mismatch")
	// ErrUnknownProxyMode is wrapped when /proxyMode answers something that
	// is not a kube-proxy mode.
	ErrUnknownProxyMode = errors.New("unknown proxy mode")
)

// Fetch gets a path ("/metrics", "/proxyMode") from kube-proxy's metrics
// port; clusters.ClientNode.KubeProxyGet is one.
type Fetch func(ctx context.Context, path string) ([]byte, error)

// ReadProxyMode asks kube-proxy which mode it runs (GET /proxyMode) and
// returns the answer as it is, trimmed.
func ReadProxyMode(ctx context.Context, get Fetch) (string, error) {
	body, err := get(ctx, "/proxyMode")
	if err != nil {
		return "", fmt.Errorf("asking kube-proxy its mode (GET /proxyMode): %w", err)
	}
	return strings.TrimSpace(string(body)), nil
}

// ParseProxyMode parses the body of kube-proxy's /proxyMode: the mode
// name alone ("iptables", "ipvs", "nftables").
func ParseProxyMode(body []byte) (scenarios.Mode, error) {
	mode := scenarios.Mode(strings.TrimSpace(string(body)))
	for _, m := range scenarios.Modes {
		if mode == m {
			return mode, nil
		}
	}
	return "", fmt.Errorf("%w: /proxyMode answered %q", ErrUnknownProxyMode, bytes.TrimSpace(body[:min(len(body), 100)]))
}

// MismatchError says that kube-proxy reports another mode than wanted. It
// matches ErrModeMismatch.
type MismatchError struct{ Got, Want string }

func (e *MismatchError) Error() string {
	return fmt.Sprintf("kube-proxy reports %q, want %q", e.Got, e.Want)
}

// Is makes errors.Is(err, ErrModeMismatch) true.
func (e *MismatchError) Is(target error) bool { return target == ErrModeMismatch }

// CheckProxyMode checks that kube-proxy answers /proxyMode with want; a
// different answer is a *MismatchError.
func CheckProxyMode(ctx context.Context, get Fetch, want scenarios.Mode) error {
	got, err := ReadProxyMode(ctx, get)
	if err != nil {
		return err
	}
	if got != string(want) {
		return &MismatchError{Got: got, Want: string(want)}
	}
	return nil
}
