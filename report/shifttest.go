package report

import (
	"math"
	"sort"

	"github.com/kpbench/kpbench/scenarios"
)

// The findings' test and the interval printed beside it are one
// procedure: the exact Mann-Whitney test of a shift δ between two samples
// (b − δ against a) and the Hodges–Lehmann interval of the shift, bounded
// by order statistics of the pairwise differences b_j − a_i. The test at
// level α rejects δ = 0 exactly when the interval at level α excludes 0
// (Bauer 1972), so an interval drawn at the level the family's Holm
// correction used cannot contradict the verdict beside it. shift.go does
// the same on log ratios for the gate.

// pairwiseDiffs returns the sorted b_j − a_i.
func pairwiseDiffs(a, b []float64) []float64 {
	d := make([]float64, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			d = append(d, y-x)
		}
	}
	sort.Float64s(d)
	return d
}

// shiftTest is the exact Mann-Whitney p-value of H0: no shift from a to b
// against dir (greater: b is higher; less: b is lower; otherwise two-sided),
// ties counting as not beyond; the Hodges–Lehmann estimate of the shift;
// and the interval on it that inverts the test at level alpha (one bound
// infinite for a one-sided test; both infinite, ok false, when the
// samples are too small to reach alpha).
func shiftTest(a, b []float64, dir scenarios.Direction, alpha float64) (p, est, lo, hi float64, ok bool) {
	if len(a) == 0 || len(b) == 0 {
		return 1, math.NaN(), math.Inf(-1), math.Inf(1), false
	}
	d := pairwiseDiffs(a, b)
	p, lo, hi, ok = sortedShift(d, len(a), len(b), dir, alpha)
	return p, sortedMedian(d), lo, hi, ok
}

// sortedShift is the exact Mann-Whitney test of no shift and the interval
// that inverts it, from d, the sorted pairwise differences (b_j − a_i, or
// their logs for a ratio) of samples of n1 and n2 values: the p-value
// against dir (ties counting as not beyond) and the bounds at level alpha
// (infinite on the untested side; both infinite, ok false, when the
// samples cannot reach alpha).
func sortedShift(d []float64, n1, n2 int, dir scenarios.Direction, alpha float64) (p, lo, hi float64, ok bool) {
	lo, hi = math.Inf(-1), math.Inf(1)
	cdf := mannWhitneyCDF(n1, n2)
	n := len(d)
	above := n - sort.Search(n, func(i int) bool { return d[i] > 0 })
	below := sort.Search(n, func(i int) bool { return d[i] >= 0 })
	pUp, pDown := 1.0, 1.0
	if above > 0 {
		pUp = cdf[n-above]
	}
	if below > 0 {
		pDown = cdf[n-below]
	}
	switch dir {
	case scenarios.DirectionGreater:
		p = pUp
		if c := cdfIndex(cdf, alpha); c >= 0 {
			lo, ok = d[c], true
		}
	case scenarios.DirectionLess:
		p = pDown
		if c := cdfIndex(cdf, alpha); c >= 0 {
			hi, ok = d[n-1-c], true
		}
	default:
		p = math.Min(1, 2*math.Min(pUp, pDown))
		if c := cdfIndex(cdf, alpha/2); c >= 0 {
			lo, hi, ok = d[c], d[n-1-c], true
		}
	}
	return p, lo, hi, ok
}

// minShiftP is the smallest p-value shiftTest can give with n1 and n2
// values in direction dir.
func minShiftP(n1, n2 int, dir scenarios.Direction) float64 {
	if dir == scenarios.DirectionGreater || dir == scenarios.DirectionLess {
		return minOneSidedP(n1, n2)
	}
	return minMannWhitneyP(n1, n2)
}
