package report

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

var churnT0 = time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)

func churnAt(s float64) time.Time {
	return churnT0.Add(time.Duration(math.Round(s * float64(time.Second))))
}

func churnAtP(s float64) *time.Time {
	t := churnAt(s)
	return &t
}

// churnPoint is a valid point measured under churn: 30,000 requests, the
// given errors and stale hits, programming p50 and connect p50s (µs; a
// negative inside means no connection started inside a sync).
func churnPoint(mode scenarios.Mode, rep int, errs map[string]int64, staleU, staleP int64, progP50 float64, in, out float64) runs.Point {
	tr := &runs.ChurnTraffic{Requests: 30000, Errors: errs, StaleUnprogrammed: staleU, StaleProgrammed: staleP,
		ConnectOutOfSync: runs.Percentiles{Count: 29000, P50: out, P99: out * 3}}
	if in >= 0 {
		tr.ConnectInSync = runs.Percentiles{Count: 1000, P50: in, P99: in * 3}
	}
	return runs.Point{ID: runs.PointID(mode, 1000, 1, rep), Mode: mode, Services: 1000, RequestsPerConn: 1,
		Targets: scenarios.TargetsOne, Repetition: rep, Valid: true,
		Churn: &runs.Churn{AskedPerSecond: 10, AchievedPerSecond: 10,
			Changes:     make([]runs.ChurnChange, 300),
			Programming: runs.DurationSummary{Count: 299, P50: progP50, P99: progP50 * 2, Max: progP50 * 3}, Unprogrammed: 1,
			Reads:   &runs.ChurnReads{Rounds: 120, Reads: 300, Window: runs.DurationSummary{Count: 299, P50: 0.25 + progP50/10}},
			Traffic: tr}}
}

func churnData(t *testing.T, points []runs.Point) *Data {
	t.Helper()
	run := &runs.Run{ID: "churn-fixture", Scenario: scenarios.Scenario{Metadata: scenarios.Metadata{Name: "churn"}, Spec: scenarios.Spec{
		Modes: []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables}, Services: []int{1000}, Repetitions: 3,
		Order: scenarios.OrderSteps, EndpointsPerService: 10,
		Load:     scenarios.Load{Rate: 1000, Duration: scenarios.Duration(30 * time.Second), RequestsPerConn: []int{1}, Targets: scenarios.Placements{scenarios.TargetsOne}},
		Sampling: scenarios.Sampling{Interval: scenarios.Duration(time.Second)},
	}}, Provider: runs.Provider{Name: "lab"}, Status: runs.StatusComplete}
	return &Data{Dir: t.TempDir(), Run: run, Points: points, groups: groupPoints(points)}
}

func churnFixture() []runs.Point {
	ipt, nft := scenarios.ModeIPTables, scenarios.ModeNFTables
	pts := []runs.Point{
		churnPoint(ipt, 1, map[string]int64{"refused": 6, "timeout": 3}, 3, 0, 0.8, 150, 100),
		churnPoint(ipt, 2, map[string]int64{"refused": 12}, 0, 0, 0.9, 160, 105),
		churnPoint(ipt, 3, nil, 6, 3, 1.0, 170, 110),
		churnPoint(nft, 1, nil, 0, 0, 0.5, 90, 80),
		churnPoint(nft, 2, map[string]int64{"reset": 3}, 0, 0, 0.6, -1, 82),
	}
	bad := churnPoint(ipt, 4, map[string]int64{"refused": 3000}, 0, 0, 5, 900, 100)
	bad.Valid, bad.InvalidReasons = false, []string{"kube-proxy restarted"}
	pts = append(pts, bad)
	// A condition without churn stays out of the section.
	pts = append(pts, runs.Point{ID: runs.PointID(ipt, 1000, 0, 1), Mode: ipt, Services: 1000, RequestsPerConn: 0,
		Targets: scenarios.TargetsOne, Repetition: 1, Valid: true})
	return pts
}

// TestChurnStats: per condition, the valid churn points' figures, as means
// over the repetitions with Student's t intervals; the sync cost is taken
// within each point, over the points that have connections both inside
// and outside syncs; invalid points are counted and left out.
func TestChurnStats(t *testing.T) {
	d := churnData(t, churnFixture())
	stats := ChurnStatsOf(d)
	if len(stats) != 2 {
		t.Fatalf("%d conditions, want iptables and nftables with churn: %+v", len(stats), stats)
	}
	ipt, nft := stats[0], stats[1]
	if ipt.Key.Mode != scenarios.ModeIPTables || ipt.N != 3 || ipt.Invalid != 1 || ipt.Changes != 900 || ipt.Unprogrammed != 3 {
		t.Errorf("iptables: %+v", ipt)
	}
	near := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// Failed per 10,000 of 30,000 requests: 3, 4 and 0.
	near("iptables failed /10k", ipt.ErrorsPer10k.Mean, 7.0/3)
	near("iptables refused /10k", ipt.ErrorKindsPer10k["refused"], 2)
	near("iptables timeout /10k", ipt.ErrorKindsPer10k["timeout"], 1.0/3)
	// 800, 900 and 1000 ms: sd 100, t(2, 0.975) = 4.302653.
	near("programming p50", ipt.ProgrammingP50Ms.Mean, 900)
	near("programming p50 half-width", ipt.ProgrammingP50Ms.HalfWidth(), 4.302653*100/math.Sqrt(3))
	near("programming p99", ipt.ProgrammingP99Ms.Mean, 1800)
	near("stale before programmed /10k", ipt.StaleUnprogrammedPer10k.Mean, 1)
	near("stale after programmed /10k", ipt.StaleProgrammedPer10k.Mean, 1.0/3)
	near("connect in sync", ipt.ConnectInSyncP50Us.Mean, 160)
	near("connect outside", ipt.ConnectOutOfSyncP50Us.Mean, 105)
	near("sync cost", ipt.SyncCostUs.Mean, 55)
	// Within-point differences 50, 55, 60: sd 5.
	near("sync cost half-width", ipt.SyncCostUs.HalfWidth(), 4.302653*5/math.Sqrt(3))
	if nft.N != 2 || nft.SyncCostUs.N != 1 || nft.ConnectInSyncP50Us.N != 1 || nft.ConnectOutOfSyncP50Us.N != 2 || nft.SyncCostUs.HasCI {
		t.Errorf("nftables: one point without connections inside a sync: %+v", nft)
	}
	near("nftables failed /10k", nft.ErrorsPer10k.Mean, 0.5)
	near("nftables reset /10k", nft.ErrorKindsPer10k["reset"], 0.5)
}

// TestChurnSection: the report has a churn section exactly when a point
// was measured under churn, stating each condition's figures with their
// intervals, the table, and where the timeline is.
func TestChurnSection(t *testing.T) {
	section := func(d *Data) string {
		t.Helper()
		doc := &document{}
		doc.churn(d)
		md, err := doc.markdown()
		if err != nil {
			t.Fatal(err)
		}
		return string(md)
	}
	s := section(churnData(t, churnFixture()))
	for _, want := range []string{
		"## Traffic during churn",
		"iptables, 1,000 Services, a new connection per request (n=3): 2.3 (95% CI ",
		"failed requests per 10,000 (refused 2.0, timeout 0.3)",
		"programming latency p50 900 ms (95% CI 652 to 1148)",
		"3 of 900 changes never seen in the node's rules",
		"(read from the node's rules to within 340 ms, the median window of the reads",
		"median connect time 160.0 µs for connections started inside a sync vs 105.0 µs outside, a difference of 55.0 µs (95% CI 42.6 to 67.4) within the point",
		"nftables, 1,000 Services, a new connection per request (n=2)",
		"| mode | targets | req/conn | Services | n | failed /10k |",
		"iptables, 1,000 Services, a new connection per request: 1 point measured under churn invalid",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if s := section(churnData(t, churnFixture()[6:])); strings.Contains(s, "Traffic during churn") {
		t.Error("a run without churn has a churn section")
	}
}

// TestChurnSyncCostCoverage: seeded simulation of the sync cost's
// interval. Each repetition has a block effect that moves connect times
// inside and outside syncs alike (sd 30 µs) and noise of its own (sd 5
// µs); the cost is +20 µs. The interval of the within-point differences
// covers it in 95% of runs; an interval of the difference of the means,
// which ignores the pairing, would be about six times wider.
func TestChurnSyncCostCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 4))
	const runsN, reps, cost = 2000, 5, 20.0
	covered := 0
	var width float64
	for range runsN {
		var pts []runs.Point
		for rep := 1; rep <= reps; rep++ {
			blk := 100 + 30*rng.NormFloat64()
			out := blk + 5*rng.NormFloat64()
			in := blk + cost + 5*rng.NormFloat64()
			pts = append(pts, churnPoint(scenarios.ModeIPTables, rep, nil, 0, 0, 1, in, out))
		}
		st := ChurnStatsOf(&Data{Run: &runs.Run{}, Points: pts, groups: groupPoints(pts)})[0].SyncCostUs
		if st.CILo <= cost && cost <= st.CIHi {
			covered++
		}
		width += st.CIHi - st.CILo
	}
	rate := float64(covered) / runsN
	// 3.5 binomial standard errors of 2,000 runs at 95%: ±1.7 points.
	if rate < 0.933 || rate > 0.967 {
		t.Errorf("the sync cost's interval covered the truth in %.1f%% of runs, want 95%%", 100*rate)
	}
	// The paired interval's expected width: 2 t(4) c4(5) σ/√5, with σ =
	// 5√2 the differences' sd and c4(5) = 0.94 the bias of a sample sd.
	if mean, want := width/runsN, 2*2.776*0.94*5*math.Sqrt2/math.Sqrt(reps); math.Abs(mean-want) > 0.05*want {
		t.Errorf("mean interval width %.1f µs, want about %.1f", mean, want)
	}
}

// timelineFixture is a point with a traffic timeline of 0.5 s bins from
// churnT0.
func timelineFixture() runs.Point {
	p := churnPoint(scenarios.ModeNFTables, 1, map[string]int64{"refused": 4}, 2, 1, 0.5, 90, 80)
	tr := p.Churn.Traffic
	tr.Timeline = &runs.TrafficTimeline{Start: churnT0, BinSeconds: 0.5, Bins: []runs.TrafficBin{
		{Requests: 500, Connects: 500, ConnectP50Us: 80, ConnectMaxUs: 200},
		{Requests: 500, Refused: 4, Connects: 496, ConnectP50Us: 85, ConnectMaxUs: 900},
		{Requests: 500, StaleUnprogrammed: 2, StaleProgrammed: 1, Connects: 500, ConnectP50Us: 82, ConnectMaxUs: 300},
		{Requests: 500},
	}}
	p.Churn.Syncs = []runs.SyncSpan{
		{Start: churnAt(1.2), End: churnAt(1.4)},
		{Start: churnAt(-0.5), End: churnAt(0.1), Full: true}, // began before the traffic
		{Start: churnAt(5), End: churnAt(6)},                  // after it
	}
	p.Churn.Changes = []runs.ChurnChange{
		{Seq: 1, Target: true, WrittenAt: churnAt(0.6), ProgrammedAt: churnAtP(1.3)},
		{Seq: 2, WrittenAt: churnAt(-0.2), ProgrammedAt: churnAtP(0.3)}, // written before the traffic
		{Seq: 3, WrittenAt: churnAt(1.7), Error: "conflict"},
		{Seq: 4, WrittenAt: churnAt(1.9)}, // never programmed
	}
	return p
}

// TestChurnTimelineData: the timeline puts syncs, writes, programming,
// errors, stale hits and connect times on one axis in seconds from the
// first request; a sync that began before is clipped, one after is left
// out; a write before the traffic is left out but its programming inside
// is kept; counts sit at the middle of their bins.
func TestChurnTimelineData(t *testing.T) {
	p := timelineFixture()
	ct, ok := churnTimelineOf(&p)
	if !ok {
		t.Fatal("no timeline")
	}
	ct = roundedTimeline(ct)
	eq := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %+v, want %+v", name, got, want)
		}
	}
	if ct.End != 2 || ct.Point != p.ID {
		t.Errorf("end %v, point %s", ct.End, ct.Point)
	}
	eq("syncs", ct.Syncs, []timeSpan{{From: 0, To: 0.1, Full: true}, {From: 1.2, To: 1.4}})
	eq("writes", ct.Writes, []timeMark{{At: 0.6, Target: true}, {At: 1.7, Failed: true}, {At: 1.9}})
	eq("programmed", ct.Programmed, []timeMark{{At: 1.3, Target: true}, {At: 0.3}})
	eq("errors", ct.Errors, map[string][]countMark{"refused": {{At: 0.75, N: 4}}})
	eq("stale before", ct.StaleUnprogrammed, []countMark{{At: 1.25, N: 2}})
	eq("stale after", ct.StaleProgrammed, []countMark{{At: 1.25, N: 1}})
	eq("connect p50", ct.ConnectP50, []timeValue{{At: 0.25, Us: 80}, {At: 0.75, Us: 85}, {At: 1.25, Us: 82}})
	eq("connect max", ct.ConnectMax, []timeValue{{At: 0.25, Us: 200}, {At: 0.75, Us: 900}, {At: 1.25, Us: 300}})

	q := p
	q.Churn = nil
	if _, ok := churnTimelineOf(&q); ok {
		t.Error("a point without churn has a timeline")
	}
}

// TestChurnTimelinePlot: the drawn point is the valid one that opened
// connections and whose traffic met the most; the plot renders, and the
// report writes it beside the others; a run without churn has no such
// plot.
func TestChurnTimelinePlot(t *testing.T) {
	quiet := timelineFixture()
	quiet.Churn.Traffic.Errors = nil
	quiet.Churn.Traffic.StaleUnprogrammed, quiet.Churn.Traffic.StaleProgrammed = 0, 0
	busy := timelineFixture()
	busy.ID, busy.Repetition = runs.PointID(scenarios.ModeNFTables, 1000, 1, 2), 2
	invalid := timelineFixture()
	invalid.ID, invalid.Repetition = runs.PointID(scenarios.ModeNFTables, 1000, 1, 3), 3
	invalid.Churn.Traffic.Errors = map[string]int64{"refused": 20000}
	invalid.Valid = false
	// Persistent connections met more, but opened no connection to draw.
	kept := timelineFixture()
	kept.ID, kept.RequestsPerConn = runs.PointID(scenarios.ModeNFTables, 1000, 0, 1), 0
	kept.Churn.Traffic.StaleProgrammed = 5000
	kept.Churn.Traffic.ConnectInSync, kept.Churn.Traffic.ConnectOutOfSync = runs.Percentiles{}, runs.Percentiles{}
	d := churnData(t, []runs.Point{quiet, busy, invalid, kept})
	if p := churnTimelinePoint(d); p == nil || p.ID != busy.ID {
		t.Fatalf("drew %v, want %s", p, busy.ID)
	}
	pl, ok, err := churnTimelinePlot(d)
	if err != nil || !ok {
		t.Fatalf("plot: %v, %v", ok, err)
	}
	if !bytes.HasPrefix(pl.PNG, []byte("\x89PNG")) || !bytes.Contains(pl.SVG, []byte("<svg")) || !strings.Contains(pl.Caption, busy.ID) {
		t.Errorf("plot %s: %d bytes of PNG, %d of SVG, caption %q", pl.Name, len(pl.PNG), len(pl.SVG), pl.Caption)
	}
	res, err := Generate(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Dir, runs.PlotsDir, "churn-timeline.png")); err != nil {
		t.Errorf("the report did not write the timeline: %v (%v)", err, res.Files)
	}
	md, err := os.ReadFile(filepath.Join(d.Dir, MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"The timeline of one point (" + busy.ID + ")", "### " + churnTimelineTitle, "plots/churn-timeline.png"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	plain := churnData(t, churnFixture()[6:])
	if _, ok, err := churnTimelinePlot(plain); ok || err != nil {
		t.Errorf("a run without churn drew a timeline (%v)", err)
	}
}

// roundedTimeline rounds ct's times to the nanosecond, so that they
// compare with decimal literals.
func roundedTimeline(ct churnTimeline) churnTimeline {
	r := func(x float64) float64 { return math.Round(x*1e9) / 1e9 }
	for i := range ct.Syncs {
		ct.Syncs[i].From, ct.Syncs[i].To = r(ct.Syncs[i].From), r(ct.Syncs[i].To)
	}
	for _, ms := range [][]timeMark{ct.Writes, ct.Programmed} {
		for i := range ms {
			ms[i].At = r(ms[i].At)
		}
	}
	for _, ms := range ct.Errors {
		for i := range ms {
			ms[i].At = r(ms[i].At)
		}
	}
	for _, ms := range [][]countMark{ct.StaleUnprogrammed, ct.StaleProgrammed} {
		for i := range ms {
			ms[i].At = r(ms[i].At)
		}
	}
	for _, vs := range [][]timeValue{ct.ConnectP50, ct.ConnectMax} {
		for i := range vs {
			vs[i].At = r(vs[i].At)
		}
	}
	return ct
}
