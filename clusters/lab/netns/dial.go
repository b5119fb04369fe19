package netns

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// Dialer dials from inside a network namespace. The zero value dials from
// the caller's namespace. Addresses must be IP literals: name resolution
// would run on other threads, outside the namespace.
type Dialer struct {
	// NSPath is the namespace's path (e.g. Path("kpb-lab-node")).
	NSPath string
	// Timeout bounds each connect; zero means no limit beyond the context.
	Timeout time.Duration
}

// DialContext connects to addr from inside the namespace. The socket is
// created in the namespace and stays there; the connect and all later I/O
// need no further switching.
func (d Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	nd := net.Dialer{Timeout: d.Timeout}
	err := Do(d.NSPath, nil, func() error {
		var err error
		conn, err = nd.DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// HTTPClient returns a client whose connections are made inside the
// namespace at nsPath. tlsConfig may be nil for plain HTTP.
func HTTPClient(nsPath string, tlsConfig *tls.Config, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         Dialer{NSPath: nsPath, Timeout: timeout}.DialContext,
			TLSClientConfig:     tlsConfig,
			DisableKeepAlives:   true,
			TLSHandshakeTimeout: timeout,
			Proxy:               nil,
		},
	}
}
