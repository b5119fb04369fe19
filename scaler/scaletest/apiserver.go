// Package scaletest gives the scaler's tests a real etcd and kube-apiserver
// on loopback (apitest's), set up as a kpbench lab's: Service range
// 198.19.0.0/16, etcd with fsync on (the scaler's benchmarks measure it),
// and a kubeconfig whose context is kpbench-lab-test. Without the binaries,
// when not root, or with KPBENCH_SKIP_INTEGRATION=1, the test is skipped.
package scaletest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kpbench/kpbench/clusters/lab/apitest"
)

// APIServer is apitest's server with what the scaler's tests use.
type APIServer struct {
	*apitest.Server
	// URL is the apiserver's, Kubeconfig a kubeconfig for it with context
	// kpbench-lab-test.
	URL, Kubeconfig string
}

// SkipUnlessAvailable skips t unless the apiserver can run here.
func SkipUnlessAvailable(t testing.TB) {
	t.Helper()
	apitest.SkipUnlessRunnable(t)
}

// Start starts etcd and kube-apiserver on loopback, stopped when t ends,
// and returns once /readyz answers.
func Start(t testing.TB) *APIServer {
	t.Helper()
	srv := apitest.StartWith(t, apitest.Options{ServiceCIDR: "198.19.0.0/16", Fsync: true})
	s := &APIServer{Server: srv, URL: srv.Config.Host, Kubeconfig: filepath.Join(t.TempDir(), "kubeconfig")}
	if err := srv.KubeconfigWithContext(s.Kubeconfig, "kpbench-lab-test"); err != nil {
		t.Fatal(err)
	}
	return s
}

// RESTConfig is an admin client configuration for s.
func (s *APIServer) RESTConfig() *rest.Config { return rest.CopyConfig(s.Config) }

// Client returns an admin clientset for s with protobuf encoding and the
// given client-side QPS (burst twice that), as kpbench scale builds it.
func (s *APIServer) Client(t testing.TB, qps float32) kubernetes.Interface {
	t.Helper()
	cfg := s.RESTConfig()
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.QPS, cfg.Burst = qps, int(2*qps)
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// CPUSeconds is a process's user+system CPU time from /proc/PID/stat.
func CPUSeconds(t testing.TB, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 (1-based), in clock ticks (100 Hz on Linux).
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	f := strings.Fields(rest)
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// Metrics fetches a Prometheus text endpoint: the apiserver's (as the
// admin, whose client certificate HTTPClient presents) or etcd's.
func (s *APIServer) Metrics(t testing.TB, url string) []byte {
	t.Helper()
	hc := s.HTTPClient(10 * time.Second)
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s %v", url, resp.Status, err)
	}
	return b
}

// Kubectl runs kubectl against s; the error carries its output.
func (s *APIServer) Kubectl(ctx context.Context, args ...string) (string, error) {
	args = append([]string{"kubectl", "--kubeconfig", s.Kubeconfig}, args...)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
