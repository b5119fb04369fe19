package kind

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/kind/pkg/cluster/nodes"
	kindexec "sigs.k8s.io/kind/pkg/exec"
)

// fakeNode plays a kind node container: `containerd config dump` prints a
// containerd v3 config, `ctr images import` records what it reads.
type fakeNode struct {
	name     string
	mu       sync.Mutex
	imported []byte
	cmdline  []string
	fail     bool
}

func (n *fakeNode) String() string              { return n.name }
func (n *fakeNode) Role() (string, error)       { return "worker", nil }
func (n *fakeNode) IP() (string, string, error) { return "172.18.0.2", "", nil }
func (n *fakeNode) SerialLogs(io.Writer) error  { return nil }
func (n *fakeNode) Command(c string, a ...string) kindexec.Cmd {
	return &fakeCmd{n: n, args: append([]string{c}, a...)}
}
func (n *fakeNode) CommandContext(_ context.Context, c string, a ...string) kindexec.Cmd {
	return n.Command(c, a...)
}

type fakeCmd struct {
	n      *fakeNode
	args   []string
	stdin  io.Reader
	stdout io.Writer
}

func (c *fakeCmd) SetEnv(...string) kindexec.Cmd      { return c }
func (c *fakeCmd) SetStdin(r io.Reader) kindexec.Cmd  { c.stdin = r; return c }
func (c *fakeCmd) SetStdout(w io.Writer) kindexec.Cmd { c.stdout = w; return c }
func (c *fakeCmd) SetStderr(io.Writer) kindexec.Cmd   { return c }
func (c *fakeCmd) Run() error {
	switch c.args[0] {
	case "containerd":
		_, err := io.WriteString(c.stdout, "version = 3\n[plugins.'io.containerd.cri.v1.images']\n  snapshotter = 'overlayfs'\n")
		return err
	case "ctr":
		if c.n.fail {
			return &kindexec.RunError{Command: c.args, Output: []byte("ctr: unexpected EOF"), Inner: errors.New("exit status 1")}
		}
		b, err := io.ReadAll(c.stdin)
		if err != nil {
			return err
		}
		c.n.mu.Lock()
		c.n.imported, c.n.cmdline = b, c.args
		c.n.mu.Unlock()
		return nil
	}
	return errors.New("unexpected command " + strings.Join(c.args, " "))
}

func TestLoadOnNodesImportsIntoEveryNode(t *testing.T) {
	archive := imageArchive(t, "kpbench:test")
	want, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := &fakeNode{name: "kpbench-control-plane"}, &fakeNode{name: "kpbench-worker"}, &fakeNode{name: "kpbench-worker2"}
	opens := 0
	var mu sync.Mutex
	open := func() (io.ReadCloser, error) {
		mu.Lock()
		opens++
		mu.Unlock()
		return os.Open(archive)
	}
	if err := loadOnNodes([]nodes.Node{a, b, c}, open); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*fakeNode{a, b, c} {
		if !bytes.Equal(n.imported, want) {
			t.Errorf("node %s imported %d bytes, want the archive's %d", n.name, len(n.imported), len(want))
		}
		if got := strings.Join(n.cmdline, " "); !strings.Contains(got, "ctr --namespace=k8s.io images import") || !strings.Contains(got, "--snapshotter=overlayfs") {
			t.Errorf("node %s ran %q", n.name, got)
		}
	}
	if opens != 3 {
		t.Errorf("archive opened %d times, want once per node", opens)
	}

	b.fail = true
	err = loadOnNodes([]nodes.Node{a, b}, open)
	if err == nil || !strings.Contains(err.Error(), "kpbench-worker") || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("err = %v, want the failing node and ctr's output", err)
	}
}
