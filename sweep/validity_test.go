package sweep

import (
	"context"
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
	const reason = runs.ReasonScheduleBehind + ": a send started 199 ms late (bound 100ms: a longer gap is a client stall, not jitter)"
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
