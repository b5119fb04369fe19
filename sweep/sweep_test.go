package sweep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

type fakeCluster struct {
	mu       sync.Mutex
	mode     scenarios.Mode
	pid      int
	setModes []scenarios.Mode
	failMode scenarios.Mode
	events   *[]string
}

func (f *fakeCluster) Name() string                                          { return "fake" }
func (f *fakeCluster) Up(context.Context, scenarios.Mode) error              { return nil }
func (f *fakeCluster) Down(context.Context) error                            { return nil }
func (f *fakeCluster) KubeconfigPath() string                                { return "" }
func (f *fakeCluster) Backends(context.Context) ([]clusters.Endpoint, error) { return nil, nil }
func (f *fakeCluster) ClientNode() clusters.ClientNode                       { return f }
func (f *fakeCluster) Versions(context.Context) (clusters.Versions, error) {
	return clusters.Versions{Kubernetes: "v1.36.3", KubeProxy: "v1.36.3"}, nil
}
func (f *fakeCluster) Capabilities(context.Context) (clusters.Capabilities, error) {
	return clusters.Capabilities{Modes: map[scenarios.Mode]string{
		scenarios.ModeIPTables: "", scenarios.ModeNFTables: "", scenarios.ModeIPVS: "kernel has no IP_VS",
	}}, nil
}
func (f *fakeCluster) Features(context.Context) clusters.Features {
	return clusters.Features{SwitchModes: true}
}
func (f *fakeCluster) SetMode(_ context.Context, m scenarios.Mode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.events = append(*f.events, "mode "+string(m))
	if m == f.failMode {
		return fmt.Errorf("kube-proxy did not start")
	}
	f.mode = m
	f.pid++
	f.setModes = append(f.setModes, m)
	return nil
}
func (f *fakeCluster) VerifyMode(_ context.Context, m scenarios.Mode) error {
	if f.mode != m {
		return fmt.Errorf("mode is %s", f.mode)
	}
	return nil
}
func (f *fakeCluster) Run(context.Context, io.Reader, io.Writer, io.Writer, ...string) error {
	return nil
}
func (f *fakeCluster) CPUs() []int      { return []int{1} }
func (f *fakeCluster) ProcRoot() string { return "/proc" }
func (f *fakeCluster) KubeProxyPID(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pid, nil
}
func (f *fakeCluster) KubeProxyGet(_ context.Context, path string) ([]byte, error) {
	if path != "/proxyMode" {
		return nil, fmt.Errorf("no %s", path)
	}
	return []byte(f.mode), nil
}

type fakeScaler struct {
	events *[]string
	n      int
}

func (s *fakeScaler) Scale(_ context.Context, n int) (ScaleResult, error) {
	*s.events = append(*s.events, fmt.Sprintf("scale %d", n))
	created := max(n-s.n, 0)
	s.n = n
	return ScaleResult{Created: created, TimeToProgrammed: time.Duration(n) * time.Millisecond, SyncDuration: time.Second}, nil
}
func (s *fakeScaler) TargetURLs(_ context.Context, t scenarios.Targets) ([]string, error) {
	return []string{"http://198.19.0.1/"}, nil
}

type fakeLoad struct {
	events *[]string
	runs   int
	// onRun is called at the start of each measured run (warmups excluded).
	onRun func(ctx context.Context, measured int) error
}

func (l *fakeLoad) Run(ctx context.Context, req LoadRequest) (*LoadResult, error) {
	if req.RawDir == "" {
		*l.events = append(*l.events, "a load without its raw directory")
		return &LoadResult{}, nil
	}
	if req.Warmup > 0 { // inside the measured process, before its window
		*l.events = append(*l.events, fmt.Sprintf("warmup rpc=%d", req.RequestsPerConn))
	}
	l.runs++
	*l.events = append(*l.events, fmt.Sprintf("load rpc=%d", req.RequestsPerConn))
	if l.onRun != nil {
		if err := l.onRun(ctx, l.runs); err != nil {
			return nil, err
		}
	}
	// The tick is what the load client resolves from the request.
	cfg := req.Load()
	return &LoadResult{AchievedRate: req.Rate, TickSeconds: cfg.EffectiveTick().Seconds(), Requests: int64(req.Rate * req.Duration.Seconds()),
		Latency: runs.Latency{MeanUs: 300, P50Us: 250}, Connect: runs.Connect{Count: 10, P50Us: 100},
		ClientCPUCores: 0.05, Valid: true}, nil
}

type fakeObserver struct{}
type fakeWindow struct{}

func (fakeObserver) Begin(context.Context, string) (collector.Window, error) {
	return fakeWindow{}, nil
}
func (fakeWindow) End(_ context.Context, _ collector.Load, p *runs.Point) error {
	p.CPU.Node.Total, p.CPU.Processes.KubeProxy = 0.3, 0.01
	return nil
}

type fakeRules struct{}

func (fakeRules) Count(_ context.Context, m scenarios.Mode) (runs.Rules, error) {
	return runs.Rules{Total: 42}, nil
}

func setup(t *testing.T, spec string) (*Engine, *runs.Run, string, *fakeCluster, *fakeLoad, *[]string) {
	t.Helper()
	s, err := scenarios.Parse([]byte("apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: t\nspec:\n" + spec))
	if err != nil {
		t.Fatal(err)
	}
	events := &[]string{}
	fc := &fakeCluster{mode: scenarios.ModeIPTables, pid: 100, events: events}
	fl := &fakeLoad{events: events}
	e := &Engine{Provider: fc, Scaler: &fakeScaler{events: events}, Load: fl, Observer: fakeObserver{}, Rules: fakeRules{}}
	run := &runs.Run{ID: "r", Scenario: *s, Status: runs.StatusRunning}
	return e, run, t.TempDir(), fc, fl, events
}

const spec2x2 = "  modes: [iptables, ipvs, nftables]\n  services: [1, 10]\n  load:\n    duration: 1s\n    warmup: 1s\n    requestsPerConn: [1, 100]\n  repetitions: 2\n"

// TestRunMeasuresEveryPointAndSkipsIPVS, under order modes: one mode at
// every step, then the next, each starting from the first step.
func TestRunMeasuresEveryPointAndSkipsIPVS(t *testing.T) {
	e, run, dir, fc, _, events := setup(t, spec2x2+"  order: modes\n")
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, err := runs.ReadPoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2*2*2*2 {
		t.Fatalf("%d points, want 16 (2 runnable modes × 2 steps × 2 variants × 2 reps)", len(pts))
	}
	for _, p := range pts {
		if p.Mode == scenarios.ModeIPVS {
			t.Errorf("point %s measured in a mode that cannot run", p.ID)
		}
		if !p.Valid || p.CPU.Node.Total != 0.3 || p.CPU.Processes.Client != 0.05 || p.Rules.Total != 42 {
			t.Errorf("point %s not assembled from its parts: %+v", p.ID, p)
		}
	}
	// The first step was scaled before the switch (nothing left to write
	// under the mode); the second step's scaling belongs to its first point.
	firstAt := map[string]int{} // mode/step -> the smallest sequence there
	for _, p := range pts {
		k := fmt.Sprint(p.Mode, p.Services)
		if s, ok := firstAt[k]; !ok || p.Sequence < s {
			firstAt[k] = p.Sequence
		}
	}
	for _, p := range pts {
		wrote := p.Services == 10 && p.Sequence == firstAt[fmt.Sprint(p.Mode, p.Services)]
		if (p.TimeToProgrammedSeconds != 0) != wrote {
			t.Errorf("%s (seq %d): time to programmed %g; it belongs to the first point of a step that wrote to the API only", p.ID, p.Sequence, p.TimeToProgrammedSeconds)
		}
	}
	back, err := runs.ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.SkippedModes) != 1 || back.SkippedModes[0].Mode != scenarios.ModeIPVS || !strings.Contains(back.SkippedModes[0].Reason, "IP_VS") {
		t.Errorf("skipped modes = %+v, want ipvs with its reason", back.SkippedModes)
	}
	if !reflect.DeepEqual(fc.setModes, []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables}) {
		t.Errorf("modes set: %v", fc.setModes)
	}
	// Steps ascend within a mode, and each mode starts from the first step;
	// every measured load is preceded by its warmup.
	want := []string{"scale 1", "mode iptables", "scale 1", "warmup rpc=", "load rpc="}
	if got := (*events)[:len(want)]; !reflect.DeepEqual(got[:3], want[:3]) || !strings.HasPrefix(got[3], want[3]) || !strings.HasPrefix(got[4], want[4]) {
		t.Errorf("first events %v, want %v", (*events)[:len(want)], want)
	}
	var scales []string
	for _, ev := range *events {
		if strings.HasPrefix(ev, "scale") || strings.HasPrefix(ev, "mode") {
			scales = append(scales, ev)
		}
	}
	wantScales := []string{"scale 1", "mode iptables", "scale 1", "scale 10", "scale 1", "mode nftables", "scale 1", "scale 10"}
	if !reflect.DeepEqual(scales, wantScales) {
		t.Errorf("scale/mode order %v, want %v", scales, wantScales)
	}
}

func TestInterruptKeepsFinishedPointsAndResumeCompletes(t *testing.T) {
	e, run, dir, _, fl, _ := setup(t, spec2x2)
	ctx, cancel := context.WithCancel(context.Background())
	fl.onRun = func(ctx context.Context, n int) error {
		if n == 3 {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	err := e.Run(ctx, &runs.Record{Dir: dir, Run: run})
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	pts, _ := runs.ReadPoints(dir)
	if len(pts) != 2 {
		t.Fatalf("%d points kept, want the 2 finished", len(pts))
	}

	e2, _, _, _, fl2, _ := setup(t, spec2x2)
	if err := e2.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	if fl2.runs != 14 {
		t.Errorf("resume measured %d points, want the 14 missing", fl2.runs)
	}
	pts, _ = runs.ReadPoints(dir)
	seen := map[string]bool{}
	for _, p := range pts {
		if seen[p.ID] {
			t.Errorf("point %s measured twice", p.ID)
		}
		seen[p.ID] = true
	}
	if len(seen) != 16 {
		t.Errorf("%d distinct points after resume, want 16", len(seen))
	}
}

func TestKubeProxyDeathInvalidatesAndRecovers(t *testing.T) {
	e, run, dir, fc, fl, _ := setup(t, "  modes: [iptables]\n  services: [1]\n  load:\n    duration: 1s\n    requestsPerConn: [1]\n  repetitions: 3\n")
	fl.onRun = func(_ context.Context, n int) error {
		if n == 2 {
			fc.mu.Lock()
			fc.pid = 999 // kube-proxy restarted behind our back
			fc.mu.Unlock()
		}
		return nil
	}
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, _ := runs.ReadPoints(dir)
	if len(pts) != 3 {
		t.Fatalf("%d points, want 3", len(pts))
	}
	if !pts[0].Valid || pts[1].Valid || !pts[2].Valid {
		t.Errorf("valid flags %v %v %v, want only the second invalid", pts[0].Valid, pts[1].Valid, pts[2].Valid)
	}
	if len(pts[1].InvalidReasons) == 0 || !strings.HasPrefix(pts[1].InvalidReasons[0], runs.ReasonKubeProxyDied) {
		t.Errorf("reasons %v", pts[1].InvalidReasons)
	}
	back, _ := runs.ReadRun(dir)
	if len(back.Problems) == 0 {
		t.Error("run.json does not record the problem")
	}
}

func TestModeMismatchInvalidates(t *testing.T) {
	e, run, dir, fc, fl, _ := setup(t, "  modes: [nftables]\n  services: [1]\n  load:\n    duration: 1s\n    requestsPerConn: [1]\n")
	fl.onRun = func(context.Context, int) error { fc.mode = scenarios.ModeIPTables; return nil }
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, _ := runs.ReadPoints(dir)
	if len(pts) != 1 || pts[0].Valid || !strings.HasPrefix(pts[0].InvalidReasons[0], runs.ReasonModeMismatch) {
		t.Errorf("points %+v, want one invalid for mode mismatch", pts)
	}
}

func TestModeSwitchFailureSkipsOnlyThatMode(t *testing.T) {
	e, run, dir, fc, _, _ := setup(t, "  modes: [iptables, nftables]\n  services: [1]\n  load:\n    duration: 1s\n    requestsPerConn: [1]\n")
	fc.failMode = scenarios.ModeNFTables
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, _ := runs.ReadPoints(dir)
	if len(pts) != 1 || pts[0].Mode != scenarios.ModeIPTables {
		t.Errorf("points %+v, want the iptables point only", pts)
	}
	back, _ := runs.ReadRun(dir)
	if len(back.SkippedModes) != 1 || back.SkippedModes[0].Mode != scenarios.ModeNFTables || !strings.Contains(back.SkippedModes[0].Reason, "did not start") {
		t.Errorf("skipped %+v", back.SkippedModes)
	}
}

const specSteps = "  modes: [iptables, ipvs, nftables]\n  services: [1, 10, 100]\n  order: steps\n  load:\n    duration: 1s\n    warmup: 0s\n    requestsPerConn: [1]\n  repetitions: 1\n"

func scaleAndModeEvents(events []string) []string {
	var out []string
	for _, ev := range events {
		if strings.HasPrefix(ev, "scale") || strings.HasPrefix(ev, "mode") {
			out = append(out, ev)
		}
	}
	return out
}

func TestStepOrderGoesOnWhenAModeCannotBeSet(t *testing.T) {
	e, run, dir, fc, _, events := setup(t, specSteps)
	fc.failMode = scenarios.ModeNFTables
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, _ := runs.ReadPoints(dir)
	if len(pts) != 3 {
		t.Errorf("%d points, want iptables' 3", len(pts))
	}
	for _, p := range pts {
		if p.Mode != scenarios.ModeIPTables {
			t.Errorf("point %s in a mode that could not be set", p.ID)
		}
	}
	// nftables is tried once, then left out; no step is scaled down again.
	if got := strings.Count(strings.Join(scaleAndModeEvents(*events), ","), "mode nftables"); got != 1 {
		t.Errorf("nftables tried %d times, want once: %v", got, scaleAndModeEvents(*events))
	}
	back, _ := runs.ReadRun(dir)
	if len(back.SkippedModes) != 2 { // ipvs (no IP_VS) and nftables (failed)
		t.Errorf("skipped modes %+v", back.SkippedModes)
	}
}

// TestResumeAfterTornLine: the process died while appending the third
// point; the resume must cut the torn bytes off and leave a file every
// reader can read, with every point once.
func TestResumeAfterTornLine(t *testing.T) {
	e, run, dir, _, fl, _ := setup(t, spec2x2)
	run.KpbenchVersion = "v0.9.0"
	run.Provider = runs.Provider{Name: "lab"}
	run.Environment = runs.Environment{Kernel: "6.18", KubeProxyVersion: "v1.36.3"}
	ctx, cancel := context.WithCancel(context.Background())
	fl.onRun = func(ctx context.Context, n int) error {
		if n == 3 {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	if err := e.Run(ctx, &runs.Record{Dir: dir, Run: run}); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, runs.PointsFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"schemaVersion":1,"id":"iptables-s00001-rpc100-r1","mode":"iptables","services":1,"endpointsPer`)
	f.Close()

	e2, _, _, _, _, _ := setup(t, spec2x2)
	if err := e2.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, err := runs.ReadPoints(dir)
	if err != nil {
		t.Fatalf("points.jsonl unreadable after the resume: %v", err)
	}
	seen := map[string]bool{}
	for _, p := range pts {
		if seen[p.ID] {
			t.Errorf("point %s twice", p.ID)
		}
		seen[p.ID] = true
		if p.KpbenchVersion != "v0.9.0" || p.Environment != runs.Fingerprint("lab", run.Environment) {
			t.Errorf("point %s: version %q environment %q", p.ID, p.KpbenchVersion, p.Environment)
		}
	}
	if len(seen) != 16 {
		t.Errorf("%d distinct points, want 16", len(seen))
	}
}

// flushingCluster is a provider whose client node lets kpbench empty its
// conntrack table (as the lab's does).
type flushingCluster struct{ *fakeCluster }

func (f flushingCluster) Features(ctx context.Context) clusters.Features {
	feat := f.fakeCluster.Features(ctx)
	feat.Client.FlushConntrack = func(context.Context) error {
		*f.events = append(*f.events, "flush conntrack")
		return nil
	}
	return feat
}

// TestConntrackFlushedBeforeEachPoint: on a node kpbench owns, every point
// (every repetition) starts from an empty conntrack table, flushed before
// its warm-up; elsewhere nothing is flushed and the points say so.
func TestConntrackFlushedBeforeEachPoint(t *testing.T) {
	const spec = "  modes: [iptables]\n  services: [1]\n  load:\n    duration: 1s\n    warmup: 1s\n    requestsPerConn: [1]\n  repetitions: 3\n"
	e, run, dir, fc, _, events := setup(t, spec)
	e.Provider = flushingCluster{fc}
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	var seq []string
	for _, ev := range *events {
		if ev == "flush conntrack" || strings.HasPrefix(ev, "warmup") || strings.HasPrefix(ev, "load") {
			seq = append(seq, ev)
		}
	}
	one := []string{"flush conntrack", "warmup rpc=1", "load rpc=1"}
	if want := append(append(append([]string{}, one...), one...), one...); !reflect.DeepEqual(seq, want) {
		t.Errorf("events %v, want %v", seq, want)
	}
	pts, _ := runs.ReadPoints(dir)
	for _, p := range pts {
		if !p.Conntrack.FlushedBefore {
			t.Errorf("point %s does not record the flush", p.ID)
		}
	}

	e2, run2, dir2, _, _, events2 := setup(t, spec)
	if err := e2.Run(context.Background(), &runs.Record{Dir: dir2, Run: run2}); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(*events2, "flush conntrack") {
		t.Error("flushed a node kpbench does not own")
	}
	pts, _ = runs.ReadPoints(dir2)
	for _, p := range pts {
		if p.Conntrack.FlushedBefore {
			t.Errorf("point %s claims a flush", p.ID)
		}
	}
}

// TestWarmupInsideTheMeasuredLoad: no separate warm-up process; the
// measured `kpbench load` warms up itself (--warmup); the node's CPU
// leaves the warm-up out (collector's TestWarmupLeftOutOfTheCPU).
func TestWarmupInsideTheMeasuredLoad(t *testing.T) {
	e, run, dir, _, _, events := setup(t, spec2x2)
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(*events, "a load without its raw directory") {
		t.Error("a separate warm-up process ran")
	}
	args := strings.Join(LoadRequest{Rate: 1000, Warmup: 2 * time.Second, Duration: 10 * time.Second}.Load().Args(), " ")
	if !strings.Contains(args, "--warmup=2s") || !strings.Contains(args, "--duration=10s") {
		t.Errorf("load args %q", args)
	}
}

// chainRules is a RuleCounter that also counts endpoint chains like
// kube-proxy in large-cluster mode: a step down leaves the removed
// Services' chains in place until a later cleanup, after lag polls (never
// when lag < 0).
type chainRules struct {
	fakeRules
	scaler *fakeScaler
	events *[]string
	lag    int
	last   int // the scaler's step at the last count
	stale  int // chains left by steps down
	polls  int // counts since the stale chains appeared
}

func (c *chainRules) EndpointChains(context.Context) (int, error) {
	if n := c.scaler.n; n < c.last {
		c.stale += (c.last - n) * 10
		c.polls = 0
	}
	c.last = c.scaler.n
	if c.stale > 0 {
		c.polls++
		if c.lag >= 0 && c.polls > c.lag {
			c.stale = 0
		}
	}
	have := 1 + 10*c.scaler.n + c.stale // the kubernetes Service's one endpoint too
	*c.events = append(*c.events, fmt.Sprintf("chains %d", have))
	return have, nil
}

// TestStepDownWaitsForStaleChains: after a step down in iptables mode the
// engine counts endpoint chains until kube-proxy has deleted the removed
// Services' (here after two more counts), before any point; a cleanup that
// never comes is a problem of the run after CleanupTimeout, and the run
// goes on.
func TestStepDownWaitsForStaleChains(t *testing.T) {
	const spec = "  modes: [iptables]\n  services: [1, 10]\n  endpointsPerService: 10\n  load:\n    duration: 1s\n    warmup: 1s\n    requestsPerConn: [1]\n  repetitions: 2\n  order: steps\n  seed: 7\n"
	for _, tc := range []struct {
		name string
		lag  int
	}{{"cleaned", 2}, {"never", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			e, run, dir, _, _, events := setup(t, spec)
			cr := &chainRules{scaler: e.Scaler.(*fakeScaler), events: events, lag: tc.lag}
			e.Rules, e.CleanupPoll, e.CleanupTimeout = cr, time.Millisecond, 50*time.Millisecond
			if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
				t.Fatal(err)
			}
			// Between the scale to 1 that follows 10 and the next load, the
			// chains are counted down to 11 (1 + 10 × 1), or the wait gives up.
			i := slices.Index(*events, "scale 10")
			j := i + 1 + slices.Index((*events)[i+1:], "scale 1")
			if i < 0 || j <= i {
				t.Fatalf("no step down from 10 to 1 in %q", *events)
			}
			var between []string
			for _, ev := range (*events)[j+1:] {
				if strings.HasPrefix(ev, "load") || strings.HasPrefix(ev, "warmup") {
					break
				}
				if strings.HasPrefix(ev, "chains") {
					between = append(between, ev)
				}
			}
			switch tc.name {
			case "cleaned":
				if want := []string{"chains 101", "chains 101", "chains 11"}; !reflect.DeepEqual(between, want) {
					t.Errorf("counts after the step down %q, want %q (events %q)", between, want, *events)
				}
				if len(run.Problems) != 0 {
					t.Errorf("problems %q", run.Problems)
				}
			case "never":
				if len(between) < 2 || between[len(between)-1] != "chains 101" {
					t.Errorf("counts after the step down %q: want the wait to poll until it gives up", between)
				}
				if len(run.Problems) == 0 || !strings.Contains(run.Problems[0], "still held 101 iptables endpoint chains (want at most 11)") {
					t.Errorf("problems %q, want the cleanup that never came", run.Problems)
				}
				pts, err := runs.ReadPoints(dir)
				if err != nil || len(pts) != 4 {
					t.Errorf("%d points (%v): the run should go on", len(pts), err)
				}
			}
			// A step up or the first step is not waited for: the count
			// before scaling happens only on the way down.
			if n := strings.Count(strings.Join(*events, ","), "chains"); n == 0 {
				t.Error("no endpoint chains counted")
			}
		})
	}
}

// TestLoadRequestTicksAutomatically: the engine's load clients run with
// kpbench load's default tick (auto: 1 ms batches above 1,000 req/s)
// unless spec.load.tick says otherwise, the command line it writes for a
// client node leaves the default out, and each point records the tick its
// client sent in.
func TestLoadRequestTicksAutomatically(t *testing.T) {
	req := LoadRequest{URLs: []string{"http://198.19.0.1/"}, Rate: 2000, Duration: time.Second, Tick: loadgen.TickAuto}
	if args := strings.Join(req.Load().Args(), " "); strings.Contains(args, "--tick") {
		t.Errorf("load args %q: the automatic tick is kpbench load's default and is left out", args)
	}
	req.Tick = 0
	if args := strings.Join(req.Load().Args(), " "); !strings.Contains(args, "--tick=0s") {
		t.Errorf("load args %q: precise pacing must be written", args)
	}
	for _, tt := range []struct {
		rate, tick string
		want       float64
	}{{"1000", "", 0}, {"2000", "", 0.001}, {"2000", "auto", 0.001}, {"2000", "0s", 0}, {"1000", "5ms", 0.005}} {
		spec := "  modes: [nftables]\n  services: [1]\n  load:\n    rate: " + tt.rate + "\n    duration: 1s\n    requestsPerConn: [1]\n"
		if tt.tick != "" {
			spec += "    tick: " + tt.tick + "\n"
		}
		e, run, dir, _, _, _ := setup(t, spec)
		if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
			t.Fatal(err)
		}
		pts, err := runs.ReadPoints(dir)
		if err != nil || len(pts) == 0 {
			t.Fatalf("rate %s, tick %q: %d points, %v", tt.rate, tt.tick, len(pts), err)
		}
		for _, p := range pts {
			if p.Rate.TickSeconds != tt.want {
				t.Errorf("rate %s, tick %q: point %s records tick %gs, want %gs", tt.rate, tt.tick, p.ID, p.Rate.TickSeconds, tt.want)
			}
		}
	}
}
