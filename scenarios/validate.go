package scenarios

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Limits checked by Validate.
const (
	// MaxServices bounds a Service step: the lab's Service CIDR
	// (198.19.0.0/16) holds 65,534 ClusterIPs.
	MaxServices = 65000
	// MaxEndpointsPerService is the EndpointSlice API's limit.
	MaxEndpointsPerService = 1000
	MaxRate                = 1_000_000
	// MaxChurnRate bounds spec.churn.rate: API writes per second.
	MaxChurnRate = 1000
	// maxClusterIPs is what the lab's Service CIDR (198.19.0.0/16) holds:
	// the step's Services and those churn creates share it.
	maxClusterIPs = 65534
)

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// Validate checks a defaulted scenario and returns every problem found.
func Validate(s *Scenario) ErrorList {
	var errs ErrorList
	add := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if s.APIVersion != APIVersion {
		add("apiVersion", "must be %q, got %q", APIVersion, s.APIVersion)
	}
	if s.Kind != Kind {
		add("kind", "must be %q, got %q", Kind, s.Kind)
	}
	if s.Metadata.Name == "" {
		add("metadata.name", "is required")
	} else if !nameRE.MatchString(s.Metadata.Name) {
		add("metadata.name", "must be lower-case letters, digits, '-' or '.', at most 63 characters (it names the results directory), got %q", s.Metadata.Name)
	}

	sp := &s.Spec
	seenMode := map[Mode]bool{}
	for i, m := range sp.Modes {
		p := fmt.Sprintf("spec.modes[%d]", i)
		switch {
		case !m.Valid() || m == ModeExternal:
			add(p, "unknown mode %q (want iptables, ipvs or nftables)", m)
		case seenMode[m]:
			add(p, "mode %q listed twice", m)
		}
		seenMode[m] = true
	}
	if sp.Order != OrderModes && sp.Order != OrderSteps {
		add("spec.order", "must be %q or %q, got %q", OrderModes, OrderSteps, sp.Order)
	}
	if len(sp.Services) == 0 {
		add("spec.services", "is required: the ascending Service counts to measure, e.g. [1, 1000, 5000]")
	}
	for i, n := range sp.Services {
		p := fmt.Sprintf("spec.services[%d]", i)
		switch {
		case n < 1:
			add(p, "must be at least 1, got %d", n)
		case n > MaxServices:
			add(p, "must be at most %d, got %d", MaxServices, n)
		}
		if i > 0 && n <= sp.Services[i-1] {
			add(p, "must be greater than the previous step (%d): steps are strictly ascending, got %d", sp.Services[i-1], n)
		}
	}
	if sp.EndpointsPerService < 1 || sp.EndpointsPerService > MaxEndpointsPerService {
		add("spec.endpointsPerService", "must be between 1 and %d, got %d", MaxEndpointsPerService, sp.EndpointsPerService)
	}
	if sp.Backends < 1 {
		add("spec.backends", "must be at least 1, got %d", sp.Backends)
	} else if sp.EndpointsPerService > sp.Backends {
		add("spec.endpointsPerService", "must not exceed spec.backends (%d): every endpoint is a real backend pod, got %d", sp.Backends, sp.EndpointsPerService)
	}

	l := &sp.Load
	if l.Rate <= 0 || l.Rate > MaxRate {
		add("spec.load.rate", "must be above 0 and at most %d requests per second, got %g", MaxRate, l.Rate)
	}
	if l.Duration.D() < time.Second {
		add("spec.load.duration", "must be at least 1s, got %s", l.Duration)
	}
	if l.WarmupDuration() < 0 {
		add("spec.load.warmup", "must not be negative, got %s", l.Warmup)
	}
	if len(l.RequestsPerConn) == 0 {
		add("spec.load.requestsPerConn", "is required")
	}
	seenRPC := map[int]bool{}
	for i, k := range l.RequestsPerConn {
		p := fmt.Sprintf("spec.load.requestsPerConn[%d]", i)
		switch {
		case k < 0:
			add(p, "must be 0 (persistent), 1 (a new connection per request) or N > 1 requests per connection, got %d", k)
		case seenRPC[k]:
			add(p, "variant %d listed twice", k)
		}
		seenRPC[k] = true
	}
	validatePlacements(l.Targets, add)
	if l.Timeout.D() <= 0 {
		add("spec.load.timeout", "must be positive, got %s", l.Timeout)
	}
	if l.MaxInflight < 1 {
		add("spec.load.maxInflight", "must be at least 1, got %d", l.MaxInflight)
	}
	if l.Clients < 1 {
		add("spec.load.clients", "must be at least 1, got %d", l.Clients)
	}
	if _, _, err := l.TickDuration(); err != nil {
		add("spec.load.tick", "%s", err)
	}
	if sp.Repetitions < 1 {
		add("spec.repetitions", "must be at least 1, got %d", sp.Repetitions)
	}
	if pr := sp.Primary; pr != nil {
		if !slices.Contains(PrimaryMetrics, pr.Metric) {
			add("spec.primary.metric", "must be one of %s (median connect time, mean round-trip latency, client-node CPU), got %q",
				strings.Join(PrimaryMetrics, ", "), pr.Metric)
		}
		if !seenRPC[pr.RequestsPerConn] {
			add("spec.primary.requestsPerConn", "must be one of the connection variants in spec.load.requestsPerConn (%v), got %d",
				l.RequestsPerConn, pr.RequestsPerConn)
		}
		if len(sp.Modes) < 2 {
			add("spec.primary", "compares modes, so spec.modes needs at least two, got %d", len(sp.Modes))
		}
		switch pr.Direction {
		case "", DirectionTwoSided, DirectionGreater, DirectionLess:
		default:
			add("spec.primary.direction", "must be %q, %q or %q (the first mode of each pair, in report order, minus the second), got %q",
				DirectionTwoSided, DirectionGreater, DirectionLess, pr.Direction)
		}
		if pr.Targets != "" && !slices.Contains(l.Targets, pr.Targets) {
			add("spec.primary.targets", "must be one of the placements in spec.load.targets (%s), got %q", l.Targets, pr.Targets)
		}
		if pr.Services != 0 && !slices.Contains(sp.Services, pr.Services) {
			add("spec.primary.services", "must be one of the steps in spec.services (%v), got %d", sp.Services, pr.Services)
		}
		// Under order: modes each mode's repetitions share one block of
		// time, and a test between modes treats them as independent: at
		// the reference's block effect its false-positive rate is 11-21%.
		if sp.Order != OrderSteps {
			add("spec.primary", "needs spec.order %q, where the modes take turns in every repetition; under %q each mode's repetitions share one block of time and the comparison's false-positive rate is well above 5%%, got %q",
				OrderSteps, OrderModes, sp.Order)
		}
	}
	if g := sp.Gate; g != nil {
		for i, m := range g.Metrics {
			switch {
			case !slices.Contains(GateMetrics, m):
				add(fmt.Sprintf("spec.gate.metrics[%d]", i), "must be one of %s, got %q", strings.Join(GateMetrics, ", "), m)
			case slices.Contains(ChurnGateMetrics, m) && sp.Churn == nil:
				add(fmt.Sprintf("spec.gate.metrics[%d]", i), "%q is measured only on churn points and needs spec.churn", m)
			}
		}
		for i, n := range g.Services {
			if !slices.Contains(sp.Services, n) {
				add(fmt.Sprintf("spec.gate.services[%d]", i), "must be one of the steps in spec.services (%v), got %d", sp.Services, n)
			}
		}
		for i, t := range g.Targets {
			if !slices.Contains(sp.Load.Targets, t) {
				add(fmt.Sprintf("spec.gate.targets[%d]", i), "must be one of the placements in spec.load.targets (%s), got %q", sp.Load.Targets, t)
			}
		}
	}
	if sp.Churn != nil {
		validateChurn(sp, add)
	}
	iv := sp.Sampling.Interval.D()
	switch {
	case iv < 10*time.Millisecond:
		add("spec.sampling.interval", "must be at least 10ms, got %s", sp.Sampling.Interval)
	case l.Duration.D() >= time.Second && iv > l.Duration.D():
		add("spec.sampling.interval", "must not exceed spec.load.duration (%s), got %s", l.Duration, sp.Sampling.Interval)
	}
	return errs
}

// validatePlacements checks spec.load.targets: every entry a known value,
// none twice, and in a list of more than one only placements by depth,
// since a list is there to contrast depths within a step.
func validatePlacements(ts Placements, add func(path, format string, args ...any)) {
	single := len(ts) == 1
	seen := map[Targets]bool{}
	for i, t := range ts {
		p := fmt.Sprintf("spec.load.targets[%d]", i)
		if single {
			p = "spec.load.targets"
		}
		switch {
		case !t.Valid():
			add(p, "must be one of deepest (the Service whose rule a new connection walks last: the worst case), "+
				"shallowest (walked first), median, random (each connection picks a Service uniformly) or one (the first-created "+
				"Service: its depth is drawn at random by kube-proxy at every sync); got %q", t)
		case seen[t]:
			add(p, "placement %q listed twice", t)
		case !single && !t.ByDepth():
			add(p, "a list of placements contrasts depths within a step, so every entry must place the target by depth "+
				"(deepest, shallowest or median); %q chooses no depth (%s): measure it alone (targets: %s), got %q",
				t, whyNotByDepth(t), t, t)
		}
		seen[t] = true
	}
}

func whyNotByDepth(t Targets) string {
	if t == TargetsRandom {
		return "each connection goes to a random Service, spread over the whole chain"
	}
	return "its Service sits wherever kube-proxy's map order puts it at each sync"
}

// validateChurn checks spec.churn against itself and against the steps,
// the backends and the window it runs in.
func validateChurn(sp *Spec, add func(path, format string, args ...any)) {
	c := sp.Churn
	if c.Rate <= 0 || c.Rate > MaxChurnRate {
		add("spec.churn.rate", "must be above 0 and at most %d API writes per second, got %g", MaxChurnRate, c.Rate)
	} else if w := sp.Load.Duration.D(); w >= time.Second && c.Rate*w.Seconds() < 1 {
		add("spec.churn.rate", "asks for no write in the %s window (at least one is needed: rate × spec.load.duration ≥ 1), got %g per second", sp.Load.Duration, c.Rate)
	}
	var k ChurnKinds
	if c.Kinds != nil {
		k = *c.Kinds
	}
	for _, w := range []struct {
		field string
		v     float64
	}{{"endpointReplace", k.EndpointReplace}, {"endpointsToZero", k.EndpointsToZero}, {"serviceCreate", k.ServiceCreate}} {
		if w.v < 0 {
			add("spec.churn.kinds."+w.field, "must not be negative (a relative weight), got %g", w.v)
		}
	}
	if k.EndpointReplace <= 0 && k.EndpointsToZero <= 0 && k.ServiceCreate <= 0 {
		add("spec.churn.kinds", "needs at least one weight above 0 (endpointReplace, endpointsToZero, serviceCreate)")
	}
	if c.Fraction <= 0 || c.Fraction > 1 {
		add("spec.churn.fraction", "must be above 0 and at most 1 (the share of the step's Services touched), got %g", c.Fraction)
	}
	if c.Hold.D() <= 0 {
		add("spec.churn.hold", "must be positive (how long a Service stays at zero endpoints, or a created one lives), got %s", c.Hold)
	}
	if c.SyncTimeout < 0 {
		add("spec.churn.syncTimeout", "must be positive (how long a cold full sync may take), got %s", c.SyncTimeout)
	} else if c.SyncTimeout > 0 && !c.SyncCosts {
		add("spec.churn.syncTimeout", "is set (%s) but spec.churn.syncCosts is not: it bounds the cold sync that syncCosts measures", c.SyncTimeout)
	}
	if c.GraceDuration() < 0 {
		add("spec.churn.grace", "must not be negative, got %s", c.Grace)
	}
	// Every endpoint is a real backend pod: the backend that joins a
	// Service must be one it does not list yet.
	if k.EndpointReplace > 0 && sp.Backends >= 1 && sp.Backends <= sp.EndpointsPerService {
		add("spec.backends", "must exceed spec.endpointsPerService (%d) when spec.churn.kinds.endpointReplace is weighted: the backend that joins a Service must be a real backend pod that is not one of its endpoints yet, got %d",
			sp.EndpointsPerService, sp.Backends)
	}
	touchesEndpoints := k.EndpointReplace > 0 || k.EndpointsToZero > 0
	if touchesEndpoints && !c.TargetOn() && len(sp.Services) > 0 && sp.Services[0] == 1 {
		add("spec.churn.target", "false leaves no Service whose endpoints can change at the step of 1 Service (spec.services[0]); start the steps at 2 or include the target")
	}
	if k.ServiceCreate > 0 && len(sp.Services) > 0 && c.Rate > 0 {
		most := sp.Services[len(sp.Services)-1] + int(math.Ceil(c.Rate*sp.Load.Duration.D().Seconds()))
		if most > maxClusterIPs {
			add("spec.churn.kinds.serviceCreate", "could create Services past the %d ClusterIPs of the Service CIDR at the largest step (%d + up to %d created), got weight %g",
				maxClusterIPs, sp.Services[len(sp.Services)-1], most-sp.Services[len(sp.Services)-1], k.ServiceCreate)
		}
	}
}
