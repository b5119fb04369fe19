package runs

import (
	"reflect"
	"testing"

	"github.com/kpbench/kpbench/scenarios"
)

// TestPointIDsRoundTrip: single-placement IDs are those of older runs;
// multi-placement IDs carry the placement; both parse back.
func TestPointIDsRoundTrip(t *testing.T) {
	single := scenarios.Spec{Load: scenarios.Load{Targets: scenarios.Placements{scenarios.TargetsDeepest}}}
	multi := scenarios.Spec{Load: scenarios.Load{Targets: scenarios.Placements{scenarios.TargetsDeepest, scenarios.TargetsShallowest}}}
	if id := SpecPointID(&single, scenarios.ModeIPTables, 2000, 1, scenarios.TargetsDeepest, 3); id != "iptables-s02000-rpc1-r3" {
		t.Errorf("single-placement ID %q, want today's", id)
	}
	id := SpecPointID(&multi, scenarios.ModeNFTables, 2000, 100, scenarios.TargetsShallowest, 4)
	if id != "nftables-s02000-rpc100-shallowest-r4" {
		t.Errorf("placement ID %q", id)
	}
	for _, tc := range []struct {
		id   string
		want PointRef
	}{
		{"iptables-s02000-rpc1-r3", PointRef{Mode: scenarios.ModeIPTables, Services: 2000, RequestsPerConn: 1, Repetition: 3}},
		{id, PointRef{Mode: scenarios.ModeNFTables, Services: 2000, RequestsPerConn: 100, Placement: scenarios.TargetsShallowest, Repetition: 4}},
		{PointID(scenarios.ModeIPVS, 1, 0, 12), PointRef{Mode: scenarios.ModeIPVS, Services: 1, RequestsPerConn: 0, Repetition: 12}},
	} {
		got, err := ParsePointID(tc.id)
		if err != nil || got != tc.want {
			t.Errorf("ParsePointID(%q) = %+v, %v; want %+v", tc.id, got, err, tc.want)
		}
		if got.Placement != "" && PlacementPointID(got.Mode, got.Services, got.RequestsPerConn, got.Placement, got.Repetition) != tc.id ||
			got.Placement == "" && PointID(got.Mode, got.Services, got.RequestsPerConn, got.Repetition) != tc.id {
			t.Errorf("%q does not round-trip", tc.id)
		}
	}
	for _, bad := range []string{"iptables-s02000-rpc1", "iptables-2000-rpc1-r1", "iptables-s02000-rpc1-deeper-r1", "userspace-s1-rpc1-r1", "iptables-s1-rpcx-r1"} {
		if _, err := ParsePointID(bad); err == nil {
			t.Errorf("ParsePointID(%q) accepted it", bad)
		}
	}
	// A placement point survives points.jsonl, keyed by its placement.
	dir := t.TempDir()
	p := samplePoint(4)
	p.ID, p.Targets, p.Sequence = id, scenarios.TargetsShallowest, 17
	if err := AppendPoint(dir, &p); err != nil {
		t.Fatal(err)
	}
	back, err := ReadPoints(dir)
	if err != nil || len(back) != 1 || back[0].ID != id || back[0].Sequence != 17 || back[0].Key().Targets != scenarios.TargetsShallowest {
		t.Errorf("read back %+v, %v", back, err)
	}
	if n := len(PlanIDs(&multi, scenarios.ModeIPTables)); n != 0 {
		t.Errorf("a spec without steps plans %d points", n)
	}
}

// TestDesign: the seed comes from spec.seed when set, else the draw; the
// unit follows the order; runs recorded before designs existed imply one.
func TestDesign(t *testing.T) {
	seed := int64(99)
	sp := scenarios.Spec{Order: scenarios.OrderSteps, Load: scenarios.Load{Targets: scenarios.Placements{scenarios.TargetsDeepest, scenarios.TargetsMedian}}}
	d := NewDesign(&sp, 5)
	if d.Seed != 5 || d.SeedFrom != SeedFromDrawn || d.Unit != UnitRepetition ||
		!reflect.DeepEqual(d.Placements, []scenarios.Targets{scenarios.TargetsDeepest, scenarios.TargetsMedian}) {
		t.Errorf("drawn design %+v", d)
	}
	sp.Seed, sp.Order = &seed, scenarios.OrderModes
	if d := NewDesign(&sp, 5); d.Seed != 99 || d.SeedFrom != SeedFromSpec || d.Unit != UnitModeBlock {
		t.Errorf("spec-seeded design %+v", d)
	}
}

// TestOlderRunStillLoads: a run.json written before designs, placement
// lists and sequences (the report's fixture) reads as it did, and its
// implied design follows its order.
func TestOlderRunStillLoads(t *testing.T) {
	r, err := ReadRun("../report/testdata/sweep")
	if err != nil {
		t.Fatal(err)
	}
	if r.Design != nil || !reflect.DeepEqual(r.Scenario.Spec.Load.Targets, scenarios.Placements{scenarios.TargetsOne}) {
		t.Errorf("design %+v, targets %v", r.Design, r.Scenario.Spec.Load.Targets)
	}
	// It recorded no order: it ran mode by mode.
	if d := r.DesignOrImplied(); r.Scenario.Spec.Order != "" || d.Unit != UnitModeBlock || d.Order != scenarios.OrderModes {
		t.Errorf("implied design %+v for order %q", d, r.Scenario.Spec.Order)
	}
	pts, err := ReadPoints("../report/testdata/sweep")
	if err != nil || len(pts) == 0 {
		t.Fatalf("%d points, %v", len(pts), err)
	}
	for _, p := range pts {
		ref, err := ParsePointID(p.ID)
		if err != nil || ref.Mode != p.Mode || ref.Services != p.Services || ref.RequestsPerConn != p.RequestsPerConn || ref.Repetition != p.Repetition || ref.Placement != "" {
			t.Errorf("%s: %+v, %v", p.ID, ref, err)
		}
	}
}
