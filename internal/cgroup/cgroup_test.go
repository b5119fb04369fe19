package cgroup

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
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

func TestCgroupV2(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"proc/4242/cgroup": "0::/system.slice/docker-0123abcd.scope/init.scope\n",
		"sys/fs/cgroup/system.slice/docker-0123abcd.scope/cpu.stat": "usage_usec 12500000\nuser_usec 8000000\nsystem_usec 4500000\n" +
			"core_sched.force_idle_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
	})
	// The container's init sits in init.scope; kubelet and the pods in
	// siblings: the container's own cgroup is the one named after it.
	dir, err := DirOf(filepath.Join(root, "proc"), filepath.Join(root, "sys/fs/cgroup"), 4242, "0123abcd")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "sys/fs/cgroup/system.slice/docker-0123abcd.scope"); dir != want {
		t.Errorf("cgroup dir %s, want %s", dir, want)
	}
	if dir, _ := DirOf(filepath.Join(root, "proc"), filepath.Join(root, "sys/fs/cgroup"), 4242, ""); dir != filepath.Join(root, "sys/fs/cgroup/system.slice/docker-0123abcd.scope/init.scope") {
		t.Errorf("the process's own cgroup: %s", dir)
	}
	u, err := ReadUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !near(u.Total, 12.5, 1e-9) || !near(u.User, 8, 1e-9) || !near(u.System, 4.5, 1e-9) {
		t.Errorf("usage %+v, want 12.5 s (8 user, 4.5 system)", u)
	}
}

func TestCgroupV1(t *testing.T) {
	root := t.TempDir()
	// A v1 host mounts cpu and cpuacct together; the cpu controller's
	// cpu.stat there has throttling counters only and must not be taken
	// for v2's.
	writeFiles(t, root, map[string]string{
		"proc/77/cgroup": "12:pids:/docker/feed\n4:cpu,cpuacct:/docker/feed\n3:memory:/docker/feed\n1:name=systemd:/docker/feed\n0::/system.slice/containerd.service\n",
		"sys/fs/cgroup/cpu,cpuacct/docker/feed/cpuacct.usage": "3250000000\n",
		"sys/fs/cgroup/cpu,cpuacct/docker/feed/cpuacct.stat":  "user 200\nsystem 110\n",
		"sys/fs/cgroup/cpu,cpuacct/docker/feed/cpu.stat":      "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
	})
	dir, err := DirOf(filepath.Join(root, "proc"), filepath.Join(root, "sys/fs/cgroup"), 77, "feed")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "sys/fs/cgroup/cpu,cpuacct/docker/feed"); dir != want {
		t.Errorf("cgroup dir %s, want %s (the cpuacct hierarchy, not the unified one)", dir, want)
	}
	u, err := ReadUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !near(u.Total, 3.25, 1e-9) || !near(u.User, 2, 1e-9) || !near(u.System, 1.1, 1e-9) {
		t.Errorf("usage %+v, want 3.25 s (2 user, 1.1 system)", u)
	}
}

func TestCgroupErrors(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"proc/5/cgroup":         "2:cpuacct:/docker/gone\n",
		"proc/6/cgroup":         "1:name=systemd:/x\n",
		"cg/empty/cgroup.procs": "",
	})
	procs, cg := filepath.Join(root, "proc"), filepath.Join(root, "cg")
	for pid, want := range map[int]string{5: "has its cpuacct.usage", 6: "names no cpuacct", 7: "finding the cgroup of process 7"} {
		if _, err := DirOf(procs, cg, pid, ""); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("pid %d: %v, want %q", pid, err, want)
		}
	}
	if _, err := DirOf(procs, cg, 5, "0123abcd"); err == nil || !strings.Contains(err.Error(), "not inside one named after 0123abcd") {
		t.Errorf("a process outside the container's cgroup: %v", err)
	}
	if _, err := ReadUsage(filepath.Join(cg, "empty")); err == nil || !strings.Contains(err.Error(), "no CPU accounting") {
		t.Errorf("a cgroup without CPU accounting: %v", err)
	}
}
func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }
