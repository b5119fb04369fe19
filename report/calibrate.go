package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// CalibrationPair is one A/A comparison: run Base against run New, both of
// the same build on the same machine, where any failure is a false alarm.
type CalibrationPair struct {
	Base string `json:"base"`
	New  string `json:"new"`
	// Tests is how many tests the comparison made; RawSignificant how many
	// reached p < Alpha before the correction, Significant after it.
	Tests          int  `json:"tests"`
	RawSignificant int  `json:"rawSignificant"`
	Significant    int  `json:"significant"`
	Regressions    int  `json:"regressions"`
	Lost           int  `json:"lost"`
	Failed         bool `json:"failed"`
	// MaxAbsDelta is the largest change of medians between the two runs
	// over every row, and MaxRow that row.
	MaxAbsDelta float64 `json:"maxAbsDelta"`
	MaxRow      string  `json:"maxRow"`
}

// ThresholdRate is how many A/A comparisons fail at a threshold: in all,
// and by a regression (the threshold's doing; a lost condition fails at
// every threshold).
type ThresholdRate struct {
	Threshold  float64 `json:"threshold"`
	Failing    int     `json:"failing"`
	Regressing int     `json:"regressing"`
}

// Calibration is the false-alarm rate of compare's settings, measured on
// runs of one build on one machine: every ordered pair of them is an A/A
// comparison, and every failure a false alarm.
type Calibration struct {
	Runs      []string          `json:"runs"`
	Threshold float64           `json:"threshold"`
	Metrics   []string          `json:"metrics"`
	Pairs     []CalibrationPair `json:"pairs"`
	// FalseAlarms counts the pairs that fail at Threshold.
	FalseAlarms int `json:"falseAlarms"`
	// Rows tested over every pair, and how many were significant before
	// and after Holm's correction.
	RowsTested         int             `json:"rowsTested"`
	RowsRawSignificant int             `json:"rowsRawSignificant"`
	RowsSignificant    int             `json:"rowsSignificant"`
	ByThreshold        []ThresholdRate `json:"byThreshold"`
	MaxAbsDelta        float64         `json:"maxAbsDelta"`
	MaxRow             string          `json:"maxRow"`
	// RecommendedThreshold is the smallest candidate at which no A/A
	// comparison fails and that is above the largest A/A change of
	// medians (NaN when no candidate qualifies); RecommendedRepetitions
	// the fewest repetitions per side with which a change can reach
	// significance after Holm's correction over the comparisons' tests.
	RecommendedThreshold   float64 `json:"recommendedThreshold"`
	RecommendedRepetitions int     `json:"recommendedRepetitions"`
}

// DefaultCandidates are the thresholds Calibrate tries.
var DefaultCandidates = []float64{0.02, 0.05, 0.10, 0.15, 0.20, 0.30}

// ErrTooFewRuns is returned for fewer than two runs.
var ErrTooFewRuns = errors.New("calibration needs at least two runs of the same build")

// Calibrate compares every ordered pair of runs (A against B and B against
// A: the tests are not symmetric in what they flag as worse) with opts,
// and at each candidate threshold.
func Calibrate(data []*Data, opts CompareOptions, candidates []float64) (*Calibration, error) {
	if len(data) < 2 {
		return nil, ErrTooFewRuns
	}
	c := &Calibration{Threshold: opts.Threshold, RecommendedThreshold: math.NaN()}
	for _, m := range opts.Metrics {
		c.Metrics = append(c.Metrics, m.Name)
	}
	for _, d := range data {
		c.Runs = append(c.Runs, d.Dir)
	}
	failing := make([]int, len(candidates))
	regressing := make([]int, len(candidates))
	maxGate := 0
	for i, a := range data {
		for j, b := range data {
			if i == j {
				continue
			}
			cmp, err := Compare(a, b, opts)
			if err != nil {
				return nil, fmt.Errorf("A/A comparison %s vs %s: %w", a.Dir, b.Dir, err)
			}
			p := CalibrationPair{Base: a.Dir, New: b.Dir, Tests: cmp.GateTests + cmp.Tests, Regressions: cmp.Regressions, Lost: len(cmp.Lost), Failed: cmp.Failed()}
			for _, r := range cmp.Rows {
				if !r.tested {
					continue
				}
				if r.P < Alpha {
					p.RawSignificant++
				}
				if r.Significant {
					p.Significant++
				}
				if d := math.Abs(r.Delta); !math.IsNaN(d) && d > p.MaxAbsDelta {
					p.MaxAbsDelta, p.MaxRow = d, r.Metric+" "+r.Condition
				}
			}
			c.Pairs = append(c.Pairs, p)
			c.RowsTested += p.Tests
			c.RowsRawSignificant += p.RawSignificant
			c.RowsSignificant += p.Significant
			maxGate = max(maxGate, cmp.GateTests)
			if p.Failed {
				c.FalseAlarms++
			}
			if p.MaxAbsDelta > c.MaxAbsDelta {
				c.MaxAbsDelta, c.MaxRow = p.MaxAbsDelta, p.MaxRow
			}
			for k, th := range candidates {
				o := opts
				o.Threshold = th
				ct, err := Compare(a, b, o)
				if err != nil {
					return nil, err
				}
				if ct.Failed() {
					failing[k]++
				}
				if ct.Regressions > 0 {
					regressing[k]++
				}
			}
		}
	}
	for k, th := range candidates {
		c.ByThreshold = append(c.ByThreshold, ThresholdRate{Threshold: th, Failing: failing[k], Regressing: regressing[k]})
		if math.IsNaN(c.RecommendedThreshold) && failing[k] == 0 && th >= c.MaxAbsDelta {
			c.RecommendedThreshold = th
		}
	}
	c.RecommendedRepetitions = gateRepetitionsFor(maxGate)
	return c, nil
}

// WriteText writes the calibration as a table and a recommendation.
func (c *Calibration) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "A/A calibration: %d runs of one build, %d ordered comparisons, threshold %s, metrics %s\n\n",
		len(c.Runs), len(c.Pairs), formatThreshold(c.Threshold), strings.Join(c.Metrics, ","))
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "base\tnew\ttests\tp<0.05 raw\tp<0.05 holm\tregressions\tlost\tmax |Δ median|\tverdict")
	for _, p := range c.Pairs {
		verdict := "pass"
		if p.Failed {
			verdict = "FALSE ALARM"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.1f%%\t%s\n", p.Base, p.New, p.Tests, p.RawSignificant, p.Significant, p.Regressions, p.Lost, 100*p.MaxAbsDelta, verdict)
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nrows tested: %d; p < %.2f before correction: %d (%s); after Holm's correction: %d (%s)\n",
		c.RowsTested, Alpha, c.RowsRawSignificant, pctOf(c.RowsRawSignificant, c.RowsTested), c.RowsSignificant, pctOf(c.RowsSignificant, c.RowsTested))
	fmt.Fprintf(&b, "false alarms (comparisons that fail) at %s: %d of %d\n", formatThreshold(c.Threshold), c.FalseAlarms, len(c.Pairs))
	fmt.Fprintf(&b, "largest A/A change of medians: %.1f%% (%s)\n\nthreshold  failing comparisons  of them by a regression\n", 100*c.MaxAbsDelta, c.MaxRow)
	for _, t := range c.ByThreshold {
		fmt.Fprintf(&b, "%-9s  %-19s  %d\n", formatThreshold(t.Threshold), fmt.Sprintf("%d of %d", t.Failing, len(c.Pairs)), t.Regressing)
	}
	if lost := c.lostPairs(); lost > 0 {
		fmt.Fprintf(&b, "\n%d of %d comparisons lost valid points (invalid in one run, valid in the other): no threshold prevents that; the invalid points' reasons say what to fix on the machine\n", lost, len(c.Pairs))
	}
	if math.IsNaN(c.RecommendedThreshold) {
		fmt.Fprintf(&b, "\nrecommended: no candidate threshold is free of false alarms; ")
	} else {
		fmt.Fprintf(&b, "\nrecommended: threshold %s (the smallest with no false alarm, above the largest A/A change); ", formatThreshold(c.RecommendedThreshold))
	}
	fmt.Fprintf(&b, "%d repetitions per side (the fewest with which a gated row can reach p < %.2f after Holm's correction over the gated rows)\n",
		c.RecommendedRepetitions, Alpha)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the calibration as one JSON document.
func (c *Calibration) WriteJSON(w io.Writer) error {
	out := *c
	type plain Calibration
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		plain
		RecommendedThreshold *float64 `json:"recommendedThreshold"`
	}{plain(out), finite(c.RecommendedThreshold)})
}

func pctOf(n, of int) string {
	if of == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of))
}

func (c *Calibration) lostPairs() int {
	n := 0
	for _, p := range c.Pairs {
		if p.Lost > 0 {
			n++
		}
	}
	return n
}
