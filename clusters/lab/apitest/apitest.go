// Package apitest runs a real etcd and kube-apiserver on loopback for
// kpbench's integration tests: the binaries the lab builds (cached per
// Kubernetes version) and per-run credentials made by the lab's own PKI
// code (package pki), with the lab's admin client certificate in
// system:masters. Processes are killed by PID when the test ends, and by
// the kernel if the test binary dies (Pdeathsig).
package apitest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/clusters/lab/pki"
)

// Version is the Kubernetes version whose binaries are used: the lab's.
const Version = build.DefaultVersion

// Options change how the apiserver runs; the zero value suits most tests.
type Options struct {
	// ServiceCIDR is the Service ClusterIP range (default 10.96.0.0/16).
	ServiceCIDR string
	// Fsync keeps etcd's fsync on, for tests that measure etcd and the
	// apiserver (by default etcd runs with --unsafe-no-fsync).
	Fsync bool
}

// Server is a running etcd and kube-apiserver.
type Server struct {
	// Config reaches the apiserver as an admin.
	Config *rest.Config
	// CAPEM is the apiserver's CA certificate.
	CAPEM []byte
	// PKI holds the credentials (the lab's layout: pki.AdminCert, ...).
	PKI pki.Dir
	// EtcdURL is etcd's client URL (plain HTTP on loopback).
	EtcdURL string
	// Etcd and APIServer are the two processes.
	Etcd, APIServer *exec.Cmd
	procs           []*exec.Cmd
	dir             string
	logs            []string
}

var (
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
)

// BinDir is where the lab caches Kubernetes binaries; KPBENCH_K8S_BIN_DIR
// overrides it.
func BinDir() string {
	if d := os.Getenv("KPBENCH_K8S_BIN_DIR"); d != "" {
		return d
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(cache, "kpbench", "k8s", Version)
}

// SkipUnlessRunnable skips t when the apiserver cannot run here.
func SkipUnlessRunnable(t testing.TB) string {
	t.Helper()
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	if os.Geteuid() != 0 {
		t.Skip("integration tests run as root (CI does)")
	}
	dir := BinDir()
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Skipf("no %s in %s (the lab builds it: kpbench lab up, or set KPBENCH_K8S_BIN_DIR)", b, dir)
		}
	}
	return dir
}

// Start starts an apiserver for t alone, stopped when t ends; it skips t
// when not root, when KPBENCH_SKIP_INTEGRATION=1 or without the binaries.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	dir := SkipUnlessRunnable(t)
	s, err := startAPIServer(dir, o)
	if err != nil {
		t.Fatalf("starting etcd and kube-apiserver: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Shared returns one apiserver shared by the tests of a test binary;
// TestMain must call StopShared after m.Run.
func Shared(t testing.TB) *rest.Config {
	t.Helper()
	dir := SkipUnlessRunnable(t)
	sharedOnce.Do(func() { shared, sharedErr = startAPIServer(dir, Options{}) })
	if sharedErr != nil {
		t.Fatalf("starting etcd and kube-apiserver: %v", sharedErr)
	}
	return rest.CopyConfig(shared.Config)
}

// StopShared stops the shared apiserver, if one was started.
func StopShared() {
	if shared != nil {
		shared.Stop()
	}
}

// Kubeconfig writes a kubeconfig for the apiserver to path, with context
// apitest.
func (s *Server) Kubeconfig(path string) error {
	return s.KubeconfigWithContext(path, "apitest")
}

// KubeconfigWithContext writes a kubeconfig for the apiserver to path whose
// cluster and context are named name (kpbench-lab-test makes kpbench treat
// the apiserver as a lab's).
func (s *Server) KubeconfigWithContext(path, name string) error {
	return s.PKI.WriteKubeconfig(path, s.Config.Host, name, pki.AdminUser, pki.AdminCert, pki.AdminKey)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startAPIServer(binDir string, o Options) (s *Server, err error) {
	if o.ServiceCIDR == "" {
		o.ServiceCIDR = "10.96.0.0/16"
	}
	dir, err := os.MkdirTemp("", "kpbench-apiserver-")
	if err != nil {
		return nil, err
	}
	s = &Server{dir: dir}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	s.PKI = pki.Dir(filepath.Join(dir, "pki"))
	if err := s.PKI.Generate("apitest"); err != nil {
		return s, err
	}
	clientPort, err := freePort()
	if err != nil {
		return s, err
	}
	peerPort, err := freePort()
	if err != nil {
		return s, err
	}
	apiPort, err := freePort()
	if err != nil {
		return s, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	s.EtcdURL = etcdURL
	etcdArgs := []string{
		"--name=kpbt-existing",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=kpbt-existing=" + peerURL,
		"--log-level=warn",
	}
	if !o.Fsync {
		etcdArgs = append(etcdArgs, "--unsafe-no-fsync")
	}
	if s.Etcd, err = s.start(filepath.Join(binDir, "etcd"), "etcd", etcdArgs...); err != nil {
		return s, err
	}
	if s.APIServer, err = s.start(filepath.Join(binDir, "kube-apiserver"), "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiPort),
		"--service-cluster-ip-range="+o.ServiceCIDR,
		"--tls-cert-file="+s.PKI.Path(pki.APIServerCert),
		"--tls-private-key-file="+s.PKI.Path(pki.APIServerKey),
		"--client-ca-file="+s.PKI.Path(pki.CACert),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+s.PKI.Path(pki.ServiceAcctPub),
		"--service-account-signing-key-file="+s.PKI.Path(pki.ServiceAcctKey),
		"--authorization-mode=RBAC",
		// As kubeadm and kind do: the CPU agent is privileged.
		"--allow-privileged=true",
		// No controller-manager makes default ServiceAccounts here.
		"--disable-admission-plugins=ServiceAccount",
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--profiling=false",
	); err != nil {
		return s, err
	}
	read := func(name string) []byte {
		b, rerr := os.ReadFile(s.PKI.Path(name))
		err = errors.Join(err, rerr)
		return b
	}
	s.CAPEM = read(pki.CACert)
	cert, key := read(pki.AdminCert), read(pki.AdminKey)
	if err != nil {
		return s, err
	}
	s.Config = &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(apiPort),
		TLSClientConfig: rest.TLSClientConfig{CAData: s.CAPEM, CertData: cert, KeyData: key},
		QPS:             100, Burst: 200,
	}
	hc := s.HTTPClient(3 * time.Second)
	deadline := time.Now().Add(90 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		for _, p := range s.procs {
			if p.ProcessState != nil {
				return s, fmt.Errorf("%s exited: %s", p.Path, s.logTail())
			}
		}
		resp, err := hc.Get(s.Config.Host + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
			err = fmt.Errorf("readyz: %s", resp.Status)
		}
		last = err
		time.Sleep(300 * time.Millisecond)
	}
	return s, fmt.Errorf("kube-apiserver not ready after 90s (%v): %s", last, s.logTail())
}

// HTTPClient trusts the apiserver's CA and presents the admin's client
// certificate (etcd's plain HTTP works too).
func (s *Server) HTTPClient(timeout time.Duration) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CAPEM)
	tc := &tls.Config{RootCAs: pool}
	if cert, err := tls.X509KeyPair(s.Config.CertData, s.Config.KeyData); err == nil {
		tc.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc}}
}

func (s *Server) start(bin, name string, args ...string) (*exec.Cmd, error) {
	logPath := filepath.Join(s.dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	logf.Close()
	s.procs = append(s.procs, cmd)
	s.logs = append(s.logs, logPath)
	go func() { _ = cmd.Wait() }()
	return cmd, nil
}

func (s *Server) logTail() string {
	var out string
	for _, l := range s.logs {
		b, _ := os.ReadFile(l)
		if len(b) > 1500 {
			b = b[len(b)-1500:]
		}
		out += "\n--- " + filepath.Base(l) + "\n" + string(b)
	}
	return out
}

// Stop kills the processes it started, by PID, newest first, and removes
// their files.
func (s *Server) Stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i].Process
		_ = p.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() {
			for j := 0; j < 50; j++ {
				if err := p.Signal(syscall.Signal(0)); err != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			close(done)
		}()
		<-done
		_ = p.Kill()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}
