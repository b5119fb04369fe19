// Package httpget is kpbench's one HTTP GET of a local endpoint whose answer
// it needs whole: a lab component's health (etcd /health, kube-apiserver
// /readyz, a backend), and kube-proxy's /metrics and /proxyMode for the lab,
// the scaler and the collector.
package httpget

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxBody is how much of a body Get reads. kube-proxy's metrics, the
// largest answer kpbench reads, are well under a MiB at 10,000 Services;
// the cap keeps a runaway answer from exhausting memory.
const MaxBody = 256 << 20

// maxQuote is how much of a failed answer's body an error quotes: enough
// for the failing checks of kube-apiserver's /readyz, short enough for a log
// line when the body is a page of metrics.
const maxQuote = 4 << 10

// Get fetches url with c and fails unless the answer is 200 OK. The error
// of another status names the URL, the status and the start of the body,
// and the body read is returned with it.
func Get(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", url, resp.Status, quote(body))
	}
	return body, nil
}

// quote is body, trimmed and cut to maxQuote bytes.
func quote(body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > maxQuote {
		return s[:maxQuote] + " …"
	}
	return s
}
