// Package scaletest starts a real etcd and kube-apiserver on loopback for
// tests: random free ports, temporary directories, a throwaway token and
// service-account key, and a kubeconfig whose context is a kpbench lab's
// (kpbench-lab-test). Processes are killed by PID when the test ends. The
// binaries come from the lab's cache (or KPBENCH_K8S_BIN_DIR); without them,
// or with KPBENCH_SKIP_INTEGRATION=1, the test is skipped.
package scaletest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
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
)

// APIServer is a real etcd and kube-apiserver on loopback, each in its
// own temporary directory, killed by PID when the test ends. Kubeconfig's
// context is kpbench-lab-test, so kpbench treats it as a lab.
type APIServer struct {
	URL        string
	EtcdURL    string
	Token      string
	Kubeconfig string // context kpbench-lab-test
	Etcd       *exec.Cmd
	APIServer  *exec.Cmd
	bin        string
	dir        string
}

// BinDir is where the lab caches etcd and kube-apiserver for the pinned
// Kubernetes version; KPBENCH_K8S_BIN_DIR overrides it.
func BinDir() string {
	if d := os.Getenv("KPBENCH_K8S_BIN_DIR"); d != "" {
		return d
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "kpbench", "k8s", "v1.36.3")
}

// SkipUnlessAvailable skips t unless integration tests may run and the
// binaries exist.
func SkipUnlessAvailable(t testing.TB) string {
	t.Helper()
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	dir := BinDir()
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Skipf("no %s in %s (the lab builds it; or set KPBENCH_K8S_BIN_DIR): %v", b, dir, err)
		}
	}
	return dir
}

func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startProcess starts a command whose output goes to a log file, and kills
// it by PID at cleanup; the log tail is printed if the test failed.
func startProcess(t testing.TB, dir, name string, args ...string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log tail:\n%s", name, b)
		}
	})
	return cmd
}

// Start starts etcd and kube-apiserver (Service range
// 198.19.0.0/16, as in the lab) on loopback and returns once /readyz
// answers.
func Start(t testing.TB) *APIServer {
	t.Helper()
	bin := SkipUnlessAvailable(t)
	dir := t.TempDir()

	clientPort, peerPort := FreePort(t), FreePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	etcd := startProcess(t, dir, "etcd", filepath.Join(bin, "etcd"),
		"--name", "kpbt", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "kpbt="+peerURL, "--log-level", "warn")

	// Service-account signing key: a throwaway ECDSA key.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	saKey := filepath.Join(dir, "sa.key")
	if err := os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	token := rand.Text()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",kpbench-admin,kpbench-admin,system:masters\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := FreePort(t)
	api := startProcess(t, dir, "kube-apiserver", filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(port), "--cert-dir", filepath.Join(dir, "certs"),
		"--token-auth-file", tokens, "--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--service-cluster-ip-range", "198.19.0.0/16")

	s := &APIServer{URL: fmt.Sprintf("https://127.0.0.1:%d", port), EtcdURL: etcdURL, Token: token, Etcd: etcd, APIServer: api,
		bin: bin, dir: dir}
	hc := s.httpClient(2 * time.Second)
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready after 90s: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kpbench-lab-test
  cluster: {server: %q, insecure-skip-tls-verify: true}
contexts:
- name: kpbench-lab-test
  context: {cluster: kpbench-lab-test, user: admin, namespace: default}
users:
- name: admin
  user: {token: %q}
current-context: kpbench-lab-test
`, s.URL, token)
	if err := os.WriteFile(s.Kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// RESTConfig is an admin client configuration for s.
func (s *APIServer) RESTConfig() *rest.Config {
	cfg := &rest.Config{Host: s.URL, BearerToken: s.Token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	return cfg
}

func (s *APIServer) httpClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	return &http.Client{Timeout: timeout, Transport: tr}
}

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

// Metrics fetches a Prometheus text endpoint: the apiserver's (with the
// admin token) or etcd's.
func (s *APIServer) Metrics(t testing.TB, url string, auth bool) []byte {
	t.Helper()
	hc := s.httpClient(10 * time.Second)
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	resp, err := hc.Do(req)
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
