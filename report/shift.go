package report

import (
	"math"
	"sort"

	"github.com/kpbench/kpbench/scenarios"
)

// The tests and intervals below are one family of distribution-free
// procedures on the pairwise log ratios d_ij = log(b_j/a_i) of two samples
// of positive values. A test of "b/a ≤ r" counts K, the pairs with
// d_ij > log r, and compares it with the exact null distribution of the
// Mann-Whitney U statistic; the interval at level α is bounded by order
// statistics of d_ij, so that the test at α rejects exactly when the
// interval at α excludes r (Bauer 1972). Printing the interval at the
// level the verdict used therefore cannot contradict the verdict.

// logRatios returns the sorted pairwise log(b_j/a_i), or false when a
// value is not positive (no ratio) or a sample is empty.
func logRatios(a, b []float64) ([]float64, bool) {
	if len(a) == 0 || len(b) == 0 {
		return nil, false
	}
	d := make([]float64, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			if x <= 0 || y <= 0 || math.IsNaN(x) || math.IsNaN(y) {
				return nil, false
			}
			d = append(d, math.Log(y/x))
		}
	}
	sort.Float64s(d)
	return d, true
}

// ratioAbove is the exact one-sided p-value of H0: b/a ≤ r against
// H1: b/a > r (a shift of log values): P(U ≥ K) under H0, K the pairs
// with b_j/a_i > r. A tie counts as not above, which keeps the test
// conservative. It is 1 when no ratio can be formed.
func ratioAbove(a, b []float64, r float64) float64 {
	d, ok := logRatios(a, b)
	if !ok || r <= 0 {
		return 1
	}
	lr := math.Log(r)
	k := len(d) - sort.Search(len(d), func(i int) bool { return d[i] > lr })
	if k == 0 {
		return 1
	}
	// P(U ≥ K) = P(U ≤ N−K) by the symmetry of U's null distribution.
	return mannWhitneyCDF(len(a), len(b))[len(d)-k]
}

// ratioLowerBound is the one-sided lower confidence bound on b/a − 1 at
// level alpha that inverts ratioAbove: ratioAbove(a, b, 1+t) ≤ alpha
// exactly when the bound exceeds t. It is −∞ when the samples are too
// small to reach alpha at all.
func ratioLowerBound(a, b []float64, alpha float64) float64 {
	d, ok := logRatios(a, b)
	if !ok {
		return math.Inf(-1)
	}
	c := cdfIndex(mannWhitneyCDF(len(a), len(b)), alpha)
	if c < 0 {
		return math.Inf(-1)
	}
	return math.Expm1(d[c])
}

// ratioTwoSided is the exact two-sided p-value of H0: b/a = 1, and the
// interval on b/a − 1 that inverts it at level alpha.
func ratioTwoSided(a, b []float64, alpha float64) (p float64, ci ShiftCI) {
	ci = ShiftCI{Est: math.NaN(), Lo: math.Inf(-1), Hi: math.Inf(1)}
	d, ok := logRatios(a, b)
	if !ok {
		return 1, ci
	}
	ci.Est = math.Expm1(sortedMedian(d))
	var lo, hi float64
	p, lo, hi, ci.OK = sortedShift(d, len(a), len(b), scenarios.DirectionTwoSided, alpha)
	if ci.OK {
		ci.Lo, ci.Hi = math.Expm1(lo), math.Expm1(hi)
	}
	return p, ci
}

// cdfIndex is the largest u with cdf[u] ≤ alpha, −1 when there is none.
func cdfIndex(cdf []float64, alpha float64) int {
	c := -1
	for u, p := range cdf {
		if p > alpha*(1+1e-12) {
			break
		}
		c = u
	}
	return c
}

func sortedMedian(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// minOneSidedP is the smallest one-sided p-value the exact Mann-Whitney
// test can give with samples of n1 and n2 values: 1/C(n1+n2, n1).
func minOneSidedP(n1, n2 int) float64 { return minMannWhitneyP(n1, n2) / 2 }

// stepDownLevels returns, for each p-value, Holm's verdict at alpha and
// the level at which its interval must be drawn for the interval and the
// verdict to agree: α/(m−k) for the k-th smallest (0-based) when rejected,
// and for every row not rejected the level of the first step that was not
// (its p is at or above that level, so its interval includes the null).
func stepDownLevels(ps []float64, alpha float64) (reject []bool, level []float64) {
	m := len(ps)
	reject, level = make([]bool, m), make([]float64, m)
	idx := make([]int, m)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(x, y int) bool { return ps[idx[x]] < ps[idx[y]] })
	stop := -1.0
	for k, i := range idx {
		lv := alpha / float64(m-k)
		if stop < 0 && ps[i] <= lv {
			reject[i], level[i] = true, lv
			continue
		}
		if stop < 0 {
			stop = lv
		}
		level[i] = stop
	}
	return reject, level
}
