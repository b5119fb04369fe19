package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"path"
	"strings"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// The report is built once as a list of blocks and rendered twice, as
// Markdown and as self-contained HTML, so both say the same thing.
type block interface{ isBlock() }

type heading struct {
	level int
	text  string
	id    string
}
type para struct{ text string }
type bullets struct{ items []string }
type table struct {
	header []string
	rows   [][]string
	// numeric marks right-aligned columns.
	numeric []bool
}
type figureBlock struct{ plot Plot }

func (heading) isBlock()     {}
func (para) isBlock()        {}
func (bullets) isBlock()     {}
func (table) isBlock()       {}
func (figureBlock) isBlock() {}

type document struct {
	title  string
	blocks []block
}

func (d *document) h(level int, text string) {
	id := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, text)
	d.blocks = append(d.blocks, heading{level, text, id})
}
func (d *document) p(format string, args ...any) {
	d.blocks = append(d.blocks, para{fmt.Sprintf(format, args...)})
}
func (d *document) list(items []string) {
	if len(items) > 0 {
		d.blocks = append(d.blocks, bullets{items})
	}
}
func (d *document) table(t table) { d.blocks = append(d.blocks, t) }

func newDocument(d *Data, plots []Plot, findings []Finding) *document {
	r := d.Run
	doc := &document{title: "kpbench report: " + r.ID}
	valid := 0
	for _, p := range d.Points {
		if p.Valid {
			valid++
		}
	}
	doc.p("Scenario %s on the %s provider, status %s: %s measured, %d valid, %d invalid.",
		orDash(r.Scenario.Metadata.Name), orDash(r.Provider.Name), orDash(r.Status), count(len(d.Points), "point", "points"), valid, len(d.Points)-valid)
	if r.Status != runs.StatusComplete {
		doc.p("This run did not complete (status %s): the figures and findings cover only the points measured before it stopped.", orDash(r.Status))
	}
	if note := acceleratorNote(r.Environment); note != "" {
		doc.p("%s", note)
	}

	doc.h(2, "Summary")
	if len(findings) == 0 {
		doc.p("No valid points: nothing can be concluded from this run.")
	}
	if t, ok := headlineTable(findings); ok {
		doc.p("Each mode at the largest Service count every mode reached: mean of the valid repetitions, its 95%% confidence interval, n, and the verdict against %s.%s", t.reference, blockNote(r))
		doc.table(t.table)
	}
	if t, ok := kernelTable(d); ok {
		doc.p("The kernel's own time on the SYN's path (time to first packet: from SYN_SENT to the SYN's device queue, where the Service's rules run; docs/firstpacket.md), for every condition the probe timed: means of the windows' percentiles with 95%% confidence intervals over the valid repetitions, and the span's share of the node's CPU (mean span × timed connections per second). Descriptive: these rows are in no tested family unless the scenario's gate or primary names them.")
		doc.table(t)
	}
	// The few sentences that matter: what the test establishes, the cost
	// per rule, the dataplane's state. Everything else follows, briefly.
	doc.h(2, "Headline findings")
	var primary []string
	for _, f := range findings {
		if f.Primary {
			primary = append(primary, f.Text)
		}
	}
	if len(primary) > 0 {
		doc.p("Primary comparison (%s; declared in the scenario before the run, and tested as a family of its own):", primaryWhat(findings))
		doc.list(primary)
	}
	var rest []string
	for _, kind := range []struct{ kind, intro string }{
		{FindingModes, "Between modes, at the largest Service count they all reached:"},
		{FindingDepth, "Cost per rule walked, against the target's recorded depth (" + FitMethod + "):"},
		{FindingPerConnection, "CPU per new connection, keepalive baseline subtracted (client-node CPU per request includes the client's own work and every request's; this subtracts the same requests over kept-alive connections):"},
		{FindingGrowth, "Within each mode, from the smallest to the largest Service count:"},
		{FindingState, "Dataplane state:"},
	} {
		var items []string
		for _, f := range findings {
			switch {
			case f.Kind != kind.kind || f.Primary:
			case f.Diff == nil || f.Significant || f.Diff.Descriptive:
				items = append(items, f.Text)
			default:
				rest = append(rest, f.Text)
			}
		}
		if len(items) > 0 {
			doc.p("%s", kind.intro)
			doc.list(items)
		}
	}
	doc.p("%s", methodCaveat(findings))
	if len(rest) > 0 {
		doc.h(3, "Differences not established")
		doc.list(rest)
	}
	doc.churn(d)

	doc.h(2, "Plots")
	for _, pl := range plots {
		doc.h(3, pl.Title)
		if pl.Skipped != "" {
			doc.p("Not drawn: %s.", pl.Skipped)
			continue
		}
		doc.blocks = append(doc.blocks, figureBlock{pl})
		doc.p("%s", pl.Caption)
	}

	doc.cpuAttribution(d)

	doc.h(2, "Environment")
	doc.table(environmentTable(r, d.Points))

	doc.h(2, "Scenario")
	if r.Scenario.Metadata.Description != "" {
		doc.p("%s", r.Scenario.Metadata.Description)
	}
	doc.table(scenarioTable(r, d.Points))

	doc.h(2, "Methodology")
	doc.p("%s", methodology(r, nodeCPUCovers(d.Points)))
	doc.p("%s", resetStatement(d.Points))
	doc.p("%s", depthMethodology(r.Scenario.Spec.Load.Targets))

	doc.h(2, "Summary by condition")
	doc.p("Means over valid repetitions ± half the 95%% confidence interval (Student's t; none with one repetition).%s", blockNote(r))
	doc.table(summaryTable(d))

	doc.h(2, "Invalid points and skipped modes")
	var problems []string
	for _, s := range r.SkippedModes {
		problems = append(problems, fmt.Sprintf("Mode %s skipped: %s", s.Mode, s.Reason))
	}
	for _, p := range d.Points {
		if !p.Valid {
			reasons := strings.Join(p.InvalidReasons, "; ")
			if reasons == "" {
				reasons = "no reason recorded"
			}
			problems = append(problems, fmt.Sprintf("Point %s invalid: %s (left out of plots, findings and comparisons)", p.ID, reasons))
		}
	}
	if len(problems) == 0 {
		doc.p("None: every point is valid and every requested mode ran.")
	}
	doc.list(problems)
	if len(r.Problems) > 0 {
		doc.h(3, "Run problems")
		doc.list(r.Problems)
	}

	doc.h(2, "Every point")
	doc.p("Latency and connect times in µs, CPU in cores, sync and time to programmed in seconds; depth in rules walked (a range is the targets' min–max around their connection-weighted mean; \"reordered\" marks a sync during the window, with the depth before and after). All fields are in points.csv.")
	doc.table(pointsTable(d.Points))

	doc.p("Written by kpbench %s from run.json and points.jsonl; redraw with `kpbench report %s`.", orDash(r.KpbenchVersion), d.Dir)
	return doc
}

// blockNote says, under order: modes, what a condition's interval
// describes: its repetitions shared one block of time.
func blockNote(r *runs.Run) string {
	if orderOf(r.Scenario.Spec.Order) == scenarios.OrderSteps {
		return ""
	}
	return " Under order: modes a condition's repetitions shared one block of time: its interval describes their spread within that block, not how another block would differ."
}

func methodology(r *runs.Run, covers string) string {
	s := r.Scenario.Spec
	return fmt.Sprintf("For each mode kube-proxy is switched and its mode verified (GET /proxyMode and rules of that kind present); "+
		"for each Service step the synthetic Services (each with %d endpoints on the real backend pods) are created and kpbench waits until "+
		"a connection to the last one succeeds (time to programmed). For each connection variant and repetition, after a warm-up of %s, "+
		"an open-loop client sends %g requests/s on a fixed schedule for %s: a slow response never delays the next send, and each "+
		"latency is measured from the request's intended send time, so coordinated omission is corrected. Requests per connection 1 opens "+
		"a new TCP connection (the dataplane's first-packet rules) per request; N reuses each connection for N requests; 0 keeps "+
		"connections open. Client-node CPU is the busy time, over the measured window and in cores, of %s (from /proc/stat: user, "+
		"nice, system, irq, softirq, steal; from a cgroup: its usage, user and system, which leaves out softirq work the kernel "+
		"charges to no process); process CPU comes from /proc/<pid>/stat. A point is invalid when the achieved rate "+
		"falls below 99%% of the target, more than 0.1%% of requests fail, the client fell behind its schedule (a send later than 0.4%% "+
		"of the window, at least 20 ms, or the median send more than 1 ms late: the client's delay would be charged as latency), the "+
		"client hit its in-flight bound, a client-node CPU sampling interval reached 0.98 of its CPUs, the CPU samples covered less "+
		"than 90%% of the window, kube-proxy synced or reordered the chain inside the window, kube-proxy restarted, or the mode in "+
		"effect is not the one asked for; invalid points are listed but left out of plots, "+
		"findings and comparisons. Latency percentiles cover the requests that succeeded: a failed request has no latency (a refused "+
		"connection fails in microseconds, a timeout at the timeout), so the failed requests are counted beside p99 and p99.9 in the "+
		"tables instead of being folded into them.",
		s.EndpointsPerService, s.Load.WarmupDuration(), s.Load.Rate, s.Load.Duration, covers)
}

// methodCaveat states once how the findings were tested, and what "not
// established" means, instead of repeating it in every bullet.
func methodCaveat(findings []Finding) string {
	tests, minN, primaryTests, primaryMinN, described := 0, 0, 0, 0, 0
	for _, f := range findings {
		if f.Diff != nil && f.Diff.Descriptive {
			described++
		}
		if f.Diff == nil || f.Diff.Descriptive {
			continue
		}
		n := min(f.Diff.A.N, f.Diff.B.N)
		if f.Primary {
			primaryTests = f.Diff.Tests
			if primaryMinN == 0 || n < primaryMinN {
				primaryMinN = n
			}
			continue
		}
		tests = f.Diff.Tests
		if minN == 0 || n < minN {
			minN = n
		}
	}
	const unit = "one value per condition per block (under order: steps each repetition is a block)"
	const interval = "the interval beside each verdict is the Hodges–Lehmann shift's, drawn at the row's adjusted level (so it excludes zero exactly when the verdict is significant; where the compared conditions share each repetition's block, as the modes and placements of one repetition do under order: steps, this unpaired test and its interval are conservative: they cover at least their level, 98–99% at 95% in docs/report.md's simulations)"
	s := fmt.Sprintf("Method: differences are means of valid repetitions, %s; significance is the exact Mann-Whitney U test at α=%.2f after Holm's correction over the %d comparisons above, so that the chance of even one false claim among them stays at or below 5%%; %s.", unit, Alpha, tests, interval)
	if described > 0 && tests == 0 && primaryTests == 0 {
		return fmt.Sprintf("Method: this run measured under order: modes, where each mode, and each of its steps, ran in one block of time: its repetitions are not independent units of a comparison between modes or steps, so the %d differences above are descriptive (means and n) and not tested. Under order: steps every repetition is a block in which each mode and step takes a turn, and the same differences are tested.", described)
	}
	if primaryTests > 0 {
		s = fmt.Sprintf("Method: differences are means of valid repetitions, %s; significance is the exact Mann-Whitney U test at α=%.2f after Holm's correction within each family: the primary comparison's %d, and the other %d comparisons, so that the chance of even one false claim in either stays at or below 5%%; %s.", unit, Alpha, primaryTests, tests, interval)
		if primaryMinN > 0 && primaryMinN < RepetitionsFor(primaryTests) {
			s += fmt.Sprintf(" The primary comparison has %d valid repetitions per side and needs %d to be able to reach significance.", primaryMinN, RepetitionsFor(primaryTests))
		}
	}
	if tests > 0 && minN > 0 && minN < RepetitionsFor(tests) {
		s += fmt.Sprintf(" With %d valid repetitions per side, some comparisons cannot reach significance at all (that needs %d per side over %d comparisons); they are reported as not established, never as absent.", minN, RepetitionsFor(tests), tests)
	}
	return s
}

// primaryWhat names the primary comparison's metric and variant, from
// its findings ("median connect time, a new connection per request").
func primaryWhat(findings []Finding) string {
	for _, f := range findings {
		if f.Primary && f.between != nil {
			return f.between.metric.what + ", " + f.between.variant
		}
	}
	return "declared in the scenario"
}

type headline struct {
	table     table
	reference scenarios.Mode
}

// headlineTable is the report's first table: for each connection variant
// and metric, each mode at the largest common step, with its mean, 95% CI,
// n and the verdict of its comparison with the first mode (the findings'
// Holm-adjusted test).
func headlineTable(findings []Finding) (headline, bool) {
	t := table{header: []string{"connections", "Services", "metric", "mode", "mean", "95% CI", "n", "verdict"},
		numeric: []bool{false, true, false, false, true, true, true, false}}
	var ref scenarios.Mode
	type rowKey struct {
		variant, metric string
		mode            scenarios.Mode
	}
	done := map[rowKey]bool{}
	ci := func(s Summary, digits int) string {
		if !s.HasCI {
			return "—"
		}
		return fmt.Sprintf("%.*f to %.*f", digits, s.CILo, digits, s.CIHi)
	}
	for _, f := range findings {
		b := f.between
		if b == nil || f.Diff == nil {
			continue
		}
		if ref == "" {
			ref = b.high
		}
		if b.high != ref {
			continue // modes compared with each other, not with the reference
		}
		d, fm := f.Diff, b.metric
		if k := (rowKey{b.variant, fm.what, b.high}); !done[k] {
			done[k] = true
			t.rows = append(t.rows, []string{b.variant, formatCount(b.services), fm.what + " (" + fm.unit + ")", string(b.high),
				fmt.Sprintf("%.*f", fm.digits, d.B.Mean), ci(d.B, fm.digits), fmt.Sprint(d.B.N), "reference"})
		}
		t.rows = append(t.rows, []string{b.variant, formatCount(b.services), fm.what + " (" + fm.unit + ")", string(b.low),
			fmt.Sprintf("%.*f", fm.digits, d.A.Mean), ci(d.A, fm.digits), fmt.Sprint(d.A.N), headlineVerdict(d, b)})
	}
	return headline{table: t, reference: ref}, len(t.rows) > 0
}

// headlineVerdict is a summary row's verdict with the interval that
// inverts its test at the level Holm's correction used: the shift of the
// reference mode over this one, so the two cannot disagree.
func headlineVerdict(d *Difference, b *modesAt) string {
	fm := b.metric
	ci := strings.TrimSuffix(shiftCI(*d, fm), "; ")
	if ci != "" {
		ci += "; "
	}
	switch {
	case d.Descriptive:
		return "not tested: each mode ran in one block of time (order: modes)"
	case d.Significant && d.Delta > 0:
		return fmt.Sprintf("lower than %s by %s (%sp(holm)=%s)", b.high, fm.format(d.Delta), ci, formatP(d.PAdjusted))
	case d.Significant:
		return fmt.Sprintf("higher than %s by %s (%sp(holm)=%s)", b.high, fm.format(-d.Delta), ci, formatP(d.PAdjusted))
	case d.Underpowered:
		return "not established (too few repetitions)"
	}
	return fmt.Sprintf("no significant difference (%sp(holm)=%s)", ci, formatP(d.PAdjusted))
}

func pm(s Summary, digits int) string {
	if s.N == 0 {
		return "—"
	}
	if !s.HasCI {
		return fmt.Sprintf("%.*f", digits, s.Mean)
	}
	return fmt.Sprintf("%.*f ± %.*f", digits, s.Mean, digits, s.HalfWidth())
}

func summaryTable(d *Data) table {
	t := table{
		header:  []string{"mode", "targets", "req/conn", "Services", "n", "rules walked", "latency mean µs", "latency p99 µs", "latency p99.9 µs", "failed requests", "connect p50 µs", "node CPU cores", "kube-proxy CPU cores"},
		numeric: []bool{false, false, true, true, true, true, true, true, true, true, true, true, true},
	}
	kernel, back := timesFirstPacket(d), timesMetric(d, "first-packet-return")
	if kernel {
		t.header = append(t.header, firstPacketHeaders(d)...)
		t.numeric = append(t.numeric, true, true)
	}
	if back {
		t.header = append(t.header, firstPacketReturnHeaders(d)...)
		t.numeric = append(t.numeric, true, true)
	}
	for _, g := range d.groups {
		n := fmt.Sprint(len(g.Valid))
		if g.Invalid > 0 {
			n += fmt.Sprintf(" (+%d invalid)", g.Invalid)
		}
		t.rows = append(t.rows, []string{
			string(g.Key.Mode), string(g.Key.Targets), fmt.Sprint(g.Key.RequestsPerConn), formatCount(g.Key.Services), n, groupDepth(g),
			g.summary("latency"), g.summary("latency-p99"), g.summary("latency-p999"),
			failedShare(g.Valid),
			g.summary("connect"), g.summary("cpu"), g.summary("kube-proxy-cpu"),
		})
		if kernel {
			t.rows[len(t.rows)-1] = append(t.rows[len(t.rows)-1], g.summary("first-packet"), g.summary("first-packet-p99"))
		}
		if back {
			t.rows[len(t.rows)-1] = append(t.rows[len(t.rows)-1], g.summary("first-packet-return"), g.summary("first-packet-return-p99"))
		}
	}
	return t
}

// timesFirstPacket reports whether any point of d has the kernel's time
// to first packet (runs of older kpbench versions have none).
func timesFirstPacket(d *Data) bool { return timesMetric(d, "first-packet") }

// timesMetric reports whether any point of d measures the named metric.
func timesMetric(d *Data, name string) bool {
	m := metric(name)
	for _, g := range d.groups {
		for _, p := range g.Points {
			if _, ok := m.Value(p); ok {
				return true
			}
		}
	}
	return false
}

// failedShare is the failed requests of points, with their share of all
// requests: what the latency percentiles beside it leave out.
func failedShare(points []*runs.Point) string {
	var failed, total int64
	for _, p := range points {
		failed += p.Errors.Total
		total += p.Requests
	}
	if total == 0 {
		return "—"
	}
	return fmt.Sprintf("%d (%.3f%%)", failed, 100*float64(failed)/float64(total))
}

func pointsTable(points []runs.Point) table {
	t := table{
		header: []string{"point", "mode", "Services", "req/conn", "targets", "rep", "depth", "rate achieved/target", "latency mean", "p50", "p99", "p99.9", "failed",
			"connect p50", "connect p99", "node CPU", "kube-proxy CPU", "rules", "sync s", "programmed s", "valid"},
		numeric: []bool{false, false, true, true, false, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, false},
	}
	for _, p := range points {
		valid := "yes"
		if !p.Valid {
			valid = "no: " + strings.Join(p.InvalidReasons, "; ")
		}
		connect50, connect99 := "—", "—"
		if p.Connect.Count > 0 {
			connect50, connect99 = fmt.Sprintf("%.1f", p.Connect.P50Us), fmt.Sprintf("%.1f", p.Connect.P99Us)
		}
		ttp := "—"
		if p.TimeToProgrammedSeconds > 0 {
			ttp = fmt.Sprintf("%.2f", p.TimeToProgrammedSeconds)
		}
		t.rows = append(t.rows, []string{
			p.ID, string(p.Mode), formatCount(p.Services), fmt.Sprint(p.RequestsPerConn), string(p.Targets), fmt.Sprint(p.Repetition), depthCell(&p),
			fmt.Sprintf("%.1f/%g", p.Rate.Achieved, p.Rate.Target),
			fmt.Sprintf("%.1f", p.Latency.MeanUs), fmt.Sprintf("%.1f", p.Latency.P50Us), fmt.Sprintf("%.1f", p.Latency.P99Us),
			fmt.Sprintf("%.1f", p.Latency.P999Us), fmt.Sprint(p.Errors.Total),
			connect50, connect99,
			fmt.Sprintf("%.3f", p.CPU.Node.Total), fmt.Sprintf("%.4f", p.CPU.Processes.KubeProxy),
			formatRules(p.Rules),
			fmt.Sprintf("%.3f", p.Sync.LastDurationSeconds), ttp, valid,
		})
	}
	return t
}

// markdown renders the document as GitHub-flavoured Markdown; figures link
// to plots/NAME.png beside report.md.
func (d *document) markdown() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %s\n\n", d.title)
	for _, bl := range d.blocks {
		switch x := bl.(type) {
		case heading:
			fmt.Fprintf(&b, "%s %s\n\n", strings.Repeat("#", x.level), x.text)
		case para:
			fmt.Fprintf(&b, "%s\n\n", x.text)
		case bullets:
			for _, it := range x.items {
				fmt.Fprintf(&b, "- %s\n", it)
			}
			b.WriteString("\n")
		case table:
			cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
			b.WriteString("|")
			for _, h := range x.header {
				fmt.Fprintf(&b, " %s |", cell(h))
			}
			b.WriteString("\n|")
			for i := range x.header {
				if i < len(x.numeric) && x.numeric[i] {
					b.WriteString("---:|")
				} else {
					b.WriteString("---|")
				}
			}
			b.WriteString("\n")
			for _, row := range x.rows {
				b.WriteString("|")
				for _, c := range row {
					fmt.Fprintf(&b, " %s |", cell(c))
				}
				b.WriteString("\n")
			}
			b.WriteString("\n")
		case figureBlock:
			fmt.Fprintf(&b, "![%s](%s)\n\n", x.plot.Title, path.Join(runs.PlotsDir, x.plot.Name+".png"))
		}
	}
	return b.Bytes(), nil
}

const htmlStyle = `body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:1em 0;font-size:.85em}th,td{border:1px solid #ddd;padding:.25em .5em;vertical-align:top}
th{background:#f4f4f4;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
.scroll{overflow-x:auto}code{background:#f4f4f4;padding:0 .2em}`

// html renders the document as one self-contained HTML file: plots are
// embedded as data: URIs and there is no external reference of any kind.
func (d *document) html() ([]byte, error) {
	var b bytes.Buffer
	esc := html.EscapeString
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>%s</title>\n<style>%s</style>\n</head>\n<body>\n<h1>%s</h1>\n",
		esc(d.title), htmlStyle, esc(d.title))
	for _, bl := range d.blocks {
		switch x := bl.(type) {
		case heading:
			fmt.Fprintf(&b, "<h%d id=\"%s\">%s</h%d>\n", x.level, esc(x.id), esc(x.text), x.level)
		case para:
			fmt.Fprintf(&b, "<p>%s</p>\n", inlineCode(esc(x.text)))
		case bullets:
			b.WriteString("<ul>\n")
			for _, it := range x.items {
				fmt.Fprintf(&b, "<li>%s</li>\n", esc(it))
			}
			b.WriteString("</ul>\n")
		case table:
			b.WriteString("<div class=\"scroll\"><table>\n")
			if strings.Join(x.header, "") != "" {
				b.WriteString("<thead><tr>")
				for _, h := range x.header {
					fmt.Fprintf(&b, "<th>%s</th>", esc(h))
				}
				b.WriteString("</tr></thead>\n")
			}
			b.WriteString("<tbody>\n")
			for _, row := range x.rows {
				b.WriteString("<tr>")
				for i, c := range row {
					if i < len(x.numeric) && x.numeric[i] {
						fmt.Fprintf(&b, "<td class=\"num\">%s</td>", esc(c))
					} else if len(x.numeric) == 0 && i == 0 {
						fmt.Fprintf(&b, "<th>%s</th>", esc(c))
					} else {
						fmt.Fprintf(&b, "<td>%s</td>", esc(c))
					}
				}
				b.WriteString("</tr>\n")
			}
			b.WriteString("</tbody></table></div>\n")
		case figureBlock:
			fmt.Fprintf(&b, "<figure><img alt=\"%s\" src=\"data:image/png;base64,%s\"></figure>\n",
				esc(x.plot.Title), base64.StdEncoding.EncodeToString(x.plot.PNG))
		}
	}
	b.WriteString("</body>\n</html>\n")
	return b.Bytes(), nil
}

// inlineCode turns `text` spans of already-escaped HTML into <code>.
func inlineCode(s string) string {
	parts := strings.Split(s, "`")
	if len(parts)%2 == 0 {
		return s
	}
	var b strings.Builder
	for i, p := range parts {
		if i%2 == 1 {
			b.WriteString("<code>" + p + "</code>")
		} else {
			b.WriteString(p)
		}
	}
	return b.String()
}
