//go:build linux

package loadgen

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// sleeper waits until a point in time with microsecond precision, cheaply.
//
// Go's timers alone wake late: an idle runtime waits in epoll_wait, whose
// timeout has millisecond resolution, so a 100 µs sleep lasts about 1 ms.
// sleeper waits on an ordinary runtime timer and arms a timerfd for the
// same instant; the timerfd sits in the runtime's epoll set, so epoll_wait
// returns on time and the runtime then fires the timer. The timerfd is
// never read: re-arming resets it, and the poller is edge-triggered. Arming
// is one raw syscall, which does not disturb the scheduler (a blocking
// timerfd read would wake the runtime's monitor thread on every tick).
type sleeper struct {
	f     *os.File // keeps the timerfd registered with the poller
	fd    uintptr
	timer *time.Timer
	// base is the CLOCK_MONOTONIC reading (ns) at the time origin of the
	// caller's deadlines.
	base int64
}

// slack is how much later than the runtime timer the timerfd fires, so
// that the timer has expired when epoll_wait returns.
const slack = 2 * time.Microsecond

func newSleeper(origin time.Time) (*sleeper, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating timerfd: %w", err)
	}
	// A non-blocking fd given to os.NewFile joins the runtime's poller.
	f := os.NewFile(uintptr(fd), "timerfd")
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		f.Close()
		return nil, fmt.Errorf("reading the monotonic clock: %w", err)
	}
	// Go's monotonic clock is CLOCK_MONOTONIC on Linux: map origin onto it.
	base := ts.Nano() - int64(time.Since(origin))
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &sleeper{f: f, fd: uintptr(fd), timer: t, base: base}, nil
}

// sleepUntil blocks until at (a duration since the origin) or until ctx
// ends, whichever is first.
func (s *sleeper) sleepUntil(ctx context.Context, origin time.Time, at time.Duration) error {
	d := at - time.Since(origin)
	if d <= 0 {
		return ctx.Err()
	}
	s.timer.Reset(d)
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(s.base + int64(at+slack))}
	// Raw: a non-blocking call that need not tell the scheduler.
	_, _, errno := unix.RawSyscall6(unix.SYS_TIMERFD_SETTIME, s.fd, unix.TFD_TIMER_ABSTIME,
		uintptr(unsafePointer(&its)), 0, 0, 0)
	_ = errno // without the timerfd the timer still fires, only later
	select {
	case <-s.timer.C:
		return nil
	case <-ctx.Done():
		s.timer.Stop()
		return ctx.Err()
	}
}

func (s *sleeper) close() error {
	s.timer.Stop()
	return s.f.Close()
}
