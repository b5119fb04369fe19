// Package cgroup reads a cgroup's CPU time and finds the cgroup of a
// process, for client nodes that are containers on this machine (kind):
// the provider finds the container's cgroup, the collector samples it.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Usage is a cgroup's cumulative CPU time, in seconds: what the
// processes of a container used, wherever they ran. It is how a client
// node that is a container (kind) is measured: /proc/stat inside a
// container is the whole host's.
type Usage struct {
	Total  float64 `json:"total"`
	User   float64 `json:"user"`
	System float64 `json:"system"`
}

// userHZ is the unit of cgroup v1's cpuacct.stat (USER_HZ, 100 on every
// Linux architecture kpbench runs on).
const userHZ = 100

// ReadUsage reads the CPU time of the cgroup directory dir: cgroup
// v2's cpu.stat (usage_usec, user_usec, system_usec), else cgroup v1's
// cpuacct.usage (nanoseconds) with cpuacct.stat's user and system (in
// USER_HZ ticks).
func ReadUsage(dir string) (Usage, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err == nil {
		if u, ok := parseCPUStatV2(b); ok {
			return u, nil
		}
		// A v1 cpu controller's cpu.stat (throttling counters only).
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Usage{}, fmt.Errorf("reading cgroup CPU: %w", err)
	}
	b, err = os.ReadFile(filepath.Join(dir, "cpuacct.usage"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Usage{}, fmt.Errorf("no CPU accounting in cgroup %s: neither cpu.stat with usage_usec (cgroup v2) nor cpuacct.usage (cgroup v1)", dir)
		}
		return Usage{}, fmt.Errorf("reading cgroup CPU: %w", err)
	}
	ns, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return Usage{}, fmt.Errorf("%s: %w", filepath.Join(dir, "cpuacct.usage"), err)
	}
	u := Usage{Total: float64(ns) / 1e9}
	if b, err := os.ReadFile(filepath.Join(dir, "cpuacct.stat")); err == nil {
		for _, f := range fields(b) {
			switch f.key {
			case "user":
				u.User = float64(f.val) / userHZ
			case "system":
				u.System = float64(f.val) / userHZ
			}
		}
	}
	return u, nil
}

// parseCPUStatV2 reads cgroup v2's cpu.stat; ok is false when it has no
// usage_usec (a v1 cpu controller's file of the same name).
func parseCPUStatV2(b []byte) (u Usage, ok bool) {
	for _, f := range fields(b) {
		switch f.key {
		case "usage_usec":
			u.Total, ok = float64(f.val)/1e6, true
		case "user_usec":
			u.User = float64(f.val) / 1e6
		case "system_usec":
			u.System = float64(f.val) / 1e6
		}
	}
	return u, ok
}

type field struct {
	key string
	val uint64
}

// fields parses "key value" lines, skipping what does not parse.
func fields(b []byte) []field {
	var out []field
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, field{k, n})
	}
	return out
}

// DirOf returns the cgroup directory, under cgroupRoot (normally
// /sys/fs/cgroup), that accounts the CPU of process pid, read from
// procRoot/<pid>/cgroup: the cpuacct hierarchy's path on cgroup v1 (also
// on a hybrid host, where v2's unified hierarchy holds no CPU
// controller), the unified path ("0::") on cgroup v2.
//
// With within set (a container's ID), the path is cut after its first
// component that contains it: the container's own cgroup, not the child
// its init process sits in. systemd as a container's PID 1 moves itself
// into init.scope, podman runs the payload in libpod-ID.scope/container,
// while the node's other processes (kubelet, pods) are in siblings.
func DirOf(procRoot, cgroupRoot string, pid int, within string) (string, error) {
	file := filepath.Join(procRoot, strconv.Itoa(pid), "cgroup")
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("finding the cgroup of process %d: %w", pid, err)
	}
	var unified string
	haveUnified := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		path, err := cutAt(parts[2], within)
		if err != nil {
			return "", fmt.Errorf("process %d: %w", pid, err)
		}
		if parts[0] == "0" && parts[1] == "" {
			unified, haveUnified = path, true
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c != "cpuacct" {
				continue
			}
			// The controller's mount: its own directory, or one
			// shared with cpu under either name.
			for _, mount := range []string{parts[1], "cpuacct", "cpu,cpuacct", "cpuacct,cpu"} {
				dir := filepath.Join(cgroupRoot, mount, path)
				if _, err := os.Stat(filepath.Join(dir, "cpuacct.usage")); err == nil {
					return dir, nil
				}
			}
			return "", fmt.Errorf("process %d is in cpuacct cgroup %s, but no %s under %s has its cpuacct.usage", pid, path, path, cgroupRoot)
		}
	}
	if haveUnified {
		return filepath.Join(cgroupRoot, unified), nil
	}
	return "", fmt.Errorf("%s names no cpuacct (cgroup v1) or unified (cgroup v2) hierarchy", file)
}

// cutAt cuts a cgroup path after its first component containing within
// ("" leaves it whole).
func cutAt(path, within string) (string, error) {
	if within == "" {
		return path, nil
	}
	parts := strings.Split(path, "/")
	for i, c := range parts {
		if strings.Contains(c, within) {
			return strings.Join(parts[:i+1], "/"), nil
		}
	}
	return "", fmt.Errorf("cgroup %s is not inside one named after %s", path, within)
}

// CPULimit is how many CPUs the cgroup directory dir may use at once,
// in cores: the smaller of its CPU quota (cgroup v2 cpu.max, v1
// cpu.cfs_quota_us over cpu.cfs_period_us) and the size of its cpuset
// (cpuset.cpus.effective, v1 cpuset.cpus), at most machine; machine
// where the cgroup sets neither (a kind node container: every CPU).
func CPULimit(dir string, machine int) float64 {
	limit := float64(machine)
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	if f := strings.Fields(read("cpu.max")); len(f) == 2 && f[0] != "max" {
		q, err1 := strconv.ParseFloat(f[0], 64)
		p, err2 := strconv.ParseFloat(f[1], 64)
		if err1 == nil && err2 == nil && q > 0 && p > 0 {
			limit = min(limit, q/p)
		}
	}
	if q, err := strconv.ParseFloat(read("cpu.cfs_quota_us"), 64); err == nil && q > 0 {
		if p, err := strconv.ParseFloat(read("cpu.cfs_period_us"), 64); err == nil && p > 0 {
			limit = min(limit, q/p)
		}
	}
	for _, name := range []string{"cpuset.cpus.effective", "cpuset.cpus"} {
		if n := cpuCount(read(name)); n > 0 {
			limit = min(limit, float64(n))
			break
		}
	}
	return limit
}

// cpuCount counts the CPUs of a cpuset list ("0-3,6"); 0 when it is
// empty or does not parse.
func cpuCount(list string) int {
	if list == "" {
		return 0
	}
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0
			}
		}
		n += b - a + 1
	}
	return n
}
