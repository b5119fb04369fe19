package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/kpbench/kpbench/runs"
)

// Comparison verdicts.
const (
	VerdictSame        = "~"                // no significant difference
	VerdictWithin      = "within threshold" // significant but smaller than the threshold
	VerdictRegression  = "REGRESSION"
	VerdictImprovement = "improvement"
)

// ErrBadThreshold is returned for a threshold that is not a non-negative
// percentage.
var ErrBadThreshold = errors.New("invalid threshold")

// ParseThreshold reads a threshold written as a percentage, "10%" or "10";
// it returns the fraction (0.10).
func ParseThreshold(s string) (float64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(t, "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w %q: want a percentage such as 10%%", ErrBadThreshold, s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%w %q: must not be negative", ErrBadThreshold, s)
	}
	return v / 100, nil
}

// CompareOptions configure Compare.
type CompareOptions struct {
	Metrics []Metric
	// Threshold is the relative change (0.10 = 10%) beyond which a
	// significant change in the worse direction is a regression.
	Threshold float64
}

// Stat is benchstat's summary of one side: the median of the valid
// repetitions with a distribution-free 95% confidence interval (infinite
// bounds with fewer than 6 values).
type Stat struct {
	N      int       `json:"n"`
	Median float64   `json:"median"`
	Lo     float64   `json:"lo"`
	Hi     float64   `json:"hi"`
	Values []float64 `json:"values"`
}

func newStat(values []float64) Stat {
	s := Stat{N: len(values), Values: values}
	if len(values) == 0 {
		return s
	}
	sum := medianSummary(values)
	s.Median, s.Lo, s.Hi = sum.Center, sum.Lo, sum.Hi
	return s
}

// pctRange is the CI's half width relative to the median, as benchstat
// prints it ("±2%", "±∞").
func (s Stat) pctRange() string {
	if math.IsInf(s.Lo, 0) || math.IsInf(s.Hi, 0) {
		return "±∞"
	}
	if s.Median == 0 {
		return "±0%"
	}
	v := math.Max(s.Hi/s.Median-1, 1-s.Lo/s.Median)
	return fmt.Sprintf("±%.0f%%", 100*math.Abs(v))
}

// MarshalJSON writes infinite bounds as null.
func (s Stat) MarshalJSON() ([]byte, error) {
	type out struct {
		N      int       `json:"n"`
		Median float64   `json:"median"`
		Lo     *float64  `json:"lo"`
		Hi     *float64  `json:"hi"`
		Values []float64 `json:"values"`
	}
	o := out{N: s.N, Median: s.Median, Values: s.Values}
	if !math.IsInf(s.Lo, 0) {
		o.Lo = &s.Lo
	}
	if !math.IsInf(s.Hi, 0) {
		o.Hi = &s.Hi
	}
	return json.Marshal(o)
}

// CompareRow is one metric at one condition.
type CompareRow struct {
	Condition string `json:"condition"`
	Metric    string `json:"metric"`
	Unit      string `json:"unit"`
	Base      Stat   `json:"base"`
	New       Stat   `json:"new"`
	// Delta is the relative change of the medians (0.2 = +20%); NaN (null
	// in JSON) when the base median is 0.
	Delta       float64 `json:"-"`
	P           float64 `json:"p"`
	Significant bool    `json:"significant"`
	Verdict     string  `json:"verdict"`
	// Underpowered is true when the repetition counts cannot reach
	// significance at all: a regression here would go unnoticed.
	Underpowered bool `json:"underpowered"`
}

// MarshalJSON adds delta, null when undefined.
func (r CompareRow) MarshalJSON() ([]byte, error) {
	type plain CompareRow
	var delta *float64
	if !math.IsNaN(r.Delta) && !math.IsInf(r.Delta, 0) {
		d := r.Delta
		delta = &d
	}
	return json.Marshal(struct {
		plain
		Delta *float64 `json:"delta"`
	}{plain(r), delta})
}

// Comparison is the outcome of comparing two runs.
type Comparison struct {
	Base        string       `json:"base"`
	New         string       `json:"new"`
	BaseRun     string       `json:"baseRun"`
	NewRun      string       `json:"newRun"`
	Threshold   float64      `json:"threshold"`
	Alpha       float64      `json:"alpha"`
	Metrics     []string     `json:"metrics"`
	Rows        []CompareRow `json:"rows"`
	OnlyBase    []string     `json:"onlyInBase,omitempty"`
	OnlyNew     []string     `json:"onlyInNew,omitempty"`
	Regressions int          `json:"regressions"`
	// Notes are caveats a reader must see (invalid points left out,
	// comparisons too small to detect anything).
	Notes []string `json:"notes,omitempty"`
}

// ErrNothingInCommon is returned when two runs share no condition.
var ErrNothingInCommon = errors.New("the runs have no condition (mode, services, requestsPerConn, targets) in common")

// Compare matches the points of two runs by condition (mode, Services,
// requests per connection, targets) and compares every metric over their
// valid repetitions the way benchstat does: medians with 95% confidence
// intervals, and the Mann-Whitney U test. A metric regresses when it gets
// worse by more than the threshold and the test finds the change
// significant at Alpha.
//
// Samples are the repetitions, never the per-second values inside a
// point: those are autocorrelated (one warm cache, one conntrack table),
// and treating them as independent would make noise look significant. So
// detecting a change needs at least MinRepetitions() repetitions per side;
// 6 or more give the median a finite confidence interval too.
func Compare(base, next *Data, opts CompareOptions) (*Comparison, error) {
	c := &Comparison{Base: base.Dir, New: next.Dir, BaseRun: base.Run.ID, NewRun: next.Run.ID, Threshold: opts.Threshold, Alpha: Alpha}
	for _, m := range opts.Metrics {
		c.Metrics = append(c.Metrics, m.Name)
	}
	baseGroups := map[runs.Key]*group{}
	for _, g := range base.groups {
		baseGroups[g.Key] = g
	}
	nextGroups := map[runs.Key]*group{}
	for _, g := range next.groups {
		nextGroups[g.Key] = g
	}
	var common []runs.Key
	for _, g := range base.groups {
		if _, ok := nextGroups[g.Key]; ok {
			common = append(common, g.Key)
		} else {
			c.OnlyBase = append(c.OnlyBase, g.Key.String())
		}
	}
	for _, g := range next.groups {
		if _, ok := baseGroups[g.Key]; !ok {
			c.OnlyNew = append(c.OnlyNew, g.Key.String())
		}
	}
	if len(common) == 0 {
		return nil, fmt.Errorf("%s vs %s: %w", base.Dir, next.Dir, ErrNothingInCommon)
	}
	sort.SliceStable(common, func(i, j int) bool { return keyLess(common[i], common[j]) })

	invalid := 0
	underpowered := 0
	for _, m := range opts.Metrics {
		for _, k := range common {
			bg, ng := baseGroups[k], nextGroups[k]
			bv, nv := bg.values(m), ng.values(m)
			if len(bv) == 0 || len(nv) == 0 {
				continue
			}
			row := CompareRow{Condition: k.String(), Metric: m.Name, Unit: m.Unit, Base: newStat(bv), New: newStat(nv), P: 1, Delta: math.NaN()}
			if row.Base.Median != 0 {
				row.Delta = row.New.Median/row.Base.Median - 1
			} else if row.New.Median == 0 {
				row.Delta = 0
			}
			cmp := compareSamples(bv, nv)
			row.P = cmp.P
			row.Significant = cmp.P < Alpha
			row.Underpowered = !row.Significant && minMannWhitneyP(len(bv), len(nv)) >= Alpha
			if row.Underpowered {
				underpowered++
			}
			worse := row.New.Median > row.Base.Median
			if !m.HigherIsWorse {
				worse = row.New.Median < row.Base.Median
			}
			beyond := math.IsNaN(row.Delta) || math.Abs(row.Delta) > opts.Threshold
			switch {
			case !row.Significant:
				row.Verdict = VerdictSame
			case !beyond:
				row.Verdict = VerdictWithin
			case worse:
				row.Verdict = VerdictRegression
				c.Regressions++
			default:
				row.Verdict = VerdictImprovement
			}
			c.Rows = append(c.Rows, row)
		}
	}
	for _, k := range common {
		invalid += baseGroups[k].Invalid + nextGroups[k].Invalid
	}
	if invalid > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d invalid points were left out of the comparison", invalid))
	}
	if underpowered > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d comparisons have too few valid repetitions to reach significance at α=%.2f (the Mann-Whitney test needs at least %d per side): a regression there cannot be detected; run more repetitions",
			underpowered, Alpha, MinRepetitions()))
	}
	if len(c.OnlyBase) > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d conditions only in base, not compared", len(c.OnlyBase)))
	}
	if len(c.OnlyNew) > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d conditions only in new, not compared", len(c.OnlyNew)))
	}
	return c, nil
}

func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		// Three significant digits, trailing zeros kept (0.110).
		return strconv.FormatFloat(v, 'f', 2-int(math.Floor(math.Log10(a))), 64)
	}
}

func (r CompareRow) deltaString() string {
	if math.IsNaN(r.Delta) {
		return "?"
	}
	return fmt.Sprintf("%+.2f%%", 100*r.Delta)
}

func (r CompareRow) nString() string {
	if r.Base.N == r.New.N {
		return fmt.Sprint(r.Base.N)
	}
	return fmt.Sprintf("%d+%d", r.Base.N, r.New.N)
}

func (c *Comparison) header() string {
	return fmt.Sprintf("base: %s (%s)\nnew:  %s (%s)\nregression: worse by more than %s with p < %.2f (Mann-Whitney U over repetitions; medians ± 95%% CI)",
		c.Base, c.BaseRun, c.New, c.NewRun, formatThreshold(c.Threshold), c.Alpha)
}

func formatThreshold(t float64) string {
	return strconv.FormatFloat(100*t, 'f', -1, 64) + "%"
}

func (c *Comparison) summary() string {
	if c.Regressions == 0 {
		return "no significant regression beyond the threshold"
	}
	return fmt.Sprintf("%d significant regression(s) beyond %s", c.Regressions, formatThreshold(c.Threshold))
}

// WriteText writes a benchstat-like table per metric.
func (c *Comparison) WriteText(w io.Writer) error {
	var b strings.Builder
	b.WriteString(c.header() + "\n")
	for _, m := range c.Metrics {
		rows := c.rowsOf(m)
		if len(rows) == 0 {
			continue
		}
		desc, unit := describeMetric(m)
		fmt.Fprintf(&b, "\n%s: %s (%s)\n", m, desc, unit)
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "condition\tbase\t\tnew\t\tdelta\tp\tn\tverdict")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Condition,
				formatValue(r.Base.Median), r.Base.pctRange(), formatValue(r.New.Median), r.New.pctRange(),
				r.deltaString(), formatP(r.P), r.nString(), r.Verdict)
		}
		tw.Flush()
	}
	c.writeFooter(&b, "")
	_, err := io.WriteString(w, b.String())
	return err
}

func (c *Comparison) writeFooter(b *strings.Builder, bullet string) {
	b.WriteString("\n")
	for _, n := range c.Notes {
		fmt.Fprintf(b, "%snote: %s\n", bullet, n)
	}
	for _, k := range c.OnlyBase {
		fmt.Fprintf(b, "%sonly in base: %s\n", bullet, k)
	}
	for _, k := range c.OnlyNew {
		fmt.Fprintf(b, "%sonly in new: %s\n", bullet, k)
	}
	if len(c.Notes)+len(c.OnlyBase)+len(c.OnlyNew) > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "%s\n", c.summary())
}

// WriteMarkdown writes the tables as GitHub-flavoured Markdown (for CI job
// summaries).
func (c *Comparison) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("## kpbench compare\n\n")
	fmt.Fprintf(&b, "- base: `%s` (%s)\n- new: `%s` (%s)\n- regression: worse by more than %s with p < %.2f (Mann-Whitney U over repetitions; medians ± 95%% CI)\n",
		c.Base, c.BaseRun, c.New, c.NewRun, formatThreshold(c.Threshold), c.Alpha)
	for _, m := range c.Metrics {
		rows := c.rowsOf(m)
		if len(rows) == 0 {
			continue
		}
		desc, unit := describeMetric(m)
		fmt.Fprintf(&b, "\n### %s: %s (%s)\n\n", m, desc, unit)
		b.WriteString("| condition | base | new | delta | p | n | verdict |\n|---|---:|---:|---:|---:|---:|---|\n")
		for _, r := range rows {
			verdict := r.Verdict
			if verdict == VerdictRegression {
				verdict = "**" + verdict + "**"
			}
			fmt.Fprintf(&b, "| %s | %s %s | %s %s | %s | %s | %s | %s |\n", r.Condition,
				formatValue(r.Base.Median), r.Base.pctRange(), formatValue(r.New.Median), r.New.pctRange(),
				r.deltaString(), formatP(r.P), r.nString(), verdict)
		}
	}
	c.writeFooter(&b, "- ")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the comparison as one JSON document.
func (c *Comparison) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

func (c *Comparison) rowsOf(metric string) []CompareRow {
	var out []CompareRow
	for _, r := range c.Rows {
		if r.Metric == metric {
			out = append(out, r)
		}
	}
	return out
}

func describeMetric(name string) (string, string) {
	for _, m := range Metrics {
		if m.Name == name {
			return m.Description, m.Unit
		}
	}
	return name, ""
}
