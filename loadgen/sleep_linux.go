//go:build linux

package loadgen

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sleeper waits until a point in time with microsecond precision, cheaply.
//
// Go's timers alone wake late: an idle runtime waits in epoll_wait, whose
// timeout has millisecond resolution, so a 100 µs sleep lasts about 1 ms.
// sleeper arms a timerfd for the instant and waits for it in the runtime's
// poller, with raw system calls: a runtime timer due every tick would wake
// the runtime's monitor thread every tick too, and ordinary system calls
// wake it when the process is otherwise idle. Waits longer than a couple of
// milliseconds use a runtime timer for all but the last millisecond, so
// that they can be cancelled.
type sleeper struct {
	f     *os.File // keeps the timerfd registered with the poller
	rc    syscall.RawConn
	fd    uintptr
	timer *time.Timer
	// base is the CLOCK_MONOTONIC reading (ns) at the time origin of the
	// caller's deadlines.
	base   int64
	readFn func(fd uintptr) bool
	buf    [8]byte
	// its is the expiry to arm; armed says the wait in progress has armed
	// it, armErr why arming failed.
	its    unix.ItimerSpec
	armed  bool
	armErr syscall.Errno
}

func newSleeper(origin time.Time) (*sleeper, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating timerfd: %w", err)
	}
	// A non-blocking fd given to os.NewFile joins the runtime's poller.
	f := os.NewFile(uintptr(fd), "timerfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		f.Close()
		return nil, fmt.Errorf("reading the monotonic clock: %w", err)
	}
	// Go's monotonic clock is CLOCK_MONOTONIC on Linux: map origin onto it.
	base := ts.Nano() - int64(time.Since(origin))
	t := time.NewTimer(time.Hour)
	t.Stop()
	s := &sleeper{f: f, rc: rc, fd: uintptr(fd), timer: t, base: base}
	// The timer is armed from inside the poller's read, after the poller
	// has been readied for the wait: the read that would follow arming at
	// once always finds the timer pending (EAGAIN), so it is skipped, and
	// an expiry after arming is never missed (the poller is edge-triggered
	// and watches from before the arming).
	s.readFn = func(fd uintptr) bool {
		if !s.armed {
			s.armed = true
			_, _, errno := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, fd, unix.TFD_TIMER_ABSTIME,
				uintptr(unsafe.Pointer(&s.its)), 0, 0, 0)
			s.armErr = errno
			return errno != 0
		}
		_, errno := rawCall(unix.SYS_READ, fd, s.buf[:])
		return errno != unix.EAGAIN
	}
	return s, nil
}

// sleepUntil blocks until at (a duration since the origin) or until ctx
// ends, whichever is first. Cancellation is noticed within a millisecond.
func (s *sleeper) sleepUntil(ctx context.Context, origin time.Time, at time.Duration) error {
	d := at - time.Since(origin)
	if d <= 0 {
		return ctx.Err()
	}
	if d > 2*time.Millisecond {
		s.timer.Reset(d - time.Millisecond)
		select {
		case <-s.timer.C:
		case <-ctx.Done():
			s.timer.Stop()
			return ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.its = unix.ItimerSpec{Value: unix.NsecToTimespec(s.base + int64(at))}
	s.armed, s.armErr = false, 0
	if err := s.rc.Read(s.readFn); err != nil {
		return fmt.Errorf("waiting for timerfd: %w", err)
	}
	if s.armErr != 0 {
		time.Sleep(at - time.Since(origin))
	}
	return ctx.Err()
}

func (s *sleeper) close() error {
	s.timer.Stop()
	return s.f.Close()
}
