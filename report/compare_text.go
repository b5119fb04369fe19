package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

func lookupMetric(name string) (Metric, bool) {
	if to, ok := metricAliases[name]; ok {
		name = to
	}
	for _, m := range Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{Name: name, HigherIsWorse: true}, false
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

// ciString is the change's interval at the row's level, "[+18%, +27%]"
// (a gated row's is one-sided: "[+18%, +∞)"), with the level's
// confidence when it is not 95%.
func (r CompareRow) ciString() string {
	if !r.tested {
		return ""
	}
	pct := func(v float64) string {
		switch {
		case math.IsInf(v, 1):
			return "+∞"
		case math.IsInf(v, -1):
			return "-∞"
		}
		return fmt.Sprintf("%+.1f%%", 100*v)
	}
	closing := "]"
	if math.IsInf(r.Change.Hi, 1) {
		closing = ")"
	}
	if math.IsInf(r.Change.Lo, -1) && closing == ")" {
		return "(-∞, +∞)"
	}
	out := "[" + pct(r.Change.Lo) + ", " + pct(r.Change.Hi) + closing
	if math.IsInf(r.Change.Lo, -1) {
		out = "(" + out[1:]
	}
	if r.Family == FamilyGate || (r.Level > 0 && math.Abs(r.Level-Alpha) > 1e-9) {
		out += fmt.Sprintf(" @%s%%", strconv.FormatFloat(100*(1-r.Level), 'g', 4, 64))
	}
	return out
}

func (r CompareRow) familyString() string {
	if r.Family == "" {
		return "—"
	}
	return r.Family
}

func (r CompareRow) pString() string {
	if !r.tested {
		return ""
	}
	return formatP(r.PAdjusted)
}

func (r CompareRow) newString() (string, string) {
	if r.New.N == 0 {
		return "—", ""
	}
	return formatValue(r.New.Median), r.New.pctRange()
}

func (r CompareRow) nString() string {
	if r.Base.N == r.New.N {
		return fmt.Sprint(r.Base.N)
	}
	return fmt.Sprintf("%d+%d", r.Base.N, r.New.N)
}

// method says how verdicts are reached, in one line.
func (c *Comparison) method() string {
	return fmt.Sprintf("gate: %s (%d rows). A gated row regresses when the one-sided exact Mann-Whitney test over repetitions rejects new/base ≤ 1+%s at α=%.2f after Holm's correction over the gated rows; its interval is the one-sided Hodges–Lehmann bound at the level its verdict used; a gated row whose repetitions cannot reach that level is INCONCLUSIVE (exit 2). Other rows are descriptive (two-sided, Holm over their %d tests; mean latency not tested). Lost points fail (exit 1) when the dataplane lost them, are inconclusive (exit 2) when the runner or a kube-proxy sync inside the window did",
		c.Gate, c.GateTests, formatThreshold(c.Threshold), c.Alpha, c.Tests)
}

// preamble is what a reader must see before any number: the runs, and how
// they differ in what was measured and where.
func (c *Comparison) preamble(bullet string) string {
	var b strings.Builder
	for _, m := range c.ScenarioMismatches {
		fmt.Fprintf(&b, "%sSCENARIO MISMATCH: %s\n", bullet, m)
	}
	for _, m := range c.EnvironmentDifferences {
		fmt.Fprintf(&b, "%senvironment differs: %s\n", bullet, m)
	}
	return b.String()
}

func (c *Comparison) header() string {
	return fmt.Sprintf("base: %s (%s)\nnew:  %s (%s)\n%s%s",
		c.Base, c.BaseRun, c.New, c.NewRun, c.preamble(""), c.method())
}

func formatThreshold(t float64) string {
	return strconv.FormatFloat(100*t, 'f', -1, 64) + "%"
}

// Summary is the comparison's outcome in one line.
func (c *Comparison) Summary() string {
	var parts []string
	if c.Regressions > 0 {
		parts = append(parts, fmt.Sprintf("%d significant regression(s) beyond %s", c.Regressions, formatThreshold(c.Threshold)))
	}
	for _, cause := range []string{CauseDataplane, CauseSync, CauseRunner} {
		conds, lost := 0, 0
		for _, l := range c.Lost {
			if l.Cause == cause {
				conds, lost = conds+1, lost+l.Lost
			}
		}
		if conds > 0 {
			parts = append(parts, fmt.Sprintf("%d condition(s) lost %d valid point(s) to the %s", conds, lost, cause))
		}
	}
	if c.InvalidRise != "" {
		parts = append(parts, c.InvalidRise)
	}
	if c.Inconclusive > 0 {
		parts = append(parts, fmt.Sprintf("%d gated row(s) inconclusive", c.Inconclusive))
	}
	status := map[int]string{ExitPass: "PASS", ExitFail: "FAIL", ExitInconclusive: "INCONCLUSIVE"}[c.ExitCode()]
	if len(parts) == 0 {
		return status + ": no gated row shown to be worse beyond the threshold"
	}
	return status + ": " + strings.Join(parts, "; ")
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
		fmt.Fprintln(tw, "condition\tbase\t\tnew\t\tdelta\tCI\tp(holm)\tn\tfamily\tverdict")
		for _, r := range rows {
			nv, nr := r.newString()
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Condition,
				formatValue(r.Base.Median), r.Base.pctRange(), nv, nr,
				r.deltaString(), r.ciString(), r.pString(), r.nString(), r.familyString(), r.Verdict)
		}
		tw.Flush()
	}
	c.writeFooter(&b, "")
	_, err := io.WriteString(w, b.String())
	return err
}

func (c *Comparison) writeFooter(b *strings.Builder, bullet string) {
	b.WriteString("\n")
	for _, l := range c.Lost {
		fmt.Fprintf(b, "%sLOST: %s: %s\n", bullet, l.Condition, l.verdict())
	}
	if c.InvalidRise != "" {
		fmt.Fprintf(b, "%sINVALID SHARE ROSE: %s\n", bullet, c.InvalidRise)
	}
	for _, n := range c.Notes {
		fmt.Fprintf(b, "%snote: %s\n", bullet, n)
	}
	for _, k := range c.OnlyBase {
		fmt.Fprintf(b, "%sonly in base: %s\n", bullet, k)
	}
	for _, k := range c.OnlyNew {
		fmt.Fprintf(b, "%sonly in new: %s\n", bullet, k)
	}
	if len(c.Lost)+len(c.Notes)+len(c.OnlyBase)+len(c.OnlyNew) > 0 || c.InvalidRise != "" {
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "%s\n", c.Summary())
}

// WriteMarkdown writes the tables as GitHub-flavoured Markdown (for CI job
// summaries).
func (c *Comparison) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("## kpbench compare\n\n")
	fmt.Fprintf(&b, "- base: `%s` (%s)\n- new: `%s` (%s)\n%s- %s\n",
		c.Base, c.BaseRun, c.New, c.NewRun, c.preamble("- "), c.method())
	for _, m := range c.Metrics {
		rows := c.rowsOf(m)
		if len(rows) == 0 {
			continue
		}
		desc, unit := describeMetric(m)
		fmt.Fprintf(&b, "\n### %s: %s (%s)\n\n", m, desc, unit)
		b.WriteString("| condition | base | new | delta | CI | p(holm) | n | family | verdict |\n|---|---:|---:|---:|---:|---:|---:|---|---|\n")
		for _, r := range rows {
			verdict := r.Verdict
			if verdict == VerdictRegression || verdict == VerdictInconclusive || strings.HasPrefix(verdict, "lost ") {
				verdict = "**" + verdict + "**"
			}
			nv, nr := r.newString()
			fmt.Fprintf(&b, "| %s | %s %s | %s %s | %s | %s | %s | %s | %s | %s |\n", r.Condition,
				formatValue(r.Base.Median), r.Base.pctRange(), nv, nr,
				r.deltaString(), r.ciString(), r.pString(), r.nString(), r.familyString(), verdict)
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
