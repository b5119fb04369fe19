//go:build !linux

package loadgen

import (
	"context"
	"time"
)

// sleeper falls back to the runtime's timers where timerfd does not exist
// (millisecond resolution when the process is idle).
type sleeper struct{ timer *time.Timer }

func newSleeper(time.Time) (*sleeper, error) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &sleeper{timer: t}, nil
}

func (s *sleeper) sleepUntil(ctx context.Context, origin time.Time, at time.Duration) error {
	d := at - time.Since(origin)
	if d <= 0 {
		return ctx.Err()
	}
	s.timer.Reset(d)
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
	return nil
}
