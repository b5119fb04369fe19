package report

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// Seeded simulations of the depth contrasts, the interval beside each
// verdict, the one-sided primary and the baseline-subtracted CPU per new
// connection, with block effects like the reference run's (sd 0.6 of the
// within-step noise, and 1.0) and a drift in time. The numbers the tests
// assert are the table in docs/report.md.

// depthSim is one simulated run of the cost per rule.
type depthSim struct {
	order scenarios.Order
	reps  int
	block float64 // block sd, relative to the noise
	drift float64 // ns per point measured, in time order
}

// simSteps are the Service steps of the depth simulations; the deep
// placement walks Services + 1 rules, the shallow one 1.
var simSteps = []int{1, 1000, 3000, 10000}

const (
	simPerRule = 8.0    // true ns per rule
	simNoise   = 4000.0 // within-step noise sd, ns (about 7% of connect p50)
)

// draw returns the run's points: connect p50 of both placements at every
// step and repetition. Under order: modes the steps climb in time and the
// repetitions of a step share its block, the placements alternating
// within each; under order: steps each repetition is a block visiting the
// steps and placements in random order. The drift adds to every point in
// the order it was measured, so under order: modes it climbs with the
// steps.
func (s depthSim) draw(rng *rand.Rand) *Data {
	type slot struct{ step, rep, place int }
	var seq []slot
	blockOf := map[[2]int]float64{}
	if s.order == scenarios.OrderModes {
		for i := range simSteps {
			b := s.block * simNoise * rng.NormFloat64()
			for r := 1; r <= s.reps; r++ {
				blockOf[[2]int{i, r}] = b
				first := r % 2
				seq = append(seq, slot{i, r, first}, slot{i, r, 1 - first})
			}
		}
	} else {
		for r := 1; r <= s.reps; r++ {
			b := s.block * simNoise * rng.NormFloat64()
			var blk []slot
			for i := range simSteps {
				blockOf[[2]int{i, r}] = b
				blk = append(blk, slot{i, r, 0}, slot{i, r, 1})
			}
			rng.Shuffle(len(blk), func(a, c int) { blk[a], blk[c] = blk[c], blk[a] })
			seq = append(seq, blk...)
		}
	}
	pts := make([]runs.Point, 0, len(seq))
	for t, sl := range seq {
		svc := simSteps[sl.step]
		depth, tg := svc+1, scenarios.TargetsDeepest
		if sl.place == 1 {
			depth, tg = 1, scenarios.TargetsShallowest
		}
		y := 60_000 + simPerRule*float64(depth) + blockOf[[2]int{sl.step, sl.rep}] + s.drift*float64(t) + simNoise*rng.NormFloat64()
		r := runs.DepthReading{Mean: float64(depth), Min: depth, Max: depth, ChainLength: svc + 2}
		pts = append(pts, runs.Point{Mode: scenarios.ModeIPTables, Services: svc, RequestsPerConn: 1, Targets: tg,
			Repetition: sl.rep, Valid: true, Connect: runs.Connect{Count: 1000, P50Us: y / 1e3, P01Us: y / 1e3},
			Depth: &runs.Depth{Before: r, After: r, Targets: 1}})
	}
	run := &runs.Run{}
	run.Scenario.Spec.Order = s.order
	return &Data{Run: run, Points: pts, groups: groupPoints(pts)}
}

// TestSimStepContrast: the within-step cost per rule covers the truth
// 93–97% of the time under both orders and both block effects, with a
// drift in time as large as the effect of 2,000 rules over the run; the
// across-step Theil–Sen fit over the deep placement alone (what a run
// without a placement list fits) is biased by that drift under order:
// modes, the within-step estimate is not.
func TestSimStepContrast(t *testing.T) {
	const sims = 1500 // a 95% coverage's standard error is 0.56 points
	for i, tc := range []depthSim{
		{scenarios.OrderSteps, 6, 0.6, 0}, {scenarios.OrderSteps, 6, 1.0, 0},
		{scenarios.OrderModes, 6, 0.6, 0}, {scenarios.OrderModes, 6, 1.0, 0},
		{scenarios.OrderModes, 6, 0.6, 350},
	} {
		rng := rand.New(rand.NewPCG(uint64(40+i), 9))
		hits, n := 0, 0
		var within, across []float64
		for range sims {
			d := tc.draw(rng)
			cs := StepContrasts(d)
			if len(cs) != 1 {
				t.Fatalf("%+v: %d contrasts", tc, len(cs))
			}
			e, ok := cs[0].estimateOf("connect p50")
			if !ok || !e.HasCI {
				t.Fatalf("%+v: no estimate %+v", tc, cs[0])
			}
			n = e.N
			if e.Lo <= simPerRule && simPerRule <= e.Hi {
				hits++
			}
			within = append(within, e.Est)
			var xs, ys []float64
			for _, p := range d.Points {
				if p.Targets == scenarios.TargetsDeepest {
					w, _ := p.RulesWalked()
					xs, ys = append(xs, w), append(ys, p.Connect.P50Us*1e3)
				}
			}
			s, _, _ := TheilSen(xs, ys)
			across = append(across, s)
		}
		c := float64(hits) / sims
		w, a := Summarize(within), Summarize(across)
		t.Logf("order %s, block %.1f, drift %g ns/point: within-step coverage %.1f%% (n = %d units), mean %.2f ns/rule (sd %.2f); across-step mean %.2f",
			tc.order, tc.block, tc.drift, 100*c, n, w.Mean, w.StdDev, a.Mean)
		if c < 0.93 || c > 0.97 {
			t.Errorf("order %s, block %.1f, drift %g: coverage %.1f%%, want 93–97%%", tc.order, tc.block, tc.drift, 100*c)
		}
		if math.Abs(w.Mean-simPerRule) > 4*w.StdDev/math.Sqrt(sims) {
			t.Errorf("order %s, drift %g: within-step estimate biased: mean %.3f, truth %g", tc.order, tc.drift, w.Mean, simPerRule)
		}
		if tc.order == scenarios.OrderModes && tc.drift > 0 && a.Mean-simPerRule < 1 {
			t.Errorf("order modes with drift: across-step mean %.2f, expected the drift's bias above %g", a.Mean, simPerRule)
		}
	}
}

// TestSimVerdictInterval: the Hodges–Lehmann interval printed beside a
// verdict covers the true shift. With independent units (each value its
// own block, as between two runs) it covers 93–97% at 95%, and its exact
// level (1 − 2·P(U ≤ c), 98.9% for 7+7) at Holm's first level over three
// tests. Under order: steps the two modes of a repetition share its block;
// the unpaired interval then covers more than its level (conservative):
// the test asserts it never covers less.
func TestSimVerdictInterval(t *testing.T) {
	const sims = 2000
	const cv = 0.15
	for i, tc := range []struct {
		n      int
		shared bool
		block  float64
		level  float64
		lo, hi float64
	}{
		{6, false, 0.6, Alpha, 0.93, 0.97}, {6, false, 1.0, Alpha, 0.93, 0.97},
		{7, false, 0.6, Alpha / 3, 0.979, 0.999},
		{6, true, 0.6, Alpha, 0.95, 1}, {6, true, 1.0, Alpha, 0.95, 1},
	} {
		rng := rand.New(rand.NewPCG(uint64(60+i), 3))
		hits := 0
		for range sims {
			a, b := make([]float64, tc.n), make([]float64, tc.n)
			for r := range a {
				ba := tc.block * cv * 100 * rng.NormFloat64()
				bb := ba
				if !tc.shared {
					bb = tc.block * cv * 100 * rng.NormFloat64()
				}
				a[r] = 100 + ba + cv*100*rng.NormFloat64()
				b[r] = 130 + bb + cv*100*rng.NormFloat64()
			}
			_, _, lo, hi, _ := shiftTest(a, b, scenarios.DirectionTwoSided, tc.level)
			if lo <= 30 && 30 <= hi {
				hits++
			}
		}
		c := float64(hits) / sims
		exact := 1 - 2*mannWhitneyCDF(tc.n, tc.n)[cdfIndex(mannWhitneyCDF(tc.n, tc.n), tc.level/2)]
		t.Logf("HL shift, %d+%d, block %.1f shared %v, level %.4f (exact confidence %.1f%%): coverage %.1f%%", tc.n, tc.n, tc.block, tc.shared, tc.level, 100*exact, 100*c)
		if c < tc.lo || c > tc.hi {
			t.Errorf("HL shift %d+%d, block %.1f shared %v, level %.4f: coverage %.1f%%, want %.1f–%.1f%%", tc.n, tc.n, tc.block, tc.shared, tc.level, 100*c, 100*tc.lo, 100*tc.hi)
		}
	}
}

// TestSimPrimaryDirection: the primary comparison through Findings, two
// modes with no difference under the randomised design (each repetition
// a block shared by both modes, the modes' order within it random, a
// drift in time): false positives at most 5% two-sided and one-sided.
func TestSimPrimaryDirection(t *testing.T) {
	const sims = 800 // a 5% rate's standard error is 0.8 points
	const cv = 0.15
	for i, tc := range []struct {
		dir   scenarios.Direction
		n     int
		block float64
	}{
		{scenarios.DirectionTwoSided, 6, 0.6}, {scenarios.DirectionGreater, 6, 0.6}, {scenarios.DirectionLess, 6, 0.6},
		{scenarios.DirectionGreater, 4, 1.0},
	} {
		rng := rand.New(rand.NewPCG(uint64(80+i), 5))
		run := &runs.Run{}
		run.Scenario.Spec.Order = scenarios.OrderSteps
		run.Scenario.Spec.Primary = &scenarios.Primary{Metric: "connect", RequestsPerConn: 1, Services: 3000, Direction: tc.dir}
		fp := 0
		for range sims {
			var pts []runs.Point
			t0 := 0
			for r := 1; r <= tc.n; r++ {
				blk := tc.block * cv * rng.NormFloat64()
				modes := []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables}
				rng.Shuffle(2, func(a, b int) { modes[a], modes[b] = modes[b], modes[a] })
				for _, m := range modes {
					v := 100 * math.Exp(blk+0.01*float64(t0)+cv*rng.NormFloat64())
					t0++
					pts = append(pts, runs.Point{Mode: m, Services: 3000, RequestsPerConn: 1, Targets: scenarios.TargetsDeepest,
						Repetition: r, Valid: true, Connect: runs.Connect{Count: 1000, P50Us: v}})
				}
			}
			for _, f := range Findings(&Data{Run: run, Points: pts, groups: groupPoints(pts)}) {
				if f.Primary && f.Significant {
					fp++
				}
			}
		}
		r := float64(fp) / sims
		t.Logf("primary %s, %d+%d, block %.1f: %.1f%% false positives of %d", tc.dir, tc.n, tc.n, tc.block, 100*r, sims)
		if r > 0.05 {
			t.Errorf("primary %s, %d+%d: %.1f%% false positives", tc.dir, tc.n, tc.n, 100*r)
		}
	}
}

// TestSimPerConnection: the baseline-subtracted CPU per new connection's
// interval covers the truth 93–97% of the time; the block effect is shared
// by both variants of a repetition and cancels.
func TestSimPerConnection(t *testing.T) {
	const sims = 2000
	for i, block := range []float64{0.6, 1.0} {
		rng := rand.New(rand.NewPCG(uint64(90+i), 7))
		hits := 0
		for range sims {
			var pts []runs.Point
			for r := 1; r <= 6; r++ {
				blk := block * 0.01 * rng.NormFloat64()
				for _, rpc := range []int{1, 0} {
					cpu := 0.10 + blk + 0.01*rng.NormFloat64()
					p := runs.Point{Mode: scenarios.ModeIPTables, Services: 1000, RequestsPerConn: rpc, Targets: scenarios.TargetsDeepest,
						Repetition: r, Valid: true, DurationSeconds: 10, Requests: 10_000, Rate: runs.Rate{Target: 1000}}
					if rpc == 1 {
						cpu += 0.05 // 50 µs per new connection at 1,000/s
						p.Connect.Count = 10_000
					}
					p.CPU.Node.Total = cpu
					pts = append(pts, p)
				}
			}
			pcs := PerConnections(&Data{Run: &runs.Run{}, Points: pts, groups: groupPoints(pts)})
			if len(pcs) == 1 && pcs[0].Ns.CILo <= 50e3 && 50e3 <= pcs[0].Ns.CIHi {
				hits++
			}
		}
		c := float64(hits) / sims
		t.Logf("CPU per new connection, block %.1f: coverage %.1f%%", block, 100*c)
		if c < 0.93 || c > 0.97 {
			t.Errorf("CPU per new connection, block %.1f: coverage %.1f%%", block, 100*c)
		}
	}
}
