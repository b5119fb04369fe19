package report

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// The cost per rule from within-step contrasts. When a run places targets
// at two depths within each step (a placement list such as
// [deepest, shallowest]), the difference between a deep and a shallow
// point of the same step and repetition is free of the Service count and
// of time: both saw the same table, in the same block. The estimate is
//
//	β = Σ Δrules·Δy / Σ Δrules²
//
// over every (step, repetition) with both placements valid: the mean of
// the per-contrast slopes Δy/Δrules weighted by Δrules², which is least
// squares with a fixed effect per step and repetition. Its interval comes
// from the independent unit: under order: steps the repetition (a block in
// which every step, mode and placement took a turn), under order: modes
// the (step, repetition) contrast (the placements alternated within it).
// Each unit u contributes N_u = Σ Δrules·Δy and D_u = Σ Δrules²; with G
// units the variance of β is s²/ΣD_u, s² = Σ (N_u − β·D_u)²/D_u / (G−1),
// and the interval is Student's t with G−1 degrees of freedom (weighted
// least squares on the units' own slopes, exact for normal noise of equal
// variance per contrast).

// ContrastEstimate is one metric's within-step estimate.
type ContrastEstimate struct {
	Metric string  `json:"metric"`
	N      int     `json:"n"` // independent units
	Est    float64 `json:"est"`
	Lo     float64 `json:"lo"`
	Hi     float64 `json:"hi"`
	HasCI  bool    `json:"hasCI"`
}

// StepContrast is a mode's cost per rule from within-step contrasts, or,
// for a mode that walks no rules, the negative control: deep minus shallow
// placement at the same step.
type StepContrast struct {
	Mode            scenarios.Mode    `json:"mode"`
	RequestsPerConn int               `json:"requestsPerConn"`
	Deep            scenarios.Targets `json:"deep"`
	Shallow         scenarios.Targets `json:"shallow"`
	// Unit names the independent unit: "block" (order: steps) or
	// "contrast" (a step and repetition, order: modes).
	Unit string `json:"unit"`
	// Control is set for a mode with 0 rules walked at every placement:
	// Estimates are then differences in ns, not ns per rule.
	Control   bool               `json:"control"`
	Contrasts int                `json:"contrasts"`
	Estimates []ContrastEstimate `json:"estimates"`
}

// contrastUnit is one independent unit's sums.
type contrastUnit struct {
	n, d, dy float64
	k        int
}

// placementRank orders placements for a mode without a walk: the first
// listed is the "deep" side of the negative control.
func placementRank(t scenarios.Targets) int {
	if i := slices.Index(scenarios.AllTargets, t); i >= 0 {
		return i
	}
	return len(scenarios.AllTargets)
}

// StepContrasts computes, for each connection variant that opens new
// connections (most connections first), each mode's within-step
// contrasts. Modes whose points sit at one placement per step are left
// out (DepthFits covers them).
func StepContrasts(d *Data) []StepContrast {
	seen := map[int]bool{}
	var rpcs []int
	for _, g := range d.groups {
		for _, p := range g.Valid {
			if p.RequestsPerConn != 0 && p.Connect.Count > 0 && !seen[p.RequestsPerConn] {
				seen[p.RequestsPerConn] = true
				rpcs = append(rpcs, p.RequestsPerConn)
			}
		}
	}
	sort.Slice(rpcs, func(i, j int) bool { return rpcLess(rpcs[i], rpcs[j]) })
	var out []StepContrast
	for _, rpc := range rpcs {
		out = append(out, stepContrastsAt(d, rpc)...)
	}
	return out
}

// stepContrastsAt is StepContrasts for one connection variant.
func stepContrastsAt(d *Data, rpc int) []StepContrast {
	order := scenarios.OrderModes
	if d.Run != nil {
		order = orderOf(d.Run.Scenario.Spec.Order)
	}
	type cell struct {
		services, rep int
	}
	byMode := map[scenarios.Mode]map[cell]map[scenarios.Targets]*runs.Point{}
	walks := map[scenarios.Mode]bool{}
	var modes []scenarios.Mode
	for i := range d.Points {
		p := &d.Points[i]
		if !p.Valid || p.RequestsPerConn != rpc || p.Connect.Count == 0 {
			continue
		}
		w, ok := p.RulesWalked()
		if !ok {
			continue
		}
		if byMode[p.Mode] == nil {
			byMode[p.Mode] = map[cell]map[scenarios.Targets]*runs.Point{}
			modes = append(modes, p.Mode)
		}
		c := cell{p.Services, p.Repetition}
		if byMode[p.Mode][c] == nil {
			byMode[p.Mode][c] = map[scenarios.Targets]*runs.Point{}
		}
		if _, dup := byMode[p.Mode][c][p.Targets]; !dup {
			byMode[p.Mode][c][p.Targets] = p
		}
		walks[p.Mode] = walks[p.Mode] || w > 0
	}
	sort.SliceStable(modes, func(i, j int) bool { return modeRank(string(modes[i])) < modeRank(string(modes[j])) })
	var out []StepContrast
	for _, m := range modes {
		cells := byMode[m]
		var keys []cell
		for c, pl := range cells {
			if len(pl) >= 2 {
				keys = append(keys, c)
			}
		}
		if len(keys) == 0 {
			continue
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].services != keys[j].services {
				return keys[i].services < keys[j].services
			}
			return keys[i].rep < keys[j].rep
		})
		sc := StepContrast{Mode: m, RequestsPerConn: rpc, Control: !walks[m], Unit: "contrast"}
		if order == scenarios.OrderSteps {
			sc.Unit = "block"
		}
		// The two sides of each contrast: the deepest and the shallowest
		// placement by rules walked, or by placement name without a walk.
		pairs := make([][2]*runs.Point, 0, len(keys))
		for _, c := range keys {
			var pts []*runs.Point
			for _, p := range cells[c] {
				pts = append(pts, p)
			}
			sort.Slice(pts, func(i, j int) bool {
				wi, _ := pts[i].RulesWalked()
				wj, _ := pts[j].RulesWalked()
				if wi != wj {
					return wi > wj
				}
				return placementRank(pts[i].Targets) < placementRank(pts[j].Targets)
			})
			deep, shallow := pts[0], pts[len(pts)-1]
			wd, _ := deep.RulesWalked()
			ws, _ := shallow.RulesWalked()
			if walks[m] && wd == ws {
				continue
			}
			if sc.Deep == "" {
				sc.Deep, sc.Shallow = deep.Targets, shallow.Targets
			}
			pairs = append(pairs, [2]*runs.Point{deep, shallow})
		}
		sc.Contrasts = len(pairs)
		if len(pairs) == 0 {
			continue
		}
		for _, dm := range depthMetrics {
			units := map[[2]int]*contrastUnit{}
			var order [][2]int
			for _, pr := range pairs {
				yd, ok1 := dm.value(pr[0])
				ys, ok2 := dm.value(pr[1])
				if !ok1 || !ok2 {
					continue
				}
				wd, _ := pr[0].RulesWalked()
				ws, _ := pr[1].RulesWalked()
				key := [2]int{pr[0].Repetition, 0}
				if sc.Unit == "contrast" {
					key[1] = pr[0].Services
				}
				u := units[key]
				if u == nil {
					u = &contrastUnit{}
					units[key] = u
					order = append(order, key)
				}
				dx, dy := wd-ws, yd-ys
				u.n += dx * dy
				u.d += dx * dx
				u.dy += dy
				u.k++
			}
			if len(order) == 0 {
				if !dm.optional {
					sc.Estimates = append(sc.Estimates, ContrastEstimate{Metric: dm.name})
				}
				continue
			}
			us := make([]contrastUnit, 0, len(order))
			for _, k := range order {
				us = append(us, *units[k])
			}
			e := contrastEstimate(us, sc.Control)
			e.Metric = dm.name
			sc.Estimates = append(sc.Estimates, e)
		}
		out = append(out, sc)
	}
	return out
}

// contrastEstimate pools the units: the weighted slope and its Student-t
// interval, or for a control the mean deep−shallow difference per unit
// and its t interval.
func contrastEstimate(us []contrastUnit, control bool) ContrastEstimate {
	e := ContrastEstimate{N: len(us)}
	g := float64(len(us))
	if control {
		v := make([]float64, len(us))
		for i, u := range us {
			v[i] = u.dy / float64(u.k)
		}
		s := Summarize(v)
		e.Est, e.Lo, e.Hi, e.HasCI = s.Mean, s.CILo, s.CIHi, s.HasCI
		return e
	}
	var sn, sd float64
	for _, u := range us {
		sn, sd = sn+u.n, sd+u.d
	}
	e.Est, e.Lo, e.Hi = sn/sd, sn/sd, sn/sd
	if len(us) < 2 {
		return e
	}
	var ss float64
	for _, u := range us {
		r := u.n - e.Est*u.d
		ss += r * r / u.d
	}
	half := tQuantile(g-1) * math.Sqrt(ss/(g-1)/sd)
	e.Lo, e.Hi, e.HasCI = e.Est-half, e.Est+half, true
	return e
}

// estimateOf returns the named metric's estimate.
func (c StepContrast) estimateOf(name string) (ContrastEstimate, bool) {
	for _, e := range c.Estimates {
		if e.Metric == name && e.N > 0 {
			return e, true
		}
	}
	return ContrastEstimate{}, false
}

func nsCI(e ContrastEstimate) string {
	if !e.HasCI {
		return fmt.Sprintf("%s ns (no CI)", signedNs(e.Est))
	}
	return fmt.Sprintf("%s ns (95%% CI %s to %s)", signedNs(e.Est), signedNs(e.Lo), signedNs(e.Hi))
}

// Sentence states the contrast, what it is free of, its unit and that it
// is descriptive.
func (c StepContrast) Sentence() string {
	var parts []string
	n := 0
	for _, e := range c.Estimates {
		if e.N == 0 {
			continue
		}
		n = max(n, e.N)
		parts = append(parts, fmt.Sprintf("%s to %s", nsCI(e), e.Metric))
	}
	unit := fmt.Sprintf("n = %d blocks (repetitions; order: steps)", n)
	if c.Unit == "contrast" {
		unit = fmt.Sprintf("n = %d (step, repetition) contrasts (order: modes: the placements alternated within each)", n)
	}
	var b strings.Builder
	if c.Control {
		fmt.Fprintf(&b, "%s (negative control: 0 rules walked at every placement): targets %s minus targets %s at the same step and repetition adds %s",
			c.Mode, c.Deep, c.Shallow, strings.Join(parts, ", "))
		fmt.Fprintf(&b, " (%s, %d contrasts, %s; descriptive: a 95%% CI, not in a tested family; an interval that excludes 0 is a difference no rule walk explains).",
			unit, c.Contrasts, describeRPC(c.RequestsPerConn))
		return b.String()
	}
	fmt.Fprintf(&b, "%s, within each step (targets %s against %s at the same step and repetition, free of the Service count and of time): each rule ahead of the target adds %s",
		c.Mode, c.Deep, c.Shallow, strings.Join(parts, ", "))
	fmt.Fprintf(&b, " (%s, %d contrasts, %s; descriptive: a 95%% CI, not in a tested family).",
		unit, c.Contrasts, describeRPC(c.RequestsPerConn))
	return b.String()
}
