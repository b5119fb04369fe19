//go:build linux

package loadgen

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawIO reads and writes a TCP connection with raw system calls through
// the runtime's poller (syscall.RawConn), keeping the connection's deadlines.
//
// Why: Go's ordinary socket calls announce themselves to the scheduler
// (entersyscall). In a mostly idle process, as a load client at 1,000 req/s
// is, the runtime's monitor thread sleeps in a state that every such call
// must wake with a futex: two extra context switches per request, a third
// of the client's CPU. Non-blocking socket calls need no announcement.
// The first read after a request is skipped: the answer cannot be there
// yet, and the edge-triggered poller reports it when it is.
type rawIO struct {
	rc syscall.RawConn

	// Bound once, so that each call does not allocate a closure.
	readFn, writeFn func(fd uintptr) bool
	p               []byte
	n               int
	errno           syscall.Errno
	skipRead        bool
}

func newRawIO(c net.Conn) (io.ReadWriter, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("raw connection: %w", err)
	}
	r := &rawIO{rc: rc}
	r.readFn = func(fd uintptr) bool {
		if r.skipRead {
			r.skipRead = false
			return false
		}
		r.n, r.errno = rawCall(unix.SYS_READ, fd, r.p)
		return r.errno != unix.EAGAIN
	}
	r.writeFn = func(fd uintptr) bool {
		r.n, r.errno = rawCall(unix.SYS_WRITE, fd, r.p)
		return r.errno != unix.EAGAIN
	}
	return r, nil
}

func rawCall(trap uintptr, fd uintptr, p []byte) (int, syscall.Errno) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, errno := unix.RawSyscall(trap, fd, uintptr(ptr), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p = p
	if err := r.rc.Read(r.readFn); err != nil {
		return 0, opErr("read", err)
	}
	if r.errno != 0 {
		return 0, opErr("read", os.NewSyscallError("read", r.errno))
	}
	if r.n == 0 {
		return 0, io.EOF
	}
	return r.n, nil
}

func (r *rawIO) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		r.p = p[written:]
		if err := r.rc.Write(r.writeFn); err != nil {
			return written, opErr("write", err)
		}
		if r.errno != 0 {
			return written, opErr("write", os.NewSyscallError("write", r.errno))
		}
		written += r.n
	}
	// The answer cannot have arrived yet.
	r.skipRead = true
	return written, nil
}

func opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Err: err}
}
