package collector

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// UserHZ is the unit of the clock-tick fields of /proc/PID/stat (utime,
// stime): the kernel reports them in USER_HZ, which is 100 on every
// architecture Go supports, whatever the kernel's internal HZ
// (sysconf(_SC_CLK_TCK) returns the same constant). procfs makes the same
// assumption for /proc/stat, whose CPU lines it returns in seconds.
const UserHZ = 100

var (
	// ErrNoSuchCPU is wrapped when a requested CPU has no line in /proc/stat.
	ErrNoSuchCPU = errors.New("no such CPU")
	// ErrNoSuchProcess is wrapped when a PID has no /proc/PID directory (it
	// exited, or lives in another PID namespace than the proc mount).
	ErrNoSuchProcess = errors.New("no such process")
)

// FS reads the collector's numbers from one proc mount point.
type FS struct {
	proc procfs.FS
	root string
}

// NewFS returns an FS reading the proc filesystem mounted at root
// ("/proc", "/host/proc", or a fixture directory).
func NewFS(root string) (FS, error) {
	if root == "" {
		root = procfs.DefaultMountPoint
	}
	fs, err := procfs.NewFS(root)
	if err != nil {
		return FS{}, fmt.Errorf("opening proc filesystem at %s: %w", root, err)
	}
	return FS{proc: fs, root: root}, nil
}

// Root is the proc mount point fs reads.
func (fs FS) Root() string { return fs.root }

// path joins elements under the proc root.
func (fs FS) path(elem ...string) string {
	return filepath.Join(append([]string{fs.root}, elem...)...)
}

// CPUTimes are one CPU's cumulative times from /proc/stat, in seconds.
//
// Guest and GuestNice are informational: the kernel already counts guest
// time inside User and guest_nice inside Nice, so Busy does not add them
// again.
type CPUTimes struct {
	User      float64 `json:"user"`
	Nice      float64 `json:"nice"`
	System    float64 `json:"system"`
	Idle      float64 `json:"idle"`
	IOWait    float64 `json:"iowait"`
	IRQ       float64 `json:"irq"`
	SoftIRQ   float64 `json:"softirq"`
	Steal     float64 `json:"steal"`
	Guest     float64 `json:"guest"`
	GuestNice float64 `json:"guestNice"`
}

// Busy is the time the CPU did work: user + nice + system + irq + softirq
// + steal. Idle and iowait (idle while a task waits for I/O) are not busy.
// Steal is time a hypervisor ran something else while this CPU had work;
// it is counted as busy because the node asked for the CPU.
func (t CPUTimes) Busy() float64 {
	return t.User + t.Nice + t.System + t.IRQ + t.SoftIRQ + t.Steal
}

// Sub returns t - o field by field.
func (t CPUTimes) Sub(o CPUTimes) CPUTimes {
	return CPUTimes{
		User:      t.User - o.User,
		Nice:      t.Nice - o.Nice,
		System:    t.System - o.System,
		Idle:      t.Idle - o.Idle,
		IOWait:    t.IOWait - o.IOWait,
		IRQ:       t.IRQ - o.IRQ,
		SoftIRQ:   t.SoftIRQ - o.SoftIRQ,
		Steal:     t.Steal - o.Steal,
		Guest:     t.Guest - o.Guest,
		GuestNice: t.GuestNice - o.GuestNice,
	}
}

// Add returns t + o field by field.
func (t CPUTimes) Add(o CPUTimes) CPUTimes {
	return CPUTimes{
		User:      t.User + o.User,
		Nice:      t.Nice + o.Nice,
		System:    t.System + o.System,
		Idle:      t.Idle + o.Idle,
		IOWait:    t.IOWait + o.IOWait,
		IRQ:       t.IRQ + o.IRQ,
		SoftIRQ:   t.SoftIRQ + o.SoftIRQ,
		Steal:     t.Steal + o.Steal,
		Guest:     t.Guest + o.Guest,
		GuestNice: t.GuestNice + o.GuestNice,
	}
}

func fromProcfs(c procfs.CPUStat) CPUTimes {
	return CPUTimes{
		User: c.User, Nice: c.Nice, System: c.System, Idle: c.Idle, IOWait: c.Iowait,
		IRQ: c.IRQ, SoftIRQ: c.SoftIRQ, Steal: c.Steal, Guest: c.Guest, GuestNice: c.GuestNice,
	}
}

// CPUs reads every CPU's cumulative times from /proc/stat, keyed by CPU
// number. Offline CPUs have no line and are absent.
func (fs FS) CPUs() (map[int]CPUTimes, error) {
	st, err := fs.proc.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", fs.path("stat"), err)
	}
	out := make(map[int]CPUTimes, len(st.CPU))
	for id, c := range st.CPU {
		out[int(id)] = fromProcfs(c)
	}
	return out, nil
}

// CPUIDs lists the CPUs /proc/stat reports, in order.
func (fs FS) CPUIDs() ([]int, error) {
	cpus, err := fs.CPUs()
	if err != nil {
		return nil, err
	}
	ids := make([]int, 0, len(cpus))
	for id := range cpus {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids, nil
}

// ProcTimes are a process's cumulative CPU times from /proc/PID/stat,
// converted from clock ticks to seconds. They cover every thread of the
// process but not its children (cutime/cstime are left out: they only
// grow when a child is reaped, in one jump).
type ProcTimes struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	// UserSeconds and SystemSeconds are utime/UserHZ and stime/UserHZ.
	UserSeconds   float64 `json:"userSeconds"`
	SystemSeconds float64 `json:"systemSeconds"`
	// StartTicks is the process start time after boot, in clock ticks; a
	// different value for the same PID means the PID was reused.
	StartTicks uint64 `json:"startTicks"`
}

// Seconds is the process's total CPU time.
func (p ProcTimes) Seconds() float64 { return p.UserSeconds + p.SystemSeconds }

// TicksToSeconds converts a /proc/PID/stat clock-tick count to seconds.
func TicksToSeconds(ticks uint) float64 { return float64(ticks) / UserHZ }

// Proc reads one process's CPU times. It wraps ErrNoSuchProcess when the
// process is gone.
func (fs FS) Proc(pid int) (ProcTimes, error) {
	p, err := fs.proc.Proc(pid)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return ProcTimes{}, fmt.Errorf("process %d under %s: %w", pid, fs.root, ErrNoSuchProcess)
		}
		return ProcTimes{}, fmt.Errorf("process %d: %w", pid, err)
	}
	st, err := p.Stat()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return ProcTimes{}, fmt.Errorf("process %d under %s: %w", pid, fs.root, ErrNoSuchProcess)
		}
		return ProcTimes{}, fmt.Errorf("reading %s: %w", fs.path(strconv.Itoa(pid), "stat"), err)
	}
	return ProcTimes{
		PID:           pid,
		Comm:          st.Comm,
		UserSeconds:   TicksToSeconds(st.UTime),
		SystemSeconds: TicksToSeconds(st.STime),
		StartTicks:    st.Starttime,
	}, nil
}

// Snapshot is one reading of the CPUs and processes being sampled.
type Snapshot struct {
	Time  time.Time
	CPUs  map[int]CPUTimes
	Procs map[int]ProcTimes
}

// Snapshot reads the given CPUs (all when cpus is empty) and processes.
// A process that is gone is left out of Procs; any other error fails.
func (fs FS) Snapshot(cpus, pids []int) (Snapshot, error) {
	now := time.Now()
	all, err := fs.CPUs()
	if err != nil {
		return Snapshot{}, err
	}
	s := Snapshot{Time: now, CPUs: all, Procs: make(map[int]ProcTimes, len(pids))}
	if len(cpus) > 0 {
		s.CPUs = make(map[int]CPUTimes, len(cpus))
		for _, c := range cpus {
			t, ok := all[c]
			if !ok {
				return Snapshot{}, fmt.Errorf("CPU %d in %s: %w", c, fs.path("stat"), ErrNoSuchCPU)
			}
			s.CPUs[c] = t
		}
	}
	for _, pid := range pids {
		p, err := fs.Proc(pid)
		if errors.Is(err, ErrNoSuchProcess) {
			continue
		}
		if err != nil {
			return Snapshot{}, err
		}
		s.Procs[pid] = p
	}
	return s, nil
}
