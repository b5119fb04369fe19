package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kpbench/kpbench/scenarios"
)

// Config is one load run.
type Config struct {
	// URLs are the targets; each new connection picks one uniformly at
	// random. Only http:// is supported.
	URLs []string
	// Rate is the target rate in requests per second.
	Rate float64
	// Duration is the measured window; Warmup runs before it at the same
	// rate and is excluded from every figure but Summary.Warmup. Together
	// they bound the run's wall time: no request is sent after them, and
	// the run returns at most Timeout later, whatever the schedule still
	// owes (counted as not sent).
	Duration, Warmup time.Duration
	// RequestsPerConn: 1 opens a new TCP connection per request, N closes
	// each connection after N requests, 0 keeps connections open.
	RequestsPerConn int
	// Timeout bounds each request: connect, send and the whole response
	// (scenarios.DefaultTimeout when zero).
	Timeout time.Duration
	// MaxInflight bounds the requests in flight at once
	// (scenarios.DefaultMaxInflight when zero). A send that finds the bound reached
	// waits for a free worker, and the run is invalid.
	MaxInflight int
	// Seed makes the choice of targets repeatable; 0 seeds randomly.
	Seed uint64
	// Tick, when set, sends in batches: the dispatcher wakes once per Tick
	// and sends at once every request due before the next tick
	// (BatchStart). Fewer wake-ups (less client CPU at high rates) for a
	// burstier arrival process: Rate*Tick requests at a time, which queue at
	// the server as any burst does. Latency and lag count from the batch's
	// start. Zero sends every request at its own due time.
	Tick time.Duration
	// Progress, when set, is called about once a second with what the run
	// has done so far (from a goroutine of its own; it must not block).
	Progress func(Progress)
	// AbortWhenBehind ends the run as soon as the client falls behind its
	// schedule (see Progress.Behind), rather than at its duration: a rate
	// the client cannot reach fails fast. The run is then invalid.
	AbortWhenBehind bool

	// idleReuse overrides maxIdleReuse (tests).
	idleReuse time.Duration
	// stallAt and stallFor stop the dispatcher once, for stallFor, when
	// stallAt has elapsed: a client descheduled mid-window (tests).
	stallAt, stallFor time.Duration
}

// ErrInvalidConfig marks a Config that Validate rejects.
var ErrInvalidConfig = errors.New("invalid load config")

// Validate reports every problem of c at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.URLs) == 0 {
		errs = append(errs, errors.New("at least one URL is needed"))
	}
	for _, u := range c.URLs {
		if _, err := ParseTarget(u); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := NewConstantPacer(c.Rate, 0); err != nil {
		errs = append(errs, err)
	}
	if c.Duration <= 0 {
		errs = append(errs, fmt.Errorf("duration must be positive, got %v", c.Duration))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("warmup must not be negative, got %v", c.Warmup))
	}
	if c.RequestsPerConn < 0 {
		errs = append(errs, fmt.Errorf("requests per connection must be 0 (persistent) or positive, got %d", c.RequestsPerConn))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout must not be negative, got %v", c.Timeout))
	}
	if c.Tick < 0 {
		errs = append(errs, fmt.Errorf("tick must not be negative, got %v", c.Tick))
	}
	if c.MaxInflight < 0 {
		errs = append(errs, fmt.Errorf("max inflight must not be negative, got %d", c.MaxInflight))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}

// Result is everything a run measured.
type Result struct {
	Summary    Summary
	Timeline   []Second
	Histograms Histograms
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
	targets, err := resolveTargets(ctx, cfg.URLs)
	if err != nil {
		return nil, err
	}
	d := newDialer()
	for i := range targets {
		if err := d.prepare(&targets[i]); err != nil {
			return nil, err
		}
	}
	pacer, err := NewConstantPacer(cfg.Rate, cfg.Warmup+cfg.Duration)
	if err != nil {
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
	s := &res.Summary
	s.SchemaVersion = schemaVersion
	s.TargetRate = r.cfg.Rate
	s.DurationSeconds = r.cfg.Duration.Seconds()
	s.RequestsPerConn = r.cfg.RequestsPerConn
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
	s.judge(interrupted)
	return res, nil
}

// sendGrace is how long after the window's end requests still owed may be
// sent (late, as their lag shows), at most the request timeout.
const sendGrace = 100 * time.Millisecond

// roundSeconds converts nanoseconds to seconds, rounded to the millisecond.
func roundSeconds(ns int64) float64 { return float64(ns/1e6) / 1e3 }

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

// sleep waits until t (ns since t0) or until ctx ends.
func (r *runner) sleep(ctx context.Context, t int64) error {
	return r.sleeper.sleepUntil(ctx, r.t0, time.Duration(t))
}

// send hands intended to an idle worker, starting a new one when every
// worker has a request in flight. At the bound it waits (the send is late,
// which its lag and latency show) and counts the hit, which makes the run
// invalid. It returns false when ctx ended or the run's time was up while
// waiting.
//
// The most recently freed worker goes first: a few connections stay hot
// and carry the load, and workers started during a stall fall idle again
// rather than spreading every later request over cold connections.
func (r *runner) send(ctx context.Context, intended int64, measured bool) bool {
	w := r.popIdle()
	if w == nil {
		if len(r.workers) < r.cfg.MaxInflight {
			w = r.startWorker()
		} else {
			r.boundHits++
			for w == nil {
				select {
				case <-r.freed:
				case <-ctx.Done():
					return false
				case <-r.stop:
					return false
				}
				w = r.popIdle()
			}
		}
	}
	r.idleMu.Lock()
	r.peak = max(r.peak, int64(len(r.workers)-len(r.idle)))
	r.idleMu.Unlock()
	w.jobs <- job{intended, measured} // never blocks: the worker is idle and jobs has room
	return true
}

// popIdle takes the most recently freed worker, or returns nil and marks
// the dispatcher as waiting for one.
func (r *runner) popIdle() *worker {
	r.idleMu.Lock()
	defer r.idleMu.Unlock()
	n := len(r.idle)
	if n == 0 {
		r.waiting = true
		return nil
	}
	r.waiting = false
	w := r.idle[n-1]
	r.idle = r.idle[:n-1]
	return w
}

// pushIdle returns w to the idle stack and wakes a waiting dispatcher.
func (r *runner) pushIdle(w *worker) {
	r.idleMu.Lock()
	r.idle = append(r.idle, w)
	wake := r.waiting
	r.waiting = false
	r.idleMu.Unlock()
	if wake {
		select {
		case r.freed <- struct{}{}:
		default:
		}
	}
}

func (r *runner) startWorker() *worker {
	id := len(r.workers)
	w := &worker{
		jobs:   make(chan job, 1),
		r:      r,
		rng:    rand.New(rand.NewPCG(r.seed, uint64(id))),
		buf:    make([]byte, 4096),
		byKind: map[string]int64{},
	}
	r.workers = append(r.workers, w)
	r.wg.Add(1)
	go w.loop()
	return w
}

// job is one request handed to a worker: when it was meant to leave (ns
// since t0) and whether it falls in the measured window.
type job struct {
	intended int64
	measured bool
}

// worker sends one request at a time on its own connection. It records
// its samples into a small buffer of its own and adds them to the run's
// histograms a batch at a time: the lock is taken once per sampleBatch
// requests, and a worker costs 10 KiB rather than the 1 MiB of four HDR
// histograms (workers are started whenever a send finds all busy, so there
// may be many).
type worker struct {
	r    *runner
	jobs chan job // the next request
	rng  *rand.Rand
	buf  []byte

	conn     conn
	target   *Target
	used     int   // requests sent on conn
	lastUsed int64 // when conn last answered, ns since t0

	samples                  [sampleBatch]sample
	nsamples                 int
	requests, errors         int64
	byKind                   map[string]int64
	warmRequests, warmErrors int64
}

func (w *worker) loop() {
	defer w.r.wg.Done()
	for j := range w.jobs {
		w.do(j.intended, j.measured)
		w.r.pushIdle(w)
	}
	w.flush()
	if w.conn != nil {
		w.conn.Close()
	}
}

func (w *worker) do(intended int64, measured bool) {
	r := w.r
	start := r.now()
	var smp sample
	if measured {
		smp.lag = max(start-intended, 1)
		r.timeline.sent(start)
	}
	deadline := r.t0.Add(time.Duration(start) + r.cfg.Timeout)
	if w.conn != nil && start-w.lastUsed > int64(r.cfg.idleReuse) {
		// Servers close idle connections (nginx and kpbench serve after
		// 75 s); a worker that sat idle that long starts afresh rather
		// than count the server's close as an error.
		w.drop()
	}
	if w.conn == nil {
		w.target = &r.targets[0]
		if len(r.targets) > 1 {
			i := w.rng.IntN(len(r.targets))
			w.target = &r.targets[i]
			if measured {
				r.connects[i].Add(1)
			}
		}
		c, connect, err := r.dialer.dial(w.target, deadline)
		if err != nil {
			w.finish(&smp, measured, intended, start, r.now(), 0, err)
			return
		}
		if measured {
			smp.connect = max(int64(connect), 1)
		}
		w.conn, w.used = c, 0
	}
	last := r.cfg.RequestsPerConn > 0 && w.used+1 >= r.cfg.RequestsPerConn
	req := w.target.req
	if last {
		req = w.target.reqClose
	}
	if err := w.conn.SetDeadline(deadline); err != nil {
		w.drop()
		w.finish(&smp, measured, intended, start, r.now(), 0, err)
		return
	}
	resp, err := roundTrip(w.conn, req, w.buf)
	done := r.now()
	w.used++
	w.lastUsed = done
	if err != nil {
		w.drop()
		w.finish(&smp, measured, intended, start, done, resp.status, err)
		return
	}
	w.finish(&smp, measured, intended, start, w.arrived(start, done), resp.status, nil)
	if last || resp.close {
		// Wait for the server's FIN before closing, so that the server holds
		// TIME_WAIT and the client keeps its local ports. Not timed.
		for {
			if _, err := w.conn.Read(w.buf); err != nil {
				break
			}
		}
		w.drop()
	}
}

func (w *worker) drop() {
	w.conn.Close()
	w.conn = nil
}

// arrived returns when the response's last byte reached the host, by the
// kernel's receive timestamp where the connection has one: the client's
// own delay in waking up and reading it is not the dataplane's. It falls
// back to done (when the client read it) without a timestamp, or with one
// outside [start, done] (the wall clock was stepped).
func (w *worker) arrived(start, done int64) int64 {
	a, ok := w.conn.(arriver)
	if !ok {
		return done
	}
	at, ok := a.arrival()
	if !ok {
		return done
	}
	if t := int64(at.Sub(w.r.t0)); t >= start && t <= done {
		return t
	}
	return done
}

// finish records one request's outcome; done is when it completed.
func (w *worker) finish(smp *sample, measured bool, intended, start, done int64, status int, err error) {
	kind := Classify(err, status)
	if w.r.cfg.Progress != nil {
		if kind != "" {
			w.r.failed.Add(1)
		} else {
			w.r.answered.Add(1)
		}
	}
	if !measured {
		w.warmRequests++
		if kind != "" {
			w.warmErrors++
		}
		return
	}
	w.requests++
	// A request that left before it was due (see wakeAdvance) counts from
	// when it left.
	intended = min(intended, start)
	w.r.timeline.completed(done, done-intended, kind != "")
	if kind != "" {
		w.errors++
		w.byKind[kind]++
	} else {
		smp.latency = max(done-intended, 1)
		smp.service = max(done-start, 1)
	}
	w.samples[w.nsamples] = *smp
	w.nsamples++
	if w.nsamples == len(w.samples) {
		w.flush()
	}
}

// maxIdleReuse is the longest a worker reuses an idle connection: well
// under the 75 s keep-alive timeout of nginx and kpbench serve.
const maxIdleReuse = 30 * time.Second

// sampleBatch is how many samples a worker buffers before taking the lock.
const sampleBatch = 256

// sample is one measured request's durations in nanoseconds; 0 means not
// measured (no connect on a reused connection, no latency for an error).
type sample struct{ lag, connect, latency, service int64 }

// flush adds the buffered samples to the run's histograms.
func (w *worker) flush() {
	h := &w.r.hist
	w.r.mu.Lock()
	for _, s := range w.samples[:w.nsamples] {
		record(h.Lag, s.lag)
		if s.connect > 0 {
			record(h.Connect, s.connect)
		}
		if s.latency > 0 {
			record(h.Latency, s.latency)
			record(h.ServiceTime, s.service)
		}
	}
	w.r.mu.Unlock()
	w.nsamples = 0
}
