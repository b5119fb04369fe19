package sweep

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/kpbench/kpbench/churn"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scaler"
	"github.com/kpbench/kpbench/scenarios"
)

// instantClock is churn's clock in these tests: a sleep returns at once,
// having moved the clock to its end.
type instantClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *instantClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *instantClock) SleepUntil(ctx context.Context, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	return nil
}

func useInstantClock(t *testing.T) *instantClock {
	c := &instantClock{now: time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)}
	old := churnClock
	churnClock = c
	t.Cleanup(func() { churnClock = old })
	return c
}

// fakeChurn records what the engine asks of a churn point's parts.
type fakeChurn struct {
	clock *instantClock
	mu    sync.Mutex
	log   []string
	// failEvery makes every failEvery-th write fail (0: none).
	failEvery int
	// restoreErr, when set, makes Restore fail.
	restoreErr error
	writers    []*fakeWriter
	watched    []*runs.ChurnChange
	running    bool
	grace      time.Duration
	programmed []time.Time
	services   []int
	logged     []string
	syncCosts  []string
}

func (f *fakeChurn) event(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf(format, args...))
}

func (f *fakeChurn) Writer(_ context.Context, n int) (ChurnWriter, error) {
	w := &fakeWriter{f: f}
	f.mu.Lock()
	f.writers = append(f.writers, w)
	f.services = append(f.services, n)
	f.mu.Unlock()
	return w, nil
}

func (f *fakeChurn) Watcher(scenarios.Mode) (ChurnWatcher, error) { return fakeWatcher{f}, nil }

func (f *fakeChurn) RequestsLog(req *LoadRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logged = append(f.logged, req.ID)
}

func (f *fakeChurn) Summarize(changes []runs.ChurnChange) (runs.DurationSummary, int) {
	f.event("summarize")
	programmed := 0
	for _, c := range changes {
		if c.ProgrammedAt != nil {
			programmed++
		}
	}
	return runs.DurationSummary{Count: programmed, P50: 0.05}, len(changes) - programmed
}

func (f *fakeChurn) Traffic(res *LoadResult, changes []runs.ChurnChange, syncs []runs.SyncSpan) (*runs.ChurnTraffic, error) {
	f.event("traffic %d changes %d syncs", len(changes), len(syncs))
	if res == nil {
		return nil, errors.New("no load result")
	}
	return &runs.ChurnTraffic{Requests: res.Requests}, nil
}

func (f *fakeChurn) Programmed(_ context.Context, n int, lastWrite time.Time) error {
	f.event("programmed %d", n)
	f.mu.Lock()
	f.programmed = append(f.programmed, lastWrite)
	f.mu.Unlock()
	return nil
}

func (f *fakeChurn) SyncCost(ctx context.Context, run *runs.Run, mode scenarios.Mode, n int, restart func(context.Context) error, rules RuleCounter) error {
	f.mu.Lock()
	f.syncCosts = append(f.syncCosts, fmt.Sprintf("%s/%d", mode, n))
	f.mu.Unlock()
	if _, err := rules.Count(ctx, mode); err != nil {
		return err
	}
	return restart(ctx)
}

type fakeWriter struct {
	f       *fakeChurn
	applied int
	prep    int
}

func (w *fakeWriter) IndexOf(ip string) (int, bool) { return 0, ip == "198.19.0.1" }

func (w *fakeWriter) Prepare(_ context.Context, plan []churn.Planned) error {
	w.prep = len(plan)
	return nil
}

func (w *fakeWriter) Apply(_ context.Context, p churn.Planned) runs.ChurnChange {
	w.applied++
	c := runs.ChurnChange{Seq: w.applied, Kind: p.Kind, Service: fmt.Sprintf("kpbench/svc-%d", p.Service), Target: p.Target}
	if w.f.failEvery > 0 && w.applied%w.f.failEvery == 0 {
		c.Error = "the API server said no"
	} else {
		c.WrittenAt = w.f.clock.Now()
	}
	w.f.event("apply")
	return c
}

func (w *fakeWriter) Restore(context.Context) (time.Time, error) {
	w.f.event("restore")
	if w.f.restoreErr != nil {
		return time.Time{}, w.f.restoreErr
	}
	return w.f.clock.Now().Add(time.Hour), nil
}

type fakeWatcher struct{ f *fakeChurn }

func (w fakeWatcher) Add(c *runs.ChurnChange) {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	w.f.watched = append(w.f.watched, c)
}

func (w fakeWatcher) Run(ctx context.Context) error {
	w.f.mu.Lock()
	w.f.running = true
	w.f.mu.Unlock()
	<-ctx.Done()
	w.f.mu.Lock()
	w.f.running = false
	w.f.mu.Unlock()
	w.f.event("watcher stopped")
	return ctx.Err()
}

func (w fakeWatcher) Syncs(from, to time.Time) KubeProxySyncs {
	w.f.event("syncs %s", to.Sub(from))
	return KubeProxySyncs{Spans: []runs.SyncSpan{{Start: from.Add(time.Second / 4), End: from.Add(time.Second / 2)}},
		ProgrammingP50Seconds: 0.3, ProgrammingP99Seconds: 0.9}
}

// Drain "sees" every change 50 ms after its write.
func (w fakeWatcher) Drain(_ context.Context, grace time.Duration) {
	w.f.mu.Lock()
	if w.f.running {
		w.f.log = append(w.f.log, "drain while the watcher runs")
	}
	w.f.grace = grace
	for _, c := range w.f.watched {
		at := c.WrittenAt.Add(50 * time.Millisecond)
		c.ProgrammedAt = &at
	}
	w.f.mu.Unlock()
	w.f.event("drain")
}

const churnSpec = "  modes: [iptables]\n  services: [10]\n  backends: 20\n  load:\n    duration: 1s\n    warmup: 0s\n    requestsPerConn: [1]\n" +
	"  churn:\n    rate: 10\n    fraction: 0.01\n    grace: 3s\n"

func churnSetup(t *testing.T, spec string) (*Engine, *runs.Run, string, *fakeChurn, *[]string) {
	t.Helper()
	clock := useInstantClock(t)
	e, run, dir, _, _, events := setup(t, spec)
	fc := &fakeChurn{clock: clock}
	e.Churn = fc
	return e, run, dir, fc, events
}

// TestChurnPoint: a churn point writes its plan during the window, hands
// each write to the watcher, drains it for the grace once the watcher has
// stopped, records the changes with their programming, kube-proxy's syncs
// and the traffic, then puts the step back and waits for it to be
// programmed before the point is written.
func TestChurnPoint(t *testing.T) {
	e, run, dir, fc, _ := churnSetup(t, churnSpec)
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, err := runs.ReadPoints(dir)
	if err != nil || len(pts) != 1 {
		t.Fatalf("%d points (%v), want 1", len(pts), err)
	}
	p := pts[0]
	c := p.Churn
	if c == nil {
		t.Fatal("a churn point without Point.Churn")
	}
	if c.Planned != 10 || c.Written != 10 || c.AchievedPerSecond != 10 || c.AskedPerSecond != 10 || len(c.Changes) != 10 {
		t.Errorf("churn: planned %d, written %d, achieved %g of %g, %d changes; want 10 writes in the 1 s window",
			c.Planned, c.Written, c.AchievedPerSecond, c.AskedPerSecond, len(c.Changes))
	}
	// The load sends to 198.19.0.1, Service 0: with 1% of 10 Services
	// touched, the target alone.
	var start time.Time
	for k, ch := range c.Changes {
		if k == 0 {
			start = ch.PlannedAt.Add(-50 * time.Millisecond)
		}
		if want := start.Add(50*time.Millisecond + time.Duration(k)*100*time.Millisecond); !ch.PlannedAt.Equal(want) || !ch.WrittenAt.Equal(want) {
			t.Errorf("change %d planned %v written %v, want both at %v", k, ch.PlannedAt, ch.WrittenAt, want)
		}
		if !ch.Target || ch.Service != "kpbench/svc-0" || ch.Kind != runs.ChurnEndpointReplace {
			t.Errorf("change %d: %+v, want an endpoint replacement of the target", k, ch)
		}
		if ch.ProgrammedAt == nil || ch.ProgrammedAt.Sub(ch.WrittenAt) != 50*time.Millisecond {
			t.Errorf("change %d: programmed at %v, want the watcher's reading", k, ch.ProgrammedAt)
		}
	}
	if c.Programming.Count != 10 || c.Unprogrammed != 0 || len(c.Syncs) != 1 || c.Traffic == nil || c.Traffic.Requests != p.Requests ||
		c.KubeProxyProgrammingP50Seconds != 0.3 || c.KubeProxyProgrammingP99Seconds != 0.9 {
		t.Errorf("churn summary %+v, %d unprogrammed, syncs %v, traffic %+v, kube-proxy's programming %g/%g", c.Programming, c.Unprogrammed,
			c.Syncs, c.Traffic, c.KubeProxyProgrammingP50Seconds, c.KubeProxyProgrammingP99Seconds)
	}
	if len(fc.syncCosts) != 0 {
		t.Errorf("sync costs measured unasked: %v", fc.syncCosts)
	}
	if len(fc.logged) != 1 || fc.logged[0] != p.ID {
		t.Errorf("requests logs asked for %v, want the point's", fc.logged)
	}
	if !p.Valid {
		t.Errorf("churn point invalid: %v", p.InvalidReasons)
	}
	if fc.grace != 3*time.Second {
		t.Errorf("drained for %s, want the scenario's grace", fc.grace)
	}
	want := []string{"apply", "watcher stopped", "drain", "summarize", "syncs 1s", "traffic 10 changes 1 syncs", "restore", "programmed 10"}
	var got []string
	for _, ev := range fc.log {
		if len(got) == 0 || got[len(got)-1] != ev {
			got = append(got, ev)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("churn events %v, want %v", got, want)
	}
	if len(fc.programmed) != 1 || !fc.programmed[0].Equal(fc.clock.Now().Add(time.Hour)) {
		t.Errorf("programmed waited for %v, want Restore's last write", fc.programmed)
	}
	if len(fc.writers) != 1 || fc.writers[0].prep != 10 || fc.services[0] != 10 {
		t.Errorf("writers %d, prepared %d writes, at %v services", len(fc.writers), fc.writers[0].prep, fc.services)
	}
}

// TestChurnPlanIsTheRunsAndThePoints: a resumed run plans the same writes
// for a point; another point gets another plan.
func TestChurnPlanIsTheRunsAndThePoints(t *testing.T) {
	a, b := churnSeed(7, "iptables-s00010-rpc1-r1"), churnSeed(7, "iptables-s00010-rpc1-r1")
	if a != b {
		t.Error("one point, two seeds")
	}
	if churnSeed(7, "iptables-s00010-rpc1-r2") == a || churnSeed(8, "iptables-s00010-rpc1-r1") == a {
		t.Error("another point or run, the same seed")
	}
}

// errLoad is a load whose requests partly failed (the load client calls
// the point invalid for it) and during which kube-proxy synced.
type errLoad struct{}

func (errLoad) Run(_ context.Context, req LoadRequest) (*LoadResult, error) {
	return &LoadResult{AchievedRate: req.Rate, Requests: 1000, Errors: runs.Errors{Total: 30}, Valid: false,
		InvalidReasons: []string{runs.ReasonErrors + ": 30 of 1000 requests failed"}}, nil
}

// syncObserver says kube-proxy synced during the window.
type syncObserver struct{}
type syncWindow struct{}

func (syncObserver) Begin(context.Context, string) (collector.Window, error) {
	return syncWindow{}, nil
}

func (syncWindow) End(_ context.Context, _ collector.Load, p *runs.Point) error {
	p.CPU.Node.Total = 0.3
	p.Sync.PartialSyncs = 3
	return nil
}

// TestChurnPointErrorsAreTheMeasurement: the same load, with errors and a
// sync in its window, keeps a churn point valid and makes a point without
// churn invalid, as today.
func TestChurnPointErrorsAreTheMeasurement(t *testing.T) {
	e, run, dir, _, _ := churnSetup(t, churnSpec)
	e.Load = errLoad{}
	e.Observer = syncObserver{}
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, _ := runs.ReadPoints(dir)
	if len(pts) != 1 || !pts[0].Valid || pts[0].Churn == nil || pts[0].Errors.Total != 30 {
		t.Errorf("churn point with errors and a sync: %+v", pts)
	}

	plain := strings.Split(churnSpec, "  churn:")[0]
	e2, run2, dir2, _, _, _ := setup(t, plain)
	e2.Load = errLoad{}
	e2.Observer = syncObserver{}
	if err := e2.Run(context.Background(), &runs.Record{Dir: dir2, Run: run2}); err != nil {
		t.Fatal(err)
	}
	pts, _ = runs.ReadPoints(dir2)
	if len(pts) != 1 || pts[0].Valid || pts[0].Churn != nil {
		t.Fatalf("point without churn: %+v", pts)
	}
	reasons := strings.Join(pts[0].InvalidReasons, "; ")
	if !strings.Contains(reasons, runs.ReasonErrors) || !strings.Contains(reasons, runs.ReasonSynced) {
		t.Errorf("point without churn: reasons %q, want the error rate and the sync", reasons)
	}
}

// TestJudgeChurnWindow: the runner's faults invalidate a churn point; the
// errors, syncs and reorders its churn causes do not.
func TestJudgeChurnWindow(t *testing.T) {
	full := &runs.Churn{Planned: 100, Written: 100, AskedPerSecond: 10, AchievedPerSecond: 10}
	base := func() *runs.Point {
		return &runs.Point{Valid: false, Churn: full,
			InvalidReasons: []string{runs.ReasonErrors + ": 50 of 1000 requests failed"},
			Sync:           runs.Sync{FullSyncs: 1, PartialSyncs: 30},
			Depth:          &runs.Depth{Changed: true},
			CPU:            runs.CPU{Node: runs.NodeCPU{CPUs: 1, MaxTotal: 0.5, Coverage: 1}}}
	}
	p := base()
	judgeChurnWindow(p)
	if !p.Valid || len(p.InvalidReasons) != 0 {
		t.Errorf("errors, syncs and a reorder invalidated a churn point: %v", p.InvalidReasons)
	}
	for name, tc := range map[string]struct {
		mod  func(*runs.Point)
		want string
	}{
		"saturated":     {func(p *runs.Point) { p.CPU.Node.MaxTotal = 0.99 }, runs.ReasonCPUSaturated},
		"coverage":      {func(p *runs.Point) { p.CPU.Node.Coverage = 0.5 }, runs.ReasonCPUCoverage},
		"no CPU sample": {func(p *runs.Point) { p.InvalidReasons = append(p.InvalidReasons, runs.ReasonNoCPUSample+": held up") }, runs.ReasonNoCPUSample},
		"schedule":      {func(p *runs.Point) { p.InvalidReasons = append(p.InvalidReasons, runs.ReasonScheduleBehind+": 30 ms") }, runs.ReasonScheduleBehind},
		"rate":          {func(p *runs.Point) { p.InvalidReasons = append(p.InvalidReasons, runs.ReasonRateShort+": 900 of 1000") }, runs.ReasonRateShort},
		"churn behind": {func(p *runs.Point) {
			p.Churn = &runs.Churn{Planned: 100, Written: 94, AskedPerSecond: 10, AchievedPerSecond: 9.4}
		}, runs.ReasonChurnBehind},
		"kube-proxy gone": {func(p *runs.Point) { p.InvalidReasons = append(p.InvalidReasons, runs.ReasonKubeProxyDied) }, runs.ReasonKubeProxyDied},
	} {
		p := base()
		tc.mod(p)
		judgeChurnWindow(p)
		if p.Valid || len(p.InvalidReasons) != 1 || !strings.HasPrefix(p.InvalidReasons[0], tc.want) {
			t.Errorf("%s: valid %v, reasons %v; want one reason starting %q", name, p.Valid, p.InvalidReasons, tc.want)
		}
	}
	p = base()
	p.Churn = &runs.Churn{Planned: 100, Written: 95}
	if judgeChurnWindow(p); !p.Valid {
		t.Errorf("95 of 100 writes: %v", p.InvalidReasons)
	}
}

// TestChurnWritesThatFail: failed writes are recorded with their error,
// never handed to the watcher, and short of the plan they invalidate the
// point; run.json says so.
func TestChurnWritesThatFail(t *testing.T) {
	e, run, dir, fc, _ := churnSetup(t, churnSpec)
	fc.failEvery = 5
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, _ := runs.ReadPoints(dir)
	if len(pts) != 1 || pts[0].Churn == nil {
		t.Fatalf("points %+v", pts)
	}
	c := pts[0].Churn
	if c.Planned != 10 || c.Written != 8 || len(c.Changes) != 10 || len(fc.watched) != 8 {
		t.Errorf("planned %d, written %d, %d changes, %d watched; want 10, 8, 10, 8", c.Planned, c.Written, len(c.Changes), len(fc.watched))
	}
	for _, ch := range c.Changes {
		if (ch.Error != "") != ch.WrittenAt.IsZero() || ch.Error != "" && ch.ProgrammedAt != nil {
			t.Errorf("change %+v", ch)
		}
	}
	if pts[0].Valid || !strings.HasPrefix(strings.Join(pts[0].InvalidReasons, ";"), runs.ReasonChurnBehind) {
		t.Errorf("valid %v, reasons %v; want churn behind", pts[0].Valid, pts[0].InvalidReasons)
	}
	back, _ := runs.ReadRun(dir)
	if !strings.Contains(strings.Join(back.Problems, "\n"), "2 of 10 churn writes failed") {
		t.Errorf("problems %v", back.Problems)
	}
}

// TestChurnRestoreFailureRescales: when the step cannot be put back by
// the writer, the scaler repairs it before the next point.
func TestChurnRestoreFailureRescales(t *testing.T) {
	e, run, dir, fc, events := churnSetup(t, strings.Replace(churnSpec, "requestsPerConn: [1]", "requestsPerConn: [1, 100]", 1))
	fc.restoreErr = errors.New("etcd is gone")
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	var scales []string
	for _, ev := range *events {
		if strings.HasPrefix(ev, "scale") || strings.HasPrefix(ev, "load") {
			scales = append(scales, ev)
		}
	}
	// The first step, the mode's step, then after each point a repair.
	if got := strings.Join(scales, ","); !strings.HasSuffix(got, "load rpc=1,scale 10,load rpc=100,scale 10") &&
		!strings.HasSuffix(got, "load rpc=100,scale 10,load rpc=1,scale 10") {
		t.Errorf("scale and load events %v, want a scale after each churn point", scales)
	}
	if len(fc.programmed) != 0 {
		t.Errorf("waited for a restore that failed: %v", fc.programmed)
	}
}

// TestChurnNeedsItsParts: an engine without churn parts refuses a churn
// scenario instead of measuring it still.
func TestChurnNeedsItsParts(t *testing.T) {
	useInstantClock(t)
	e, run, dir, _, _, _ := setup(t, churnSpec)
	err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run})
	if err == nil || !strings.Contains(err.Error(), "spec.churn") {
		t.Errorf("err = %v, want one about spec.churn", err)
	}
}

// TestChurnStopsWithAFailedLoad: when the load fails the writes stop, the
// step is put back, and the run ends with the load's error.
func TestChurnStopsWithAFailedLoad(t *testing.T) {
	e, run, dir, fc, _ := churnSetup(t, churnSpec)
	e.Load = failingLoad{}
	err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run})
	if err == nil || !strings.Contains(err.Error(), "the client node is gone") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(strings.Join(fc.log, ","), "restore") {
		t.Errorf("the step was not put back: %v", fc.log)
	}
}

type failingLoad struct{}

func (failingLoad) Run(context.Context, LoadRequest) (*LoadResult, error) {
	return nil, errors.New("the client node is gone")
}

// TestNewChurnParts: a scenario without churn gets none; one that
// replaces endpoints on a cluster without a spare backend, or on a
// dataplane without kube-proxy, cannot run.
func TestNewChurnParts(t *testing.T) {
	ips := make([]netip.Addr, 10)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{198, 18, 1, byte(1 + i)})
	}
	s, err := scaler.New(fake.NewClientset(), scaler.Config{EndpointIPs: ips, EndpointsPerService: 10})
	if err != nil {
		t.Fatal(err)
	}
	parse := func(spec string) *scenarios.Scenario {
		sc, err := scenarios.Parse([]byte("apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: t\nspec:\n" + spec))
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	if parts, err := newChurnParts(parse("  services: [10]\n"), nil, s, nil, 0); parts != nil || err != nil {
		t.Errorf("without churn: %v, %v", parts, err)
	}
	_, err = newChurnParts(parse(churnSpec), nil, s, nil, 0)
	if !errors.Is(err, ErrCannotRun) || !strings.Contains(err.Error(), "more backends than the 10 endpoints per Service (the cluster has 10)") {
		t.Errorf("10 backends for 10 endpoints: %v", err)
	}
	external := parse(churnSpec)
	external.Spec.Modes = []scenarios.Mode{scenarios.ModeExternal}
	if _, err := newChurnParts(external, nil, s, nil, 0); !errors.Is(err, ErrCannotRun) || !strings.Contains(err.Error(), "replaces kube-proxy") {
		t.Errorf("external: %v", err)
	}
}

// TestChurnSyncCosts: with spec.churn.syncCosts the cold and incremental
// syncs are measured once per (mode, step) of the run, when the step is
// first scaled, and the points after the restart it makes stay valid.
func TestChurnSyncCosts(t *testing.T) {
	spec := "  modes: [iptables, nftables]\n  services: [10, 20]\n  backends: 20\n  order: steps\n  repetitions: 2\n" +
		"  load:\n    duration: 1s\n    warmup: 0s\n    requestsPerConn: [1]\n  churn:\n    rate: 10\n    syncCosts: true\n"
	e, run, dir, fc, events := churnSetup(t, spec)
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	got := append([]string(nil), fc.syncCosts...)
	slices.Sort(got)
	if want := []string{"iptables/10", "iptables/20", "nftables/10", "nftables/20"}; !slices.Equal(got, want) {
		t.Errorf("sync costs measured at %v, want each (mode, step) once: %v", fc.syncCosts, want)
	}
	pts, _ := runs.ReadPoints(dir)
	if len(pts) != 8 {
		t.Fatalf("%d points, want 8", len(pts))
	}
	for _, p := range pts {
		if !p.Valid {
			t.Errorf("%s invalid after the sync-cost restart: %v", p.ID, p.InvalidReasons)
		}
	}
	restarts := 0
	for _, ev := range *events {
		if strings.HasPrefix(ev, "mode ") {
			restarts++
		}
	}
	if restarts < 4 {
		t.Errorf("%d mode sets, want at least the 4 restarts", restarts)
	}
}

// observedCluster is a fake cluster whose client node has observer CPUs
// (as the lab's has: the control plane's).
type observedCluster struct {
	fakeCluster
	cpus []int
}

func (o *observedCluster) ObserverCPUs() []int { return o.cpus }

// The rule reads of a churn point run on the node's observer CPUs where it
// has them (the lab), at nice 19, so that they neither take the node's
// CPU from kube-proxy and the load nor count in the node CPU; elsewhere at
// nice 19 on the node.
func TestChurnReaderRunsOffTheNodeCPUs(t *testing.T) {
	lab := &observedCluster{cpus: []int{0, 2, 3}}
	if got, want := readerOptions(lab).Prefix, []string{"taskset", "-c", "0,2-3", "nice", "-n", "19"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lab node: prefix %q, want %q", got, want)
	}
	unpinned := &observedCluster{}
	if got := readerOptions(unpinned).Prefix; got != nil {
		t.Errorf("node without observer CPUs: prefix %q, want the reader's default (nice 19 on the node)", got)
	}
	if got := readerOptions(&fakeCluster{}).Prefix; got != nil {
		t.Errorf("other node: prefix %q, want the reader's default", got)
	}
}

// netnsCluster is a fake cluster whose client node's network namespace is
// on this machine (as the lab's is).
type netnsCluster struct {
	observedCluster
	path string
}

func (n *netnsCluster) NetNSPath() string { return n.path }

// In nftables mode on a node whose namespace is on this machine (the lab)
// the rules are read in-process over netlink; anywhere else, and in the
// other modes, by the node's tools.
func TestChurnReaderNetlinkOnTheLab(t *testing.T) {
	lab := &netnsCluster{observedCluster: observedCluster{cpus: []int{1}}, path: t.TempDir()}
	r, err := ruleReader(scenarios.ModeNFTables, lab)
	if _, ok := r.(*churn.NFTNetlinkReader); !ok || err != nil {
		t.Errorf("lab node, nftables: %T, %v; want the netlink reader", r, err)
	}
	for _, m := range []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeIPVS} {
		if r, err := ruleReader(m, lab); err != nil {
			t.Errorf("lab node, %s: %v", m, err)
		} else if _, ok := r.(*churn.NodeReader); !ok {
			t.Errorf("lab node, %s: %T, want a NodeReader", m, r)
		}
	}
	if r, err := ruleReader(scenarios.ModeNFTables, &observedCluster{}); err != nil {
		t.Errorf("other node: %v", err)
	} else if _, ok := r.(*churn.NodeReader); !ok {
		t.Errorf("other node, nftables: %T, want a NodeReader", r)
	}
	lab.path += "/gone"
	if _, err := ruleReader(scenarios.ModeNFTables, lab); err == nil {
		t.Error("a lab node whose namespace is gone: no error")
	}
}
