package collector

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/kpbench/kpbench/internal/cpuset"
)

// This file reads every process of a proc mount in one pass (a scan):
// the per-process attribution of the client node's CPU (proctop.go) takes
// one scan per sampling tick.

// pfKThread is PF_KTHREAD in the flags field of /proc/PID/stat: the
// task is a kernel thread.
const pfKThread = 0x00200000

// procKey identifies a process across scans: a PID that is reused gets a
// new start time.
type procKey struct {
	PID   int
	Start uint64
}

// procStat is the part of /proc/PID/stat a scan keeps. Times are in clock
// ticks (UserHZ). They cover the whole thread group, exited threads
// included; CUTime and CSTime are the CPU of reaped children.
type procStat struct {
	Key          procKey
	Comm         string
	KernelThread bool
	UTime, STime uint64
	// CUTime and CSTime grow when the process reaps a child.
	CUTime, CSTime uint64
	// Processor is the CPU the process last ran on.
	Processor int
}

// parseProcStat parses one /proc/PID/stat line. The command name sits
// between the first '(' and the last ')' (it may contain spaces and
// parentheses); the fields after it are counted from the state.
func parseProcStat(b []byte) (procStat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return procStat{}, fmt.Errorf("no command name in %q", truncate(string(b), 80))
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return procStat{}, fmt.Errorf("pid in %q: %w", truncate(string(b), 80), err)
	}
	st := procStat{Key: procKey{PID: pid}, Comm: string(b[open+1 : end])}
	// Field n of proc(5) (1-based) is rest[n-3].
	rest := bytes.Fields(b[end+1:])
	const (
		flags     = 9 - 3
		utime     = 14 - 3
		stime     = 15 - 3
		cutime    = 16 - 3
		cstime    = 17 - 3
		starttime = 22 - 3
		processor = 39 - 3
	)
	if len(rest) <= starttime {
		return procStat{}, fmt.Errorf("process %d: %d fields after the command name, want at least %d", pid, len(rest), starttime+1)
	}
	num := func(i int) (uint64, error) {
		// cutime and cstime are signed in the kernel; they are never
		// negative in practice, and a negative value reads as 0.
		if bytes.HasPrefix(rest[i], []byte("-")) {
			return 0, nil
		}
		return strconv.ParseUint(string(rest[i]), 10, 64)
	}
	var errs []error
	get := func(i int) uint64 {
		v, err := num(i)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %d: %w", i+3, err))
		}
		return v
	}
	fl := get(flags)
	st.UTime, st.STime = get(utime), get(stime)
	st.CUTime, st.CSTime = get(cutime), get(cstime)
	st.Key.Start = get(starttime)
	st.Processor = -1
	if len(rest) > processor {
		st.Processor = int(get(processor))
	}
	if err := errors.Join(errs...); err != nil {
		return procStat{}, fmt.Errorf("process %d: %w", pid, err)
	}
	st.KernelThread = fl&pfKThread != 0
	return st, nil
}

// procScanner scans one proc mount, reusing its buffers and keeping the
// stat files of up to maxOpenStats processes open between scans: a
// re-read (pread at 0) of an open /proc/PID/stat costs about half of an
// open, read and close.
type procScanner struct {
	root string
	buf  []byte
	// names interns command names across scans.
	names map[string]string
	// stats are the open stat files by PID directory name.
	stats  map[string]int
	listed map[string]bool
}

// maxOpenStats bounds the file descriptors a scanner keeps.
const maxOpenStats = 512

func newProcScanner(root string) *procScanner {
	if root == "" {
		root = "/proc"
	}
	return &procScanner{root: root, buf: make([]byte, 1024), names: map[string]string{},
		stats: map[string]int{}, listed: map[string]bool{}}
}

// close closes the stat files the scanner keeps open.
func (s *procScanner) close() {
	for n, fd := range s.stats {
		_ = syscall.Close(fd)
		delete(s.stats, n)
	}
}

// scan reads /proc/*/stat into out (cleared first). A process that exits
// between listing and reading is left out; a file that does not parse
// fails the scan.
func (s *procScanner) scan(out map[procKey]procStat) error {
	clear(out)
	d, err := os.Open(s.root)
	if err != nil {
		return fmt.Errorf("listing processes: %w", err)
	}
	names, err := d.Readdirnames(-1)
	_ = d.Close()
	if err != nil {
		return fmt.Errorf("listing processes under %s: %w", s.root, err)
	}
	clear(s.listed)
	for _, n := range names {
		if n == "" || n[0] < '0' || n[0] > '9' {
			continue
		}
		s.listed[n] = true
		b, err := s.readStat(n)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH) {
				continue // exited since the listing
			}
			return fmt.Errorf("reading %s: %w", filepath.Join(s.root, n, "stat"), err)
		}
		st, err := parseProcStat(b)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(s.root, n, "stat"), err)
		}
		if c, ok := s.names[st.Comm]; ok {
			st.Comm = c
		} else {
			s.names[st.Comm] = st.Comm
		}
		out[st.Key] = st
	}
	// The files of processes gone from the listing.
	for n, fd := range s.stats {
		if !s.listed[n] {
			_ = syscall.Close(fd)
			delete(s.stats, n)
		}
	}
	return nil
}

// readStat reads the stat file of the process in directory n, through
// the file kept open from the last scan when there is one. A kept file
// of a process that has exited reads nothing (or ESRCH) even when its PID
// is in use again: it is then reopened.
func (s *procScanner) readStat(n string) ([]byte, error) {
	if fd, ok := s.stats[n]; ok {
		if b, err := s.pread(fd); err == nil && len(b) > 0 {
			return b, nil
		}
		_ = syscall.Close(fd)
		delete(s.stats, n)
	}
	fd, err := syscall.Open(filepath.Join(s.root, n, "stat"), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	b, err := s.pread(fd)
	if err == nil && len(b) == 0 {
		err = syscall.ESRCH
	}
	if err != nil || len(s.stats) >= maxOpenStats {
		_ = syscall.Close(fd)
		return b, err
	}
	s.stats[n] = fd
	return b, nil
}

// pread reads a whole small file from offset 0 into the scanner's buffer
// (valid until the next read).
func (s *procScanner) pread(fd int) ([]byte, error) {
	n := 0
	for {
		m, err := syscall.Pread(fd, s.buf[n:], int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		n += m
		if m == 0 || n < len(s.buf) {
			return s.buf[:n], nil
		}
		s.buf = append(s.buf, make([]byte, len(s.buf))...)
	}
}

// read reads a small file (a status file) into the scanner's buffer.
func (s *procScanner) read(path string) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	b, err := s.pread(fd)
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return b, nil
}

// allowedCPUs reads the CPUs a process may run on (Cpus_allowed_list of
// /proc/PID/status).
func (s *procScanner) allowedCPUs(pid int) ([]int, error) {
	b, err := s.read(filepath.Join(s.root, strconv.Itoa(pid), "status"))
	if err != nil {
		return nil, err
	}
	const key = "Cpus_allowed_list:"
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(key)); ok {
			return cpuset.Parse(string(bytes.TrimSpace(v)))
		}
	}
	return nil, fmt.Errorf("process %d: no %s in its status", pid, key)
}
