package scaletest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NetNSPrefix starts the name of every network namespace these helpers
// create (the lab's own are kpb-; tests keep to kpbt-<area>-).
const NetNSPrefix = "kpbt-scaler-"

// SkipUnlessRoot skips t unless it runs as root with ip(8) available.
func SkipUnlessRoot(t testing.TB) {
	t.Helper()
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip(8) not found (Debian package iproute2)")
	}
}

// NewNetNS creates a network namespace with loopback up and the given
// addresses on lo, and deletes it when the test ends.
func NewNetNS(t testing.TB, addrs ...netip.Addr) string {
	t.Helper()
	name := NetNSPrefix + strings.ToLower(rand.Text()[:8])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	cmds := [][]string{{"ip", "-n", name, "link", "set", "lo", "up"}}
	for _, a := range addrs {
		cmds = append(cmds, []string{"ip", "-n", name, "addr", "add", a.String() + "/32", "dev", "lo"})
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	return name
}

// InNetNS runs f on an OS thread switched into network namespace ns, so
// sockets f creates live there. The thread is discarded afterwards.
func InNetNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine, so no other
		// goroutine ever runs in the namespace.
		runtime.LockOSThread()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("opening netns %s: %w", ns, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering netns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// DialContext dials from inside network namespace ns.
func DialContext(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := InNetNS(ns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// Listen listens inside network namespace ns.
func Listen(ns, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := InNetNS(ns, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// HTTPClient is an HTTP client whose connections start inside ns.
func HTTPClient(ns string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: DialContext(ns)}}
}

// Node is a kube-proxy node inside a network namespace: it scrapes
// kube-proxy's metrics and dials Services from there (it satisfies
// scale.Node).
type Node struct {
	NetNS      string
	MetricsURL string // e.g. http://127.0.0.1:10249
}

// Metrics fetches kube-proxy's /metrics.
func (n Node) Metrics(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.MetricsURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := HTTPClient(n.NetNS).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// Connect opens and closes a TCP connection to addr from the namespace.
func (n Node) Connect(ctx context.Context, addr netip.AddrPort) error {
	c, err := DialContext(n.NetNS)(ctx, "tcp", addr.String())
	if err != nil {
		return err
	}
	return c.Close()
}

// Get fetches url from inside the namespace and returns the body.
func (n Node) Get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := HTTPClient(n.NetNS).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		err = errors.Join(err, fmt.Errorf("GET %s: %s", url, resp.Status))
	}
	return string(b), err
}

// IP runs `ip -n ns args...` and fails the test on error.
func IP(t testing.TB, ns string, args ...string) {
	t.Helper()
	args = append([]string{"-n", ns}, args...)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
