package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/kpbench/kpbench/clusters/lab/netns"
	"github.com/kpbench/kpbench/internal/httpget"
)

// clientNode is the lab's client node: the kpb-<name>-node namespace and
// its CPUs.
type clientNode struct {
	l *Lab
}

// Run runs a command inside the client-node namespace, pinned to the node
// CPUs, and waits for it. A failure's error carries the command and, when
// the caller did not take stderr, its last lines.
func (n *clientNode) Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	if len(args) == 0 {
		return fmt.Errorf("client node: no command")
	}
	st, err := n.l.state()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, nodeTool(st, args[0]), args[1:]...)
	// A grandchild that outlives the command (e.g. one a timeout(1) could
	// not kill) must not hold Wait on its inherited stdout/stderr forever.
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = nodeEnv(st)
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	var captured bytes.Buffer
	if stderr == nil {
		cmd.Stderr = &captured
	} else {
		cmd.Stderr = stderr
	}
	if err := netns.Start(cmd, netns.Path(n.l.nsName("node")), st.NodeCPUs); err != nil {
		return fmt.Errorf("client node: %s: %w", strings.Join(args, " "), err)
	}
	if err := cmd.Wait(); err != nil {
		msg := strings.TrimSpace(captured.String())
		if len(msg) > 2000 {
			msg = "..." + msg[len(msg)-2000:]
		}
		if msg != "" {
			return fmt.Errorf("client node: %s: %w: %s", strings.Join(args, " "), err, msg)
		}
		return fmt.Errorf("client node: %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// DialContext connects to addr from inside the client node's network
// namespace (addr must be an IP literal). Callers that can use it (probes)
// avoid running a process on the node for a connect.
func (n *clientNode) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return netns.Dialer{NSPath: netns.Path(n.l.nsName("node"))}.DialContext(ctx, network, addr)
}

// CPUs are the CPUs the node's processes are pinned to (empty when the
// machine has a single CPU and nothing is pinned).
func (n *clientNode) CPUs() []int {
	st, err := n.l.state()
	if err != nil {
		return nil
	}
	return st.NodeCPUs
}

// ObserverCPUs are the machine's CPUs that are not the node's (the
// control plane's and the backends'): where kpbench's observers of the
// node (churn's rule reads) run, in the node's namespace, so that they
// neither take the node's CPUs nor count in its CPU. Empty when the node
// is not pinned.
func (n *clientNode) ObserverCPUs() []int {
	st, err := n.l.state()
	if err != nil || len(st.NodeCPUs) == 0 {
		return nil
	}
	return st.OtherCPUs
}

// NetNSPath is the path of the client node's network namespace on this
// machine: kpbench's in-process observers of the node (churn's netlink
// rule reader) open their sockets in it.
func (n *clientNode) NetNSPath() string { return netns.Path(n.l.nsName("node")) }

// ProcRoot is /proc: the lab's processes are processes of this machine.
func (n *clientNode) ProcRoot() string { return "/proc" }

// KubeProxyPID returns the PID of the running kube-proxy.
func (n *clientNode) KubeProxyPID(ctx context.Context) (int, error) {
	st, err := n.l.state()
	if err != nil {
		return 0, err
	}
	p, ok := st.proc(CompKubeProxy)
	if !ok || !p.Alive() {
		return 0, fmt.Errorf("kube-proxy of lab %s: %w", n.l.cfg.Name, ErrNotRunning)
	}
	return p.PID, nil
}

// KubeProxyGet fetches path from kube-proxy's metrics port inside the
// client-node namespace.
func (n *clientNode) KubeProxyGet(ctx context.Context, path string) ([]byte, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("kube-proxy path %q must start with /", path)
	}
	c := netns.HTTPClient(netns.Path(n.l.nsName("node")), nil, 10*time.Second)
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(KubeProxyMetrics)) + path
	body, err := httpget.Get(ctx, c, url)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) {
			return nil, fmt.Errorf("kube-proxy of lab %s: %w: %w", n.l.cfg.Name, ErrNotRunning, err)
		}
		return nil, err
	}
	return body, nil
}
