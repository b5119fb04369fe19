package report

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/scenarios"
)

// aaRuns generates n runs of one synthetic build: the same shape, each
// with its own noise (1.5% per value, as the compare fixtures).
func aaRuns(t *testing.T, n int) []*Data {
	t.Helper()
	var out []*Data
	for i := range n {
		dir := filepath.Join(t.TempDir(), "aa")
		generateFixture(t, fixtureSpec{name: "aa", seed: uint64(100 + i),
			modes:    []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables},
			services: []int{1, 10000}, rpcs: []int{1}, reps: 6, noise: 0.015}, dir)
		d, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func TestCalibrateAA(t *testing.T) {
	defaults, _ := LookupMetrics(DefaultMetrics)
	c, err := Calibrate(aaRuns(t, 3), CompareOptions{Metrics: defaults, Threshold: 0.10}, DefaultCandidates)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	c.WriteText(&b)
	if len(c.Pairs) != 6 || c.FalseAlarms != 0 {
		t.Fatalf("pairs %d, false alarms %d\n%s", len(c.Pairs), c.FalseAlarms, b.String())
	}
	if c.RowsTested != 6*8 || c.RowsSignificant > c.RowsRawSignificant {
		t.Errorf("rows %d, raw %d, holm %d", c.RowsTested, c.RowsRawSignificant, c.RowsSignificant)
	}
	if c.RecommendedRepetitions != 5 || c.RecommendedThreshold > 0.10 || c.RecommendedThreshold < c.MaxAbsDelta {
		t.Errorf("recommended %v threshold, %d repetitions (max A/A change %.3f)\n%s", c.RecommendedThreshold, c.RecommendedRepetitions, c.MaxAbsDelta, b.String())
	}
	for _, w := range []string{"A/A calibration: 3 runs", "false alarms (comparisons that fail) at 10%: 0 of 6", "recommended: threshold"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, b.String())
		}
	}
}

// TestCalibrateSeesAlarms: a pair that is not A/A (a 20% regression) is
// counted as a false alarm, so the rate measures something.
func TestCalibrateSeesAlarms(t *testing.T) {
	defaults, _ := LookupMetrics(DefaultMetrics)
	c, err := Calibrate([]*Data{load(t, "compare-base"), load(t, "compare-regressed")}, CompareOptions{Metrics: defaults, Threshold: 0.10}, DefaultCandidates)
	if err != nil {
		t.Fatal(err)
	}
	if c.FalseAlarms != 1 || c.ByThreshold[len(c.ByThreshold)-1].Failing != 0 || c.ByThreshold[2].Regressing != 1 {
		t.Errorf("false alarms %d, by threshold %+v", c.FalseAlarms, c.ByThreshold)
	}
	if _, err := Calibrate([]*Data{load(t, "compare-base")}, CompareOptions{Metrics: defaults}, nil); !errors.Is(err, ErrTooFewRuns) {
		t.Errorf("one run: %v", err)
	}
}
