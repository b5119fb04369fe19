//go:build linux

package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawDialer opens sockets with raw system calls and hands them to the
// runtime's poller through os.NewFile, so that reads and writes wait in the
// poller (and honour deadlines) while the calls themselves are raw.
//
// Why raw: Go's ordinary socket calls announce themselves to the scheduler
// (entersyscall). In a mostly idle process, as a load client at 1,000 req/s
// is, the runtime's monitor thread sleeps in a state that every such call
// wakes with a futex: two extra context switches per request, about a third
// of the client's CPU. Non-blocking socket calls need no announcement. And
// net.Dialer adds a goroutine per dial (to watch its context) and four
// system calls that a benchmark does not need.
//
// Two calls per connection cannot be raw: os.NewFile's fcntl and
// os.File.Close's close. rawDialer batches them (sockets are made sixteen
// at a time, and closed sixteen at a time or when the oldest has waited
// 10 ms), so that the monitor thread is woken once per batch, not per
// connection. A socket waiting to be closed has received the server's FIN
// and has nothing more to report, so it costs the poller nothing.
//
// The kernel stamps received packets only while some socket on the machine
// asks for receive timestamps: one switch for every CPU (a static key),
// which a work queue turns on or off, rewriting kernel code on every CPU,
// whenever the count of such sockets leaves or reaches zero. With a new
// connection per request the dialer's own sockets took that count to zero
// every time a close batch took the last of a socket batch (every 16
// connections), and an answer that arrived before the work queue had
// turned the switch back on had no timestamp (its arrival was then when it
// was read). stamp, a socket that asks for timestamps and is never
// connected, keeps the switch on from newDialer to close.
type rawDialer struct {
	mu     sync.Mutex
	spare  map[int][]*os.File // unconnected sockets by address family
	toShut []*os.File
	oldest time.Time // when the first of toShut was queued
	stamp  int       // the timestamp keeper's descriptor, -1 when none
}

const (
	socketBatch = 16
	closeBatch  = 16
	closeDelay  = 10 * time.Millisecond
)

func newDialer() dialer {
	return &rawDialer{spare: map[int][]*os.File{}, stamp: stampKeeper()}
}

// stampKeeper opens the socket that keeps the kernel's receive
// timestamping on (see rawDialer), or returns -1 when it cannot: then
// timestamps come and go with the dialer's own sockets.
func stampKeeper() int {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		unix.Close(fd)
		return -1
	}
	return fd
}

// socket returns a new unconnected, non-blocking socket in the poller.
func (d *rawDialer) socket(family int) (*os.File, error) {
	d.mu.Lock()
	if n := len(d.spare[family]); n > 0 {
		f := d.spare[family][n-1]
		d.spare[family] = d.spare[family][:n-1]
		d.mu.Unlock()
		return f, nil
	}
	d.mu.Unlock()
	batch := make([]*os.File, 0, socketBatch)
	var err error
	for range socketBatch {
		r0, _, errno := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		if errno != 0 {
			err = os.NewSyscallError("socket", errno)
			break
		}
		// Ask for the kernel's receive timestamp of what each read returns:
		// when a response reached this host, not when the client got round
		// to reading it (see rawConn.arrival).
		one := int32(1)
		unix.RawSyscall6(unix.SYS_SETSOCKOPT, r0, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS,
			uintptr(unsafe.Pointer(&one)), 4, 0)
		batch = append(batch, os.NewFile(r0, "tcp"))
	}
	if len(batch) == 0 {
		return nil, err
	}
	f := batch[len(batch)-1]
	d.mu.Lock()
	d.spare[family] = append(d.spare[family], batch[:len(batch)-1]...)
	d.mu.Unlock()
	return f, nil
}

// release closes f, batched with others.
func (d *rawDialer) release(f *os.File) {
	now := time.Now()
	d.mu.Lock()
	if len(d.toShut) == 0 {
		d.oldest = now
	}
	d.toShut = append(d.toShut, f)
	var batch []*os.File
	if len(d.toShut) >= closeBatch || now.Sub(d.oldest) > closeDelay {
		batch, d.toShut = d.toShut, nil
	}
	d.mu.Unlock()
	for _, f := range batch {
		f.Close()
	}
}

// close closes every socket the dialer still holds, the timestamp keeper
// last.
func (d *rawDialer) close() {
	d.mu.Lock()
	batch := d.toShut
	for fam, fs := range d.spare {
		batch = append(batch, fs...)
		delete(d.spare, fam)
	}
	d.toShut = nil
	stamp := d.stamp
	d.stamp = -1
	d.mu.Unlock()
	for _, f := range batch {
		f.Close()
	}
	if stamp >= 0 {
		unix.Close(stamp)
	}
}

func sockaddr(addr string) (unix.Sockaddr, int, error) {
	ap, err := netipAddrPort(addr)
	if err != nil {
		return nil, 0, err
	}
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}, unix.AF_INET, nil
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}, unix.AF_INET6, nil
}

type rawSockaddr struct {
	family int
	// raw is the kernel's struct sockaddr_in or sockaddr_in6.
	raw    unsafe.Pointer
	rawLen uintptr
}

func rawConnect(fd uintptr, sa unsafe.Pointer, l uintptr) error {
	_, _, errno := unix.RawSyscall(unix.SYS_CONNECT, fd, uintptr(sa), l)
	if errno != 0 {
		return errno
	}
	return nil
}

// prepare converts t's resolved address for the dialer, once, before the
// workers share t.
func (*rawDialer) prepare(t *Target) error {
	sa, family, err := sockaddr(t.Addr)
	if err != nil {
		return err
	}
	rs := rawSockaddr{family: family}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		raw := &unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: sa.Addr}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&raw.Port))[:], uint16(sa.Port))
		rs.raw, rs.rawLen = unsafe.Pointer(raw), unix.SizeofSockaddrInet4
	case *unix.SockaddrInet6:
		raw := &unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: sa.Addr}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&raw.Port))[:], uint16(sa.Port))
		rs.raw, rs.rawLen = unsafe.Pointer(raw), unix.SizeofSockaddrInet6
	}
	t.sockaddr = rs
	return nil
}

func (d *rawDialer) dial(t *Target, deadline time.Time) (conn, time.Duration, error) {
	rs := t.sockaddr.(rawSockaddr)
	// Raw calls throughout: connect and getsockopt do not block on a
	// non-blocking socket, and announcing them to the scheduler would wake
	// its monitor thread (see rawDialer).
	f, err := d.socket(rs.family)
	if err != nil {
		return nil, 0, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	rc, err := f.SyscallConn()
	if err != nil {
		d.release(f)
		return nil, 0, fmt.Errorf("raw socket: %w", err)
	}
	c := &rawConn{f: f, rc: rc, d: d}
	c.bind()
	if err := f.SetDeadline(deadline); err != nil {
		d.release(f)
		return nil, 0, fmt.Errorf("socket deadline: %w", err)
	}
	var (
		start, end time.Time
		started    bool
		cerr       error
	)
	werr := rc.Write(func(fd uintptr) bool {
		if !started {
			started = true
			start = time.Now()
			cerr = rawConnect(fd, rs.raw, rs.rawLen)
			if cerr != unix.EINPROGRESS {
				end = time.Now()
				return true
			}
			// On loopback and veth pairs the handshake usually completes
			// inside connect(2): asking again says so (EISCONN) without a
			// trip through the poller.
			cerr = rawConnect(fd, rs.raw, rs.rawLen)
			switch cerr {
			case unix.EALREADY, unix.EINPROGRESS:
				cerr = nil
				return false // wait until writable
			case unix.EISCONN:
				cerr = nil
			}
			end = time.Now()
			return true
		}
		end = time.Now()
		var soerr int32
		l := uint32(4)
		_, _, errno := unix.RawSyscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_ERROR,
			uintptr(unsafe.Pointer(&soerr)), uintptr(unsafe.Pointer(&l)), 0)
		if errno != 0 {
			cerr = errno
		} else if soerr != 0 {
			cerr = syscall.Errno(soerr)
		}
		return true
	})
	if werr == nil && cerr != nil {
		werr = os.NewSyscallError("connect", cerr)
	}
	if werr != nil {
		d.release(f)
		return nil, 0, &net.OpError{Op: "dial", Net: "tcp", Addr: addrOf(t.Addr), Err: werr}
	}
	return c, end.Sub(start), nil
}

type netAddr string

func (a netAddr) Network() string { return "tcp" }
func (a netAddr) String() string  { return string(a) }

func addrOf(s string) net.Addr { return netAddr(s) }

// rawConn is a connected socket read and written with raw calls.
type rawConn struct {
	f  *os.File
	rc syscall.RawConn
	d  *rawDialer

	// Bound once, so that each call does not allocate a closure.
	readFn, writeFn func(fd uintptr) bool
	p               []byte
	n               int
	errno           syscall.Errno

	// Reads go through recvmsg for the receive timestamp: the message
	// header and its buffers live here, so that a read allocates nothing.
	msg unix.Msghdr
	iov unix.Iovec
	oob [64]byte
	// rxNs is the receive timestamp (CLOCK_REALTIME, ns) of the data the
	// last read returned, 0 when the kernel gave none; rxRead is when that
	// read returned.
	rxNs   int64
	rxRead time.Time
}

func (c *rawConn) bind() {
	c.msg.Iov = &c.iov
	c.msg.SetIovlen(1)
	c.readFn = func(fd uintptr) bool {
		c.n, c.errno = c.recv(fd)
		return c.errno != unix.EAGAIN
	}
	c.writeFn = func(fd uintptr) bool {
		c.n, c.errno = rawCall(unix.SYS_WRITE, fd, c.p)
		return c.errno != unix.EAGAIN
	}
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

// recv reads into c.p with recvmsg and keeps the data's receive timestamp.
func (c *rawConn) recv(fd uintptr) (int, syscall.Errno) {
	c.iov.Base = &c.p[0]
	c.iov.SetLen(len(c.p))
	c.msg.Control = &c.oob[0]
	c.msg.SetControllen(len(c.oob))
	n, _, errno := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.msg)), 0)
	if errno != 0 {
		return 0, errno
	}
	if n > 0 {
		c.rxNs = rxTimestamp(c.oob[:c.msg.Controllen])
		c.rxRead = time.Now()
	}
	return int(n), 0
}

// rxTimestamp returns the SCM_TIMESTAMPNS time (ns) among the control
// messages in oob, or 0.
func rxTimestamp(oob []byte) int64 {
	hdr := int(unsafe.Sizeof(unix.Cmsghdr{}))
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS &&
			l >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			return ts.Nano()
		}
		if sp := unix.CmsgSpace(l - unix.CmsgLen(0)); sp < len(oob) {
			oob = oob[sp:]
		} else {
			return 0
		}
	}
	return 0
}

// arrival returns when the data of the last read reached this host, by
// the kernel's receive timestamp, on the monotonic clock; ok is false when
// the kernel gave none. The timestamp is wall-clock time, so only its
// distance from the wall-clock reading taken right after the read is used.
func (c *rawConn) arrival() (at time.Time, ok bool) {
	if c.rxNs == 0 {
		return time.Time{}, false
	}
	return c.rxRead.Add(-time.Duration(c.rxRead.UnixNano() - c.rxNs)), true
}

func (c *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.p = p
	c.rxNs = 0
	if err := c.rc.Read(c.readFn); err != nil {
		return 0, opErr("read", err)
	}
	if c.errno != 0 {
		return 0, opErr("read", os.NewSyscallError("read", c.errno))
	}
	if c.n == 0 {
		return 0, io.EOF
	}
	return c.n, nil
}

func (c *rawConn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		c.p = p[written:]
		if err := c.rc.Write(c.writeFn); err != nil {
			return written, opErr("write", err)
		}
		if c.errno != 0 {
			return written, opErr("write", os.NewSyscallError("write", c.errno))
		}
		written += c.n
	}
	return written, nil
}

func (c *rawConn) SetDeadline(t time.Time) error { return c.f.SetDeadline(t) }

// Close hands the socket to the dialer's batched close.
func (c *rawConn) Close() error {
	c.d.release(c.f)
	return nil
}

func opErr(op string, err error) error {
	if errors.Is(err, os.ErrClosed) {
		err = net.ErrClosed
	}
	return &net.OpError{Op: op, Net: "tcp", Err: err}
}
