package report

import (
	"fmt"
	"sort"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// CPU per new connection, keepalive baseline subtracted. Client-node CPU
// per request (metrics.go) is all of the node's busy time over requests
// per second: the client's own work, the kernel's TCP and the dataplane
// included. At the same request rate a keepalive variant does the same
// requests without opening connections, so the difference between the
// node's CPU at 1 request per connection and at the keepalive variant,
// same mode, step, placement and block, over the new connections per
// second, is what opening a connection costs the node: its handshake,
// its teardown and the dataplane's first-packet work.

// PerConnection is one condition's baseline-subtracted CPU per new
// connection.
type PerConnection struct {
	Mode     scenarios.Mode    `json:"mode"`
	Services int               `json:"services"`
	Targets  scenarios.Targets `json:"targets"`
	// Baseline is the keepalive variant subtracted (0: persistent).
	Baseline int `json:"baseline"`
	// Ns is per new connection, in ns, over the blocks (repetitions)
	// where both variants are valid at the same target rate: its mean
	// and Student-t 95% interval; N counts the blocks.
	Ns Summary `json:"ns"`
	// PerRequestNs is client-node CPU per request at 1 request per
	// connection over the same blocks, for comparison.
	PerRequestNs float64 `json:"perRequestNs"`
}

// keepaliveVariant is the run's keepalive variant: persistent
// connections when measured, else the most requests per connection.
func keepaliveVariant(groups []*group) (int, bool) {
	best, ok := 0, false
	for _, g := range groups {
		r := g.Key.RequestsPerConn
		switch {
		case r == 1:
		case !ok:
			best, ok = r, true
		case best != 0 && (r == 0 || r > best):
			best = r
		}
	}
	return best, ok
}

// PerConnections computes, at each mode's largest step with both a new
// connection per request and the keepalive variant, per placement, the
// baseline-subtracted CPU per new connection.
func PerConnections(d *Data) []PerConnection {
	keep, ok := keepaliveVariant(d.groups)
	if !ok {
		return nil
	}
	type cond struct {
		mode     scenarios.Mode
		services int
		targets  scenarios.Targets
	}
	type pair struct{ one, keep *runs.Point }
	cells := map[cond]map[int]*pair{}
	for i := range d.Points {
		p := &d.Points[i]
		if !p.Valid || (p.RequestsPerConn != 1 && p.RequestsPerConn != keep) {
			continue
		}
		c := cond{p.Mode, p.Services, p.Targets}
		if cells[c] == nil {
			cells[c] = map[int]*pair{}
		}
		pr := cells[c][p.Repetition]
		if pr == nil {
			pr = &pair{}
			cells[c][p.Repetition] = pr
		}
		if p.RequestsPerConn == 1 {
			pr.one = p
		} else {
			pr.keep = p
		}
	}
	largest := map[scenarios.Mode]int{}
	results := map[cond]PerConnection{}
	for c, reps := range cells {
		var vs, per []float64
		for _, pr := range reps {
			if pr.one == nil || pr.keep == nil || pr.one.Rate.Target != pr.keep.Rate.Target ||
				pr.one.Connect.Count == 0 || pr.one.DurationSeconds <= 0 {
				continue
			}
			perSec := float64(pr.one.Connect.Count) / pr.one.DurationSeconds
			vs = append(vs, (pr.one.CPU.Node.Total-pr.keep.CPU.Node.Total)/perSec*1e9)
			if v, ok := metric("cpu-per-request").Value(pr.one); ok {
				per = append(per, v)
			}
		}
		if len(vs) == 0 {
			continue
		}
		results[c] = PerConnection{Mode: c.mode, Services: c.services, Targets: c.targets, Baseline: keep,
			Ns: Summarize(vs), PerRequestNs: Summarize(per).Mean}
		largest[c.mode] = max(largest[c.mode], c.services)
	}
	var out []PerConnection
	for c, r := range results {
		if c.services == largest[c.mode] {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if a, b := modeRank(string(out[i].Mode)), modeRank(string(out[j].Mode)); a != b {
			return a < b
		}
		return placementRank(out[i].Targets) < placementRank(out[j].Targets)
	})
	return out
}

// Sentence states the figure, which is which, and its unit.
func (pc PerConnection) Sentence() string {
	ci := "no CI"
	if pc.Ns.HasCI {
		ci = fmt.Sprintf("95%% CI %.1f to %.1f µs", pc.Ns.CILo/1e3, pc.Ns.CIHi/1e3)
	}
	return fmt.Sprintf("%s at %s, targets %s: CPU per new connection, keepalive baseline subtracted, %.1f µs (%s; n = %d blocks): client-node CPU at a new connection per request minus at %s, same step, placement and block and the same rate, over new connections per second; client-node CPU per request, baseline included, was %.1f µs (descriptive: not in a tested family).",
		pc.Mode, servicesPhrase(pc.Services), pc.Targets, pc.Ns.Mean/1e3, ci, pc.Ns.N, describeRPC(pc.Baseline), pc.PerRequestNs/1e3)
}

// perConnectionFindings are the figures as findings.
func perConnectionFindings(d *Data) []Finding {
	var out []Finding
	for _, pc := range PerConnections(d) {
		out = append(out, Finding{Kind: FindingPerConnection, Text: pc.Sentence()})
	}
	return out
}
