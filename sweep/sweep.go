package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// Engine runs a scenario against one cluster.
type Engine struct {
	Provider clusters.Provider
	Scaler   Scaler
	Load     LoadRunner
	// Observer measures the client node over each point (package
	// collector); it fills the point's groups it owns.
	Observer collector.Observer
	Rules    RuleCounter
	// Depth reads the target's depth on the client node before and
	// after every window, and places targets by depth; nil records no
	// depth (and placements by depth send to the first Service).
	Depth DepthReader
	// Churn makes and watches the API writes of a scenario with
	// spec.churn (churn.go); nil for scenarios without it.
	Churn ChurnParts
	Log   *slog.Logger
	// Progress, when set, is told about every point as it starts.
	Progress func(done, total int, id string)
	// Now is the clock (tests replace it).
	Now func() time.Time
	// CleanupPoll and CleanupTimeout pace and bound the wait after a step
	// down in iptables mode (awaitCleanup); 2 s and 2 min when 0.
	CleanupPoll, CleanupTimeout time.Duration
}

// ErrInterrupted is returned when the context was cancelled mid-run; every
// finished point is on disk.
var ErrInterrupted = errors.New("run interrupted")

// Run measures every point of the record's scenario not yet in its
// directory's points.jsonl, keeping run.json up to date through rec. It
// returns ErrInterrupted (wrapped) when ctx is cancelled. The provider
// must be up.
func (e *Engine) Run(ctx context.Context, rec *runs.Record) error {
	dir, run := rec.Dir, rec.Run
	if e.Now == nil {
		e.Now = time.Now
	}
	log := e.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sc := &run.Scenario
	done, err := measured(dir)
	if err != nil {
		return err
	}
	caps, err := e.Provider.Capabilities(ctx)
	if err != nil {
		return fmt.Errorf("asking %s what it can run: %w", e.Provider.Name(), err)
	}
	var modes []scenarios.Mode
	for _, m := range sc.Spec.Modes {
		if ok, reason := caps.Runnable(m); !ok {
			if !hasSkip(run, m) {
				run.SkippedModes = append(run.SkippedModes, runs.SkippedMode{Mode: m, Reason: reason})
			}
			log.Warn("skipping mode", "mode", m, "reason", reason)
			continue
		}
		modes = append(modes, m)
	}
	if run.Design == nil {
		// A new run, or one recorded before runs had a design: fix the
		// seed now, so that every resume computes the same plan.
		run.Design = runs.NewDesign(&sc.Spec, drawSeed())
	}
	if err := rec.Save(); err != nil {
		return err
	}
	// The plan covers every mode the scenario names, runnable or not, so
	// that a point's sequence does not depend on the machine.
	pl := plan(run.Design.Seed, sc, sc.Spec.Modes)
	ps := &pass{rec: rec, dir: dir, run: run, log: log, done: done}
	runnable := map[scenarios.Mode]bool{}
	for _, m := range modes {
		runnable[m] = true
	}
	for _, pp := range pl {
		if runnable[pp.Mode] {
			ps.total++
			if done[pp.ID] {
				ps.count++
			}
		}
	}
	log.Info("design", "order", run.Design.Order, "seed", run.Design.Seed, "unit", run.Design.Unit, "points", ps.total)
	return e.walk(ctx, ps, pl, runnable)
}

// pass is one Run's progress.
type pass struct {
	rec          *runs.Record
	dir          string
	run          *runs.Run
	log          *slog.Logger
	done         map[string]bool
	count, total int
	// kpPID is the running kube-proxy's PID, to notice a restart.
	kpPID int
	// syncCosts holds the (mode, step)s whose sync costs were measured
	// (churn.go).
	syncCosts map[string]bool
}

// stepState is the cluster at one (mode, Service step) since its Scale:
// its rules, its targets per placement, and whether its first point is
// still to come.
type stepState struct {
	mode    scenarios.Mode
	n       int
	sres    ScaleResult
	rules   runs.Rules
	targets map[scenarios.Targets]*targeting
	first   bool
}

// walk measures the plan's points in order, skipping those measured
// already and those of modes that cannot run. It switches kube-proxy's
// mode only when the next point needs another mode, and scales only when
// it needs another step or a new kube-proxy must program the current one
// (after a switch the scaler writes nothing and waits for the rules).
// Entering a mode scales down to the first step first when the new
// kube-proxy should start small: always under order modes, where each
// mode climbs from the first step; under order steps only for the run's
// first mode, later switches happening at the step's Service count.
func (e *Engine) walk(ctx context.Context, ps *pass, pl []plannedPoint, runnable map[scenarios.Mode]bool) error {
	sc := &ps.run.Scenario
	var (
		current scenarios.Mode
		entered bool // a mode has been entered in this run
		failed  = map[scenarios.Mode]bool{}
		st      *stepState
	)
	for _, pp := range pl {
		if !runnable[pp.Mode] || failed[pp.Mode] || ps.done[pp.ID] {
			continue
		}
		if pp.Mode != current {
			shrink := !entered || byModes(&sc.Spec)
			if err := e.switchTo(ctx, ps, pp.Mode, shrink); err != nil {
				if errors.Is(err, ErrInterrupted) {
					return err
				}
				failed[pp.Mode] = true
				current, st = "", nil // whatever runs now, the next mode switches
				continue
			}
			current, entered, st = pp.Mode, true, nil
		}
		if st == nil || st.n != pp.Services {
			prev := 0 // unknown: a new kube-proxy programs the step afresh
			if st != nil && st.mode == pp.Mode {
				prev = st.n
			}
			var err error
			if st, err = e.scaleTo(ctx, ps, pp.Mode, prev, pp.Services); err != nil {
				return err
			}
		}
		died, err := e.point(ctx, ps, st, pp)
		if err != nil {
			return err
		}
		if died {
			// Later points of this mode would measure nothing: re-enter
			// the mode, and let its kube-proxy program the step again.
			if err := e.enterMode(ctx, ps.run, pp.Mode, false); err != nil {
				return fmt.Errorf("kube-proxy died in %s mode and could not be restarted: %w", pp.Mode, err)
			}
			ps.kpPID, _ = e.Provider.ClientNode().KubeProxyPID(ctx)
			st = nil
		}
	}
	return nil
}

// scaleTo brings the cluster to n Services under mode, from prev (0 when
// unknown), and counts its rules. After a step down in iptables mode it
// waits for kube-proxy to delete the removed Services' chains
// (awaitCleanup).
func (e *Engine) scaleTo(ctx context.Context, ps *pass, mode scenarios.Mode, prev, n int) (*stepState, error) {
	log := ps.log
	log.Info("scaling", "mode", mode, "services", n)
	cc, down := e.Rules.(EndpointChainCounter)
	down = down && mode == scenarios.ModeIPTables && prev > n
	before := 0
	if down {
		var err error
		if before, err = cc.EndpointChains(ctx); err != nil {
			e.problem(ps, fmt.Sprintf("counting iptables endpoint chains at %d services before stepping down: %v", prev, err))
			down = false
		}
	}
	sres, err := e.Scaler.Scale(ctx, n)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		return nil, fmt.Errorf("scaling to %d services in %s mode: %w", n, mode, err)
	}
	log.Info("programmed", "mode", mode, "services", n, "timeToProgrammed", sres.TimeToProgrammed.Round(time.Millisecond), "sync", sres.SyncDuration.Round(time.Millisecond))
	if down {
		want := before - (prev-n)*ps.run.Scenario.Spec.EndpointsPerService
		if err := e.awaitCleanup(ctx, ps, cc, n, want); err != nil {
			return nil, err
		}
	}
	st := &stepState{mode: mode, n: n, sres: sres, targets: map[scenarios.Targets]*targeting{}, first: true}
	if mode != scenarios.ModeExternal { // a replacement's rules are its own business
		if st.rules, err = e.Rules.Count(ctx, mode); err != nil {
			e.problem(ps, fmt.Sprintf("counting %s rules at %d services: %v", mode, n, err))
		}
	}
	e.syncCosts(ctx, ps, st) // churn.go; with spec.churn.syncCosts only
	return st, nil
}

// awaitCleanup waits until the client node holds at most want iptables
// endpoint chains: kube-proxy has deleted those of the Services a step
// down removed. A partial sync stops using them at once but leaves them in
// place, and with more than 1,000 endpoints kube-proxy deletes stale chains
// at most once per sync period (30 s by default), in a sync that reads and
// rewrites the nat table: 3 s of the node's CPU at 1,000 Services after
// 2,000 on the lab (iptables-nft 1.8.9). Measured without this wait, that
// sync fell inside the next point's window and saturated the node CPU.
// Giving up after CleanupTimeout is a problem of the run, not its end.
func (e *Engine) awaitCleanup(ctx context.Context, ps *pass, cc EndpointChainCounter, n, want int) error {
	poll, limit := e.CleanupPoll, e.CleanupTimeout
	if poll <= 0 {
		poll = 2 * time.Second
	}
	if limit <= 0 {
		limit = 2 * time.Minute
	}
	start := e.Now()
	logged := false
	for {
		have, err := cc.EndpointChains(ctx)
		if err != nil {
			e.problem(ps, fmt.Sprintf("counting iptables endpoint chains at %d services after stepping down: %v", n, err))
			return nil
		}
		if have <= want {
			if logged {
				ps.log.Info("kube-proxy deleted the removed Services' chains", "services", n, "endpointChains", have,
					"elapsed", e.Now().Sub(start).Round(time.Second))
			}
			return nil
		}
		if waited := e.Now().Sub(start); waited >= limit {
			e.problem(ps, fmt.Sprintf("at %d services kube-proxy still held %d iptables endpoint chains (want at most %d) %s after the step down: "+
				"its deletion of the removed Services' chains may fall inside a point", n, have, want, waited.Round(time.Second)))
			return nil
		}
		if !logged {
			ps.log.Info("waiting for kube-proxy to delete the removed Services' chains (at most once per sync period)", "services", n,
				"endpointChains", have, "want", want)
			logged = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrInterrupted, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// targetsFor returns the step's targeting for a placement, listing the
// candidate Services the first time the step needs it.
func (e *Engine) targetsFor(ctx context.Context, st *stepState, placement scenarios.Targets) (*targeting, error) {
	if tg := st.targets[placement]; tg != nil {
		return tg, nil
	}
	urls, err := e.Scaler.TargetURLs(ctx, placement)
	if err != nil {
		return nil, fmt.Errorf("listing target services: %w", err)
	}
	tg, err := newTargeting(st.mode, placement, urls)
	if err != nil {
		return nil, err
	}
	st.targets[placement] = tg
	return tg, nil
}

// point measures one planned point and appends it to points.jsonl. The
// time to programmed goes on the first point after a Scale that wrote to
// the API. It reports whether kube-proxy died during the point.
func (e *Engine) point(ctx context.Context, ps *pass, st *stepState, pp plannedPoint) (bool, error) {
	id, mode := pp.ID, pp.Mode
	tg, err := e.targetsFor(ctx, st, pp.Placement)
	if err != nil {
		return false, err
	}
	ps.count++
	if e.Progress != nil {
		e.Progress(ps.count, ps.total, id)
	}
	p, err := e.measure(ctx, ps, mode, pp.Services, pp.RPC, pp.Repetition, tg, st.rules)
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("%w during %s: %w", ErrInterrupted, id, err)
		}
		return false, fmt.Errorf("measuring %s: %w", id, err)
	}
	p.Sequence = pp.Sequence
	if st.first {
		if st.sres.Created+st.sres.Deleted > 0 {
			p.TimeToProgrammedSeconds = st.sres.TimeToProgrammed.Seconds()
		}
		if p.Sync.LastDurationSeconds == 0 {
			p.Sync.LastDurationSeconds = st.sres.SyncDuration.Seconds()
		}
		st.first = false
	}
	if reason := e.health(ctx, mode, ps.kpPID); reason != "" {
		p.Valid = false
		p.InvalidReasons = append(p.InvalidReasons, reason)
		e.problem(ps, fmt.Sprintf("after %s: %s", id, reason))
	}
	p.KpbenchVersion = ps.run.KpbenchVersion
	p.Environment = runs.Fingerprint(ps.run.Provider.Name, ps.run.Environment)
	if err := runs.AppendPoint(ps.dir, p); err != nil {
		return false, err
	}
	ps.done[id] = true
	ps.log.Info("point", "id", id, "seq", pp.Sequence, "achieved", fmt.Sprintf("%.1f/s", p.Rate.Achieved),
		"p50", fmt.Sprintf("%.0fµs", p.Latency.P50Us), "connectP50", fmt.Sprintf("%.0fµs", p.Connect.P50Us),
		"nodeCPU", fmt.Sprintf("%.3f", p.CPU.Node.Total), "depth", depthLog(p.Depth), "valid", p.Valid)
	return !p.Valid && strings.Contains(strings.Join(p.InvalidReasons, ";"), runs.ReasonKubeProxyDied), nil
}

// switchTo enters mode. A mode that cannot be set is recorded as skipped,
// with a problem, and the error returned; ctx ending returns
// ErrInterrupted.
func (e *Engine) switchTo(ctx context.Context, ps *pass, mode scenarios.Mode, shrink bool) error {
	if err := e.enterMode(ctx, ps.run, mode, shrink); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		// The mode could not be set: record why and go on with the next.
		ps.run.SkippedModes = append(ps.run.SkippedModes, runs.SkippedMode{Mode: mode, Reason: err.Error()})
		e.problem(ps, fmt.Sprintf("mode %s: %v", mode, err))
		return err
	}
	ps.kpPID, _ = e.Provider.ClientNode().KubeProxyPID(ctx)
	return nil
}

// enterMode switches to mode and verifies it. With shrink, it first scales
// down to the first Service step (under the old mode), so that the new
// kube-proxy starts small and every step is reached from below.
func (e *Engine) enterMode(ctx context.Context, run *runs.Run, mode scenarios.Mode, shrink bool) error {
	if shrink {
		if _, err := e.Scaler.Scale(ctx, run.Scenario.Spec.Services[0]); err != nil {
			return fmt.Errorf("scaling down to %d services before the switch: %w", run.Scenario.Spec.Services[0], err)
		}
	}
	if err := e.Provider.SetMode(ctx, mode); err != nil {
		return fmt.Errorf("setting mode: %w", err)
	}
	if err := e.Provider.VerifyMode(ctx, mode); err != nil {
		return fmt.Errorf("verifying mode: %w", err)
	}
	return nil
}

func (e *Engine) measure(ctx context.Context, ps *pass, mode scenarios.Mode, n, rpc, rep int, tg *targeting, rules runs.Rules) (*runs.Point, error) {
	dir, run := ps.dir, ps.run
	sc := &run.Scenario
	l := sc.Spec.Load
	id := runs.SpecPointID(&sc.Spec, mode, n, rpc, tg.placement, rep)
	raw := filepath.Join(dir, runs.RawDir, id)
	if err := os.MkdirAll(raw, 0o755); err != nil {
		return nil, err
	}
	// The warm-up runs inside the measured load process (its own
	// --warmup), so that the measured client is warm too: its
	// connections, its runtime, its page cache. The observer's window
	// then opens before the warm-up, and its figures cover the load's own
	// measured window (collector.InWindow).
	req := LoadRequest{ID: id, Rate: l.Rate, RequestsPerConn: rpc, Timeout: l.Timeout.D(), MaxInflight: l.MaxInflight,
		Warmup: l.WarmupDuration(), Tick: loadTick(l)}
	flushed := false
	if flush := e.Provider.Features(ctx).Client.FlushConntrack; flush != nil {
		if err := flush(ctx); err != nil {
			e.problem(ps, fmt.Sprintf("%s: %v", id, err))
		} else {
			flushed = true
		}
	}
	urls, used, err := e.pick(ctx, tg)
	if err != nil {
		return nil, err
	}
	// The depth right before the load. A placement by depth checks that
	// no sync moved its target since it was picked, and picks again if
	// one did; a sync during the load shows as a depth that changed.
	var before *collector.ServiceChain
	repicks := 0
	if e.tracksDepth(mode) {
		for {
			if before, err = e.Depth.Chain(ctx, mode); err != nil {
				if tg.placement.ByDepth() {
					return nil, fmt.Errorf("reading the depth before the window: %w", err)
				}
				e.problem(ps, fmt.Sprintf("%s: no depth recorded: %v", id, err))
				before = nil
				break
			}
			if !tg.placement.ByDepth() || tg.chain == nil || before.Fingerprint == tg.chain.Fingerprint || repicks == maxRepicks {
				break
			}
			repicks++
			ps.log.Info("kube-proxy synced since the target was picked: picking again", "id", id, "placement", tg.placement)
			tg.chain = before
			if urls, used, err = e.pick(ctx, tg); err != nil {
				return nil, err
			}
		}
	}
	req.URLs = urls
	req.Duration = l.Duration.D()
	req.RawDir = raw
	ch, err := e.prepareChurn(ctx, ps, mode, n, id, &req) // churn.go; nil without spec.churn
	if err != nil {
		return nil, err
	}
	win, err := e.Observer.Begin(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("starting observation: %w", err)
	}
	start := e.Now()
	ch.begin(ctx, req.Warmup)
	res, loadErr := e.Load.Run(ctx, req)
	var load collector.Load
	if loadErr == nil {
		load = collector.Load{Span: collector.Span{Start: res.WindowStart, End: res.WindowEnd}, PID: res.PID, Connections: res.Connect.Count,
			FirstPacket: res.FirstPacket}
	}
	// The observer fills its groups (CPU, conntrack, syncs, ...) and
	// says when they do not cover the load's window; the load's own
	// figures follow.
	p := &runs.Point{Valid: true}
	obsErr := win.End(context.WithoutCancel(ctx), load, p)
	if ch != nil && (loadErr != nil || obsErr != nil) {
		ch.abort(ctx)
	}
	if loadErr != nil {
		return nil, fmt.Errorf("load: %w", loadErr)
	}
	if obsErr != nil {
		return nil, fmt.Errorf("observation: %w", obsErr)
	}
	var depth *runs.Depth
	if before != nil {
		after, err := e.Depth.Chain(context.WithoutCancel(ctx), mode)
		if err == nil {
			depth, err = depthOf(before, after, used, res.TargetConnects, repicks)
			tg.chain = after
		}
		if err != nil {
			e.problem(ps, fmt.Sprintf("%s: no depth recorded: %v", id, err))
		} else if depth.Changed {
			ps.log.Warn("kube-proxy reordered the chain during the window: the point keeps both depths", "id", id,
				"before", depth.Before.Mean, "after", depth.After.Mean)
		}
	}
	p.ID, p.Mode, p.Services, p.EndpointsPerService = id, mode, n, sc.Spec.EndpointsPerService
	p.RequestsPerConn, p.Targets, p.Repetition = rpc, tg.placement, rep
	p.Rate = runs.Rate{Target: l.Rate, Achieved: res.AchievedRate, TickSeconds: res.TickSeconds}
	p.StartedAt, p.DurationSeconds, p.Requests = start.UTC(), req.Duration.Seconds(), res.Requests
	p.Latency, p.ServiceTime, p.Connect, p.Lag, p.Errors = res.Latency, res.ServiceTime, res.Connect, res.Lag, res.Errors
	p.CPU.Processes.Client = res.ClientCPUCores
	p.Rules = rules
	p.Depth = depth
	p.Valid = res.Valid && p.Valid
	p.InvalidReasons = append(append([]string(nil), res.InvalidReasons...), p.InvalidReasons...)
	p.Conntrack.FlushedBefore = flushed
	if ch != nil {
		if err := ch.finish(ctx, p, res); err != nil {
			return nil, err
		}
		judgeChurnWindow(p) // churn.go
		return p, nil
	}
	judgeWindow(p) // validity.go
	return p, nil
}

// depthLog formats a point's depth for its log line.
func depthLog(d *runs.Depth) string {
	switch {
	case d == nil:
		return "-"
	case d.Changed:
		return fmt.Sprintf("%.0f→%.0f (reordered)", d.Before.Mean, d.After.Mean)
	case d.Targets > 1:
		return fmt.Sprintf("mean %.0f [%d..%d] of %d", d.Before.Mean, d.Before.Min, d.Before.Max, d.Before.ChainLength)
	case d.Before.ChainLength > 0:
		return fmt.Sprintf("%.0f of %d", d.Before.Mean, d.Before.ChainLength)
	}
	return fmt.Sprintf("%.0f", d.Before.Mean)
}

// health returns why the points just measured cannot be trusted, or "".
func (e *Engine) health(ctx context.Context, mode scenarios.Mode, kpPID int) string {
	if mode == scenarios.ModeExternal {
		return "" // no kube-proxy to watch; VerifyMode checked it stays absent
	}
	node := e.Provider.ClientNode()
	pid, err := node.KubeProxyPID(ctx)
	if err != nil || pid == 0 {
		return fmt.Sprintf("%s (%v)", runs.ReasonKubeProxyDied, err)
	}
	if kpPID != 0 && pid != kpPID {
		return fmt.Sprintf("%s: restarted during the point (pid %d -> %d)", runs.ReasonKubeProxyDied, kpPID, pid)
	}
	if err := kubeproxy.CheckProxyMode(ctx, node.KubeProxyGet, mode); err != nil {
		return fmt.Sprintf("%s: %v", runs.ReasonModeMismatch, err)
	}
	return ""
}

func (e *Engine) problem(ps *pass, msg string) {
	ps.log.Error(msg)
	if err := ps.rec.Problem(msg); err != nil {
		ps.log.Error("writing run.json", "err", err)
	}
}

func measured(dir string) (map[string]bool, error) {
	points, err := runs.ReadPoints(dir)
	if err != nil {
		return nil, err
	}
	done := map[string]bool{}
	for _, p := range points {
		done[p.ID] = true
	}
	return done, nil
}

func hasSkip(run *runs.Run, m scenarios.Mode) bool {
	for _, s := range run.SkippedModes {
		if s.Mode == m {
			return true
		}
	}
	return false
}

// loadTick is spec.load.tick as the load client takes it (validated
// already; an unreadable value falls back to the default).
func loadTick(l scenarios.Load) time.Duration {
	d, auto, err := l.TickDuration()
	if auto || err != nil {
		return loadgen.TickAuto
	}
	return d
}
