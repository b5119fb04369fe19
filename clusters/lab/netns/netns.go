// Package netns creates and removes named network namespaces (the ones
// `ip netns` manages under /run/netns) and runs work inside them: dialing a
// socket, starting a process pinned to CPUs, finding the processes that live
// in a namespace. It never changes the caller's own namespace: work happens
// on a locked OS thread that is switched into the target namespace and back.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// RunDir is where iproute2 keeps the bind mounts of named namespaces.
const RunDir = "/run/netns"

// ErrNotFound is wrapped when a named namespace does not exist.
var ErrNotFound = errors.New("network namespace not found")

// Path returns the bind-mount path of the named namespace.
func Path(name string) string { return filepath.Join(RunDir, name) }

// Exists reports whether the named namespace exists.
func Exists(name string) bool {
	_, err := os.Stat(Path(name))
	return err == nil
}

// Add creates the named namespace with `ip netns add`.
func Add(ctx context.Context, name string) error {
	if _, err := Run(ctx, "ip", "netns", "add", name); err != nil {
		return fmt.Errorf("creating network namespace %s: %w", name, err)
	}
	return nil
}

// Delete removes the named namespace; a missing namespace is not an error.
func Delete(ctx context.Context, name string) error {
	if !Exists(name) {
		return nil
	}
	if _, err := Run(ctx, "ip", "netns", "delete", name); err != nil {
		if !Exists(name) {
			return nil
		}
		return fmt.Errorf("deleting network namespace %s: %w", name, err)
	}
	return nil
}

// List returns the named namespaces whose names start with prefix, sorted.
func List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(RunDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", RunDir, err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// CmdError is a failed command with its output, so the caller sees why.
type CmdError struct {
	Args   []string
	Output string
	Err    error
}

func (e *CmdError) Error() string {
	out := strings.TrimSpace(e.Output)
	if out == "" {
		return fmt.Sprintf("%s: %v", strings.Join(e.Args, " "), e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Args, " "), e.Err, out)
}

func (e *CmdError) Unwrap() error { return e.Err }

// Run runs a command in the caller's namespace and returns its combined
// output; a failure is a *CmdError carrying that output.
func Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), &CmdError{Args: append([]string{name}, args...), Output: out.String(), Err: err}
	}
	return out.Bytes(), nil
}

// Do runs fn on a locked OS thread switched into the namespace at nsPath
// and pinned to cpus (nil: unchanged; empty nsPath: the caller's namespace).
// Sockets fn creates stay in that namespace; processes fn starts inherit it
// and the CPU set. The thread is switched back afterwards; if that fails the
// thread is never reused (it ends with the goroutine).
func Do(nsPath string, cpus []int, fn func() error) error {
	runtime.LockOSThread()
	restored := false
	defer func() {
		if restored {
			runtime.UnlockOSThread()
		}
	}()

	var origCPUs unix.CPUSet
	if len(cpus) > 0 {
		if err := unix.SchedGetaffinity(0, &origCPUs); err != nil {
			restored = true
			return fmt.Errorf("reading CPU affinity: %w", err)
		}
		var set unix.CPUSet
		for _, c := range cpus {
			set.Set(c)
		}
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			restored = true
			return fmt.Errorf("pinning to CPUs %v: %w", cpus, err)
		}
	}
	restoreCPUs := func() bool {
		if len(cpus) == 0 {
			return true
		}
		return unix.SchedSetaffinity(0, &origCPUs) == nil
	}

	if nsPath == "" {
		err := fn()
		restored = restoreCPUs()
		return err
	}

	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		restored = restoreCPUs()
		return fmt.Errorf("opening current network namespace: %w", err)
	}
	defer orig.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		restored = restoreCPUs()
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", nsPath, ErrNotFound)
		}
		return fmt.Errorf("opening network namespace %s: %w", nsPath, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		restored = restoreCPUs()
		return fmt.Errorf("entering network namespace %s: %w", nsPath, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime discards it when this
		// goroutine ends, so no other goroutine runs in the wrong namespace.
		return errors.Join(fnErr, fmt.Errorf("leaving network namespace %s: %w", nsPath, err))
	}
	restored = restoreCPUs()
	return fnErr
}

// Start starts cmd inside the namespace at nsPath (empty: the caller's),
// pinned to cpus (nil: not pinned). The process keeps the namespace and the
// CPU set for its whole life, and so do its children.
func Start(cmd *exec.Cmd, nsPath string, cpus []int) error {
	return Do(nsPath, cpus, cmd.Start)
}

// Inode identifies a namespace: the device and inode of its nsfs file.
type Inode struct {
	Dev uint64
	Ino uint64
}

// InodeOf returns the namespace identity of the file at path (a bind mount
// under RunDir or /proc/PID/ns/net).
func InodeOf(path string) (Inode, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return Inode{}, fmt.Errorf("%s: %w", path, ErrNotFound)
		}
		return Inode{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return Inode{Dev: st.Dev, Ino: st.Ino}, nil
}

// PIDsIn returns the PIDs of the processes whose network namespace is the
// one at nsPath, read from procRoot (normally "/proc").
func PIDsIn(procRoot, nsPath string) ([]int, error) {
	want, err := InodeOf(nsPath)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", procRoot, err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		got, err := InodeOf(filepath.Join(procRoot, e.Name(), "ns", "net"))
		if err != nil {
			continue // gone, or a kernel thread we may not inspect
		}
		if got == want {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids, nil
}
