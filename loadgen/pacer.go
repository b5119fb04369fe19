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

// countBefore returns how many requests are due before t: the n with
// Due(n) < t (requests 0..n-1).
func (p ConstantPacer) countBefore(t time.Duration) uint64 {
	if t <= 0 {
		return 0
	}
	n := uint64(math.Ceil(float64(t) * p.Rate / 1e9))
	// Due rounds to the nanosecond: step to the exact boundary.
	for n > 0 && p.Due(n-1) >= t {
		n--
	}
	for p.Due(n) < t {
		n++
	}
	return n
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

// wakeAdvance learns how late the dispatcher's wake-ups come, so that it
// can arm its timer that much before a request is due. On an idle machine,
// and above all in a VM, waking an idle CPU takes tens of microseconds
// after the timer fires: without an advance every send would start that
// late and every latency would carry it (latency counts from the due time).
//
// The estimate follows a low quantile of the observed lateness (about the
// 10th percentile: it steps down by 1/4 of the gap and up by 1/32), so that
// a send rarely leaves before it is due, and never by more than the
// estimate; such a send's latency counts from when it actually left.
type wakeAdvance struct{ est int64 } // ns

// maxWakeAdvance bounds the advance whatever the machine does.
const maxWakeAdvance = 200 * time.Microsecond

// observe adds one wake-up that came late ns after its timer.
func (a *wakeAdvance) observe(late int64) {
	late = min(max(late, 0), int64(maxWakeAdvance))
	if late < a.est {
		a.est -= (a.est - late + 3) / 4
	} else {
		a.est += (late - a.est) / 32
	}
}

// ahead returns how long before a due time to arm the timer: the estimate,
// at most half the interval between sends.
func (a *wakeAdvance) ahead(interval time.Duration) int64 {
	return min(a.est, int64(interval)/2)
}
