package report

import (
	"bytes"
	"fmt"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

func TestFitLineRecoversKnownSlope(t *testing.T) {
	// Connect p50 = 25 µs + 14 ns per rule, with 2 µs of noise and two
	// outliers a least-squares fit would follow.
	rng := rand.New(rand.NewPCG(7, 7))
	var xs, ys []float64
	for i := range 30 {
		x := float64(rng.IntN(3000))
		y := 25_000 + 14*x + 2_000*rng.NormFloat64()
		if i < 2 {
			y += 200_000
		}
		xs, ys = append(xs, x), append(ys, y)
	}
	f, ok := FitLine(xs, ys)
	if !ok || !f.HasCI {
		t.Fatalf("no fit: %+v", f)
	}
	if math.Abs(f.Slope-14) > 1 {
		t.Errorf("slope %.2f ns/rule, want 14 ± 1", f.Slope)
	}
	if f.SlopeLo > 14 || f.SlopeHi < 14 || f.SlopeLo <= 0 {
		t.Errorf("CI %.2f to %.2f should hold 14 and exclude 0", f.SlopeLo, f.SlopeHi)
	}
	if math.Abs(f.Intercept-25_000) > 2_000 {
		t.Errorf("intercept %.0f ns, want about 25,000", f.Intercept)
	}
	est, lo, hi, ok := f.Predict(3000)
	if !ok || lo > est || hi < est || math.Abs(est-(25_000+14*3000)) > 4_000 {
		t.Errorf("prediction at 3,000: %.0f (%.0f to %.0f)", est, lo, hi)
	}
	// A redrawn report says the same thing.
	g, _ := FitLine(xs, ys)
	if g.SlopeLo != f.SlopeLo || g.SlopeHi != f.SlopeHi {
		t.Error("the bootstrap is not repeatable")
	}
}

func TestFitLineFlat(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	var xs, ys []float64
	for range 24 {
		x := float64(rng.IntN(5000))
		xs, ys = append(xs, x), append(ys, 12_000+1_500*rng.NormFloat64())
	}
	f, ok := FitLine(xs, ys)
	if !ok || !f.HasCI {
		t.Fatalf("no fit: %+v", f)
	}
	if math.Abs(f.Slope) > 0.5 {
		t.Errorf("slope %.3f ns/rule, want ≈ 0", f.Slope)
	}
	if f.SlopeLo > 0 || f.SlopeHi < 0 {
		t.Errorf("CI %.3f to %.3f should contain 0", f.SlopeLo, f.SlopeHi)
	}
	if _, ok := FitLine([]float64{0, 0, 0}, []float64{1, 2, 3}); ok {
		t.Error("a fit with one x value")
	}
}

// depthData builds a run of points whose connect time and CPU grow with
// the recorded depth in iptables mode and not in nftables mode.
func depthData(t *testing.T) *Data {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 5))
	var pts []runs.Point
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, mode := range []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables} {
		for _, svc := range []int{1, 2000, 5000} {
			for _, tg := range []scenarios.Targets{scenarios.TargetsDeepest, scenarios.TargetsShallowest} {
				for rep := 1; rep <= 3; rep++ {
					depth := 0
					if mode == scenarios.ModeIPTables {
						depth = 1
						if tg == scenarios.TargetsDeepest {
							depth = svc + 1
						}
					}
					connNs := 25_000 + 1_000*rng.NormFloat64()
					cpuPerConn := 150_000 + 3_000*rng.NormFloat64() // ns
					if mode == scenarios.ModeIPTables {
						connNs += 14 * float64(depth)
						cpuPerConn += 18 * float64(depth)
					}
					p := runs.Point{ID: fmt.Sprintf("%s-%d-%s-%d", mode, svc, tg, rep), Mode: mode, Services: svc, RequestsPerConn: 1,
						Targets: tg, Repetition: rep, StartedAt: at, DurationSeconds: 10, Valid: true,
						Rate: runs.Rate{Target: 1000, Achieved: 1000}, Requests: 10_000,
						Connect: runs.Connect{Count: 10_000, P01Us: (connNs - 5_000) / 1e3, P50Us: connNs / 1e3},
						CPU:     runs.CPU{Node: runs.NodeCPU{Total: cpuPerConn * 1000 / 1e9}},
					}
					r := runs.DepthReading{Mean: float64(depth), Min: depth, Max: depth}
					if mode == scenarios.ModeIPTables {
						r.ChainLength = svc + 2
					}
					p.Depth = &runs.Depth{Before: r, After: r, Targets: 1}
					pts = append(pts, p)
				}
			}
		}
	}
	// A reordered point stays out of the fit, however wild.
	bad := pts[0]
	bad.ID, bad.Repetition = "reordered", 9
	bad.Connect.P50Us = 5_000
	bad.Depth = &runs.Depth{Before: runs.DepthReading{Mean: 1, Min: 1, Max: 1}, After: runs.DepthReading{Mean: 5001, Min: 5001, Max: 5001}, Changed: true}
	pts = append(pts, bad)
	run := &runs.Run{ID: "depth", Status: runs.StatusComplete, Scenario: scenarios.Scenario{Metadata: scenarios.Metadata{Name: "depth"},
		Spec: scenarios.Spec{Modes: []scenarios.Mode{"iptables", "nftables"}, Services: []int{1, 2000, 5000},
			Load: scenarios.Load{Rate: 1000, RequestsPerConn: []int{1}, Targets: scenarios.Placements{scenarios.TargetsDeepest}}, Repetitions: 3}}}
	return &Data{Dir: t.TempDir(), Run: run, Points: pts, groups: groupPoints(pts)}
}

func TestDepthFits(t *testing.T) {
	d := depthData(t)
	fits := DepthFits(d)
	if len(fits) != 2 || fits[0].Mode != "iptables" || fits[1].Mode != "nftables" {
		t.Fatalf("fits %+v", fits)
	}
	ipt, nft := fits[0], fits[1]
	if ipt.Points != 18 || ipt.Left != 1 || ipt.X != "rules walked" || ipt.MaxX != 5001 || ipt.Services != 5000 {
		t.Errorf("iptables fit over %d points (%d left), x %q, deepest %g at %d", ipt.Points, ipt.Left, ipt.X, ipt.MaxX, ipt.Services)
	}
	// Across steps the bootstrap resamples whole steps: with three steps
	// its interval is wide (a resample of the 1-Service step alone has
	// one rule between the placements), but it holds the truth.
	for name, want := range map[string]float64{"connect p50": 14, "connect p01": 14, cpuPerRequestName: 18} {
		f, ok := ipt.fitOf(name)
		if !ok || math.Abs(f.Slope-want) > 1 || f.SlopeLo > want || f.SlopeHi < want {
			t.Errorf("iptables %s: %.2f (%.2f to %.2f) ns/rule, want about %g in its CI", name, f.Slope, f.SlopeLo, f.SlopeHi, want)
		}
	}
	if nft.X != "Services" || nft.Flat {
		t.Errorf("nftables fit x %q flat %v, want a fit against Services", nft.X, nft.Flat)
	}
	if f, _ := nft.fitOf("connect p50"); f.SlopeLo > 0 || f.SlopeHi < 0 {
		t.Errorf("nftables slope %.3f (%.3f to %.3f), want a CI containing 0", f.Slope, f.SlopeLo, f.SlopeHi)
	}
	s := ipt.Sentence()
	for _, want := range []string{"iptables, across steps: each rule ahead of the target adds", "ns (95% CI", "to connect p50", "of client-node CPU per request",
		"at the deepest position of the largest step (5,001 rules walked at 5,000 Services) that predicts a connect p50 of", "1 left out",
		"descriptive (confounded with the Service count and time)", "CI over 3 whole Service steps"} {
		if !strings.Contains(s, want) {
			t.Errorf("sentence lacks %q:\n%s", want, s)
		}
	}
	if s := nft.Sentence(); !strings.Contains(s, "nftables: 0 rules walked at every point") {
		t.Errorf("nftables sentence: %s", s)
	}
}

// TestStepContrasts: with both placements at every step, the cost per
// rule comes from within-step contrasts; its unit is the (step,
// repetition) contrast under order: modes and the repetition under order:
// steps; nftables, with no walk, is the negative control.
func TestStepContrasts(t *testing.T) {
	for _, tc := range []struct {
		order scenarios.Order
		unit  string
		n     int
	}{{scenarios.OrderModes, "contrast", 9}, {scenarios.OrderSteps, "block", 3}} {
		d := depthData(t)
		d.Run.Scenario.Spec.Order = tc.order
		cs := StepContrasts(d)
		if len(cs) != 2 || cs[0].Mode != "iptables" || cs[1].Mode != "nftables" {
			t.Fatalf("%s: contrasts %+v", tc.order, cs)
		}
		ipt, nft := cs[0], cs[1]
		if ipt.Control || !nft.Control || ipt.Unit != tc.unit || ipt.Contrasts != 9 || ipt.Deep != "deepest" || ipt.Shallow != "shallowest" {
			t.Errorf("%s: iptables %+v, nftables control %v", tc.order, ipt, nft.Control)
		}
		for name, want := range map[string]float64{"connect p50": 14, "connect p01": 14, cpuPerRequestName: 18} {
			e, ok := ipt.estimateOf(name)
			if !ok || e.N != tc.n || !e.HasCI || e.Lo > want || e.Hi < want || e.Lo <= 0 || e.Hi-e.Lo > 4 {
				t.Errorf("%s: iptables %s: %+v, want n=%d and a CI around %g excluding 0, narrower than 4 ns", tc.order, name, e, tc.n, want)
			}
		}
		for _, name := range []string{"connect p50", cpuPerRequestName} {
			if e, ok := nft.estimateOf(name); !ok || !e.HasCI || e.Lo > 0 || e.Hi < 0 {
				t.Errorf("%s: nftables %s deep−shallow %+v, want a CI containing 0", tc.order, name, e)
			}
		}
		s := ipt.Sentence() + "\n" + nft.Sentence()
		for _, want := range []string{"iptables, within each step (targets deepest against shallowest", "free of the Service count and of time",
			fmt.Sprintf("n = %d", tc.n), "descriptive: a 95% CI, not in a tested family", "nftables (negative control: 0 rules walked at every placement)"} {
			if !strings.Contains(s, want) {
				t.Errorf("%s: sentences lack %q:\n%s", tc.order, want, s)
			}
		}
		// The findings use the contrasts, not the across-step fit.
		var depth []string
		for _, f := range Findings(d) {
			if f.Kind == FindingDepth {
				depth = append(depth, f.Text)
			}
		}
		if len(depth) != 2 || !strings.Contains(depth[0], "within each step") {
			t.Errorf("%s: depth findings %q", tc.order, depth)
		}
	}
}

func TestDepthInReport(t *testing.T) {
	d := depthData(t)
	if err := runs.WriteRun(d.Dir, d.Run); err != nil {
		t.Fatal(err)
	}
	for i := range d.Points {
		if err := runs.AppendPoint(d.Dir, &d.Points[i]); err != nil {
			t.Fatal(err)
		}
	}
	d2, err := Load(d.Dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Generate(d2)
	if err != nil {
		t.Fatal(err)
	}
	var depth *Plot
	for i := range res.Plots {
		if res.Plots[i].Name == "depth" {
			depth = &res.Plots[i]
		}
	}
	if depth == nil || depth.Skipped != "" {
		t.Fatalf("depth plot not drawn: %+v", depth)
	}
	img, err := png.Decode(bytes.NewReader(depth.PNG))
	if err != nil {
		t.Fatal(err)
	}
	counts := colorCounts(img)
	for _, m := range []scenarios.Mode{"iptables", "nftables"} {
		if counts[toRGBA(modeColors[m])] < 200 {
			t.Errorf("depth plot has %d pixels of %s's colour", counts[toRGBA(modeColors[m])], m)
		}
	}
	md, err := os.ReadFile(filepath.Join(d.Dir, MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Cost per rule walked", "iptables, within each step", "| rules walked |",
		"1→5,001 (reordered)", "5,001", "Targets deepest:"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	csv, _ := os.ReadFile(filepath.Join(d.Dir, CSVFile))
	if !bytes.Contains(csv, []byte("depth.before.mean")) || !bytes.Contains(csv, []byte("depth.changed")) {
		t.Error("points.csv has no depth columns")
	}
}

func TestCompareNotesDepthDifference(t *testing.T) {
	base := depthData(t)
	next := depthData(t)
	// The new run's iptables targets at 5,000 Services sat near the top.
	for i := range next.Points {
		p := &next.Points[i]
		if p.Mode == "iptables" && p.Services == 5000 && p.Targets == scenarios.TargetsDeepest && p.Depth != nil && !p.Depth.Changed {
			r := runs.DepthReading{Mean: 6, Min: 6, Max: 6, ChainLength: 5002}
			p.Depth.Before, p.Depth.After = r, r
		}
	}
	next.groups = groupPoints(next.Points)
	c, err := Compare(base, next, CompareOptions{Metrics: Metrics, Threshold: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, n := range c.Notes {
		if strings.Contains(n, "rules in base") {
			notes = append(notes, n)
		}
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "iptables/services=5000/rpc=1/targets=deepest: the target walked 5,001 rules in base and 6 in new") {
		t.Errorf("depth notes %q, want one for iptables at 5,000 deepest", notes)
	}
}

// TestStepContrastsPerVariant: every connection variant that opens new
// connections gets its own contrasts.
func TestStepContrastsPerVariant(t *testing.T) {
	d := depthData(t)
	n := len(d.Points)
	for i := range n {
		p := d.Points[i]
		p.RequestsPerConn = 100
		p.Connect.Count /= 100
		d.Points = append(d.Points, p)
	}
	d.groups = groupPoints(d.Points)
	cs := StepContrasts(d)
	if len(cs) != 4 || cs[0].RequestsPerConn != 1 || cs[2].RequestsPerConn != 100 || cs[2].Mode != "iptables" {
		t.Fatalf("contrasts per variant: %+v", cs)
	}
	if e, ok := cs[2].estimateOf("connect p50"); !ok || e.Lo > 14 || e.Hi < 14 {
		t.Errorf("100 requests per connection: %+v", e)
	}
}
