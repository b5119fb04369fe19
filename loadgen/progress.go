package loadgen

import (
	"context"
	"errors"
	"time"
)

// errBehind is the cause of an abort by AbortWhenBehind.
var errBehind = errors.New("the client fell behind its schedule")

// Progress is what a run has done so far.
type Progress struct {
	// Elapsed is the time since the run started, warm-up included; Warmup
	// says whether it is still in the warm-up.
	Elapsed time.Duration
	Warmup  bool
	// Due is how many requests the schedule has asked for by Elapsed;
	// Sent how many were sent, Answered and Failed how many completed.
	Due, Sent, Answered, Failed int64
	// Behind is how far behind its schedule the client is: the next
	// request to send was due that long ago. IsBehind tells whether that
	// is far enough to say the client cannot keep its rate: more than
	// 100 ms and more than a tenth of the time run.
	Behind   time.Duration
	IsBehind bool
}

// behindBound is how far behind its schedule the client may be, after
// elapsed, before the rate counts as out of reach: a tenth of the time run,
// at least 100 ms (so that one stall of the machine is not taken for it).
func behindBound(elapsed time.Duration) time.Duration {
	return max(elapsed/10, 100*time.Millisecond)
}

// monitor reports progress once a second and, with AbortWhenBehind, ends
// the sending once the client is behind. It returns a channel closed when
// it is done (after ctx ends).
func (r *runner) monitor(ctx context.Context, abort context.CancelCauseFunc, closeStop func()) <-chan struct{} {
	done := make(chan struct{})
	if r.cfg.Progress == nil && !r.cfg.AbortWhenBehind {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		total := r.cfg.Warmup + r.cfg.Duration
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.stop:
				return
			case <-tick.C:
			}
			elapsed := min(time.Since(r.t0), total)
			sent := r.sent.Load()
			p := Progress{
				Elapsed:  elapsed,
				Warmup:   elapsed < r.cfg.Warmup,
				Due:      int64(r.pacer.countBefore(elapsed)),
				Sent:     sent,
				Answered: r.answered.Load(),
				Failed:   r.failed.Load(),
			}
			if next := r.pacer.Due(uint64(sent)); next < elapsed {
				p.Behind = elapsed - next
			}
			p.IsBehind = p.Behind > behindBound(elapsed)
			if r.cfg.Progress != nil {
				r.cfg.Progress(p)
			}
			if p.IsBehind && r.cfg.AbortWhenBehind {
				abort(errBehind)
				closeStop()
				return
			}
		}
	}()
	return done
}
