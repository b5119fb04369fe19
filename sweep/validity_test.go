package sweep

import (
	"context"
	"strings"
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
	t0 := time.Date(2026, 12, 4, 20, 8, 52, 0, time.UTC)
	sample := func(from, to time.Duration, total float64) collector.Sample {
		return collector.Sample{Start: t0.Add(from), End: t0.Add(to), Seconds: (to - from).Seconds(), Node: collector.Cores{Total: total}}
	}
	// One sample from before the window to after it, its midpoint past
	// the window's end; one after.
	ser := &collector.Series{CPUs: []int{1}, IntervalSeconds: 1,
		Samples: []collector.Sample{sample(time.Second, 24*time.Second, 0.2), sample(24*time.Second, 25*time.Second, 0.3)}}
	ser.Summary = collector.Summary{Start: t0.Add(time.Second), End: t0.Add(25 * time.Second), Mean: collector.Cores{Total: 0.21}}
	res := &collector.PointResult{Series: ser, CPU: ser.Summary.CPU()}
	obs, err := observation(res, t0.Add(2*time.Second), t0.Add(12*time.Second), "", "CPUs 1")
	if err != nil {
		t.Fatalf("observation: %v", err)
	}
	if len(obs.Invalid) != 1 || !strings.HasPrefix(obs.Invalid[0], runs.ReasonNoCPUSample+": no CPU sample inside the load window") {
		t.Errorf("invalid reasons %q", obs.Invalid)
	}
	if obs.NodeCPU.Total != 0.21 || !strings.Contains(obs.NodeCPU.Covers, "not trimmed") {
		t.Errorf("node CPU %+v, want the whole observation's 0.21, labelled untrimmed", obs.NodeCPU)
	}

	// Through the engine: the first point's observation is invalid, the
	// second is not; both are recorded and the run completes.
	e, run, dir, _, _, _ := setup(t, "  modes: [iptables]\n  services: [1]\n  load:\n    duration: 1s\n    requestsPerConn: [1]\n  repetitions: 2\n")
	e.Observer = &invalidOnce{reason: obs.Invalid[0]}
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, err := runs.ReadPoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].Valid || len(pts[0].InvalidReasons) != 1 || pts[0].InvalidReasons[0] != obs.Invalid[0] || !pts[1].Valid {
		t.Errorf("points %+v, want the first invalid with the sampler's reason and the second valid", pts)
	}
}

// invalidOnce's first window is invalid with reason.
type invalidOnce struct {
	reason string
	n      int
}

func (o *invalidOnce) Begin(context.Context, string) (Window, error) {
	o.n++
	var inv []string
	if o.n == 1 {
		inv = []string{o.reason}
	}
	return staticWindow{&Observation{NodeCPU: runs.NodeCPU{Total: 0.3}, Invalid: inv}}, nil
}

type staticWindow struct{ obs *Observation }

func (w staticWindow) End(context.Context) (*Observation, error) { return w.obs, nil }
