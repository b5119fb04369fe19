package report

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSimCoverage: each interval kpbench prints between or within runs
// covers the truth 93–97% of the time, with repetition blocks of sd 0.6 of
// the within-step noise (independent across repetitions, as under the
// randomised order). 2,000 seeded simulations each: a 95% coverage's
// standard error is 0.49 points, so 93–97 is four standard errors either
// side.
func TestSimCoverage(t *testing.T) {
	const sims = 2000
	const cv, block = 0.15, 0.6
	draw := func(rng *rand.Rand, n int, ratio float64) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = 100 * ratio * math.Exp(block*cv*rng.NormFloat64()+cv*rng.NormFloat64())
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		seed  uint64
		n     int
		cover func(rng *rand.Rand) bool
	}{
		{"Hodges–Lehmann ratio, 95% (RatioCI)", 21, 6, func(rng *rand.Rand) bool {
			ci := RatioCI(draw(rng, 6, 1), draw(rng, 6, 1.3), Confidence)
			return ci.Lo <= 0.3 && 0.3 <= ci.Hi
		}},
		{"descriptive row's two-sided interval, 7+7", 22, 7, func(rng *rand.Rand) bool {
			_, ci := ratioTwoSided(draw(rng, 7, 1), draw(rng, 7, 1.3), Alpha)
			return ci.Lo <= 0.3 && 0.3 <= ci.Hi
		}},
		{"gated row's one-sided bound, 7+7", 23, 7, func(rng *rand.Rand) bool {
			return ratioLowerBound(draw(rng, 7, 1), draw(rng, 7, 1.3), Alpha) <= 0.3
		}},
		{"a condition's mean, Student t (Summarize)", 24, 6, func(rng *rand.Rand) bool {
			v := make([]float64, 6)
			for i := range v {
				v[i] = 100 + 100*(block*cv*rng.NormFloat64()+cv*rng.NormFloat64())
			}
			s := Summarize(v)
			return s.CILo <= 100 && 100 <= s.CIHi
		}},
		{"difference, Hodges–Lehmann shift at 95% (Diff)", 25, 6, func(rng *rand.Rand) bool {
			a, b := make([]float64, 6), make([]float64, 6)
			for i := range a {
				a[i] = 100 + 100*(block*cv*rng.NormFloat64()+cv*rng.NormFloat64())
				b[i] = 130 + 100*(block*cv*rng.NormFloat64()+cv*rng.NormFloat64())
			}
			d := Diff(a, b)
			return d.CILo <= 30 && 30 <= d.CIHi
		}},
	} {
		rng := rand.New(rand.NewPCG(tc.seed, 3))
		hits := 0
		for range sims {
			if tc.cover(rng) {
				hits++
			}
		}
		c := float64(hits) / sims
		t.Logf("%s: coverage %.1f%% of %d (seed %d)", tc.name, 100*c, sims, tc.seed)
		if c < 0.93 || c > 0.97 {
			t.Errorf("%s: coverage %.1f%%, want 93–97%%", tc.name, 100*c)
		}
	}
}

// TestSimPrimaryFalsePositives: the primary comparison between two modes
// with no difference. Under order: steps the modes share each
// repetition's block and the test's false-positive rate stays at or below
// 5%; under order: modes each mode's repetitions share one block, and the
// rate is far above 5% (why a primary needs order: steps).
func TestSimPrimaryFalsePositives(t *testing.T) {
	const sims = 2000
	const cv, block = 0.15, 0.6
	for _, tc := range []struct {
		name     string
		seed     uint64
		n        int
		byMode   bool
		min, max float64
	}{
		{"order steps, 4+4", 31, 4, false, 0, 0.05},
		{"order steps, 6+6", 32, 6, false, 0, 0.05},
		{"order modes, 6+6", 33, 6, true, 0.10, 1},
	} {
		rng := rand.New(rand.NewPCG(tc.seed, 5))
		fp := 0
		for range sims {
			a, b := make([]float64, tc.n), make([]float64, tc.n)
			ba, bb := block*cv*rng.NormFloat64(), block*cv*rng.NormFloat64()
			for i := range a {
				if !tc.byMode {
					ba = block * cv * rng.NormFloat64()
					bb = ba
				}
				a[i] = 100 * math.Exp(ba+cv*rng.NormFloat64())
				b[i] = 100 * math.Exp(bb+cv*rng.NormFloat64())
			}
			if Diff(a, b).P < Alpha {
				fp++
			}
		}
		r := float64(fp) / sims
		t.Logf("%s: %.1f%% false positives of %d (seed %d)", tc.name, 100*r, sims, tc.seed)
		if r < tc.min || r > tc.max {
			t.Errorf("%s: %.1f%% false positives, want %.0f%%–%.0f%%", tc.name, 100*r, 100*tc.min, 100*tc.max)
		}
	}
}
