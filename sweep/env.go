package sweep

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/runs"
)

// DetectEnvironment describes this machine for run.json. Cluster versions
// come from the provider; the iptables backend from the client node's
// `iptables --version` (run is how to run a command there; nil = here).
func DetectEnvironment(ctx context.Context, procRoot string, iptablesVersion []byte) runs.Environment {
	if procRoot == "" {
		procRoot = "/proc"
	}
	env := runs.Environment{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		env.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	env.Hostname, _ = os.Hostname()
	if data, err := os.ReadFile(procRoot + "/cpuinfo"); err == nil {
		env.CPUModel = cpuModel(data)
	}
	if data, err := os.ReadFile(procRoot + "/meminfo"); err == nil {
		env.MemoryBytes = memTotal(data)
	}
	if iptablesVersion == nil {
		if out, err := exec.CommandContext(ctx, "iptables", "--version").Output(); err == nil {
			iptablesVersion = out
		}
	}
	env.IPTablesBackend = kubeproxy.IPTablesBackend(iptablesVersion)
	return env
}

func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func memTotal(meminfo []byte) uint64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// NodeEnvironmentWith describes a client node that is not this machine:
// kernel, CPU model, cores and memory from the node's /proc read with the
// command cat (Features.Client.Cat: `kpbench cluster agent cat` through
// the agent pod, plain "cat" on a node whose own tools run), the iptables
// backend from the node's own `iptables --version`. Go's version is this
// build's. What cannot be read stays empty and is reported in the error.
func NodeEnvironmentWith(ctx context.Context, node clusters.ClientNode, cat ...string) (runs.Environment, error) {
	env := runs.Environment{GoVersion: runtime.Version()}
	read := func(name string) ([]byte, error) {
		var out bytes.Buffer
		err := node.Run(ctx, nil, &out, nil, append(cat, node.ProcRoot()+"/"+name)...)
		return out.Bytes(), err
	}
	var errs []error
	if b, err := read("sys/kernel/osrelease"); err == nil {
		env.Kernel = strings.TrimSpace(string(b))
	} else {
		errs = append(errs, fmt.Errorf("kernel: %w", err))
	}
	if b, err := read("cpuinfo"); err == nil {
		env.CPUModel = cpuModel(b)
		env.Cores = processors(b)
	} else {
		errs = append(errs, fmt.Errorf("cpuinfo: %w", err))
	}
	if b, err := read("meminfo"); err == nil {
		env.MemoryBytes = memTotal(b)
	} else {
		errs = append(errs, fmt.Errorf("meminfo: %w", err))
	}
	if b, err := read("sys/kernel/hostname"); err == nil {
		env.Hostname = strings.TrimSpace(string(b))
	}
	var out bytes.Buffer
	if err := node.Run(ctx, nil, &out, nil, "iptables", "--version"); err == nil {
		env.IPTablesBackend = kubeproxy.IPTablesBackend(out.Bytes())
	}
	return env, errors.Join(errs...)
}

// processors counts the "processor" entries of /proc/cpuinfo.
func processors(cpuinfo []byte) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, _, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "processor" {
			n++
		}
	}
	return n
}

// vmEnvironment describes a VM client node for run.json: the guest's
// kernel, CPUs and memory (read in the guest with c.Cat), the
// accelerator, and this machine's kernel and CPU. Under TCG run.json's
// problems say that the figures are emulated.
func vmEnvironment(ctx context.Context, node clusters.ClientNode, c clusters.Client, run *runs.Run) (runs.Environment, error) {
	vm := c.VM
	host := DetectEnvironment(ctx, "/proc", nil)
	env, err := NodeEnvironmentWith(ctx, node, c.Cat...)
	env.HostKernel = host.Kernel
	env.Accelerator = vm.Accelerator
	if vm.Accelerator == "tcg" {
		env.CPUModel = host.CPUModel + " (host; the guest's emulated CPU: " + env.CPUModel + ")"
		run.Problems = append(run.Problems, "the client node is a VM under TCG (software emulation: "+vm.AccelReason+"): its figures are emulated, valid for function and for comparisons within this run, not as absolute cost")
	}
	return env, err
}
