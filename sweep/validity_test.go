package sweep

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/runs"
)

// TestStalledClientInvalidatesThePoint: the load client's own verdict
// reaches the point. The summary is what `kpbench load` printed after a
// 200 ms stall of its dispatcher in the middle of the window (loadgen's
// TestRunClientStallInvalidates injects it); the point recorded from it is
// invalid, with the client's reason.
func TestStalledClientInvalidatesThePoint(t *testing.T) {
	const reason = runs.ReasonScheduleBehind + ": a send started 199.0 ms late (bound 20ms, 2.0% of the 1s window: the client stalled, and its stall counts as latency)"
	e, run, dir, _, _, _ := setup(t, "  modes: [iptables]\n  services: [1]\n  load:\n    duration: 1s\n    requestsPerConn: [1]\n  repetitions: 1\n")
	t0 := time.Now()
	e.Load = &NodeLoad{Bin: "kpbench", Node: &summaryNode{summary: loadgen.Summary{SchemaVersion: runs.SchemaVersion, StartedAt: t0,
		DurationSeconds: 1, Requests: 1000, AchievedRate: 1000, Lag: runs.Lag{MaxUs: 199_000, P50Us: 80},
		Valid: false, InvalidReasons: []string{reason}}}}
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, err := runs.ReadPoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 1 || pts[0].Valid || len(pts[0].InvalidReasons) != 1 || pts[0].InvalidReasons[0] != reason || pts[0].Lag.MaxUs != 199_000 {
		t.Errorf("points %+v, want one invalid point with the client's reason", pts)
	}
}

// TestNoCPUSampleInWindowInvalidatesThePoint: a CPU sampler held up for
// longer than the load's window leaves no sample inside it. The point
// keeps the whole observation's figures, is invalid with the reason, and
// the run goes on (it used to end the run).
func TestNoCPUSampleInWindowInvalidatesThePoint(t *testing.T) {
	// The observer's side: collector's TestNoCPUSampleInWindowKeepsTheWhole.
	reason := runs.ReasonNoCPUSample + ": no CPU sample inside the load window"
	// Through the engine: the first point's observation is invalid, the
	// second is not; both are recorded and the run completes.
	e, run, dir, _, _, _ := setup(t, "  modes: [iptables]\n  services: [1]\n  load:\n    duration: 1s\n    requestsPerConn: [1]\n  repetitions: 2\n")
	e.Observer = &invalidOnce{reason: reason}
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, err := runs.ReadPoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].Valid || len(pts[0].InvalidReasons) != 1 || pts[0].InvalidReasons[0] != reason || !pts[1].Valid {
		t.Errorf("points %+v, want the first invalid with the sampler's reason and the second valid", pts)
	}
}

// invalidOnce's first window is invalid with reason.
type invalidOnce struct {
	reason string
	n      int
}

func (o *invalidOnce) Begin(context.Context, string) (collector.Window, error) {
	o.n++
	return staticWindow{invalid: o.n == 1, reason: o.reason}, nil
}

type staticWindow struct {
	invalid bool
	reason  string
}

func (w staticWindow) End(_ context.Context, _ collector.Load, p *runs.Point) error {
	p.CPU.Node.Total = 0.3
	if w.invalid {
		collector.Invalidate(p, w.reason)
	}
	return nil
}

// TestWindowReasons: the engine's own judgement of a window, rule by
// rule, with the exact reasons, and the points just inside every bound
// left valid.
func TestWindowReasons(t *testing.T) {
	steady := func() runs.Point {
		return runs.Point{Valid: true, CPU: runs.CPU{Node: runs.NodeCPU{Total: 0.3, MaxTotal: 0.5, CPUs: 1, Coverage: 1}}}
	}
	for _, c := range []struct {
		name string
		edit func(p *runs.Point)
		want []string
	}{
		{"steady", func(*runs.Point) {}, nil},
		{"CPU at 0.97 of its CPU", func(p *runs.Point) { p.CPU.Node.MaxTotal = 0.97 }, nil},
		{"CPU at 0.98 of its CPU", func(p *runs.Point) { p.CPU.Node.MaxTotal = 0.98 },
			[]string{"client-node CPU saturated: a sampling interval reached 0.98 of 1 CPU (bound 0.98)"}},
		{"CPU at 1.00 of its CPU", func(p *runs.Point) { p.CPU.Node.MaxTotal = 1.0 },
			[]string{"client-node CPU saturated: a sampling interval reached 1.00 of 1 CPU (bound 0.98)"}},
		{"1.9 of 2 CPUs", func(p *runs.Point) { p.CPU.Node.MaxTotal, p.CPU.Node.CPUs = 1.9, 2 }, nil},
		{"1.97 of 2 CPUs", func(p *runs.Point) { p.CPU.Node.MaxTotal, p.CPU.Node.CPUs = 1.97, 2 },
			[]string{"client-node CPU saturated: a sampling interval reached 0.98 of 2 CPUs (bound 0.98)"}},
		{"a guest's 2 vCPUs at 1.0: half", func(p *runs.Point) { p.CPU.Node.MaxTotal, p.CPU.Node.CPUs = 1.0, 2 }, nil},
		{"ceiling unknown (an older collector)", func(p *runs.Point) { p.CPU.Node.MaxTotal, p.CPU.Node.CPUs, p.CPU.Node.Coverage = 5, 0, 0 }, nil},
		{"two nodes: each judged on its own", func(p *runs.Point) {
			p.CPU.Node.MaxTotal, p.CPU.Node.CPUs = 1.5, 2
			p.CPU.Node.Nodes = []runs.NodeShare{{Node: "w1", MaxTotal: 0.99, CPUs: 1}, {Node: "w2", MaxTotal: 0.51, CPUs: 1}}
		}, []string{"client-node CPU saturated: a sampling interval on w1 reached 0.99 of 1 CPU (bound 0.98)"}},
		{"coverage 91%", func(p *runs.Point) { p.CPU.Node.Coverage = 0.91 }, nil},
		{"coverage 90%", func(p *runs.Point) { p.CPU.Node.Coverage = 0.90 }, nil},
		{"coverage 89%", func(p *runs.Point) { p.CPU.Node.Coverage = 0.89 },
			[]string{"CPU samples cover less than 90% of the window: 89.0%"}},
		{"no sample in the window says it once", func(p *runs.Point) {
			p.CPU.Node.Coverage = 0
			p.Valid, p.InvalidReasons = false, []string{runs.ReasonNoCPUSample + ": x"}
		}, nil}, // the observer's reason stays, alone
		{"a full sync", func(p *runs.Point) { p.Sync.FullSyncs = 1 },
			[]string{"kube-proxy synced during the window: 1 full, 0 partial"}},
		{"partial syncs", func(p *runs.Point) { p.Sync.PartialSyncs = 2 },
			[]string{"kube-proxy synced during the window: 0 full, 2 partial"}},
		{"a sync's duration alone (the step's, before the window)", func(p *runs.Point) { p.Sync.LastDurationSeconds = 1.2 }, nil},
		{"a reorder", func(p *runs.Point) {
			p.Depth = &runs.Depth{Before: runs.DepthReading{Mean: 2001}, After: runs.DepthReading{Mean: 1}, Changed: true}
		}, []string{"the chain was reordered during the window: depth 2001→1"}},
		{"several targets' mean depth", func(p *runs.Point) {
			p.Depth = &runs.Depth{Before: runs.DepthReading{Mean: 1500.5}, After: runs.DepthReading{Mean: 1499.25}, Changed: true, Targets: 4}
		}, []string{"the chain was reordered during the window: depth 1500.5→1499.2"}},
		{"the same depth", func(p *runs.Point) {
			p.Depth = &runs.Depth{Before: runs.DepthReading{Mean: 7}, After: runs.DepthReading{Mean: 7}}
		}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := steady()
			c.edit(&p)
			pre := append([]string(nil), p.InvalidReasons...)
			judgeWindow(&p)
			want := append(pre, c.want...)
			if !slices.Equal(p.InvalidReasons, want) || p.Valid != (len(want) == 0 && pre == nil) {
				t.Errorf("valid %v, reasons %q; want %q", p.Valid, p.InvalidReasons, want)
			}
		})
	}
}

// TestSaturatedNodeInvalidatesThePoint: through the engine, an observer
// that records a busiest interval of 1.00 of the node's one CPU (the
// reference run's iptables-s03000-rpc1-r4) makes that point invalid and
// leaves the next one, at 0.97, valid.
func TestSaturatedNodeInvalidatesThePoint(t *testing.T) {
	e, run, dir, _, _, _ := setup(t, "  modes: [iptables]\n  services: [1]\n  load:\n    duration: 1s\n    requestsPerConn: [1]\n  repetitions: 2\n")
	e.Observer = &nodeFigures{figs: []runs.NodeCPU{
		{Total: 0.6, MaxTotal: 1.0, CPUs: 1, Coverage: 1},
		{Total: 0.6, MaxTotal: 0.97, CPUs: 1, Coverage: 1},
	}}
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, err := runs.ReadPoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"client-node CPU saturated: a sampling interval reached 1.00 of 1 CPU (bound 0.98)"}
	if len(pts) != 2 || pts[0].Valid || !slices.Equal(pts[0].InvalidReasons, want) || !pts[1].Valid {
		t.Errorf("points %+v, want the first invalid with %q and the second valid", pts, want)
	}
}

// nodeFigures fills each window's node CPU with the next of figs.
type nodeFigures struct {
	figs []runs.NodeCPU
	n    int
}

func (o *nodeFigures) Begin(context.Context, string) (collector.Window, error) {
	o.n++
	return figureWindow(o.figs[o.n-1]), nil
}

type figureWindow runs.NodeCPU

func (w figureWindow) End(_ context.Context, _ collector.Load, p *runs.Point) error {
	p.CPU.Node = runs.NodeCPU(w)
	return nil
}
