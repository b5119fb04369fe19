package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kpbench/kpbench/clusters/lab/netns"
)

// Proc is a process the lab started, as recorded on disk. The start time
// (clock ticks since boot, /proc/PID/stat field 22) tells it apart from a
// later process that got the same PID.
type Proc struct {
	Name      string   `json:"name"`
	PID       int      `json:"pid"`
	StartTime uint64   `json:"startTime"`
	Netns     string   `json:"netns,omitempty"`
	CPUs      []int    `json:"cpus,omitempty"`
	Log       string   `json:"log"`
	Args      []string `json:"args"`
}

// procStat reads a process's state letter and start time from
// procRoot/PID/stat.
func procStat(procRoot string, pid int) (state byte, start uint64, err error) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, err
	}
	return parseStat(data)
}

// parseStat extracts the state (field 3) and start time (field 22) from a
// /proc/PID/stat line; the command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseStat(data []byte) (state byte, start uint64, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed stat line")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("malformed stat line: %d fields after the name", len(f))
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed start time %q", f[19])
	}
	return f[0][0], start, nil
}

// Alive reports whether p still runs: same PID, same start time, and not a
// zombie.
func (p Proc) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	state, start, err := procStat("/proc", p.PID)
	if err != nil {
		return false
	}
	return start == p.StartTime && state != 'Z' && state != 'X'
}

// stop ends p: SIGTERM, then SIGKILL after grace. A process that is gone
// (or whose PID now belongs to another process) is left alone.
func (p Proc) stop(grace time.Duration) error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stopping %s (pid %d): %w", p.Name, p.PID, err)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.Alive() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing %s (pid %d): %w", p.Name, p.PID, err)
	}
	for i := 0; i < 250 && p.Alive(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if p.Alive() {
		return fmt.Errorf("%s (pid %d) survived SIGKILL", p.Name, p.PID)
	}
	return nil
}

// startSpec is how to start one component.
type startSpec struct {
	name  string
	netns string // namespace name; empty: the root namespace
	cpus  []int
	args  []string
	log   string
	// files are extra open files handed to the child as fd 3, 4, ...
	files []*os.File
	// env, when set, is the child's whole environment.
	env []string
}

// startProc starts a detached process (own session, so a terminal's Ctrl-C
// reaches only kpbench, which then cleans up) with stdout and stderr
// appended to its log. A goroutine reaps it if it exits while this process
// lives.
func startProc(spec startSpec) (Proc, error) {
	if err := os.MkdirAll(filepath.Dir(spec.log), 0o755); err != nil {
		return Proc{}, fmt.Errorf("creating log directory: %w", err)
	}
	logf, err := os.OpenFile(spec.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Proc{}, fmt.Errorf("opening %s log: %w", spec.name, err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "==== %s kpbench starting %s: %s\n", time.Now().UTC().Format(time.RFC3339), spec.name, strings.Join(spec.args, " "))
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return Proc{}, err
	}
	defer devnull.Close()

	cmd := exec.Command(spec.args[0], spec.args[1:]...)
	cmd.Stdin = devnull
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = spec.files
	cmd.Env = spec.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	nsPath := ""
	if spec.netns != "" {
		nsPath = netns.Path(spec.netns)
	}
	if err := netns.Start(cmd, nsPath, spec.cpus); err != nil {
		return Proc{}, fmt.Errorf("starting %s: %w", spec.name, err)
	}
	go func() { _ = cmd.Wait() }()
	p := Proc{Name: spec.name, PID: cmd.Process.Pid, Netns: spec.netns, CPUs: spec.cpus, Log: spec.log, Args: spec.args}
	_, start, err := procStat("/proc", p.PID)
	if err != nil {
		// It exited already; record it anyway so the caller reports its log.
		return p, nil
	}
	p.StartTime = start
	return p, nil
}

// ComponentError is a component that failed to start or become healthy; it
// carries the tail of the component's log.
type ComponentError struct {
	Component string
	Log       string
	Tail      string
	Err       error
}

func (e *ComponentError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Component, e.Err)
	if e.Tail != "" {
		msg += fmt.Sprintf("\n--- last lines of %s ---\n%s", e.Log, e.Tail)
	}
	return msg
}

func (e *ComponentError) Unwrap() error { return e.Err }

func componentError(p Proc, err error) error {
	return &ComponentError{Component: p.Name, Log: p.Log, Tail: logTail(p.Log, 25), Err: err}
}

// logTail returns the last n lines of a log file ("" if unreadable).
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxRead = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-maxRead, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls check until it succeeds, p dies, or timeout/ctx ends. The
// error of the last check is reported with p's log tail.
func waitFor(ctx context.Context, p Proc, timeout time.Duration, what string, check func(context.Context) error) error {
	return waitAlive(ctx, p.Name, p.Log, p.Alive, timeout, what, check)
}

// waitAlive is waitFor for a process whose liveness alive tells (one in
// the node VM, say).
func waitAlive(ctx context.Context, name, log string, alive func() bool, timeout time.Duration, what string, check func(context.Context) error) error {
	p := Proc{Name: name, Log: log}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if !alive() {
			time.Sleep(50 * time.Millisecond) // let the log catch the exit message
			err := fmt.Errorf("exited while waiting for %s", what)
			if last != nil {
				err = fmt.Errorf("%w (last check: %v)", err, last)
			}
			return componentError(p, err)
		}
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return componentError(p, fmt.Errorf("not %s after %s: %w", what, timeout, last))
			}
			return fmt.Errorf("waiting for %s to be %s: %w", p.Name, what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// findForwarders returns the running `kpbench lab forward` processes that
// dial into the namespace at nsPath.
func findForwarders(procRoot, nsPath string) []Proc {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	var found []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
		if err != nil || !isForwarderCmdline(data, nsPath) {
			continue
		}
		state, start, err := procStat(procRoot, pid)
		if err != nil || state == 'Z' {
			continue
		}
		found = append(found, Proc{Name: CompForwarder, PID: pid, StartTime: start})
	}
	return found
}

// isForwarderCmdline reports whether a NUL-separated command line is
// `... lab forward ... --netns=<nsPath> ...`.
func isForwarderCmdline(cmdline []byte, nsPath string) bool {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if len(args) < 3 || args[1] != "lab" || args[2] != "forward" {
		return false
	}
	for _, a := range args[3:] {
		if a == "--netns="+nsPath {
			return true
		}
	}
	return false
}
