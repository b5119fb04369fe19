package loadgen

import (
	"fmt"
	"math"
	"time"
)

// A Pacer decides when each request is due. Pace is pure: given the time
// elapsed since the start and the number of requests already sent (hits),
// it returns how long to wait before sending the next one and whether to
// stop. The wait may be zero or negative: elapsed+wait is always the next
// request's intended send time, so a caller that is behind schedule knows by
// how much. Being pure, a Pacer is tested without a clock.
type Pacer interface {
	Pace(elapsed time.Duration, hits uint64) (wait time.Duration, stop bool)
}

// ConstantPacer sends Rate requests per second, evenly spaced, for Total
// (warm-up and measured window together); a zero Total never stops.
// Request n (from 0) is due at n/Rate seconds: intended send times are fixed
// by the rate alone, whatever the server does.
type ConstantPacer struct {
	Rate  float64
	Total time.Duration
}

// NewConstantPacer returns a pacer for rate requests per second over total;
// it rejects rates that are not positive and finite and a negative total.
func NewConstantPacer(rate float64, total time.Duration) (ConstantPacer, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return ConstantPacer{}, fmt.Errorf("rate must be a positive number of requests per second, got %v", rate)
	}
	if total < 0 {
		return ConstantPacer{}, fmt.Errorf("duration must not be negative, got %v", total)
	}
	return ConstantPacer{Rate: rate, Total: total}, nil
}

// Due returns the intended send time of request n, counted from the start.
func (p ConstantPacer) Due(n uint64) time.Duration {
	// float64 holds n*1e9 exactly far beyond any realistic run; rounding to
	// the nearest nanosecond keeps the schedule drift-free.
	return time.Duration(math.Round(float64(n) * 1e9 / p.Rate))
}

// Pace implements Pacer.
func (p ConstantPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if !(p.Rate > 0) {
		return 0, true
	}
	due := p.Due(hits)
	if p.Total > 0 && due >= p.Total {
		return 0, true
	}
	return due - elapsed, false
}

// Interval is the time between two intended sends.
func (p ConstantPacer) Interval() time.Duration {
	return time.Duration(math.Round(1e9 / p.Rate))
}

// BatchStart returns when a request due at due is sent when sends are
// batched every tick: at the start of the tick its due time falls in, so
// that one wake-up sends every request due before the next tick. A batch is
// sent early, never late, so the rate over any window longer than a tick is
// the schedule's; the batch's start is the request's intended send time for
// its lag and latency. A tick of zero (or less) sends each request when due.
func BatchStart(due, tick time.Duration) time.Duration {
	if tick <= 0 {
		return due
	}
	return due / tick * tick
}
