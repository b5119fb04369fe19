package report

import (
	"fmt"
	"math"
	"sort"

	"github.com/kpbench/kpbench/scenarios"
	"github.com/montanaflynn/stats"
	"golang.org/x/perf/benchmath"
	"gonum.org/v1/gonum/stat/distuv"
)

// Confidence is the confidence level of every interval kpbench reports.
const Confidence = 0.95

// Alpha is the significance level of every test kpbench reports.
const Alpha = 0.05

// Summary describes the repetitions of one metric at one condition.
type Summary struct {
	N      int     `json:"n"`
	Mean   float64 `json:"mean"`
	Median float64 `json:"median"`
	StdDev float64 `json:"stdDev"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// CILo and CIHi bound the mean at Confidence (Student's t). With one
	// value the interval is that value and HasCI is false.
	CILo  float64 `json:"ciLo"`
	CIHi  float64 `json:"ciHi"`
	HasCI bool    `json:"hasCI"`
}

// Summarize describes values: mean with a Student-t confidence interval,
// median, sample standard deviation, extremes. It returns N == 0 for no
// values.
func Summarize(values []float64) Summary {
	if len(values) == 0 {
		return Summary{}
	}
	data := stats.Float64Data(values)
	mean, _ := stats.Mean(data)
	median, _ := stats.Median(data)
	lo, _ := stats.Min(data)
	hi, _ := stats.Max(data)
	s := Summary{N: len(values), Mean: mean, Median: median, Min: lo, Max: hi, CILo: mean, CIHi: mean}
	if len(values) > 1 {
		sd, _ := stats.StandardDeviationSample(data)
		s.StdDev = sd
		half := tQuantile(float64(len(values)-1)) * sd / math.Sqrt(float64(len(values)))
		s.CILo, s.CIHi, s.HasCI = mean-half, mean+half, true
	}
	return s
}

// HalfWidth is half the confidence interval's width (0 without one).
func (s Summary) HalfWidth() float64 { return (s.CIHi - s.CILo) / 2 }

// tQuantile is the two-sided Confidence quantile of Student's t with df
// degrees of freedom.
func tQuantile(df float64) float64 {
	if df <= 0 || math.IsNaN(df) {
		return math.Inf(1)
	}
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(1 - (1-Confidence)/2)
}

// Difference compares two samples, b minus a: the difference of means,
// and the exact Mann-Whitney test of a shift with the Hodges–Lehmann
// interval that inverts it (shifttest.go), drawn at the level the
// verdict used, so that the interval excludes 0 exactly when the
// difference is significant.
type Difference struct {
	A, B Summary
	// Delta is B.Mean - A.Mean; Rel is Delta / A.Mean (NaN when A.Mean is 0).
	Delta float64 `json:"delta"`
	Rel   float64 `json:"rel"`
	// Shift is the Hodges–Lehmann estimate of the shift from a to b (the
	// median of every b_j − a_i).
	Shift float64 `json:"shift"`
	// CILo and CIHi bound the shift at CIConfidence: 1 − the level at
	// which the verdict was taken (Holm's step for the row, α/m for the
	// first); one bound is infinite for a one-sided question. HasCI is
	// false when the sample sizes cannot reach that level at all.
	CILo         float64 `json:"ciLo"`
	CIHi         float64 `json:"ciHi"`
	CIConfidence float64 `json:"ciConfidence"`
	HasCI        bool    `json:"hasCI"`
	// Direction is the alternative tested: two-sided unless a primary
	// comparison declared otherwise.
	Direction scenarios.Direction `json:"direction,omitempty"`
	// P is the exact Mann-Whitney p-value; PAdjusted is P after Holm's
	// correction over the Tests comparisons made together (P and 1 for a
	// comparison on its own).
	P         float64 `json:"p"`
	PAdjusted float64 `json:"pAdjusted"`
	Tests     int     `json:"tests"`
	// Significant is Holm's rejection at Alpha.
	Significant bool `json:"significant"`
	// Underpowered means the sample sizes cannot reach P < Alpha however
	// different the values are (Mann-Whitney with 3+3 values cannot go
	// below p=0.1); a non-significant result then says nothing.
	Underpowered bool `json:"underpowered"`
	// Descriptive is set when the samples are not independent units (under
	// order: modes each mode, and each step of it, ran in one block of
	// time): no test, no interval.
	Descriptive bool `json:"descriptive,omitempty"`
	a, b        []float64
}

// Diff compares samples a and b, two-sided.
func Diff(a, b []float64) Difference { return DiffDir(a, b, scenarios.DirectionTwoSided) }

// DiffDir compares samples a and b against the alternative dir (b − a
// greater, less, or two-sided).
func DiffDir(a, b []float64, dir scenarios.Direction) Difference {
	if dir == "" {
		dir = scenarios.DirectionTwoSided
	}
	d := Difference{A: Summarize(a), B: Summarize(b), P: 1, PAdjusted: 1, Tests: 1, Direction: dir,
		a: append([]float64(nil), a...), b: append([]float64(nil), b...)}
	if d.A.N == 0 || d.B.N == 0 {
		d.Underpowered = true
		d.Delta, d.Rel, d.Shift = math.NaN(), math.NaN(), math.NaN()
		return d
	}
	d.Delta = d.B.Mean - d.A.Mean
	d.Rel = math.NaN()
	if d.A.Mean != 0 {
		d.Rel = d.Delta / math.Abs(d.A.Mean)
	}
	d.P, d.Shift, _, _, _ = shiftTest(a, b, dir, Alpha)
	d.correct(d.P, 1, d.P <= Alpha, Alpha)
	return d
}

// correct sets the p-value adjusted over tests comparisons, Holm's
// verdict, and the interval drawn at level (stepDownLevels), so that the
// two agree.
func (d *Difference) correct(adjusted float64, tests int, reject bool, level float64) {
	d.PAdjusted, d.Tests = adjusted, tests
	d.Significant = reject
	d.Underpowered = !d.Significant && float64(tests)*minShiftP(d.A.N, d.B.N, d.Direction) >= Alpha
	_, _, d.CILo, d.CIHi, d.HasCI = shiftTest(d.a, d.b, d.Direction, level)
	d.CIConfidence = 1 - level
}

// describe marks d descriptive: no test, no interval.
func (d *Difference) describe() {
	d.Descriptive, d.Significant, d.Underpowered, d.HasCI = true, false, false, false
	d.P, d.PAdjusted = math.NaN(), math.NaN()
	d.CILo, d.CIHi = math.NaN(), math.NaN()
}

// medianSummary is benchstat's summary: the median with a distribution-free
// confidence interval (infinite bounds when there are too few values).
func medianSummary(values []float64) benchmath.Summary {
	th := &benchmath.Thresholds{CompareAlpha: Alpha}
	return benchmath.AssumeNothing.Summary(benchmath.NewSample(append([]float64(nil), values...), th), Confidence)
}

// minMannWhitneyP is the smallest two-sided p-value the Mann-Whitney U test
// can give for samples of sizes n1 and n2 (complete separation, no ties):
// 2 / C(n1+n2, n1).
func minMannWhitneyP(n1, n2 int) float64 {
	if n1 == 0 || n2 == 0 {
		return 1
	}
	// C(n, k) computed in floating point; fine for the sizes seen here.
	c := 1.0
	k := min(n1, n2)
	n := n1 + n2
	for i := 1; i <= k; i++ {
		c = c * float64(n-k+i) / float64(i)
	}
	return math.Min(1, 2/c)
}

// MinRepetitions is the smallest number of repetitions per side with which
// the Mann-Whitney U test can reach significance at Alpha.
func MinRepetitions() int {
	for n := 1; n < 50; n++ {
		if minMannWhitneyP(n, n) < Alpha {
			return n
		}
	}
	return 50
}

// RepetitionsFor is the smallest number of repetitions per side with which
// the Mann-Whitney U test can reach significance at Alpha after Holm's
// correction over tests tests: the most significant of them must reach
// Alpha/tests.
func RepetitionsFor(tests int) int {
	tests = max(tests, 1)
	for n := 1; n < 50; n++ {
		if float64(tests)*minMannWhitneyP(n, n) < Alpha {
			return n
		}
	}
	return 50
}

// describeP formats a comparison's p-value and sample sizes.
func describeP(d Difference) string {
	return fmt.Sprintf("p=%s, n=%d+%d", formatP(d.P), d.A.N, d.B.N)
}

func formatP(p float64) string {
	if p < 0.001 {
		return "<0.001"
	}
	return fmt.Sprintf("%.3f", p)
}

// sortedInts returns the distinct values of xs in ascending order.
func sortedInts(xs []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Ints(out)
	return out
}

// Holm adjusts p-values for multiple comparisons with Holm's step-down
// method: the i-th smallest of m p-values is multiplied by m-i+1, and the
// adjusted values are made monotone. Rejecting every adjusted p below Alpha
// keeps the chance of even one false alarm in the whole family at or below
// Alpha, whatever the dependence between the tests. That is the property a
// gate needs — it fails when any row regresses — and why kpbench uses Holm
// rather than Benjamini–Hochberg, which bounds only the expected share of
// false discoveries and lets a family of true nulls alarm more often.
// NaN p-values (no test) stay NaN and do not count in m.
func Holm(ps []float64) []float64 {
	type ip struct {
		i int
		p float64
	}
	var tested []ip
	for i, p := range ps {
		if !math.IsNaN(p) {
			tested = append(tested, ip{i, p})
		}
	}
	sort.SliceStable(tested, func(a, b int) bool { return tested[a].p < tested[b].p })
	out := make([]float64, len(ps))
	for i := range out {
		out[i] = math.NaN()
	}
	m := len(tested)
	run := 0.0
	for k, t := range tested {
		adj := math.Min(1, float64(m-k)*t.p)
		run = math.Max(run, adj)
		out[t.i] = run
	}
	return out
}

// mannWhitneyCDF returns P(U <= u) for u = 0..n*m under the null
// hypothesis (no ties), from the exact distribution of the Mann-Whitney U
// statistic: the number of arrangements of n x's and m y's with U = u,
// over C(n+m, n). Sizes beyond exactLimit use the normal approximation.
func mannWhitneyCDF(n, m int) []float64 {
	const exactLimit = 4000
	N := n * m
	cdf := make([]float64, N+1)
	if N > exactLimit {
		mu := float64(N) / 2
		sd := math.Sqrt(float64(n*m*(n+m+1)) / 12)
		norm := distuv.UnitNormal
		for u := range cdf {
			cdf[u] = norm.CDF((float64(u) + 0.5 - mu) / sd)
		}
		return cdf
	}
	// f[j][u] = arrangements of i x's and j y's with U = u, built up over i.
	prev := make([][]float64, m+1)
	for j := range prev {
		prev[j] = []float64{1}
	}
	for i := 1; i <= n; i++ {
		cur := make([][]float64, m+1)
		cur[0] = []float64{1}
		for j := 1; j <= m; j++ {
			row := make([]float64, i*j+1)
			// The largest of the i+j values is a y (then every x is below
			// it: U unchanged) or an x (it beats all j y's: U += j).
			for u, c := range cur[j-1] {
				row[u] += c
			}
			for u, c := range prev[j] {
				row[u+j] += c
			}
			cur[j] = row
		}
		prev = cur
	}
	counts := prev[m]
	total := 0.0
	for _, c := range counts {
		total += c
	}
	acc := 0.0
	for u, c := range counts {
		acc += c
		cdf[u] = acc / total
	}
	return cdf
}

// ShiftCI is the change from sample a to sample b as a ratio: the
// Hodges–Lehmann estimate of the shift of log values (the median of all
// pairwise log(b_j/a_i)) and its distribution-free confidence interval,
// the one that inverts the Mann-Whitney test (Bauer 1972). Est, Lo and Hi
// are relative changes (0.2 = +20%). OK is false when a value is not
// positive (no ratio) or the samples are too small for any interval at
// this confidence (then Lo and Hi are infinite).
type ShiftCI struct {
	Est, Lo, Hi float64
	OK          bool
}

// RatioCI computes ShiftCI at the given confidence.
func RatioCI(a, b []float64, confidence float64) ShiftCI {
	out := ShiftCI{Est: math.NaN(), Lo: math.Inf(-1), Hi: math.Inf(1)}
	if len(a) == 0 || len(b) == 0 {
		return out
	}
	var d []float64
	for _, x := range a {
		for _, y := range b {
			if x <= 0 || y <= 0 {
				return out
			}
			d = append(d, math.Log(y/x))
		}
	}
	sort.Float64s(d)
	if v, err := stats.Median(d); err == nil {
		out.Est = math.Expm1(v)
	}
	// The largest c with P(U <= c) <= (1-confidence)/2: the interval is
	// the (c+1)-th smallest to the (c+1)-th largest difference.
	cdf := mannWhitneyCDF(len(a), len(b))
	c := -1
	for u, p := range cdf {
		if p > (1-confidence)/2 {
			break
		}
		c = u
	}
	if c < 0 {
		return out
	}
	out.Lo, out.Hi, out.OK = math.Expm1(d[c]), math.Expm1(d[len(d)-1-c]), true
	return out
}
