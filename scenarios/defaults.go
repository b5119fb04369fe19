package scenarios

import "time"

// Defaults applied to every scenario before validation.
const (
	DefaultEndpointsPerService = 10
	DefaultBackends            = 10
	DefaultRate                = 1000
	DefaultDuration            = 30 * time.Second
	DefaultWarmup              = 5 * time.Second
	DefaultTimeout             = 2 * time.Second
	DefaultMaxInflight         = 1000
	DefaultRepetitions         = 1
	DefaultSamplingInterval    = time.Second
	// DefaultChurnFraction: one Service in a hundred is touched.
	DefaultChurnFraction = 0.01
	DefaultChurnHold     = 5 * time.Second
	DefaultChurnGrace    = 10 * time.Second
	// DefaultSyncTimeout bounds a cold full sync of spec.churn.syncCosts:
	// upstream reports one of 13 min for nftables at 5,000 Services with
	// 50 endpoints each.
	DefaultSyncTimeout = 20 * time.Minute
)

// DefaultRequestsPerConn measures without keepalive and with the blog's
// keepalive (nginx reuses a connection for up to 100 requests).
var DefaultRequestsPerConn = []int{1, 100}

// SetDefaults fills every unset field of s. A zero number means unset; an
// explicit warmup of "0s" is kept (no warmup).
func SetDefaults(s *Scenario) {
	if s.APIVersion == "" {
		s.APIVersion = APIVersion
	}
	if s.Kind == "" {
		s.Kind = Kind
	}
	sp := &s.Spec
	if len(sp.Modes) == 0 {
		sp.Modes = append([]Mode(nil), Modes...)
	}
	if sp.Order == "" {
		sp.Order = OrderSteps
	}
	if sp.EndpointsPerService == 0 {
		sp.EndpointsPerService = DefaultEndpointsPerService
	}
	if sp.Backends == 0 {
		sp.Backends = DefaultBackends
	}
	l := &sp.Load
	if l.Rate == 0 {
		l.Rate = DefaultRate
	}
	if l.Duration == 0 {
		l.Duration = Duration(DefaultDuration)
	}
	if l.Warmup == nil {
		w := Duration(DefaultWarmup)
		l.Warmup = &w
	}
	if len(l.RequestsPerConn) == 0 {
		l.RequestsPerConn = append([]int(nil), DefaultRequestsPerConn...)
	}
	if len(l.Targets) == 0 {
		l.Targets = Placements{TargetsOne}
	}
	if sp.Primary != nil && sp.Primary.Targets == "" {
		sp.Primary.Targets = l.Targets.First()
	}
	if l.Timeout == 0 {
		l.Timeout = Duration(DefaultTimeout)
	}
	if l.MaxInflight == 0 {
		l.MaxInflight = DefaultMaxInflight
	}
	if l.Clients == 0 {
		l.Clients = 1
	}
	if l.Tick == "" {
		l.Tick = TickAuto
	}
	if sp.Repetitions == 0 {
		sp.Repetitions = DefaultRepetitions
	}
	if sp.Sampling.Interval == 0 {
		sp.Sampling.Interval = Duration(DefaultSamplingInterval)
	}
	if c := sp.Churn; c != nil {
		if c.Kinds == nil {
			c.Kinds = &ChurnKinds{EndpointReplace: 1}
		}
		if c.Fraction == 0 {
			c.Fraction = DefaultChurnFraction
		}
		if c.Target == nil {
			yes := true
			c.Target = &yes
		}
		if c.Hold == 0 {
			c.Hold = Duration(DefaultChurnHold)
		}
		if c.Grace == nil {
			g := Duration(DefaultChurnGrace)
			c.Grace = &g
		}
	}
}
