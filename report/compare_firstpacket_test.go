package report

import (
	"math/rand/v2"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// withFirstPacket gives every point of the reference a kernel time to
// first packet: 12 µs plus 9 ns per rule walked in iptables mode, with a
// seeded 4% noise (the spread of a 5 s window's median on the lab).
func withFirstPacket(seed uint64, iptablesFactor float64) func(p *runs.Point) bool {
	rng := rand.New(rand.NewPCG(seed, 7))
	return func(p *runs.Point) bool {
		us := 12.0
		if p.Mode == scenarios.ModeIPTables {
			us += 0.009 * float64(p.Services+1)
			us *= iptablesFactor
		}
		us *= 1 + 0.04*rng.NormFloat64()
		p.FirstPacket = &runs.FirstPacket{Span: "SYN_SENT → net_dev_queue", Connections: 5000, ClientConnections: 5000,
			P01Us: us * 0.8, P10Us: us * 0.9, P50Us: us, P90Us: us * 1.2, P99Us: us * 2, MeanUs: us * 1.1}
		return true
	}
}

// TestGateOnFirstPacket: a scenario may gate on the kernel time to first
// packet. Against a second run of the same noise level it passes; with
// every iptables window's kernel time 30% longer it fails on the iptables
// rows of that metric, and only there.
func TestGateOnFirstPacket(t *testing.T) {
	ref := reference(t)
	gate := func(r *runs.Run) { r.Scenario.Spec.Gate = &scenarios.Gate{Metrics: []string{"first-packet"}} }
	base := derive(t, ref, gate, withFirstPacket(1, 1))
	again := derive(t, ref, gate, withFirstPacket(2, 1))
	slower := derive(t, ref, gate, withFirstPacket(3, 1.3))
	metrics, err := LookupMetrics([]string{"first-packet"})
	if err != nil {
		t.Fatal(err)
	}
	same, err := Compare(base, again, CompareOptions{Metrics: metrics, Threshold: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if same.GateTests != 4 || same.ExitCode() != ExitPass {
		t.Fatalf("A/A on first-packet: %d gated rows, exit %d\n%s", same.GateTests, same.ExitCode(), text(t, same))
	}
	c, err := Compare(base, slower, CompareOptions{Metrics: metrics, Threshold: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if c.ExitCode() != ExitFail || c.Regressions != 2 {
		t.Fatalf("iptables +30%%: exit %d, %d regressions\n%s", c.ExitCode(), c.Regressions, text(t, c))
	}
	for _, r := range c.Rows {
		if r.Verdict == VerdictRegression && (r.key.Mode != scenarios.ModeIPTables || r.Metric != "first-packet") {
			t.Errorf("%s %s regresses", r.Condition, r.Metric)
		}
	}
}

// withKernelSpread gives every point a kernel time to first packet whose
// median and p01 vary between windows as the lab's A/A runs measured at
// 2,000 Services (kpbench 18d16a6, six runs of `aa`: the median's CV
// across repetitions 10–14%, the p01's 0.9–1.8%), each with its own
// seeded noise; iptablesFactor scales the iptables windows.
func withKernelSpread(seed uint64, iptablesFactor float64) func(p *runs.Point) bool {
	rng := rand.New(rand.NewPCG(seed, 11))
	return func(p *runs.Point) bool {
		us := 12.0
		if p.Mode == scenarios.ModeIPTables {
			us += 0.009 * float64(p.Services+1)
			us *= iptablesFactor
		}
		p50 := us * (1 + 0.12*rng.NormFloat64())
		p01 := 0.8 * us * (1 + 0.014*rng.NormFloat64())
		p.FirstPacket = &runs.FirstPacket{Span: "SYN_SENT → net_dev_queue", Connections: 5000, ClientConnections: 5000,
			P01Us: p01, P10Us: 0.9 * p50, P50Us: p50, P90Us: 1.2 * p50, P99Us: 2 * p50, MeanUs: 1.1 * p50}
		return true
	}
}

// TestGateOnFirstPacketP01: the kernel's p01 is the walk with the least
// interference, and its spread between windows is a tenth of the
// median's; a gate on it catches iptables 10% slower at a 5% threshold
// on the reference's repetitions, and passes an A/A.
func TestGateOnFirstPacketP01(t *testing.T) {
	ref := reference(t)
	gate := func(r *runs.Run) { r.Scenario.Spec.Gate = &scenarios.Gate{Metrics: []string{"first-packet-p01"}} }
	base := derive(t, ref, gate, withKernelSpread(1, 1))
	again := derive(t, ref, gate, withKernelSpread(2, 1))
	slower := derive(t, ref, gate, withKernelSpread(3, 1.1))
	metrics, err := LookupMetrics([]string{"first-packet-p01"})
	if err != nil {
		t.Fatal(err)
	}
	same, err := Compare(base, again, CompareOptions{Metrics: metrics, Threshold: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	if same.GateTests != 4 || same.ExitCode() != ExitPass {
		t.Fatalf("A/A on first-packet-p01: %d gated rows, exit %d\n%s", same.GateTests, same.ExitCode(), text(t, same))
	}
	c, err := Compare(base, slower, CompareOptions{Metrics: metrics, Threshold: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	if c.ExitCode() != ExitFail || c.Regressions != 2 {
		t.Fatalf("iptables +10%% on first-packet-p01: exit %d, %d regressions\n%s", c.ExitCode(), c.Regressions, text(t, c))
	}
	for _, r := range c.Rows {
		if r.Verdict == VerdictRegression && (r.key.Mode != scenarios.ModeIPTables || r.Metric != "first-packet-p01") {
			t.Errorf("%s %s regresses", r.Condition, r.Metric)
		}
	}
}
