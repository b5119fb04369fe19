package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kpbench/kpbench/scenarios"
)

// Result is everything a run measured.
type Result struct {
	Summary    Summary
	Timeline   []Second
	Histograms Histograms
	// Requests are the measured window's requests by start time, when
	// Config.LogRequests asked for them; RequestsNotLogged counts those
	// that found no room (none unless the schedule was exceeded).
	Requests          []RequestRecord
	RequestsNotLogged int64
}

// Run drives open-loop load as cfg says and returns what it measured. It
// returns an error only when the run could not be made (bad config, a host
// that does not resolve); failed requests are counted, not returned.
// Cancelling ctx ends the run early; the result is then marked invalid.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = scenarios.DefaultTimeout
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = scenarios.DefaultMaxInflight
	}
	if cfg.idleReuse == 0 {
		cfg.idleReuse = maxIdleReuse
	}
	cfg.Tick = cfg.EffectiveTick()
	targets, err := resolveTargets(ctx, cfg.URLs)
	if err != nil {
		return nil, err
	}
	d := newDialer()
	for i := range targets {
		if err := d.prepare(&targets[i]); err != nil {
			d.close()
			return nil, err
		}
	}
	pacer, err := NewConstantPacer(cfg.Rate, cfg.Warmup+cfg.Duration)
	if err != nil {
		d.close()
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	r := &runner{
		cfg:      cfg,
		targets:  targets,
		pacer:    pacer,
		freed:    make(chan struct{}, 1),
		stop:     make(chan struct{}),
		warmupNs: int64(cfg.Warmup),
		seed:     seed,
		dialer:   d,
		timeline: newTimeline(int64(cfg.Warmup), cfg.Duration),
		hist:     newHistograms(),
	}
	if len(targets) > 1 {
		r.connects = make([]atomic.Int64, len(targets))
	}
	if cfg.LogRequests {
		// Every request the schedule can send inside the window has its
		// slot before the first one leaves; the requests ask the backend
		// to name itself.
		r.log = newRequestLog(loggedRequests(pacer, cfg))
		for i := range r.targets {
			r.targets[i].askBackend()
		}
	}
	return r.run(ctx)
}

// resolveTargets parses the URLs and resolves their hosts once, so that
// connects measure the handshake, not DNS.
func resolveTargets(ctx context.Context, urls []string) ([]Target, error) {
	targets := make([]Target, 0, len(urls))
	for _, u := range urls {
		t, err := ParseTarget(u)
		if err != nil {
			return nil, err
		}
		host, port, _ := net.SplitHostPort(t.Addr)
		if net.ParseIP(host) == nil {
			addrs, err := net.DefaultResolver.LookupHost(ctx, host)
			if err != nil {
				return nil, fmt.Errorf("resolving %s: %w", host, err)
			}
			t.Addr = net.JoinHostPort(addrs[0], port)
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// runner is one run's shared state. The dispatcher goroutine owns the
// fields below "dispatcher only"; workers own their worker values until the
// dispatcher has waited for them.
type runner struct {
	cfg      Config
	targets  []Target
	pacer    ConstantPacer
	sleeper  *sleeper
	t0       time.Time
	warmupNs int64
	seed     uint64
	timeline *timeline
	// idle holds the workers waiting for a request, most recently freed
	// last; waiting says the dispatcher waits for one (at the bound) and
	// freed wakes it.
	idleMu  sync.Mutex
	idle    []*worker
	waiting bool
	freed   chan struct{}
	dialer  dialer
	wg      sync.WaitGroup
	// stop is closed when the run's wall time is up (warm-up plus
	// duration) or when it is aborted: a dispatcher waiting for a free
	// worker gives up.
	stop chan struct{}
	// sent is the dispatcher's count of requests sent, warm-up included;
	// answered and failed count completions, for Progress.
	sent, answered, failed atomic.Int64

	// connects counts the connections opened to each target in the
	// measured window (several targets only).
	connects []atomic.Int64

	// mu guards hist, which workers fill in batches (see worker.flush).
	mu   sync.Mutex
	hist Histograms

	// log keeps every measured request (Config.LogRequests); nil otherwise.
	log *requestLog

	// dispatcher only
	advance   wakeAdvance
	workers   []*worker
	boundHits int64
	peak      int64
}

func (r *runner) now() int64 { return int64(time.Since(r.t0)) }

func (r *runner) run(ctx context.Context) (*Result, error) {
	startedAt := time.Now()
	r.t0 = startedAt
	sl, err := newSleeper(r.t0)
	if err != nil {
		r.dialer.close()
		return nil, err
	}
	defer sl.close()
	r.sleeper = sl
	for range min(2, r.cfg.MaxInflight) {
		r.idle = append(r.idle, r.startWorker())
	}

	total := int64(r.cfg.Warmup + r.cfg.Duration)
	// Requests the schedule still owes at the end may go out late for a
	// short grace (a stall of the machine in the last milliseconds should
	// not lose them); after it, nothing is sent.
	sendEnd := total + int64(min(sendGrace, r.cfg.Timeout))
	// sendCtx ends the sending early: the caller's ctx (interrupted), or
	// an abort when the client falls behind (--abort-when-behind).
	sendCtx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	var stopOnce sync.Once
	closeStop := func() { stopOnce.Do(func() { close(r.stop) }) }
	wallTimer := time.AfterFunc(time.Duration(sendEnd), closeStop)
	defer wallTimer.Stop()
	monitorDone := r.monitor(sendCtx, abort, closeStop)

	var (
		hits                 uint64
		windowOpen           bool
		cpu0                 time.Duration
		measuredSent         int64
		windowStartNow       int64
		lastSend             int64
		warmNotSent          uint64
		firstMeasured        = r.pacer.countBefore(time.Duration(r.warmupNs))
		plannedEnd           = total // the schedule's end, or where sending stopped early
		stoppedEarly, timeUp bool
	)
	for {
		elapsed := r.now()
		if r.cfg.stallFor > 0 && time.Duration(elapsed) >= r.cfg.stallAt {
			time.Sleep(r.cfg.stallFor)
			r.cfg.stallFor = 0
			elapsed = r.now()
		}
		if elapsed >= sendEnd {
			timeUp = true
			break
		}
		wait, stop := r.pacer.Pace(time.Duration(elapsed), hits)
		if stop {
			break
		}
		// due decides the window a request belongs to (so that the window
		// holds exactly Rate*Duration of them); intended, its batch's start
		// when batching, is when it is sent and what lag and latency count
		// from.
		due := elapsed + int64(wait)
		if due < r.warmupNs && elapsed >= r.warmupNs {
			// The warm-up is over with requests still owed: they are not
			// sent, and the window starts on its own schedule.
			warmNotSent += firstMeasured - hits
			hits = firstMeasured
			continue
		}
		intended := int64(BatchStart(time.Duration(due), r.cfg.Tick))
		if arm := intended - r.advance.ahead(r.pacer.Interval()); arm > elapsed {
			if r.sleep(sendCtx, arm) != nil {
				stoppedEarly = true
				break
			}
			r.advance.observe(r.now() - arm)
		}
		measured := due >= r.warmupNs
		if !windowOpen && measured {
			windowOpen = true
			cpu0 = processCPU()
			windowStartNow = r.now()
		}
		if !r.send(sendCtx, intended, measured) {
			if sendCtx.Err() != nil {
				stoppedEarly = true
			} else {
				timeUp = true // waited for a worker until the time was up
			}
			break
		}
		hits++
		r.sent.Store(int64(hits))
		if measured {
			measuredSent++
			lastSend = r.now()
		}
	}
	stoppedAt := r.now()
	// The window lasts until its scheduled end, or later if sends ran late.
	if !stoppedEarly && r.sleep(sendCtx, total) != nil {
		stoppedEarly = true
		stoppedAt = r.now()
	}
	if stoppedEarly {
		// Interrupted or aborted: the schedule ends where sending stopped.
		// A request due in the last moment before (the one the dispatcher
		// was waiting for) is not owed.
		plannedEnd = min(stoppedAt-min(int64(r.pacer.Interval()), int64(10*time.Millisecond)), total)
	}
	closeStop()
	windowEnd := r.now()
	cpu1 := processCPU()
	for _, w := range r.workers {
		close(w.jobs)
	}
	r.wg.Wait()
	r.dialer.close()
	abort(nil)
	<-monitorDone
	interrupted := ctx.Err() != nil
	aborted := !interrupted && stoppedEarly && context.Cause(sendCtx) == errBehind

	res := &Result{Histograms: r.hist, Timeline: r.timeline.lines()}
	if r.log != nil {
		res.Requests, res.RequestsNotLogged = r.log.records(r.t0, r.targets)
	}
	s := &res.Summary
	s.SchemaVersion = schemaVersion
	s.TargetRate = r.cfg.Rate
	s.DurationSeconds = r.cfg.Duration.Seconds()
	s.RequestsPerConn = r.cfg.RequestsPerConn
	s.TickSeconds = r.cfg.Tick.Seconds()
	s.URLs = append([]string(nil), r.cfg.URLs...)
	s.StartedAt = startedAt.UTC()
	s.MaxInflight = r.cfg.MaxInflight
	s.PeakInflight = int(r.peak)
	s.Workers = len(r.workers)
	s.InflightBoundHits = r.boundHits
	s.Warmup.Seconds = r.cfg.Warmup.Seconds()
	if r.connects != nil {
		s.TargetConnects = make([]int64, len(r.connects))
		for i := range r.connects {
			s.TargetConnects[i] = r.connects[i].Load()
		}
	}
	byKind := map[string]int64{}
	for _, w := range r.workers {
		s.Requests += w.requests
		s.Errors.Total += w.errors
		for k, n := range w.byKind {
			byKind[k] += n
		}
		s.Warmup.Requests += w.warmRequests
		s.Warmup.Errors += w.warmErrors
	}
	if len(byKind) > 0 {
		s.Errors.ByKind = byKind
	}
	s.Answered = s.Requests - s.Errors.Total
	// What the schedule owed up to where sending stopped and was never
	// sent; and how far behind the schedule the client was by then.
	due := r.pacer.countBefore(time.Duration(plannedEnd))
	if owed := int64(due) - int64(max(hits, firstMeasured)); owed > 0 {
		s.NotSent = owed
	}
	if warmDue := min(due, firstMeasured); hits < warmDue {
		warmNotSent += warmDue - hits
	}
	s.Warmup.NotSent = int64(warmNotSent)
	if timeUp || stoppedEarly {
		if behind := min(stoppedAt, total) - int64(r.pacer.Due(hits)); behind > 0 && hits < due {
			s.BehindSeconds = roundSeconds(behind)
		}
	}
	// The window ends on schedule, or later if the last sends were late; a
	// late wake-up after the last send does not count against the rate.
	// Stopped early, it ends where it stopped: rates are over the time
	// actually run.
	windowClose := max(total, lastSend+int64(r.pacer.Interval()))
	if stoppedEarly {
		windowClose = min(stoppedAt, total)
	}
	if window := windowClose - r.warmupNs; windowOpen && window > 0 {
		s.MeasuredSeconds = roundSeconds(window)
		s.SentRate = float64(measuredSent) / (float64(window) / 1e9)
		s.AchievedRate = float64(s.Answered) / (float64(window) / 1e9)
		if busy := windowEnd - windowStartNow; busy > 0 {
			s.ClientCPUCores = float64(cpu1-cpu0) / float64(busy)
		}
	}
	s.setDistributions(res.Histograms)
	s.Aborted = aborted
	s.PID = os.Getpid()
	s.judge(interrupted)
	return res, nil
}

// loggedRequests is how many requests the schedule sends in cfg's measured
// window at most: those due from the warm-up's end to the window's.
func loggedRequests(p ConstantPacer, cfg Config) int {
	return int(p.countBefore(cfg.Warmup+cfg.Duration)-p.countBefore(cfg.Warmup)) + 1
}

// sendGrace is how long after the window's end requests still owed may be
// sent (late, as their lag shows), at most the request timeout.
const sendGrace = 100 * time.Millisecond

// roundSeconds converts nanoseconds to seconds, rounded to the millisecond.
func roundSeconds(ns int64) float64 { return float64(ns/1e6) / 1e3 }

// sleep waits until t (ns since t0) or until ctx ends.
func (r *runner) sleep(ctx context.Context, t int64) error {
	return r.sleeper.sleepUntil(ctx, r.t0, time.Duration(t))
}
