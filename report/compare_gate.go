package report

import (
	"fmt"
	"math"
	"strings"

	"github.com/kpbench/kpbench/runs"
)

// Causes of lost points (see Lost).
const (
	CauseDataplane = "dataplane"
	CauseRunner    = "runner"
	// CauseSync: kube-proxy rewrote its rules inside the window (a sync,
	// a chain reorder). That is the dataplane's doing but not a cost per
	// connection: when it falls inside a window is the timing of
	// kube-proxy's sync period against the schedule's. It makes the
	// comparison inconclusive, like the runner's causes, and is named
	// apart; a kube-proxy that syncs far more often shows as a rise in
	// the share of invalid points, which fails.
	CauseSync = "kube-proxy sync"
)

// runnerReasons are the invalid reasons that say the measuring side could
// not do its job; syncReasons those of kube-proxy rewriting its rules
// inside the window. Any other reason (request errors, kube-proxy not
// running, the wrong mode, or one this build does not know) is held
// against the dataplane.
var (
	runnerReasons = []string{
		runs.ReasonScheduleBehind, runs.ReasonNoCPUSample, runs.ReasonInflightBound,
		runs.ReasonNotSent, runs.ReasonAborted, runs.ReasonRateShort, runs.ReasonInterrupted,
		runs.ReasonCPUSaturated, runs.ReasonCPUCoverage,
	}
	syncReasons = []string{runs.ReasonSynced, runs.ReasonReordered}
)

// reasonCause says who lost a point with invalid reason r.
func reasonCause(r string) string {
	for _, rr := range runnerReasons {
		if strings.HasPrefix(r, rr) {
			return CauseRunner
		}
	}
	for _, rr := range syncReasons {
		if strings.HasPrefix(r, rr) {
			return CauseSync
		}
	}
	return CauseDataplane
}

// worseCause is the cause a condition's loss is put down to when its
// points name a and b: the dataplane's over any, a sync's over the
// runner's.
func worseCause(a, b string) string {
	rank := map[string]int{CauseRunner: 0, CauseSync: 1, CauseDataplane: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// testGate tests the gated rows: each the one-sided threshold test, the
// family under Holm's correction, each row's interval at the level its
// verdict used. It returns the family's size.
func (c *Comparison) testGate() int {
	var idx []int
	var ps []float64
	minP := map[int]float64{}
	for i := range c.Rows {
		r := &c.Rows[i]
		if r.Family != FamilyGate || !r.tested {
			continue
		}
		a, b := r.Base.Values, r.New.Values
		if m, _ := lookupMetric(r.Metric); !m.HigherIsWorse {
			a, b = b, a
		}
		r.P = ratioAbove(a, b, 1+c.Threshold)
		minP[i] = minOneSidedP(len(a), len(b))
		if _, ok := logRatios(a, b); !ok {
			minP[i] = 1 // a value that is not positive: no ratio to test
		}
		idx, ps = append(idx, i), append(ps, r.P)
	}
	reject, level := stepDownLevels(ps, Alpha)
	adj := Holm(ps)
	for j, i := range idx {
		r := &c.Rows[i]
		r.PAdjusted, r.Level, r.Significant = adj[j], level[j], reject[j]
		a, b := r.Base.Values, r.New.Values
		higherWorse := true
		if m, _ := lookupMetric(r.Metric); !m.HigherIsWorse {
			a, b, higherWorse = b, a, false
		}
		d, _ := logRatios(r.Base.Values, r.New.Values)
		r.Change = ShiftCI{Est: math.NaN(), Lo: math.Inf(-1), Hi: math.Inf(1)}
		if len(d) > 0 {
			r.Change.Est = math.Expm1(sortedMedian(d))
		}
		if lb := ratioLowerBound(a, b, level[j]); higherWorse {
			r.Change.Lo, r.Change.OK = lb, !math.IsInf(lb, -1)
		} else {
			r.Change.Hi, r.Change.OK = 1/(1+lb)-1, !math.IsInf(lb, -1)
		}
		r.Underpowered = minP[i] > Alpha/float64(len(ps))
		switch {
		case r.Significant:
			r.Verdict = VerdictRegression
			c.Regressions++
		case r.Underpowered:
			r.Verdict = VerdictInconclusive
			c.Inconclusive++
		default:
			r.Verdict = VerdictPass
		}
	}
	return len(ps)
}

// testDescriptive tests every descriptive row for a change either way,
// Holm's correction over their family, each interval at the level its
// verdict used. It returns the family's size.
func (c *Comparison) testDescriptive() int {
	var idx []int
	var ps []float64
	for i := range c.Rows {
		r := &c.Rows[i]
		switch {
		case r.Family == "":
			r.Verdict = VerdictUntested
			continue
		case r.Family != FamilyDescriptive:
			continue
		case !r.tested:
			r.Verdict = VerdictSame
			continue
		}
		r.P, _ = ratioTwoSided(r.Base.Values, r.New.Values, Alpha)
		idx, ps = append(idx, i), append(ps, r.P)
	}
	reject, level := stepDownLevels(ps, Alpha)
	adj := Holm(ps)
	for j, i := range idx {
		r := &c.Rows[i]
		r.PAdjusted, r.Level, r.Significant = adj[j], level[j], reject[j]
		_, r.Change = ratioTwoSided(r.Base.Values, r.New.Values, level[j])
		r.Underpowered = !r.Significant && float64(len(ps))*minMannWhitneyP(r.Base.N, r.New.N) >= Alpha
		m, _ := lookupMetric(r.Metric)
		worse, better := r.Change.Lo > c.Threshold, r.Change.Hi < -c.Threshold
		if !m.HigherIsWorse {
			worse, better = r.Change.Hi < -c.Threshold, r.Change.Lo > c.Threshold
		}
		switch {
		case !r.Significant:
			r.Verdict = VerdictSame
		case worse:
			r.Verdict = VerdictWorse
		case better:
			r.Verdict = VerdictImprovement
		default:
			r.Verdict = VerdictWithin
		}
	}
	return len(ps)
}

// gateRepetitionsFor is the smallest number of repetitions per side with
// which a one-sided Mann-Whitney test can reach Alpha/tests.
func gateRepetitionsFor(tests int) int {
	tests = max(tests, 1)
	for n := 1; n < 50; n++ {
		if minOneSidedP(n, n) <= Alpha/float64(tests) {
			return n
		}
	}
	return 50
}

// invalidShare compares the share of invalid points over the compared
// conditions; a significant rise (one-sided Fisher exact test at Alpha)
// sets c.InvalidRise. It returns the notes a reader needs.
func (c *Comparison) invalidShare(common []runs.Key, baseGroups, nextGroups map[runs.Key]*group, lost map[runs.Key]*Lost) []string {
	var bInv, bAll, nInv, nAll, outside int
	for _, k := range common {
		if g := baseGroups[k]; g != nil {
			bInv, bAll = bInv+g.Invalid, bAll+len(g.Points)
			outside += g.Invalid
		}
		if g := nextGroups[k]; g != nil {
			nInv, nAll = nInv+g.Invalid, nAll+len(g.Points)
			if lost[k] == nil {
				outside += g.Invalid
			}
		}
	}
	var notes []string
	if outside > 0 {
		notes = append(notes, fmt.Sprintf("%d invalid points (outside the lost conditions) were left out of the comparison", outside))
	}
	if nInv == 0 || bAll == 0 || nAll == 0 {
		return notes
	}
	if p := fisherGreater(nInv, nAll, bInv, bAll); p < Alpha {
		c.InvalidRise = fmt.Sprintf("invalid points rose from %d of %d to %d of %d (one-sided Fisher exact test, p=%s)", bInv, bAll, nInv, nAll, formatP(p))
	}
	return notes
}

// fisherGreater is the one-sided p-value of Fisher's exact test that the
// share x1/n1 exceeds x2/n2: the probability, with the margins fixed, of
// x1 or more in the first sample.
func fisherGreater(x1, n1, x2, n2 int) float64 {
	k, n := x1+x2, n1+n2
	lc := func(a, b int) float64 {
		la, _ := math.Lgamma(float64(a + 1))
		lb, _ := math.Lgamma(float64(b + 1))
		lab, _ := math.Lgamma(float64(a - b + 1))
		return la - lb - lab
	}
	total := lc(n, k)
	p := 0.0
	for x := x1; x <= min(k, n1); x++ {
		if k-x > n2 {
			continue
		}
		p += math.Exp(lc(n1, x) + lc(n2, k-x) - total)
	}
	return math.Min(1, p)
}
