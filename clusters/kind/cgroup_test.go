package kind

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRuntime puts a `docker` on PATH that answers `inspect --format
// {{.State.Pid}} NAME` from pids, and logs its arguments.
func fakeRuntime(t *testing.T, pids map[string]string) (argsLog string) {
	t.Helper()
	bin := t.TempDir()
	argsLog = filepath.Join(bin, "args")
	script := "#!/bin/sh\necho \"$@\" >> " + argsLog + "\n" +
		"[ \"$1 $2 $3\" = 'inspect --format {{.State.Pid}} {{.Id}}' ] || { echo \"unexpected: $*\" >&2; exit 2; }\n" +
		"case \"$4\" in\n"
	for name, pid := range pids {
		script += name + ") echo " + pid + " ;;\n"
	}
	script += "*) echo \"Error: No such object: $4\" >&2; exit 1 ;;\nesac\n"
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("KIND_EXPERIMENTAL_PROVIDER", "")
	return argsLog
}

func hostFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNodeCgroup: a kind node's CPU is its container's cgroup on this
// machine, found from the container's PID (docker inspect) and
// /proc/PID/cgroup, on cgroup v2 and v1 hosts.
func TestNodeCgroup(t *testing.T) {
	ctx := context.Background()
	args := fakeRuntime(t, map[string]string{
		"bench-worker":  "4242 abc0123456789abc0123456789",
		"bench-worker2": "0 def0123456789def0123456789", // stopped
		"bench-worker3": "77 fed0123456789fed0123456789",
	})
	root := t.TempDir()
	hostFiles(t, root, map[string]string{
		// The node's systemd moved itself into init.scope; the node's
		// cgroup is the container's, named after its ID.
		"proc/4242/cgroup": "0::/system.slice/docker-abc0123456789abc0123456789.scope/init.scope\n",
		"sys/fs/cgroup/system.slice/docker-abc0123456789abc0123456789.scope/cpu.stat": "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\n",
		"proc/77/cgroup": "4:cpu,cpuacct:/docker/fed0123456789fed0123456789/init.scope\n0::/\n",
		"sys/fs/cgroup/cpu,cpuacct/docker/fed0123456789fed0123456789/cpuacct.usage": "123\n",
	})
	p := newTestProvider(t, &fakeKind{}, Options{Name: "bench", HostRoot: root})
	dir, err := p.NodeCgroup(ctx, "bench-worker")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "sys/fs/cgroup/system.slice/docker-abc0123456789abc0123456789.scope"); dir != want {
		t.Errorf("cgroup v2 dir %s, want %s", dir, want)
	}
	dir, err = p.NodeCgroup(ctx, "bench-worker3")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "sys/fs/cgroup/cpu,cpuacct/docker/fed0123456789fed0123456789"); dir != want {
		t.Errorf("cgroup v1 dir %s, want %s", dir, want)
	}
	log, _ := os.ReadFile(args)
	if !strings.HasPrefix(string(log), "inspect --format {{.State.Pid}} {{.Id}} bench-worker\n") {
		t.Errorf("docker called with %q", log)
	}
	for node, want := range map[string]string{
		"bench-worker2": "no PID and ID of a running container", // stopped
		"bench-worker9": "No such object",
	} {
		if _, err := p.NodeCgroup(ctx, node); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), node) {
			t.Errorf("%s: %v, want %q", node, err, want)
		}
	}
}
