package loadgen

import (
	"context"
	"math/rand/v2"
	"time"
)

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

	// For the requests log (runner.log): the current request's target,
	// whether it opened its connection and that connect's duration (ns,
	// 0 when none); the connection's backend (a name id, 0 unknown).
	targetIdx int
	opened    bool
	connectNs int64
	backend   uint16

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
	fresh := w.conn == nil
	w.opened, w.connectNs = fresh, 0
	if fresh {
		w.target, w.targetIdx, w.backend = &r.targets[0], 0, 0
		if len(r.targets) > 1 {
			i := w.rng.IntN(len(r.targets))
			w.target, w.targetIdx = &r.targets[i], i
			if measured {
				r.connects[i].Add(1)
			}
		}
		c, connect, err := r.dialer.dial(w.target, deadline)
		if err != nil {
			w.finish(&smp, measured, intended, start, r.now(), 0, err)
			return
		}
		w.connectNs = max(int64(connect), 1)
		if measured {
			smp.connect = w.connectNs
		}
		w.conn, w.used = c, 0
	}
	last := r.cfg.RequestsPerConn > 0 && w.used+1 >= r.cfg.RequestsPerConn
	req := w.target.req
	if last {
		req = w.target.reqClose
	}
	// A new connection has this request's deadline from its dial.
	if err := w.setDeadline(fresh, deadline); err != nil {
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
	if w.backend == 0 && resp.backend != nil && r.log != nil {
		// A connection reaches one backend: its name is read once.
		w.backend = r.log.intern(resp.backend)
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

func (w *worker) setDeadline(fresh bool, deadline time.Time) error {
	if fresh {
		return nil
	}
	return w.conn.SetDeadline(deadline)
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
	if l := w.r.log; l != nil {
		w.logRequest(l, start, status, kind)
	}
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

// logRequest keeps the request's record: a response (status) names the
// connection's backend.
func (w *worker) logRequest(l *requestLog, start int64, status int, kind string) {
	s := logSlot{start: start, connect: w.connectNs, target: uint32(w.targetIdx), newConn: w.opened}
	if status != 0 {
		s.backend = w.backend
	}
	if kind != "" {
		s.kind = l.intern([]byte(kind))
	}
	l.add(s)
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
