package report

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kpbench/kpbench/runs"
)

// Metric is one number taken from every point, for comparisons.
type Metric struct {
	// Name is how --metrics spells it.
	Name string
	// Description says what it is, Unit in what.
	Description string
	Unit        string
	// HigherIsWorse is true for costs (latency, CPU): a regression is an
	// increase.
	HigherIsWorse bool
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

// Metrics lists every metric compare knows, in display order.
var Metrics = []Metric{
	{Name: "latency", Description: "mean round-trip latency", Unit: "µs", HigherIsWorse: true,
		Value: always(func(p *runs.Point) float64 { return p.Latency.MeanUs })},
	{Name: "latency-p50", Description: "median round-trip latency", Unit: "µs", HigherIsWorse: true,
		Value: always(func(p *runs.Point) float64 { return p.Latency.P50Us })},
	{Name: "latency-p99", Description: "p99 round-trip latency", Unit: "µs", HigherIsWorse: true,
		Value: always(func(p *runs.Point) float64 { return p.Latency.P99Us })},
	{Name: "cpu", Description: "client-node CPU", Unit: "cores", HigherIsWorse: true,
		Value: always(func(p *runs.Point) float64 { return p.CPU.Node.Total })},
	{Name: "kube-proxy-cpu", Description: "kube-proxy CPU", Unit: "cores", HigherIsWorse: true,
		Value: always(func(p *runs.Point) float64 { return p.CPU.Processes.KubeProxy })},
	{Name: "connect", Description: "median TCP connect time", Unit: "µs", HigherIsWorse: true,
		Value: whenConnects(func(p *runs.Point) float64 { return p.Connect.P50Us })},
	{Name: "connect-p99", Description: "p99 TCP connect time", Unit: "µs", HigherIsWorse: true,
		Value: whenConnects(func(p *runs.Point) float64 { return p.Connect.P99Us })},
	// Only the points that measured a programming sync carry one (the
	// first point after a step was scaled, or a sync inside the window);
	// the others record 0, which is "not measured", not "instant".
	{Name: "sync", Description: "last kube-proxy sync duration", Unit: "s", HigherIsWorse: true,
		Value: func(p *runs.Point) (float64, bool) { return p.Sync.LastDurationSeconds, p.Sync.LastDurationSeconds > 0 }},
}

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

// valuesOf returns f over the group's valid points.
func (g *group) valuesOf(f func(p *runs.Point) float64) []float64 {
	out := make([]float64, 0, len(g.Valid))
	for _, p := range g.Valid {
		out = append(out, f(p))
	}
	return out
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
