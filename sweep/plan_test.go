package sweep

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

func parseSpec(t *testing.T, spec string) *scenarios.Scenario {
	t.Helper()
	s, err := scenarios.Parse([]byte("apiVersion: kpbench.io/v1alpha1\nkind: Scenario\nmetadata:\n  name: t\nspec:\n" + spec))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const specPlan = "  modes: [iptables, ipvs, nftables]\n  services: [1, 10, 100]\n  load:\n    requestsPerConn: [1, 100]\n    targets: [deepest, shallowest]\n  repetitions: 3\n"

type planKey struct {
	mode      scenarios.Mode
	n, rpc    int
	placement scenarios.Targets
	rep       int
}

// TestPlanCoversEveryPointOnce: in both orders the plan is a permutation
// of every (mode, step, variant, placement, repetition), numbered 1..N in
// order, each with the ID the scenario gives it.
func TestPlanCoversEveryPointOnce(t *testing.T) {
	for _, order := range []string{"steps", "modes"} {
		sc := parseSpec(t, specPlan+"  order: "+order+"\n")
		pl := plan(42, sc, sc.Spec.Modes)
		if want := 3 * 3 * 2 * 2 * 3; len(pl) != want || len(pl) != len(sc.Spec.Modes)*sc.PointsPerMode() {
			t.Fatalf("%s: %d points, want %d", order, len(pl), want)
		}
		seen := map[planKey]bool{}
		ids := map[string]bool{}
		for i, pp := range pl {
			k := planKey{pp.Mode, pp.Services, pp.RPC, pp.Placement, pp.Repetition}
			if seen[k] || ids[pp.ID] {
				t.Errorf("%s: %+v planned twice", order, k)
			}
			seen[k], ids[pp.ID] = true, true
			if pp.Sequence != i+1 {
				t.Errorf("%s: point %d has sequence %d", order, i+1, pp.Sequence)
			}
			if want := runs.PlacementPointID(pp.Mode, pp.Services, pp.RPC, pp.Placement, pp.Repetition); pp.ID != want {
				t.Errorf("%s: ID %s, want %s", order, pp.ID, want)
			}
		}
		for _, m := range sc.Spec.Modes {
			for _, n := range sc.Spec.Services {
				for _, rpc := range sc.Spec.Load.RequestsPerConn {
					for _, p := range sc.Spec.Load.Targets {
						for rep := 1; rep <= 3; rep++ {
							if !seen[planKey{m, n, rpc, p, rep}] {
								t.Errorf("%s: %s/%d/%d/%s/r%d not planned", order, m, n, rpc, p, rep)
							}
						}
					}
				}
			}
		}
	}
	// One placement keeps the IDs of older runs.
	sc := parseSpec(t, "  modes: [iptables]\n  services: [1]\n  load:\n    requestsPerConn: [1]\n    targets: deepest\n")
	if pl := plan(1, sc, sc.Spec.Modes); len(pl) != 1 || pl[0].ID != "iptables-s00001-rpc1-r1" || pl[0].Placement != scenarios.TargetsDeepest {
		t.Errorf("single-placement plan %+v", pl)
	}
}

func planIDs(pl []plannedPoint) []string {
	var out []string
	for _, pp := range pl {
		out = append(out, pp.ID)
	}
	return out
}

func TestPlanIsAFunctionOfTheSeed(t *testing.T) {
	sc := parseSpec(t, specPlan)
	a, b := planIDs(plan(7, sc, sc.Spec.Modes)), planIDs(plan(7, sc, sc.Spec.Modes))
	if !reflect.DeepEqual(a, b) {
		t.Error("the same seed gave two plans")
	}
	distinct := map[string]bool{}
	for seed := int64(0); seed < 20; seed++ {
		distinct[strings.Join(planIDs(plan(seed, sc, sc.Spec.Modes)), " ")] = true
	}
	if len(distinct) != 20 {
		t.Errorf("20 seeds gave %d distinct plans", len(distinct))
	}
}

// TestStepsPlanGivesNoModeABlock: under order steps the repetitions are
// contiguous blocks, each visiting every step and mode; within them the
// steps, the modes at a step and the placements within a (mode, step) come
// in every order about equally often, over many seeds.
func TestStepsPlanGivesNoModeABlock(t *testing.T) {
	sc := parseSpec(t, "  modes: [iptables, nftables]\n  services: [1, 10, 100]\n  load:\n    requestsPerConn: [1]\n    targets: [deepest, shallowest]\n  repetitions: 4\n")
	const seeds = 2000
	var groups, iptFirst, runFirstIpt, deepFirst, cells int
	firstStep := map[int]int{}
	for seed := int64(0); seed < seeds; seed++ {
		pl := plan(seed, sc, sc.Spec.Modes)
		if pl[0].Mode == scenarios.ModeIPTables {
			runFirstIpt++
		}
		firstStep[pl[0].Services]++
		for i, pp := range pl {
			if i > 0 && pp.Repetition < pl[i-1].Repetition {
				t.Fatalf("seed %d: repetition %d after %d: repetitions are not contiguous", seed, pp.Repetition, pl[i-1].Repetition)
			}
			newStep := i == 0 || pp.Services != pl[i-1].Services || pp.Repetition != pl[i-1].Repetition
			if newStep {
				groups++
				if pp.Mode == scenarios.ModeIPTables {
					iptFirst++
				}
			}
			if newStep || pp.Mode != pl[i-1].Mode {
				cells++
				if pp.Placement == scenarios.TargetsDeepest {
					deepFirst++
				}
			}
		}
		// Each (repetition, step) holds both modes' points, each mode's
		// contiguous: 2 cells per step, 3 steps, 4 repetitions.
		if want := 4 * 3 * 2; cells != int(seed+1)*want {
			t.Fatalf("seed %d: %d (mode, step, repetition) runs so far, want %d: a mode's points at a step are split", seed, cells, int(seed+1)*want)
		}
	}
	near := func(name string, k, n int, p float64) {
		if f := float64(k) / float64(n); f < p-0.04 || f > p+0.04 {
			t.Errorf("%s: %.3f, want about %.2f", name, f, p)
		}
	}
	near("iptables first at a step", iptFirst, groups, 0.5)
	near("iptables first in the run", runFirstIpt, seeds, 0.5)
	near("deepest first in a (mode, step, repetition)", deepFirst, cells, 0.5)
	for _, n := range sc.Spec.Services {
		near(fmt.Sprintf("step %d first in the run", n), firstStep[n], seeds, 1.0/3)
	}
}

// TestModesPlanKeepsModeBlocks: under order modes each mode, in the order
// listed, climbs the steps, repetition after repetition; only the variants
// and placements within a (mode, step, repetition) are shuffled.
func TestModesPlanKeepsModeBlocks(t *testing.T) {
	sc := parseSpec(t, specPlan+"  order: modes\n")
	pl := plan(3, sc, sc.Spec.Modes)
	per := 2 * 2 // variants × placements
	for i, pp := range pl {
		block := i / per
		rep := block%3 + 1
		n := sc.Spec.Services[block/3%3]
		m := sc.Spec.Modes[block/9]
		if pp.Mode != m || pp.Services != n || pp.Repetition != rep {
			t.Fatalf("point %d is %s, want %s at %d, repetition %d", i+1, pp.ID, m, n, rep)
		}
	}
	orders := map[string]bool{}
	for seed := int64(0); seed < 50; seed++ {
		orders[strings.Join(planIDs(plan(seed, sc, sc.Spec.Modes)[:per]), " ")] = true
	}
	if len(orders) < 10 {
		t.Errorf("the first (mode, step, repetition) came in %d orders over 50 seeds, want most of the 24", len(orders))
	}
}

const specDesign = "  modes: [iptables, ipvs, nftables]\n  services: [1, 10]\n  load:\n    duration: 1s\n    warmup: 0s\n    requestsPerConn: [1, 100]\n    targets: [deepest, shallowest]\n  repetitions: 3\n"

// runnablePlan is the plan of run's recorded seed without the fake's ipvs.
func runnablePlan(run *runs.Run) []plannedPoint {
	var out []plannedPoint
	for _, pp := range plan(run.Design.Seed, &run.Scenario, run.Scenario.Spec.Modes) {
		if pp.Mode != scenarios.ModeIPVS {
			out = append(out, pp)
		}
	}
	return out
}

// TestRunFollowsThePlanAndSwitchesOnlyWhenNeeded: the engine measures the
// plan's points in order, each with its sequence and placement, switches
// kube-proxy's mode only where the next point needs another mode and
// scales only where it needs another step (or a new kube-proxy must
// program it); run.json records the design.
func TestRunFollowsThePlanAndSwitchesOnlyWhenNeeded(t *testing.T) {
	for seed := int64(1); seed <= 6; seed++ {
		e, run, dir, fc, _, events := setup(t, specDesign)
		run.Scenario.Spec.Seed = &seed
		var progress []string
		e.Progress = func(done, total int, id string) {
			progress = append(progress, fmt.Sprintf("%d/%d %s", done, total, id))
		}
		if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
			t.Fatal(err)
		}
		back, err := runs.ReadRun(dir)
		if err != nil {
			t.Fatal(err)
		}
		d := back.Design
		if d == nil || d.Seed != seed || d.SeedFrom != runs.SeedFromSpec || d.Order != scenarios.OrderSteps || d.Unit != runs.UnitRepetition ||
			!reflect.DeepEqual(d.Placements, []scenarios.Targets{scenarios.TargetsDeepest, scenarios.TargetsShallowest}) {
			t.Fatalf("design %+v", d)
		}
		want := runnablePlan(back)
		pts, _ := runs.ReadPoints(dir)
		if len(pts) != len(want) || len(pts) != 2*2*2*2*3 {
			t.Fatalf("%d points, want %d", len(pts), len(want))
		}
		// Progress counts every placement: 48 points in the two modes
		// the fake can run.
		if len(progress) != len(want) || progress[len(progress)-1] != fmt.Sprintf("%d/%d %s", len(want), len(want), want[len(want)-1].ID) {
			t.Errorf("seed %d: progress %v", seed, progress)
		}
		for i, p := range pts {
			pp := want[i]
			if p.ID != pp.ID || p.Sequence != pp.Sequence || p.Targets != pp.Placement || p.Repetition != pp.Repetition {
				t.Errorf("seed %d: point %d is %s (seq %d, %s), plan says %s (seq %d)", seed, i+1, p.ID, p.Sequence, p.Targets, pp.ID, pp.Sequence)
			}
		}
		// The events the plan calls for: scale down to the first step
		// before entering the first mode, then a switch at every change
		// of mode and a scale at every change of mode or step.
		wantEv := []string{"scale 1"}
		for i, pp := range want {
			if i == 0 || pp.Mode != want[i-1].Mode {
				wantEv = append(wantEv, "mode "+string(pp.Mode))
			}
			if i == 0 || pp.Mode != want[i-1].Mode || pp.Services != want[i-1].Services {
				wantEv = append(wantEv, fmt.Sprintf("scale %d", pp.Services))
			}
		}
		if got := scaleAndModeEvents(*events); !reflect.DeepEqual(got, wantEv) {
			t.Errorf("seed %d: scale/mode events\n%v\nwant\n%v", seed, got, wantEv)
		}
		switches := strings.Count(strings.Join(wantEv, ","), "mode ")
		if len(fc.setModes) != switches || switches >= len(want) {
			t.Errorf("seed %d: %d mode switches, want %d", seed, len(fc.setModes), switches)
		}
	}
}

// TestResumeContinuesThePlan: a run without spec.seed draws one and
// records it; resumed from run.json, it continues the same plan (the seed
// is not drawn again), measuring each missing point once, in the plan's
// order.
func TestResumeContinuesThePlan(t *testing.T) {
	defer func(f func() int64) { drawSeed = f }(drawSeed)
	draws := int64(1000)
	drawSeed = func() int64 { draws++; return draws }

	e, run, dir, _, fl, _ := setup(t, specDesign)
	ctx, cancel := context.WithCancel(context.Background())
	fl.onRun = func(ctx context.Context, n int) error {
		if n == 7 {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	if err := e.Run(ctx, &runs.Record{Dir: dir, Run: run}); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("err = %v, want ErrInterrupted", err)
	}
	recorded, err := runs.ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if recorded.Design == nil || recorded.Design.Seed != 1001 || recorded.Design.SeedFrom != runs.SeedFromDrawn {
		t.Fatalf("design %+v, want the drawn seed 1001", recorded.Design)
	}
	e2, _, _, _, fl2, _ := setup(t, specDesign)
	if err := e2.Run(context.Background(), &runs.Record{Dir: dir, Run: recorded}); err != nil {
		t.Fatal(err)
	}
	if draws != 1001 || recorded.Design.Seed != 1001 {
		t.Errorf("the resume drew a seed: draws %d, seed %d", draws, recorded.Design.Seed)
	}
	want := runnablePlan(recorded)
	if fl2.runs != len(want)-6 {
		t.Errorf("resume measured %d points, want the %d missing", fl2.runs, len(want)-6)
	}
	pts, _ := runs.ReadPoints(dir)
	if got := len(pts); got != len(want) {
		t.Fatalf("%d points after the resume, want %d", got, len(want))
	}
	for i, p := range pts {
		if p.ID != want[i].ID || p.Sequence != want[i].Sequence {
			t.Errorf("point %d is %s (seq %d), plan says %s (seq %d)", i+1, p.ID, p.Sequence, want[i].ID, want[i].Sequence)
		}
	}
}

// TestPlacementsTakeTurnsAtTheirDepths: with a list of placements each
// point goes to its own placement's Service, read from the chain at its
// step, and records its depth.
func TestPlacementsTakeTurnsAtTheirDepths(t *testing.T) {
	chain := kubeServices(3, 5, 1, 4, 2) // svc3 at depth 1, svc2 at depth 5
	d := &scriptedDepth{script: []string{chain}}
	e, run, dir, ul := depthSetup(t, "  modes: [iptables]\n  services: [5]\n  load:\n    duration: 1s\n    warmup: 0s\n    requestsPerConn: [1]\n    targets: [deepest, shallowest]\n  repetitions: 4\n", d)
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, _ := runs.ReadPoints(dir)
	if len(pts) != 8 || len(ul.measured) != 8 {
		t.Fatalf("%d points, %d loads, want 8", len(pts), len(ul.measured))
	}
	want := map[scenarios.Targets]struct {
		url   string
		depth float64
	}{scenarios.TargetsDeepest: {"http://198.19.0.2:80/", 5}, scenarios.TargetsShallowest: {"http://198.19.0.3:80/", 1}}
	count := map[scenarios.Targets]int{}
	for i, p := range pts {
		w, ok := want[p.Targets]
		if !ok {
			t.Fatalf("point %s has placement %q", p.ID, p.Targets)
		}
		count[p.Targets]++
		if !strings.Contains(p.ID, "-"+string(p.Targets)+"-") {
			t.Errorf("point %s does not name its placement", p.ID)
		}
		if !reflect.DeepEqual(ul.measured[i], []string{w.url}) || p.Depth == nil || p.Depth.Before.Mean != w.depth {
			t.Errorf("point %s sent to %v at depth %+v, want %s at %g", p.ID, ul.measured[i], p.Depth, w.url, w.depth)
		}
	}
	if count[scenarios.TargetsDeepest] != 4 || count[scenarios.TargetsShallowest] != 4 {
		t.Errorf("placements %v, want 4 each", count)
	}
}
