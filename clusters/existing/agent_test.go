package existing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/clusters/manifests"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindPID(t *testing.T) {
	proc := t.TempDir()
	writeFile(t, filepath.Join(proc, "1", "comm"), "systemd\n")
	writeFile(t, filepath.Join(proc, "812", "comm"), "kube-proxy\n")
	writeFile(t, filepath.Join(proc, "95", "comm"), "kube-proxy\n")
	writeFile(t, filepath.Join(proc, "300", "comm"), "kube-apiserver\n")
	writeFile(t, filepath.Join(proc, "self", "comm"), "kube-proxy\n")
	tests := []struct {
		name    string
		proc    string
		want    int
		wantErr error
	}{
		{name: "lowest of two", proc: "kube-proxy", want: 95},
		{name: "long names match comm's 15 bytes", proc: "kube-apiserver-extra", wantErr: ErrProcessNotFound},
		{name: "absent", proc: "kubelet", wantErr: ErrProcessNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindPID(proc, tt.proc)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("FindPID = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestAgentGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/proxyMode":
			fmt.Fprint(w, "nftables")
		default:
			http.Error(w, "404 page not found", http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name    string
		url     string
		want    string
		wantErr string
	}{
		{name: "loopback ok", url: srv.URL + "/proxyMode", want: "nftables"},
		{name: "status error", url: srv.URL + "/nope", wantErr: "404"},
		{name: "not loopback", url: "http://192.0.2.1:10249/proxyMode", wantErr: "loopback URLs only"},
		{name: "not http", url: "file:///etc/passwd", wantErr: "loopback URLs only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := AgentGet(context.Background(), tt.url, &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || out.String() != tt.want {
				t.Fatalf("got %q, %v", out.String(), err)
			}
		})
	}
}

func TestHostCommand(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "usr/sbin/iptables-save"), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(root, "usr/sbin/iptables-save"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd, err := HostCommand(context.Background(), root, []string{"iptables-save", "-t", "nat"})
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Path != "/usr/sbin/iptables-save" || !reflect.DeepEqual(cmd.Args[1:], []string{"-t", "nat"}) || cmd.SysProcAttr.Chroot != root {
		t.Errorf("cmd path=%s args=%v chroot=%s", cmd.Path, cmd.Args, cmd.SysProcAttr.Chroot)
	}
	if _, err := HostCommand(context.Background(), root, []string{"nft"}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing tool err = %v", err)
	}
}

// The node's tools are found through the links Debian's alternatives
// make (absolute, so they mean the node's root, not the agent's), and
// through a merged /usr's relative /sbin link; a link to a file only the
// agent's own filesystem has is not a tool of the node.
func TestHostCommandFollowsLinksInsideTheRoot(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "usr/sbin/xtables-legacy-multi"), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(root, "usr/sbin/xtables-legacy-multi"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"etc/alternatives/iptables-save": "/usr/sbin/xtables-legacy-multi",
		"usr/sbin/iptables-save":         "/etc/alternatives/iptables-save",
		"sbin":                           "usr/sbin",
		"usr/sbin/nft":                   "/bin/sh", // the agent's, not the node's
		"usr/sbin/loop":                  "/usr/sbin/loop",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, link)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	cmd, err := HostCommand(context.Background(), root, []string{"iptables-save", "-t", "nat"})
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Path != "/usr/sbin/iptables-save" {
		t.Errorf("path = %s", cmd.Path)
	}
	if _, err := statIn(root, "/sbin/iptables-save"); err != nil {
		t.Errorf("through /sbin: %v", err)
	}
	if _, err := os.Stat("/bin/sh"); err == nil {
		if _, err := HostCommand(context.Background(), root, []string{"nft"}); err == nil {
			t.Error("a link to the agent's /bin/sh counted as the node's nft")
		}
	}
	if _, err := HostCommand(context.Background(), root, []string{"loop"}); err == nil {
		t.Error("a link loop counted as a tool")
	}
}

func TestAgentCommand(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{in: []string{"kpbench", "sample", "--proc", "/host/proc"}, want: []string{"/kpbench", "sample", "--proc", "/host/proc"}},
		{in: []string{"iptables-save", "-t", "nat"}, want: []string{"/kpbench", "cluster", "agent", "host", "--", "iptables-save", "-t", "nat"}},
	}
	for _, tt := range tests {
		if got := AgentCommand(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("AgentCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

type scriptedExecer struct {
	pods []string
	fn   func(cmd []string, stdout, stderr io.Writer) error
}

func (s *scriptedExecer) Exec(_ context.Context, _, pod, _ string, cmd []string, _ io.Reader, stdout, stderr io.Writer) error {
	s.pods = append(s.pods, pod)
	return s.fn(cmd, stdout, stderr)
}

func TestAgentNode(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(t)
	f.addAgentPod("agent-b", "node-b")
	f.addAgentPod("agent-a", "node-a")
	ex := &scriptedExecer{fn: func(cmd []string, stdout, stderr io.Writer) error {
		switch strings.Join(cmd, " ") {
		case "/kpbench cluster agent pid --proc /host/proc kube-proxy":
			fmt.Fprintln(stdout, "1234")
			return nil
		case "/kpbench cluster agent get http://127.0.0.1:10249/metrics":
			fmt.Fprint(stdout, "kubeproxy_sync_proxy_rules_duration_seconds_count 3\n")
			return nil
		}
		fmt.Fprint(stderr, "nft: not found")
		return &ExitError{Cmd: cmd, Code: 127}
	}}
	n := NewAgentNode(f.cs, ex)
	pid, err := n.KubeProxyPID(ctx)
	if err != nil || pid != 1234 {
		t.Fatalf("pid = %d, %v", pid, err)
	}
	body, err := n.KubeProxyGet(ctx, "metrics")
	if err != nil || !strings.Contains(string(body), "sync_proxy_rules") {
		t.Fatalf("metrics = %q, %v", body, err)
	}
	err = n.Run(ctx, nil, io.Discard, nil, "nft", "list", "ruleset")
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 127 || exit.Stderr != "nft: not found" {
		t.Fatalf("err = %#v, want exit 127 with stderr", err)
	}
	if n.ProcRoot() != manifests.HostProcPath || n.CPUs() != nil {
		t.Error("ProcRoot/CPUs")
	}
	for _, p := range ex.pods {
		if p != "agent-a" {
			t.Errorf("exec went to %s, want the agent on the first client node (node-a)", p)
		}
	}
	if n.NodeName(ctx) != "node-a" {
		t.Errorf("node = %s", n.NodeName(ctx))
	}
}

func TestAgentNodeWithoutAgent(t *testing.T) {
	f := newFakeCluster(t)
	n := NewAgentNode(f.cs, &scriptedExecer{fn: func([]string, io.Writer, io.Writer) error { return nil }})
	if _, err := n.KubeProxyGet(context.Background(), "/proxyMode"); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("err = %v, want ErrNoAgent", err)
	}
}

// TestClientNodes: every client node with an agent, the measured one
// first; commands to each go to its own agent pod.
func TestClientNodes(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(t)
	f.addAgentPod("agent-c", "node-c")
	f.addAgentPod("agent-a", "node-a")
	f.addAgentPod("agent-b", "node-b")
	ex := &scriptedExecer{fn: func([]string, io.Writer, io.Writer) error { return nil }}
	n := NewAgentNode(f.cs, ex)
	nodes, err := n.ClientNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, nn := range nodes {
		names = append(names, nn.Name)
		if err := nn.Node.Run(ctx, nil, io.Discard, nil, "true"); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(names, ",") != "node-a,node-b,node-c" || nodes[0].Node != n {
		t.Errorf("client nodes %v (first %p, want the measured %p)", names, nodes[0].Node, n)
	}
	if strings.Join(ex.pods, ",") != "agent-a,agent-b,agent-c" {
		t.Errorf("commands went to %v", ex.pods)
	}
}
