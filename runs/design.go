package runs

import "github.com/kpbench/kpbench/scenarios"

// Design is the run's experimental design, fixed when it starts and kept
// by every resume: the order, the seed of its random permutations (so the
// plan can be computed again), the placements, and the unit a report must
// treat as independent.
type Design struct {
	Order scenarios.Order `json:"order"`
	Seed  int64           `json:"seed"`
	// SeedFrom is "spec.seed" when the scenario fixed the seed, "drawn"
	// when the run drew it at its start.
	SeedFrom   string              `json:"seedFrom,omitempty"`
	Placements []scenarios.Targets `json:"placements"`
	// Unit is the independent unit of every interval and test: UnitRepetition
	// under order steps, UnitModeBlock under order modes.
	Unit string `json:"unit"`
}

// The independent units a design can have.
const (
	// UnitRepetition: under order steps each repetition visits every step
	// and mode in a random order, so repetitions are independent blocks
	// that every mode and step share.
	UnitRepetition = "repetition"
	// UnitModeBlock: under order modes a mode's points share one block of
	// time (one kube-proxy start, one drift), so that block, not the
	// point, is the unit; a comparison between modes has one unit per
	// mode.
	UnitModeBlock = "mode block"
)

// Seed sources for Design.SeedFrom.
const (
	SeedFromSpec  = "spec.seed"
	SeedFromDrawn = "drawn"
)

// NewDesign is the design of a run of sp: its seed is spec.seed when set,
// drawn otherwise.
func NewDesign(sp *scenarios.Spec, drawn int64) *Design {
	d := DesignOf(sp)
	d.Seed, d.SeedFrom = drawn, SeedFromDrawn
	if sp.Seed != nil {
		d.Seed, d.SeedFrom = *sp.Seed, SeedFromSpec
	}
	return d
}

// DesignOf returns the design a scenario implies, without a seed: what a
// run recorded before run.json had a design used (its points were then
// ordered as its spec.order says, not at random).
func DesignOf(sp *scenarios.Spec) *Design {
	d := &Design{Order: sp.Order, Placements: append([]scenarios.Targets(nil), sp.Load.Targets...), Unit: UnitRepetition}
	if d.Order == "" {
		d.Order = scenarios.OrderModes // runs written before spec.order existed ran mode by mode
	}
	if d.Order == scenarios.OrderModes {
		d.Unit = UnitModeBlock
	}
	return d
}

// DesignOrImplied returns r's recorded design, or the one its scenario
// implies for runs recorded before designs were.
func (r *Run) DesignOrImplied() *Design {
	if r.Design != nil {
		return r.Design
	}
	return DesignOf(&r.Scenario.Spec)
}
