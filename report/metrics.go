package report

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kpbench/kpbench/runs"
)

// Metric is one number taken from every point. Metrics is the one table
// of them, as kube-burner's measurementFactoryMap is: compare and calibrate
// (--metrics), the headline findings (Finding), the report's tables and its
// plots read a point's numbers through it. The points CSV needs no entry:
// it flattens every field of runs.Point. A new metric is its field in
// runs.Point (filled by the collector or the load generator) plus one
// entry here.
type Metric struct {
	// Name is how --metrics spells it.
	Name string
	// Description says what it is, Unit in what.
	Description string
	Unit        string
	// Digits is how many decimals tables and findings show.
	Digits int
	// HigherIsWorse is true for costs (latency, CPU): a regression is an
	// increase.
	HigherIsWorse bool
	// Finding, when set, is how the headline findings word the metric
	// ("median connect time"); FindingMetrics says which ones they use.
	Finding string
	// Value returns the metric of p; ok is false when p does not measure it
	// (no new connections, so no connect times).
	Value func(p *runs.Point) (v float64, ok bool)
}

func always(f func(p *runs.Point) float64) func(p *runs.Point) (float64, bool) {
	return func(p *runs.Point) (float64, bool) { return f(p), true }
}

func whenConnects(f func(p *runs.Point) float64) func(p *runs.Point) (float64, bool) {
	return func(p *runs.Point) (float64, bool) {
		if p.Connect.Count == 0 {
			return 0, false
		}
		return f(p), true
	}
}

// Metrics lists every metric, in display order.
var Metrics = []Metric{
	{Name: "latency", Description: "mean round-trip latency", Unit: "µs", Digits: 1, HigherIsWorse: true, Finding: "mean round-trip latency",
		Value: always(func(p *runs.Point) float64 { return p.Latency.MeanUs })},
	{Name: "latency-p50", Description: "median round-trip latency", Unit: "µs", Digits: 1, HigherIsWorse: true,
		Value: always(func(p *runs.Point) float64 { return p.Latency.P50Us })},
	{Name: "latency-p99", Description: "p99 round-trip latency", Unit: "µs", Digits: 1, HigherIsWorse: true,
		Value: always(func(p *runs.Point) float64 { return p.Latency.P99Us })},
	{Name: "latency-p999", Description: "p99.9 round-trip latency", Unit: "µs", Digits: 1, HigherIsWorse: true,
		Value: always(func(p *runs.Point) float64 { return p.Latency.P999Us })},
	{Name: "cpu", Description: "client-node CPU", Unit: "cores", Digits: 3, HigherIsWorse: true, Finding: "client-node CPU",
		Value: always(func(p *runs.Point) float64 { return p.CPU.Node.Total })},
	{Name: "kube-proxy-cpu", Description: "kube-proxy CPU", Unit: "cores", Digits: 4, HigherIsWorse: true,
		Value: always(func(p *runs.Point) float64 { return p.CPU.Processes.KubeProxy })},
	{Name: "connect-p01", Description: "p01 TCP connect time", Unit: "µs", Digits: 1, HigherIsWorse: true,
		Value: whenConnects(func(p *runs.Point) float64 { return p.Connect.P01Us })},
	{Name: "connect", Description: "median TCP connect time", Unit: "µs", Digits: 1, HigherIsWorse: true, Finding: "median connect time",
		Value: whenConnects(func(p *runs.Point) float64 { return p.Connect.P50Us })},
	{Name: "connect-p90", Description: "p90 TCP connect time", Unit: "µs", Digits: 1, HigherIsWorse: true,
		Value: whenConnects(func(p *runs.Point) float64 { return p.Connect.P90Us })},
	{Name: "connect-p99", Description: "p99 TCP connect time", Unit: "µs", Digits: 1, HigherIsWorse: true,
		Value: whenConnects(func(p *runs.Point) float64 { return p.Connect.P99Us })},
	{Name: "first-packet", Description: "median kernel time to first packet", Unit: "µs", Digits: 2, HigherIsWorse: true, Finding: "median kernel time to first packet",
		Value: whenFirstPacket(func(f *runs.FirstPacket) float64 { return f.P50Us })},
	{Name: "first-packet-p01", Description: "p01 kernel time to first packet", Unit: "µs", Digits: 2, HigherIsWorse: true,
		Value: whenFirstPacket(func(f *runs.FirstPacket) float64 { return f.P01Us })},
	{Name: "first-packet-p99", Description: "p99 kernel time to first packet", Unit: "µs", Digits: 2, HigherIsWorse: true,
		Value: whenFirstPacket(func(f *runs.FirstPacket) float64 { return f.P99Us })},
	// The way back: the SYN-ACK's arrival to ESTABLISHED, where
	// kube-proxy's Service rules do not run (a control).
	{Name: "first-packet-return", Description: "median kernel time of the SYN-ACK's way back (its arrival on the client node's device → ESTABLISHED)", Unit: "µs", Digits: 2, HigherIsWorse: true,
		Value: whenFirstPacketReturn(func(r *runs.FirstPacketReturn) float64 { return r.P50Us })},
	{Name: "first-packet-return-p99", Description: "p99 kernel time of the SYN-ACK's way back", Unit: "µs", Digits: 2, HigherIsWorse: true,
		Value: whenFirstPacketReturn(func(r *runs.FirstPacketReturn) float64 { return r.P99Us })},
	{Name: "first-packet-cores", Description: "kernel time to first packet × new connections per second (the SYN path's share of the node CPU)", Unit: "cores", Digits: 4, HigherIsWorse: true,
		Value: firstPacketCores},
	// All the node's CPU, the client's own included, over requests per
	// second: per new connection only in name at 1 request per
	// connection. perconn.go subtracts a keepalive baseline instead.
	{Name: "cpu-per-request", Description: "client-node CPU per request (all of the node's busy time, the client's own included, over requests per second)", Unit: "ns", Digits: 0, HigherIsWorse: true,
		Value: cpuPerRequestNs},
	// Only the points that measured a programming sync carry one (the
	// first point after a step was scaled, or a sync inside the window);
	// the others record 0, which is "not measured", not "instant".
	{Name: "sync", Description: "last kube-proxy sync duration", Unit: "s", Digits: 3, HigherIsWorse: true,
		Value: func(p *runs.Point) (float64, bool) { return p.Sync.LastDurationSeconds, p.Sync.LastDurationSeconds > 0 }},
	{Name: "time-to-programmed", Description: "time from a step's last API write to its last Service answering", Unit: "s", Digits: 3, HigherIsWorse: true,
		Value: func(p *runs.Point) (float64, bool) { return p.TimeToProgrammedSeconds, p.TimeToProgrammedSeconds > 0 }},
	// Only churn points (spec.churn) measure these (churn_metrics.go);
	// scenarios.ChurnGateMetrics names them for spec.gate.
	{Name: "churn-errors", Description: "failed requests during churn (refused, reset, timeout, other)", Unit: "per 10,000 requests", Digits: 1, HigherIsWorse: true,
		Value: churnErrorsPer10k},
	{Name: "churn-stale-hits", Description: "requests answered by a backend after its removal was written (before and after the node's rules showed it)", Unit: "per 10,000 requests", Digits: 2, HigherIsWorse: true,
		Value: churnStalePer10k},
	{Name: "churn-programming-p50", Description: "median programming latency under churn (API write to the node's rules)", Unit: "s", Digits: 3, HigherIsWorse: true,
		Value: whenProgrammed(func(d runs.DurationSummary) float64 { return d.P50 })},
	{Name: "churn-programming-p99", Description: "p99 programming latency under churn (API write to the node's rules)", Unit: "s", Digits: 3, HigherIsWorse: true,
		Value: whenProgrammed(func(d runs.DurationSummary) float64 { return d.P99 })},
	{Name: "churn-connect-in-sync", Description: "median TCP connect time of the connections started inside a kube-proxy sync under churn", Unit: "µs", Digits: 1, HigherIsWorse: true,
		Value: churnConnectInSync},
}

// whenFirstPacket reads a point's kernel time to first packet where the
// probe timed its window and the client's connections within 1%
// (runs.FirstPacket.Usable: a point marked incomplete has none).
func whenFirstPacket(f func(fp *runs.FirstPacket) float64) func(p *runs.Point) (float64, bool) {
	return func(p *runs.Point) (float64, bool) {
		fp := p.FirstPacket
		if !fp.Usable() {
			return 0, false
		}
		return f(fp), true
	}
}

// whenFirstPacketReturn reads a point's way back where the probe timed
// it and the client's connections within 1%
// (runs.FirstPacketReturn.Usable).
func whenFirstPacketReturn(f func(r *runs.FirstPacketReturn) float64) func(p *runs.Point) (float64, bool) {
	return func(p *runs.Point) (float64, bool) {
		if p.FirstPacket == nil || !p.FirstPacket.Return.Usable() {
			return 0, false
		}
		return f(p.FirstPacket.Return), true
	}
}

// firstPacketCores is the CPU the connections' SYN path takes in the
// kernel: the mean kernel time to first packet times the timed
// connections per second, in cores.
func firstPacketCores(p *runs.Point) (float64, bool) {
	mean, ok := whenFirstPacket(func(fp *runs.FirstPacket) float64 { return fp.MeanUs })(p)
	if !ok || p.DurationSeconds <= 0 {
		return 0, false
	}
	return mean * 1e-6 * float64(p.FirstPacket.Connections) / p.DurationSeconds, true
}

// cpuPerRequestNs is the client node's CPU per request: node CPU
// (cores) over requests per second, in nanoseconds.
func cpuPerRequestNs(p *runs.Point) (float64, bool) {
	if p.Requests == 0 || p.DurationSeconds <= 0 {
		return 0, false
	}
	perSec := float64(p.Requests) / p.DurationSeconds
	return p.CPU.Node.Total / perSec * 1e9, true
}

// metricAliases are former names --metrics still accepts.
var metricAliases = map[string]string{
	// It was all node CPU per request, never a per-connection cost.
	"cpu-per-connection": "cpu-per-request",
}

// metric returns the table's entry called name; kpbench's own code names
// only entries that exist, so a miss is a programming error.
func metric(name string) Metric {
	m, ok := lookupMetric(name)
	if !ok {
		panic("report: no metric " + name)
	}
	return m
}

// FindingMetrics are the metrics the headline findings compare, in their
// order; the growth findings use the first two.
var FindingMetrics = []string{"cpu", "latency", "connect"}

// DefaultMetrics are the metrics compare checks unless told otherwise.
var DefaultMetrics = []string{"latency", "cpu", "connect"}

// ErrUnknownMetric is returned for a metric name kpbench does not know.
var ErrUnknownMetric = fmt.Errorf("unknown metric")

// LookupMetrics resolves metric names, rejecting unknown and repeated ones.
func LookupMetrics(names []string) ([]Metric, error) {
	byName := map[string]Metric{}
	var known []string
	for _, m := range Metrics {
		byName[m.Name] = m
		known = append(known, m.Name)
	}
	var out []Metric
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if to, ok := metricAliases[n]; ok {
			n = to
		}
		m, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownMetric, n, strings.Join(known, ", "))
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no metrics given (known: %s)", strings.Join(known, ", "))
	}
	return out, nil
}

// group is the points measuring one condition, repetitions together.
type group struct {
	Key     runs.Key
	Points  []*runs.Point // every point, valid or not, by repetition
	Valid   []*runs.Point
	Invalid int
}

// values returns m over the group's valid points that measure it.
func (g *group) values(m Metric) []float64 {
	var out []float64
	for _, p := range g.Valid {
		if v, ok := m.Value(p); ok {
			out = append(out, v)
		}
	}
	return out
}

// summary is the metric called name over the group's valid points, as a
// table cell: mean ± CI at the metric's digits.
func (g *group) summary(name string) string {
	m := metric(name)
	return pm(Summarize(g.values(m)), m.Digits)
}

// groupPoints groups points by condition, in report order: mode (the
// catalog's order), targets, requests per connection, Services.
func groupPoints(points []runs.Point) []*group {
	byKey := map[runs.Key]*group{}
	var groups []*group
	for i := range points {
		p := &points[i]
		g, ok := byKey[p.Key()]
		if !ok {
			g = &group{Key: p.Key()}
			byKey[p.Key()] = g
			groups = append(groups, g)
		}
		g.Points = append(g.Points, p)
		if p.Valid {
			g.Valid = append(g.Valid, p)
		} else {
			g.Invalid++
		}
	}
	for _, g := range groups {
		sort.SliceStable(g.Points, func(i, j int) bool { return g.Points[i].Repetition < g.Points[j].Repetition })
	}
	sort.SliceStable(groups, func(i, j int) bool { return keyLess(groups[i].Key, groups[j].Key) })
	return groups
}

func modeRank(m string) int {
	switch m {
	case "iptables":
		return 0
	case "ipvs":
		return 1
	case "nftables":
		return 2
	}
	return 3
}

func keyLess(a, b runs.Key) bool {
	if ra, rb := modeRank(string(a.Mode)), modeRank(string(b.Mode)); ra != rb {
		return ra < rb
	}
	if a.Mode != b.Mode {
		return a.Mode < b.Mode
	}
	if a.Targets != b.Targets {
		return a.Targets < b.Targets
	}
	if a.RequestsPerConn != b.RequestsPerConn {
		return rpcLess(a.RequestsPerConn, b.RequestsPerConn)
	}
	return a.Services < b.Services
}

// rpcLess orders connection variants from the most connections to the
// fewest: 1, 10, 100, ..., then 0 (persistent).
func rpcLess(a, b int) bool {
	if a == 0 || b == 0 {
		return b == 0 && a != 0
	}
	return a < b
}

// describeRPC names a connection variant for readers.
func describeRPC(rpc int) string {
	switch rpc {
	case 0:
		return "persistent connections"
	case 1:
		return "a new connection per request"
	default:
		return fmt.Sprintf("%d requests per connection", rpc)
	}
}

// shortRPC is a compact label for legends and tables.
func shortRPC(rpc int) string {
	switch rpc {
	case 0:
		return "persistent"
	case 1:
		// The text's words, shortened: "no keepalive" read as another
		// variant than "a new connection per request".
		return "new conn per request"
	default:
		return fmt.Sprintf("%d req/conn", rpc)
	}
}

// formatCount writes n with thousands separators (10,000).
func formatCount(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
