package kind

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/existing"
	"github.com/kpbench/kpbench/internal/cgroup"
)

// Features implements clusters.Provider: kind's client nodes are
// containers on this machine, reached through the agent pod, whose CPU is
// read from their cgroups here; load clients run as Jobs on any of them.
func (p *Provider) Features(context.Context) clusters.Features {
	return clusters.Features{
		Client: clusters.Client{Where: clusters.ClientPod, Bin: "kpbench", Cat: existing.AgentCat, Load: p,
			Nodes: p.ClientNodes, NodeCgroup: p.NodeCgroup},
		SwitchModes: true,
		Describe:    p.Describe,
	}
}

// ClientNodes lists the client workers, the measured one first.
func (p *Provider) ClientNodes(ctx context.Context) ([]clusters.NamedNode, error) {
	inner, err := p.in()
	if err != nil {
		return nil, err
	}
	return inner.ClientNodes(ctx)
}

// NodeCgroup finds a client node container's cgroup on this machine
// (clusters.Client.NodeCgroup). A kind node is a container
// named as the node: its main process's PID and its ID (`docker inspect`,
// or the runtime kind uses) give its cgroup, the one named after the ID
// on the path in /proc/PID/cgroup (the node's systemd sits in a child,
// init.scope); that cgroup's CPU is all the node's processes: kubelet,
// kube-proxy, the load client and the agent, and none of the host's or the
// other nodes'.
func (p *Provider) NodeCgroup(ctx context.Context, node string) (string, error) {
	if err := p.prepare(); err != nil {
		return "", err
	}
	rt := containerRuntime()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, rt, "inspect", "--format", "{{.State.Pid}} {{.Id}}", node)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s inspect %s: %w: %s", rt, node, err, strings.TrimSpace(errb.String()))
	}
	f := strings.Fields(out.String())
	pid := 0
	if len(f) == 2 && len(f[1]) >= 12 {
		pid, _ = strconv.Atoi(f[0])
	}
	if pid <= 0 { // a stopped container's PID is 0
		return "", fmt.Errorf("%s inspect %s: no PID and ID of a running container in %q", rt, node, strings.TrimSpace(out.String()))
	}
	root := p.opts.HostRoot
	if root == "" {
		root = "/"
	}
	dir, err := cgroup.DirOf(filepath.Join(root, "proc"), filepath.Join(root, "sys", "fs", "cgroup"), pid, f[1])
	if err != nil {
		return "", fmt.Errorf("node %s (container PID %d): %w", node, pid, err)
	}
	if _, err := cgroup.ReadUsage(dir); err != nil {
		return "", fmt.Errorf("node %s: %w", node, err)
	}
	return dir, nil
}

// containerRuntime is the CLI of the runtime kind runs its nodes with:
// KIND_EXPERIMENTAL_PROVIDER when set (the provider's prepare sets it
// whenever it chose podman, see usesPodman), else docker when installed,
// else podman (kind's own order).
func containerRuntime() string {
	if rt := os.Getenv("KIND_EXPERIMENTAL_PROVIDER"); rt != "" {
		return rt
	}
	if _, err := exec.LookPath("docker"); err == nil {
		return "docker"
	}
	if _, err := exec.LookPath("podman"); err == nil {
		return "podman"
	}
	return "docker"
}
