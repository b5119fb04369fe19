package report

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// plannedReps is how many repetitions run's scenario plans at k, 0 when it
// does not measure k.
func plannedReps(run *runs.Run, k runs.Key) int {
	sp := run.Scenario.Spec
	if !slices.Contains(sp.Load.Targets, k.Targets) || !slices.Contains(sp.Modes, k.Mode) ||
		!slices.Contains(sp.Services, k.Services) || !slices.Contains(sp.Load.RequestsPerConn, k.RequestsPerConn) {
		return 0
	}
	return sp.Repetitions
}

// lostReasons says why the new run has no valid point for some of the
// planned repetitions at k: each invalid reason once with its count, and
// the repetitions never measured (with the mode's skip reason, or the
// run's status).
func lostReasons(run *runs.Run, k runs.Key, pts []*runs.Point, planned int) ([]string, string) {
	cause := CauseRunner
	counts := map[string]int{}
	var order []string
	measured := 0
	for _, p := range pts {
		measured++
		if p.Valid {
			continue
		}
		reasons := p.InvalidReasons
		if len(reasons) == 0 {
			reasons = []string{"invalid"}
		}
		for _, r := range reasons {
			cause = worseCause(cause, reasonCause(r))
			r = reasonKind(r)
			if counts[r] == 0 {
				order = append(order, r)
			}
			counts[r]++
		}
	}
	var out []string
	for _, r := range order {
		out = append(out, fmt.Sprintf("%d× %s", counts[r], r))
	}
	if missing := planned - measured; missing > 0 {
		why := "run " + run.Status
		for _, s := range run.SkippedModes {
			if s.Mode == k.Mode {
				why = "mode skipped: " + s.Reason
			}
		}
		out = append(out, fmt.Sprintf("%d not measured (%s)", missing, why))
	}
	return out, cause
}

// reasonKind shortens an invalid reason to its kind (the runs.Reason*
// prefix), dropping the point's own numbers.
func reasonKind(r string) string {
	if i := strings.IndexAny(r, ":("); i > 0 {
		return strings.TrimSpace(r[:i])
	}
	return r
}

// scenarioMismatches lists what the two runs' points measure differently:
// the scenario's load and cluster shape from run.json, and the rate,
// duration and endpoints the points themselves recorded.
func scenarioMismatches(base, next *Data) []string {
	var out []string
	add := func(field string, b, n any) {
		if fmt.Sprint(b) != fmt.Sprint(n) {
			out = append(out, fmt.Sprintf("%s: base %v, new %v", field, b, n))
		}
	}
	bs, ns := base.Run.Scenario.Spec, next.Run.Scenario.Spec
	add("spec.load.rate", bs.Load.Rate, ns.Load.Rate)
	add("spec.load.duration", bs.Load.Duration, ns.Load.Duration)
	add("spec.load.warmup", bs.Load.WarmupDuration(), ns.Load.WarmupDuration())
	add("spec.load.clients", max(bs.Load.Clients, 1), max(ns.Load.Clients, 1))
	add("spec.load.targets", bs.Load.Targets, ns.Load.Targets)
	add("spec.load.timeout", bs.Load.Timeout, ns.Load.Timeout)
	add("spec.load.maxInflight", bs.Load.MaxInflight, ns.Load.MaxInflight)
	add("spec.endpointsPerService", bs.EndpointsPerService, ns.EndpointsPerService)
	add("spec.backends", bs.Backends, ns.Backends)
	// How the points were measured: a change here moves the numbers
	// without any change of the dataplane.
	add("spec.repetitions", bs.Repetitions, ns.Repetitions)
	add("spec.order", orderOf(bs.Order), orderOf(ns.Order))
	add("spec.sampling.interval", bs.Sampling.Interval, ns.Sampling.Interval)
	add("spec.gate", gateString(bs), gateString(ns))
	// What churn does during every window: a churn point is measured
	// against a dataplane that changes at this rate, in these ways.
	bc, nc := churnSettings(bs.Churn), churnSettings(ns.Churn)
	for i := range bc {
		add("spec.churn."+bc[i].field, bc[i].value, nc[i].value)
	}
	add("provider", base.Run.Provider.Name, next.Run.Provider.Name)
	add("pinning", pinningString(base.Run.Pinning), pinningString(next.Run.Pinning))
	add("client-node CPU covers", nodeCPUCovers(base.Points), nodeCPUCovers(next.Points))
	add("kpbench build", base.Run.KpbenchVersion, next.Run.KpbenchVersion)
	add("points' kpbench builds", pointBuilds(base.Points), pointBuilds(next.Points))
	pointSet := func(d *Data, f func(p *runs.Point) string) string {
		set := map[string]bool{}
		for i := range d.Points {
			set[f(&d.Points[i])] = true
		}
		vals := slices.Sorted(maps.Keys(set))
		return strings.Join(vals, ",")
	}
	for _, pf := range []struct {
		name string
		f    func(p *runs.Point) string
	}{
		{"points' target rate", func(p *runs.Point) string { return strconv.FormatFloat(p.Rate.Target, 'f', -1, 64) }},
		{"points' duration (s)", func(p *runs.Point) string { return strconv.FormatFloat(p.DurationSeconds, 'f', -1, 64) }},
		{"points' endpoints per Service", func(p *runs.Point) string { return strconv.Itoa(p.EndpointsPerService) }},
		// How the load client spaced its requests (batches move latency
		// and the client's CPU); 0 for each request at its own due time,
		// as in runs of kpbench versions that did not record it.
		{"points' load tick (s)", func(p *runs.Point) string { return strconv.FormatFloat(p.Rate.TickSeconds, 'f', -1, 64) }},
		{"points' churn rate (writes/s)", func(p *runs.Point) string {
			if p.Churn == nil {
				return "none"
			}
			return strconv.FormatFloat(p.Churn.AskedPerSecond, 'f', -1, 64)
		}},
	} {
		if len(base.Points) > 0 && len(next.Points) > 0 {
			add(pf.name, pointSet(base, pf.f), pointSet(next, pf.f))
		}
	}
	return out
}

// churnSetting is one field of spec.churn as a run measured with it.
type churnSetting struct{ field, value string }

// churnSettings lists what spec.churn asks of every window, its defaults
// resolved; every value is "none" without churn.
func churnSettings(c *scenarios.Churn) []churnSetting {
	fields := []string{"rate", "kinds", "fraction", "target", "hold", "grace"}
	out := make([]churnSetting, len(fields))
	for i, f := range fields {
		out[i] = churnSetting{field: f, value: "none"}
	}
	if c == nil {
		return out
	}
	kinds := scenarios.ChurnKinds{EndpointReplace: 1}
	if c.Kinds != nil {
		kinds = *c.Kinds
	}
	fraction := c.Fraction
	if fraction == 0 {
		fraction = scenarios.DefaultChurnFraction
	}
	hold := c.Hold.D()
	if hold == 0 {
		hold = scenarios.DefaultChurnHold
	}
	grace := scenarios.DefaultChurnGrace
	if c.Grace != nil {
		grace = c.Grace.D()
	}
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	out[0].value = g(c.Rate) + "/s"
	out[1].value = fmt.Sprintf("endpointReplace %s, endpointsToZero %s, serviceCreate %s",
		g(kinds.EndpointReplace), g(kinds.EndpointsToZero), g(kinds.ServiceCreate))
	out[2].value = g(fraction)
	out[3].value = strconv.FormatBool(c.TargetOn())
	out[4].value = hold.String()
	out[5].value = grace.String()
	return out
}

// hasChurn reports whether d measured churn points: its scenario asks for
// churn, or any of its points carries it.
func hasChurn(d *Data) bool {
	if d.Run.Scenario.Spec.Churn != nil {
		return true
	}
	return slices.ContainsFunc(d.Points, func(p runs.Point) bool { return p.Churn != nil })
}

// environmentDifferences lists how the machines and software differ (the
// provider and the kpbench build are scenario mismatches), and a run whose
// points mix builds or environments.
func environmentDifferences(base, next *Data) []string {
	var out []string
	b, n := base.Run, next.Run
	for _, d := range runs.EnvironmentDifferences(b.Provider.Name, b.Environment, n.Provider.Name, n.Environment) {
		if !strings.HasPrefix(d, "provider:") {
			out = append(out, d)
		}
	}
	for _, side := range []struct {
		name string
		d    *Data
	}{{"base", base}, {"new", next}} {
		if m := mixedPoints(side.d.Points); m != "" {
			out = append(out, side.name+" "+m)
		}
	}
	return out
}

// pointBuilds lists the kpbench versions that measured points.
func pointBuilds(points []runs.Point) string {
	set := map[string]bool{}
	for _, p := range points {
		if p.KpbenchVersion != "" {
			set[p.KpbenchVersion] = true
		}
	}
	return strings.Join(slices.Sorted(maps.Keys(set)), ",")
}

// orderOf is a run's order; runs that recorded none measured by mode.
func orderOf(o scenarios.Order) scenarios.Order {
	if o == "" {
		return scenarios.OrderModes
	}
	return o
}

// gateString is a spec's gate as its defaults resolve it.
func gateString(sp scenarios.Spec) string {
	return fmt.Sprintf("%v at %v %v", sp.GatedMetrics(), sp.GatedServices(), sp.GatedTargets())
}

func pinningString(p *runs.Pinning) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprintf("client node %v, rest %v", p.NodeCPUs, p.OtherCPUs)
}

// mixedPoints says when a run's points were measured by more than one
// kpbench version or in more than one environment (a resume forced past
// the difference), "" otherwise.
func mixedPoints(points []runs.Point) string {
	versions, envs := map[string]bool{}, map[string]bool{}
	for _, p := range points {
		if p.KpbenchVersion != "" {
			versions[p.KpbenchVersion] = true
		}
		if p.Environment != "" {
			envs[p.Environment] = true
		}
	}
	var parts []string
	if len(versions) > 1 {
		parts = append(parts, fmt.Sprintf("%d kpbench versions (%s)", len(versions), strings.Join(slices.Sorted(maps.Keys(versions)), ", ")))
	}
	if len(envs) > 1 {
		parts = append(parts, fmt.Sprintf("%d environments (fingerprints %s)", len(envs), strings.Join(slices.Sorted(maps.Keys(envs)), ", ")))
	}
	if len(parts) == 0 {
		return ""
	}
	return "mixes points of " + strings.Join(parts, " and ") + " (a resume forced past the difference)"
}
