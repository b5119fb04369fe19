// Package churn makes and measures the changes of a churn point
// (spec.churn): the schedule of API writes during the measured window
// (schedule.go), the writes themselves through client-go (writer.go), when
// each reached the client node's rules, kube-proxy's syncs, and what the
// traffic met. docs/churn.md describes what a churn point records.
package churn

import (
	"context"
	"math"
	mrand "math/rand/v2"
	"time"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// Planned is one change of a window's schedule.
type Planned struct {
	// At is when the write is due, from the start of the window.
	At time.Duration
	// Kind is one of the runs.Churn* kinds.
	Kind string
	// Service is the index of the Service the change touches: one of the
	// step's (0..services-1) for the endpoint kinds; past them
	// (services, services+1, ...) for the Services churn creates and
	// deletes.
	Service int
	// Target: the Service is the one the load client sends to.
	Target bool
}

// planStream is the PCG stream of every plan ("churn").
const planStream = 0x636875726e

// Plan is the schedule of one window: floor(rate × window) writes, the
// k-th due at (k + ½)/rate, so that they are evenly spread and none falls
// on the window's edges. It is a pure function of its arguments: a run and
// its resumes, and any Go release, plan the same writes for a point (the
// PCG generator of math/rand/v2 and this package's own draws).
//
// The touched Services are Touched's; the endpoint changes cycle through
// them in that order, skipping those at zero endpoints. Each write that is
// not the second half of an earlier operation draws its operation by the
// weights of spec.Kinds: an endpoint replacement (one write), a Service's
// endpoints to zero (its restore is due spec.Hold later), a Service created
// (its deletion is due spec.Hold later). A second half is written at the
// first free slot at or after its due time; when every touched Service is
// at zero endpoints, the earliest second half is written early instead. Second
// halves that would fall after the window are left to the writer's
// Restore, as are the endpoint replacements, so that the next point finds
// the step as the scaler left it.
//
// target is the index of the target Service, or -1 when the load has no
// single target (targets random). Plan returns nil when there is nothing
// to write: no slot in the window, or no Service the weighted kinds can
// touch.
func Plan(spec scenarios.Churn, services int, target int, window time.Duration, seed uint64) []Planned {
	if spec.Rate <= 0 || services < 1 || window <= 0 {
		return nil
	}
	slots := int(math.Floor(spec.Rate*window.Seconds() + 1e-9))
	if slots < 1 {
		return nil
	}
	r := mrand.NewPCG(seed, planStream)
	touched := Touched(spec, services, target, r)
	var k scenarios.ChurnKinds
	if spec.Kinds != nil {
		k = *spec.Kinds
	}
	weights := []float64{max(k.EndpointReplace, 0), max(k.EndpointsToZero, 0), max(k.ServiceCreate, 0)}
	kinds := []string{runs.ChurnEndpointReplace, runs.ChurnEndpointsToZero, runs.ChurnServiceCreate}
	if len(touched) == 0 {
		weights[0], weights[1] = 0, 0
	}
	if weights[0]+weights[1]+weights[2] <= 0 {
		return nil
	}
	hold := max(1, int(math.Ceil(spec.Hold.D().Seconds()*spec.Rate-1e-9)))

	type second struct {
		due     int
		kind    string
		service int
	}
	var (
		out     = make([]Planned, 0, slots)
		pending []second // in due order: every hold is the same
		zero    = map[int]bool{}
		cursor  int
		created int
	)
	at := func(slot int) time.Duration {
		return time.Duration(math.Round((float64(slot) + 0.5) / spec.Rate * float64(time.Second)))
	}
	emitSecond := func(slot int) {
		s := pending[0]
		pending = pending[1:]
		if s.kind == runs.ChurnEndpointsRestore {
			delete(zero, s.service)
		}
		out = append(out, Planned{At: at(slot), Kind: s.kind, Service: s.service, Target: s.service == target})
	}
	// nextTouched returns the next touched Service not at zero endpoints,
	// in cycle order, and false when every one is at zero.
	nextTouched := func() (int, bool) {
		for range touched {
			svc := touched[cursor%len(touched)]
			cursor++
			if !zero[svc] {
				return svc, true
			}
		}
		return 0, false
	}
	for slot := range slots {
		if len(pending) > 0 && pending[0].due <= slot {
			emitSecond(slot)
			continue
		}
		switch kind := kinds[draw(r, weights)]; kind {
		case runs.ChurnServiceCreate:
			idx := services + created
			created++
			out = append(out, Planned{At: at(slot), Kind: kind, Service: idx})
			pending = append(pending, second{due: slot + hold, kind: runs.ChurnServiceDelete, service: idx})
		default:
			svc, ok := nextTouched()
			if !ok {
				// Every touched Service is at zero, so restores are
				// pending: the earliest second half comes first.
				emitSecond(slot)
				continue
			}
			out = append(out, Planned{At: at(slot), Kind: kind, Service: svc, Target: svc == target})
			if kind == runs.ChurnEndpointsToZero {
				zero[svc] = true
				pending = append(pending, second{due: slot + hold, kind: runs.ChurnEndpointsRestore, service: svc})
			}
		}
	}
	return out
}

// Touched returns the step's Services the endpoint changes touch, in the
// order they cycle through them: max(1, round(fraction × services))
// Services (fewer when the step has fewer to offer). When spec.Target is on
// and there is a target, it is first and the others are drawn from the
// rest; when it is off, the target is never among them. Without a single
// target (target < 0) they are drawn from all.
func Touched(spec scenarios.Churn, services int, target int, r *mrand.PCG) []int {
	if services < 1 {
		return nil
	}
	if target >= services {
		target = -1
	}
	want := max(1, int(math.Round(spec.Fraction*float64(services))))
	var out []int
	if target >= 0 && spec.TargetOn() {
		out = append(out, target)
	}
	// Candidates: every Service but the target, in a random order.
	cands := make([]int, 0, services)
	for i := range services {
		if i != target {
			cands = append(cands, i)
		}
	}
	shuffle(r, cands)
	for _, c := range cands {
		if len(out) >= want {
			break
		}
		out = append(out, c)
	}
	return out
}

// draw picks an index with probability weights[i] / sum(weights).
func draw(r *mrand.PCG, weights []float64) int {
	sum := 0.0
	for _, w := range weights {
		sum += w
	}
	u := float64(r.Uint64()>>11) / (1 << 53) * sum
	last := 0
	for i, w := range weights {
		if w <= 0 {
			continue
		}
		last = i
		if u < w {
			return i
		}
		u -= w
	}
	return last // rounding at the top of the range
}

// shuffle permutes s in place (Fisher-Yates) with r, as sweep/plan.go's
// perm does: the draws, not a library's shuffle, fix the order.
func shuffle(r *mrand.PCG, s []int) {
	for i := len(s) - 1; i > 0; i-- {
		j := bounded(r, uint64(i+1))
		s[i], s[j] = s[j], s[i]
	}
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

// Clock is the time Replay keeps: the wall clock in a run, a fake one in
// tests.
type Clock interface {
	Now() time.Time
	// SleepUntil returns at t, or with ctx's error when it ends first.
	SleepUntil(ctx context.Context, t time.Time) error
}

// WallClock is the real clock.
type WallClock struct{}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }

// SleepUntil sleeps until t or until ctx ends.
func (WallClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Replay applies the plan's changes in order, each at start + its At; a
// change whose time has passed (the writes before it were slow) is applied
// at once, so that the window's writes keep the asked rate on average
// (each change records when it was due, runs.ChurnChange.PlannedAt). It
// returns when every change was applied, or with ctx's error when it ended
// first (the changes not yet applied are not).
func Replay(ctx context.Context, clock Clock, start time.Time, plan []Planned, apply func(context.Context, Planned)) error {
	for _, p := range plan {
		if err := clock.SleepUntil(ctx, start.Add(p.At)); err != nil {
			return err
		}
		apply(ctx, p)
	}
	return nil
}
