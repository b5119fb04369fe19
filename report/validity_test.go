package report

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// TestFailedRequestsBesideTail: failed requests have no latency, so they
// must be shown right beside the tail percentiles they would move.
func TestFailedRequestsBesideTail(t *testing.T) {
	var pts []runs.Point
	for rep := 1; rep <= 2; rep++ {
		pts = append(pts, runs.Point{Mode: scenarios.ModeIPTables, Services: 1, RequestsPerConn: 1, Targets: scenarios.TargetsOne,
			Repetition: rep, Valid: true, Requests: 15000, Errors: runs.Errors{Total: 6},
			Latency: runs.Latency{P99Us: 900, P999Us: 2100}})
	}
	tab := summaryTable(&Data{Points: pts, groups: groupPoints(pts)})
	i := slices.Index(tab.header, "latency p99 µs")
	if i < 0 || tab.header[i+1] != "latency p99.9 µs" || tab.header[i+2] != "failed requests" {
		t.Fatalf("header %q: want p99, p99.9, failed requests side by side", tab.header)
	}
	if got := tab.rows[0][i+2]; got != "12 (0.040%)" {
		t.Errorf("failed requests %q, want 12 (0.040%%)", got)
	}
	pt := pointsTable(pts)
	j := slices.Index(pt.header, "p99")
	if j < 0 || pt.header[j+1] != "p99.9" || pt.header[j+2] != "failed" || pt.rows[0][j+2] != "6" {
		t.Errorf("points table header %q row %q", pt.header, pt.rows[0])
	}
}

// TestInvalidPointsChangeNothing: whatever an invalid point recorded, no
// finding and no plot may move (the report promises they are left out).
func TestInvalidPointsChangeNothing(t *testing.T) {
	base := load(t, "sweep")
	bad := derive(t, base, nil, func(p *runs.Point) bool {
		if !p.Valid {
			p.Sync.LastDurationSeconds = 987.6
			p.TimeToProgrammedSeconds = 654.3
			p.Rules.Total = 3
			p.Latency.MeanUs *= 50
			p.CPU.Node.Total = 1.9
		}
		return true
	})
	invalid := 0
	for _, p := range bad.Points {
		if !p.Valid {
			invalid++
		}
	}
	if invalid == 0 {
		t.Fatal("the fixture has no invalid point")
	}
	fa, fb := Findings(base), Findings(bad)
	if len(fa) != len(fb) {
		t.Fatalf("%d findings vs %d", len(fa), len(fb))
	}
	for i := range fa {
		if fa[i].Text != fb[i].Text {
			t.Errorf("an invalid point moved a finding:\n%s\n%s", fa[i].Text, fb[i].Text)
		}
	}
	pa, err := buildPlots(base)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := buildPlots(bad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range pa {
		if !bytes.Equal(pa[i].SVG, pb[i].SVG) {
			t.Errorf("an invalid point moved plot %s", pa[i].Name)
		}
	}
}

// TestReportLeadsWithSummary: the report opens with the summary table, and
// the method's caveat is stated once, not in every finding.
func TestReportLeadsWithSummary(t *testing.T) {
	d := derive(t, load(t, "sweep"), func(r *runs.Run) { r.Scenario.Spec.Order = scenarios.OrderSteps }, nil)
	text := reportMarkdown(t, d)
	sum, head, plots := strings.Index(text, "## Summary"), strings.Index(text, "## Headline findings"), strings.Index(text, "## Plots")
	if sum < 0 || head < sum || plots < head {
		t.Fatalf("sections out of order: summary %d, headline %d, plots %d", sum, head, plots)
	}
	if !strings.Contains(text[sum:head], "| connections | Services | metric | mode | mean | 95% CI | n | verdict |") ||
		!strings.Contains(text[sum:head], "| a new connection per request | 10,000 | median connect time (µs) | nftables | 61.6 | 58.5 to 64.7 | 4 |") {
		t.Errorf("summary table:\n%s", text[sum:head])
	}
	if n := strings.Count(text, "Holm's correction"); n != 1 {
		t.Errorf("the method caveat appears %d times", n)
	}
	for _, w := range []string{"too few valid repetitions", "excludes zero, which points to a real difference", "needs at least"} {
		if strings.Contains(text, w) {
			t.Errorf("report repeats %q", w)
		}
	}
}

func TestResetStatement(t *testing.T) {
	pts := []runs.Point{{Conntrack: runs.Conntrack{FlushedBefore: true, EntriesBefore: 2010}}, {Conntrack: runs.Conntrack{FlushedBefore: true, EntriesBefore: 1990}}}
	s := resetStatement(pts)
	for _, w := range []string{"conntrack table is flushed before each point's warm-up", "1,990 to 2,010", "Not reset: kube-proxy"} {
		if !strings.Contains(s, w) {
			t.Errorf("%q lacks %q", s, w)
		}
	}
	pts[1].Conntrack.FlushedBefore = false
	if s := resetStatement(pts); !strings.Contains(s, "flushed before 1 of 2 points") {
		t.Error(s)
	}
	if s := resetStatement([]runs.Point{{}}); !strings.Contains(s, "is not flushed") {
		t.Error(s)
	}
}

// TestReportStatesThePrimaryFirst: a declared primary comparison opens the
// headline, apart from the other findings, and the method names both
// families.
func TestReportStatesThePrimaryFirst(t *testing.T) {
	d := derive(t, load(t, "sweep"), func(r *runs.Run) {
		r.Scenario.Spec.Primary = &scenarios.Primary{Metric: "connect", RequestsPerConn: 1}
		r.Scenario.Spec.Order = scenarios.OrderSteps
	}, nil)
	text := reportMarkdown(t, d)
	head := strings.Index(text, "## Headline findings")
	prim := strings.Index(text, "Primary comparison (median connect time, a new connection per request; declared in the scenario before the run")
	between := strings.Index(text, "Between modes, at the largest Service count")
	if head < 0 || prim < head || (between >= 0 && between < prim) {
		t.Fatalf("primary comparison not first in the headline (headline %d, primary %d, between %d):\n%s", head, prim, between, text[head:])
	}
	if n := strings.Count(text, "At 10,000 Services with a new connection per request, median connect time"); n != 1 {
		t.Errorf("the primary finding appears %d times", n)
	}
	if !strings.Contains(text, "after Holm's correction within each family: the primary comparison's 1, and the other") {
		t.Errorf("method caveat does not name the families:\n%s", text[head:])
	}
}

// reportMarkdown generates d's report and returns its markdown.
func reportMarkdown(t *testing.T, d *Data) string {
	t.Helper()
	if _, err := Generate(d); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(d.Dir, MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(md)
}
