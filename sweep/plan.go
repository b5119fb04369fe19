package sweep

import (
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand/v2"
	"time"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// plannedPoint is one point of a run's plan.
type plannedPoint struct {
	Mode       scenarios.Mode
	Services   int
	RPC        int
	Placement  scenarios.Targets
	Repetition int
	// Sequence is the point's position in the plan, from 1.
	Sequence int
	ID       string
}

// cell is one (connection variant, placement) of a (mode, step,
// repetition).
type cell struct {
	rpc       int
	placement scenarios.Targets
}

// plan is the whole run of sc over modes, in the order it is measured, as
// a pure function of the seed: a run and its resumes compute the same plan
// from the seed in run.json (runs.Design).
//
// Under order steps the run is a sequence of repetitions (blocks); in each,
// the Service steps come in a random permutation, at each step the modes
// in a random order, and within each (mode, step) the connection variants
// and placements in a random order. Under order modes each mode (in the
// order listed) climbs through every step, repetition after repetition,
// and only the variants and placements within each (mode, step,
// repetition) are shuffled.
//
// The permutations use the PCG generator of math/rand/v2, whose output a
// seed fixes, and a shuffle of this file's own, so that a plan does not
// change with the Go release kpbench is built with.
func plan(seed int64, sc *scenarios.Scenario, modes []scenarios.Mode) []plannedPoint {
	sp := &sc.Spec
	r := mrand.NewPCG(uint64(seed), 0x6b7062656e6368) // "kpbench"
	var cells []cell
	for _, rpc := range sp.Load.RequestsPerConn {
		for _, pl := range sp.Load.Targets {
			cells = append(cells, cell{rpc, pl})
		}
	}
	var out []plannedPoint
	emit := func(mode scenarios.Mode, n, rep int) {
		for _, i := range perm(r, len(cells)) {
			c := cells[i]
			out = append(out, plannedPoint{Mode: mode, Services: n, RPC: c.rpc, Placement: c.placement, Repetition: rep,
				Sequence: len(out) + 1, ID: runs.SpecPointID(sp, mode, n, c.rpc, c.placement, rep)})
		}
	}
	if byModes(sp) {
		for _, mode := range modes {
			for _, n := range sp.Services {
				for rep := 1; rep <= sp.Repetitions; rep++ {
					emit(mode, n, rep)
				}
			}
		}
		return out
	}
	for rep := 1; rep <= sp.Repetitions; rep++ {
		for _, si := range perm(r, len(sp.Services)) {
			for _, mi := range perm(r, len(modes)) {
				emit(modes[mi], sp.Services[si], rep)
			}
		}
	}
	return out
}

// byModes says whether sp runs one mode at a time: order modes, or no
// order at all (a run.json written before spec.order existed).
func byModes(sp *scenarios.Spec) bool {
	return sp.Order == scenarios.OrderModes || sp.Order == ""
}

// perm returns a random permutation of 0..n-1 (Fisher-Yates).
func perm(r *mrand.PCG, n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := bounded(r, uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// bounded returns a uniform integer in [0, n), rejecting the draws that
// would bias the modulo.
func bounded(r *mrand.PCG, n uint64) int {
	limit := ^uint64(0) - (^uint64(0)%n+1)%n
	for {
		if v := r.Uint64(); v <= limit {
			return int(v % n)
		}
	}
}

// drawSeed draws a run's seed when the scenario sets none.
var drawSeed = func() int64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return time.Now().UnixNano()
	}
	return int64(binary.LittleEndian.Uint64(b[:]) >> 1)
}
