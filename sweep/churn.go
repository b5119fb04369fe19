package sweep

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kpbench/kpbench/churn"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// This file runs a churn point (spec.churn, docs/churn.md): the API writes
// of package churn's plan during the load's measured window, the watcher
// of the client node's rules beside them, the grace after the window for
// the last changes to show, Point.Churn, and the writes that put the step
// back as the scaler left it before the next point. A churn point is
// judged by its own rules (judgeChurnWindow).

// ChurnParts are what a churn point needs besides the engine's other
// parts. ServiceChurn is the one a real cluster gets.
type ChurnParts interface {
	// Writer returns the writer of one point at the step of n Services,
	// with the step's Services read.
	Writer(ctx context.Context, n int) (ChurnWriter, error)
	// Watcher returns a watcher of the client node's rules and of
	// kube-proxy's syncs under mode.
	Watcher(mode scenarios.Mode) (ChurnWatcher, error)
	// Summarize returns the programming latency of the changes that were
	// programmed, and how many written changes were not.
	Summarize(changes []runs.ChurnChange) (runs.DurationSummary, int)
	// Traffic returns what the point's requests met, from the load's
	// per-request records (asked for by RequestsLog); nil when the load
	// kept none.
	Traffic(res *LoadResult, changes []runs.ChurnChange, syncs []runs.SyncSpan) (*runs.ChurnTraffic, error)
	// RequestsLog asks the load for its per-request records.
	RequestsLog(req *LoadRequest)
	// Programmed returns once kube-proxy has programmed every write
	// acknowledged up to lastWrite at the step of n Services.
	Programmed(ctx context.Context, n int, lastWrite time.Time) error
	// SyncCost measures kube-proxy's cold and incremental syncs at the
	// step of n Services under mode (churn.SyncCostProbe), restarting it
	// with restart and counting its rules with rules, puts the step back
	// as the scaler left it, and records the result in run.
	SyncCost(ctx context.Context, run *runs.Run, mode scenarios.Mode, n int, restart func(context.Context) error, rules RuleCounter) error
}

// ChurnWriter makes a point's API writes (churn.Writer).
type ChurnWriter interface {
	// IndexOf returns the index of the step's Service with a ClusterIP.
	IndexOf(clusterIP string) (int, bool)
	// Prepare reads what the plan's writes need before the window.
	Prepare(ctx context.Context, plan []churn.Planned) error
	// Apply makes one change and returns it as recorded.
	Apply(ctx context.Context, p churn.Planned) runs.ChurnChange
	// Restore puts the step back as the scaler left it and returns the
	// last write's acknowledgement (zero when it wrote nothing).
	Restore(ctx context.Context) (time.Time, error)
}

// ChurnWatcher reads the client node's rules and sets each change's
// ProgrammedAt when they first show it (churn.Watcher), and follows
// kube-proxy's syncs meanwhile (churn.SyncTracker).
type ChurnWatcher interface {
	// Add hands over a change that was written; the watcher may set its
	// ProgrammedAt until Drain returns.
	Add(c *runs.ChurnChange)
	// Run reads until ctx ends.
	Run(ctx context.Context) error
	// Drain reads, after Run returned, until every change added is
	// programmed or grace has passed.
	Drain(ctx context.Context, grace time.Duration)
	// Syncs returns, after Drain, what kube-proxy said of its syncs over
	// [from, to].
	Syncs(from, to time.Time) KubeProxySyncs
}

// KubeProxySyncs is kube-proxy's own account of a churn window.
type KubeProxySyncs struct {
	// Spans are the syncs that overlapped the window.
	Spans []runs.SyncSpan
	// ProgrammingP50Seconds and ProgrammingP99Seconds are its
	// network_programming_duration_seconds over the window; zero where it
	// observed none.
	ProgrammingP50Seconds, ProgrammingP99Seconds float64
	// Problem says why the spans may be incomplete; "" when they are not.
	Problem string
	// Reads is how the node's rules were read (nil when they were not).
	Reads *runs.ChurnReads
}

// churnClock keeps the time of the churn's writes (tests replace it).
var churnClock churn.Clock = churn.WallClock{}

// churnPoint is one point's churn, running beside its load.
type churnPoint struct {
	e       *Engine
	ps      *pass
	id      string
	n       int
	spec    scenarios.Churn
	writer  ChurnWriter
	watcher ChurnWatcher
	// start and end bound the churn's window: it opens when the load's
	// warm-up ends.
	start, end time.Time
	plan       []churn.Planned
	window     time.Duration
	cancel     context.CancelFunc
	replayed   chan struct{}
	watched    chan error

	mu      sync.Mutex
	changes []*runs.ChurnChange
}

// churnSeed is the seed of a point's plan: the run's, mixed with the
// point's ID, so that a resumed run plans the same writes for it.
func churnSeed(runSeed int64, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return uint64(runSeed) ^ h.Sum64()
}

// targetIndex returns the index of the step's Service the load sends to:
// -1 when it sends to several (targets random) or the URL is not one of
// the step's.
func targetIndex(w ChurnWriter, urls []string) int {
	if len(urls) != 1 {
		return -1
	}
	u, err := url.Parse(urls[0])
	if err != nil {
		return -1
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip == nil {
		return -1
	}
	if i, ok := w.IndexOf(host); ok {
		return i
	}
	return -1
}

// prepareChurn plans a point's churn, or returns nil when its scenario
// has none: the window's writes (seeded by the run's seed and the point),
// what they need read before the window, and the watcher of the node's
// rules. Nothing is written yet; begin starts it.
func (e *Engine) prepareChurn(ctx context.Context, ps *pass, mode scenarios.Mode, n int, id string, req *LoadRequest) (*churnPoint, error) {
	sc := &ps.run.Scenario
	if sc.Spec.Churn == nil {
		return nil, nil
	}
	if e.Churn == nil {
		return nil, fmt.Errorf("the scenario asks for churn (spec.churn) and the engine has no churn writer")
	}
	w, err := e.Churn.Writer(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("churn: %w", err)
	}
	var seed int64
	if ps.run.Design != nil {
		seed = ps.run.Design.Seed
	}
	target := targetIndex(w, req.URLs)
	plan := churn.Plan(*sc.Spec.Churn, n, target, req.Duration, churnSeed(seed, id))
	if err := w.Prepare(ctx, plan); err != nil {
		return nil, fmt.Errorf("churn: %w", err)
	}
	watcher, err := e.Churn.Watcher(mode)
	if err != nil {
		return nil, fmt.Errorf("churn: %w", err)
	}
	e.Churn.RequestsLog(req)
	ps.log.Info("churn", "id", id, "writes", len(plan), "rate", sc.Spec.Churn.Rate, "target", target)
	return &churnPoint{e: e, ps: ps, id: id, n: n, spec: *sc.Spec.Churn, writer: w, watcher: watcher,
		plan: plan, window: req.Duration, replayed: make(chan struct{}), watched: make(chan error, 1)}, nil
}

// begin starts the watcher, and the writes at the end of the load's
// warm-up (warmup from now), for the window. Call it right before the
// load starts; finish (or abort) it after. A nil churnPoint does nothing.
func (cp *churnPoint) begin(ctx context.Context, warmup time.Duration) {
	if cp == nil {
		return
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cp.cancel = cancel
	cp.start = churnClock.Now().Add(warmup)
	cp.end = cp.start.Add(cp.window)
	go func() { cp.watched <- cp.watcher.Run(cctx) }()
	go func() {
		defer close(cp.replayed)
		_ = churn.Replay(cctx, churnClock, cp.start, cp.plan, cp.apply)
	}()
}

// apply makes one planned change inside the window; one whose time came
// after the window's end (the writes before it were slow) is left out.
func (cp *churnPoint) apply(ctx context.Context, p churn.Planned) {
	if !churnClock.Now().Before(cp.end) {
		return
	}
	c := cp.writer.Apply(ctx, p)
	c.PlannedAt = cp.start.Add(p.At)
	cc := &c
	cp.mu.Lock()
	cp.changes = append(cp.changes, cc)
	cp.mu.Unlock()
	if c.Error == "" {
		cp.watcher.Add(cc)
	}
}

// stop ends the writes and the watcher and waits for both.
func (cp *churnPoint) stop() error {
	cp.cancel()
	<-cp.replayed
	err := <-cp.watched
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// finish waits for the window's writes, reads the node's rules for the
// grace, fills p.Churn, and puts the step back as the scaler left it,
// waiting until kube-proxy has programmed that. An error means the step
// could not be put back: the run cannot go on with it.
func (cp *churnPoint) finish(ctx context.Context, p *runs.Point, res *LoadResult) error {
	<-cp.replayed
	if err := cp.stop(); err != nil {
		cp.e.problem(cp.ps, fmt.Sprintf("%s: reading the node's rules during churn: %v", cp.id, err))
	}
	cp.watcher.Drain(ctx, cp.spec.GraceDuration())
	ch := &runs.Churn{AskedPerSecond: cp.spec.Rate, Changes: cp.recorded(), Planned: len(cp.plan)}
	for _, c := range ch.Changes {
		if c.Error == "" && !c.WrittenAt.Before(cp.start) && !c.WrittenAt.After(cp.end) {
			ch.Written++
		}
	}
	if s := cp.end.Sub(cp.start).Seconds(); s > 0 {
		ch.AchievedPerSecond = float64(ch.Written) / s
	}
	ch.Programming, ch.Unprogrammed = cp.e.Churn.Summarize(ch.Changes)
	ks := cp.watcher.Syncs(cp.start, cp.end)
	if ks.Problem != "" {
		cp.e.problem(cp.ps, fmt.Sprintf("%s: kube-proxy's syncs during churn: %s", cp.id, ks.Problem))
	}
	ch.Syncs, ch.Reads = ks.Spans, ks.Reads
	ch.KubeProxyProgrammingP50Seconds, ch.KubeProxyProgrammingP99Seconds = ks.ProgrammingP50Seconds, ks.ProgrammingP99Seconds
	var err error
	if ch.Traffic, err = cp.e.Churn.Traffic(res, ch.Changes, ch.Syncs); err != nil {
		cp.e.problem(cp.ps, fmt.Sprintf("%s: the traffic during churn: %v", cp.id, err))
	}
	p.Churn = ch
	if failed := len(ch.Changes) - countWritten(ch.Changes); failed > 0 {
		cp.e.problem(cp.ps, fmt.Sprintf("%s: %d of %d churn writes failed, the first: %s", cp.id, failed, len(ch.Changes), firstError(ch.Changes)))
	}
	return cp.putBack(ctx)
}

// abort stops a churn whose load failed and puts the step back, as well
// as it can (the run is ending with the load's error).
func (cp *churnPoint) abort(ctx context.Context) {
	_ = cp.stop()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, err := cp.writer.Restore(rctx); err != nil {
		cp.e.problem(cp.ps, fmt.Sprintf("%s: putting the step back after churn: %v (the next scale repairs it)", cp.id, err))
	}
}

// putBack restores the step and waits until kube-proxy has programmed
// it; when either fails, the scaler repairs the step and waits itself.
func (cp *churnPoint) putBack(ctx context.Context) error {
	last, err := cp.writer.Restore(ctx)
	if err == nil && !last.IsZero() {
		err = cp.e.Churn.Programmed(ctx, cp.n, last)
	}
	if err == nil {
		return nil
	}
	cp.e.problem(cp.ps, fmt.Sprintf("%s: putting the step back after churn: %v; scaling it again", cp.id, err))
	if _, err := cp.e.Scaler.Scale(ctx, cp.n); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		return fmt.Errorf("putting the step of %d services back after churn: %w", cp.n, err)
	}
	return nil
}

// recorded returns the changes made, in order, as values (the watcher is
// done with them).
func (cp *churnPoint) recorded() []runs.ChurnChange {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	out := make([]runs.ChurnChange, len(cp.changes))
	for i, c := range cp.changes {
		out[i] = *c
	}
	return out
}

func countWritten(cs []runs.ChurnChange) int {
	n := 0
	for _, c := range cs {
		if c.Error == "" {
			n++
		}
	}
	return n
}

func firstError(cs []runs.ChurnChange) string {
	for _, c := range cs {
		if c.Error != "" {
			return c.Error
		}
	}
	return ""
}

// judgeChurnWindow judges a churn point by its own rules. Errors are what
// it measures, so the load's error-rate reason is dropped; syncs and
// reorders inside its window are what churn causes, so they are not
// reasons. The runner's faults still invalidate it: the load's (rate,
// schedule, in-flight bound, requests not sent), the observers' (no CPU
// sample), the client node's CPU saturated or its samples not covering
// the window, and the churn's own writes short of their rate
// (runs.ReasonChurnBehind).
func judgeChurnWindow(p *runs.Point) {
	var keep []string
	for _, r := range p.InvalidReasons {
		if !strings.HasPrefix(r, runs.ReasonErrors) {
			keep = append(keep, r)
		}
	}
	keep = append(keep, saturation(p.CPU.Node)...)
	if r := coverageReason(p); r != "" {
		keep = append(keep, r)
	}
	if c := p.Churn; c != nil && float64(c.Written) < runs.MinChurnAchieved*float64(c.Planned) {
		keep = append(keep, fmt.Sprintf("%s: %d of %d planned writes succeeded inside the window, %.2f of the %g per second asked (bound %.0f%%)",
			runs.ReasonChurnBehind, c.Written, c.Planned, c.AchievedPerSecond, c.AskedPerSecond, 100*runs.MinChurnAchieved))
	}
	p.InvalidReasons = keep
	p.Valid = len(keep) == 0
}

// syncCosts measures kube-proxy's cold and incremental syncs at a step
// just scaled, once per (mode, step) of a pass, when the scenario asks for
// them (spec.churn.syncCosts), and saves run.json. The restart gives
// kube-proxy a new PID, which the engine's health check then expects. A
// failure is a problem of the run, not its end.
func (e *Engine) syncCosts(ctx context.Context, ps *pass, st *stepState) {
	c := ps.run.Scenario.Spec.Churn
	if c == nil || !c.SyncCosts || e.Churn == nil || st.mode == scenarios.ModeExternal {
		return
	}
	key := fmt.Sprintf("%s/%d", st.mode, st.n)
	if ps.syncCosts[key] {
		return
	}
	if ps.syncCosts == nil {
		ps.syncCosts = map[string]bool{}
	}
	ps.syncCosts[key] = true
	if !e.Provider.Features(ctx).SwitchModes {
		e.problem(ps, fmt.Sprintf("sync costs at %d services in %s mode: %s cannot restart kube-proxy", st.n, st.mode, e.Provider.Name()))
		return
	}
	restart := func(ctx context.Context) error {
		if err := e.Provider.SetMode(ctx, st.mode); err != nil {
			return err
		}
		return e.Provider.VerifyMode(ctx, st.mode)
	}
	ps.log.Info("measuring kube-proxy's cold and incremental syncs", "mode", st.mode, "services", st.n)
	err := e.Churn.SyncCost(ctx, ps.run, st.mode, st.n, restart, e.Rules)
	if pid, perr := e.Provider.ClientNode().KubeProxyPID(ctx); perr == nil && pid != 0 {
		ps.kpPID = pid
	}
	if err != nil {
		e.problem(ps, fmt.Sprintf("sync costs at %d services in %s mode: %v", st.n, st.mode, err))
	}
	if err := ps.rec.Save(); err != nil {
		ps.log.Error("writing run.json", "err", err)
	}
}
