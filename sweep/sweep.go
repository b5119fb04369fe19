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
	Log   *slog.Logger
	// Progress, when set, is told about every point as it starts.
	Progress func(done, total int, id string)
	// Now is the clock (tests replace it).
	Now func() time.Time
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
	if err := rec.Save(); err != nil {
		return err
	}
	ps := &pass{rec: rec, dir: dir, run: run, log: log, done: done,
		total: len(modes) * sc.PointsPerMode(), count: len(done)}
	if sc.Spec.Order == scenarios.OrderSteps {
		return e.byStep(ctx, ps, modes)
	}
	return e.byMode(ctx, ps, modes)
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
}

// byMode measures one mode at every step before the next mode; each mode
// starts from the first step, scaled down to under the previous mode.
func (e *Engine) byMode(ctx context.Context, ps *pass, modes []scenarios.Mode) error {
	sc := &ps.run.Scenario
	for _, mode := range modes {
		if allDone(sc, mode, ps.done) {
			ps.log.Info("mode already measured", "mode", mode)
			continue
		}
		if err := e.switchTo(ctx, ps, mode, true); err != nil {
			if errors.Is(err, ErrInterrupted) {
				return err
			}
			continue
		}
		for _, n := range sc.Spec.Services {
			if stepDone(sc, mode, n, ps.done) {
				continue
			}
			if err := e.step(ctx, ps, mode, n, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// byStep scales to each step once and measures every mode there before
// the next step. At a step the repetitions are interleaved across the
// modes: repetition r of every mode before repetition r+1 of any, so that
// a mode's repetitions are spread over the step's time instead of sharing
// one block of it (and one kube-proxy start, one conntrack history). The
// modes take turns going first, by step and by repetition (step i,
// repetition r starts with mode i+r-1 mod the number of modes): with two
// modes that is A B, B A, A B, ..., which balances the order and switches
// once per repetition. Only the first mode to enter the run scales down to
// the first step before its switch; later switches happen at the step's
// Service count.
func (e *Engine) byStep(ctx context.Context, ps *pass, modes []scenarios.Mode) error {
	sc := &ps.run.Scenario
	var (
		current scenarios.Mode
		entered bool // a mode has been entered in this run
		failed  = map[scenarios.Mode]bool{}
	)
	for i, n := range sc.Spec.Services {
		for rep := 1; rep <= sc.Spec.Repetitions; rep++ {
			for j := range modes {
				mode := modes[(i+rep-1+j)%len(modes)]
				if failed[mode] || repDone(sc, mode, n, rep, ps.done) {
					continue
				}
				if mode != current {
					if err := e.switchTo(ctx, ps, mode, !entered); err != nil {
						if errors.Is(err, ErrInterrupted) {
							return err
						}
						failed[mode] = true
						current = "" // whatever runs now, the next mode switches
						continue
					}
					current, entered = mode, true
				}
				if err := e.step(ctx, ps, mode, n, rep); err != nil {
					return err
				}
			}
		}
	}
	return nil
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

// step brings the cluster to n Services under mode and measures the
// step's missing points: of every repetition, or of repetition onlyRep
// when it is not 0. The time to programmed goes on the step's first
// point when this Scale wrote to the API (under the steps order, only the
// mode that saw the step's scaling has one).
func (e *Engine) step(ctx context.Context, ps *pass, mode scenarios.Mode, n, onlyRep int) error {
	sc := &ps.run.Scenario
	log := ps.log
	log.Info("scaling", "mode", mode, "services", n)
	sres, err := e.Scaler.Scale(ctx, n)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, err)
		}
		return fmt.Errorf("scaling to %d services in %s mode: %w", n, mode, err)
	}
	log.Info("programmed", "mode", mode, "services", n, "timeToProgrammed", sres.TimeToProgrammed.Round(time.Millisecond), "sync", sres.SyncDuration.Round(time.Millisecond))
	var rules runs.Rules
	if mode != scenarios.ModeExternal { // a replacement's rules are its own business
		if rules, err = e.Rules.Count(ctx, mode); err != nil {
			e.problem(ps, fmt.Sprintf("counting %s rules at %d services: %v", mode, n, err))
		}
	}
	urls, err := e.Scaler.TargetURLs(ctx, sc.Spec.Load.Targets)
	if err != nil {
		return fmt.Errorf("listing target services: %w", err)
	}
	tg, err := newTargeting(mode, sc.Spec.Load.Targets, urls)
	if err != nil {
		return err
	}
	first := true
	for _, rpc := range sc.Spec.Load.RequestsPerConn {
		for rep := 1; rep <= sc.Spec.Repetitions; rep++ {
			id := runs.PointID(mode, n, rpc, rep)
			if ps.done[id] || (onlyRep != 0 && rep != onlyRep) {
				continue
			}
			ps.count++
			if e.Progress != nil {
				e.Progress(ps.count, ps.total, id)
			}
			p, err := e.measure(ctx, ps, mode, n, rpc, rep, tg, rules)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("%w during %s: %w", ErrInterrupted, id, err)
				}
				return fmt.Errorf("measuring %s: %w", id, err)
			}
			if first {
				if sres.Created+sres.Deleted > 0 {
					p.TimeToProgrammedSeconds = sres.TimeToProgrammed.Seconds()
				}
				if p.Sync.LastDurationSeconds == 0 {
					p.Sync.LastDurationSeconds = sres.SyncDuration.Seconds()
				}
				first = false
			}
			if reason := e.health(ctx, mode, ps.kpPID); reason != "" {
				p.Valid = false
				p.InvalidReasons = append(p.InvalidReasons, reason)
				e.problem(ps, fmt.Sprintf("after %s: %s", id, reason))
			}
			p.KpbenchVersion = ps.run.KpbenchVersion
			p.Environment = runs.Fingerprint(ps.run.Provider.Name, ps.run.Environment)
			if err := runs.AppendPoint(ps.dir, p); err != nil {
				return err
			}
			ps.done[id] = true
			log.Info("point", "id", id, "achieved", fmt.Sprintf("%.1f/s", p.Rate.Achieved),
				"p50", fmt.Sprintf("%.0fµs", p.Latency.P50Us), "connectP50", fmt.Sprintf("%.0fµs", p.Connect.P50Us),
				"nodeCPU", fmt.Sprintf("%.3f", p.CPU.Node.Total), "depth", depthLog(p.Depth), "valid", p.Valid)
			if !p.Valid && strings.Contains(strings.Join(p.InvalidReasons, ";"), runs.ReasonKubeProxyDied) {
				// Later points of this mode would measure nothing:
				// re-enter the mode before going on.
				if err := e.enterMode(ctx, ps.run, mode, false); err != nil {
					return fmt.Errorf("kube-proxy died in %s mode and could not be restarted: %w", mode, err)
				}
				ps.kpPID, _ = e.Provider.ClientNode().KubeProxyPID(ctx)
			}
		}
	}
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
	id := runs.PointID(mode, n, rpc, rep)
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
		Warmup: l.WarmupDuration()}
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
	win, err := e.Observer.Begin(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("starting observation: %w", err)
	}
	start := e.Now()
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
	p.RequestsPerConn, p.Targets, p.Repetition = rpc, l.Targets, rep
	p.Rate = runs.Rate{Target: l.Rate, Achieved: res.AchievedRate}
	p.StartedAt, p.DurationSeconds, p.Requests = start.UTC(), req.Duration.Seconds(), res.Requests
	p.Latency, p.ServiceTime, p.Connect, p.Lag, p.Errors = res.Latency, res.ServiceTime, res.Connect, res.Lag, res.Errors
	p.CPU.Processes.Client = res.ClientCPUCores
	p.Rules = rules
	p.Depth = depth
	p.Valid = res.Valid && p.Valid
	p.InvalidReasons = append(append([]string(nil), res.InvalidReasons...), p.InvalidReasons...)
	p.Conntrack.FlushedBefore = flushed
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

func stepDone(sc *scenarios.Scenario, mode scenarios.Mode, n int, done map[string]bool) bool {
	for _, rpc := range sc.Spec.Load.RequestsPerConn {
		for rep := 1; rep <= sc.Spec.Repetitions; rep++ {
			if !done[runs.PointID(mode, n, rpc, rep)] {
				return false
			}
		}
	}
	return true
}

func repDone(sc *scenarios.Scenario, mode scenarios.Mode, n, rep int, done map[string]bool) bool {
	for _, rpc := range sc.Spec.Load.RequestsPerConn {
		if !done[runs.PointID(mode, n, rpc, rep)] {
			return false
		}
	}
	return true
}

func allDone(sc *scenarios.Scenario, mode scenarios.Mode, done map[string]bool) bool {
	for _, n := range sc.Spec.Services {
		if !stepDone(sc, mode, n, done) {
			return false
		}
	}
	return true
}

func hasSkip(run *runs.Run, m scenarios.Mode) bool {
	for _, s := range run.SkippedModes {
		if s.Mode == m {
			return true
		}
	}
	return false
}
