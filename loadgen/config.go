package loadgen

import (
	"errors"
	"fmt"
	"time"
)

// Config is one load run.
type Config struct {
	// URLs are the targets; each new connection picks one uniformly at
	// random. Only http:// is supported.
	URLs []string
	// Rate is the target rate in requests per second.
	Rate float64
	// Duration is the measured window; Warmup runs before it at the same
	// rate and is excluded from every figure but Summary.Warmup. Together
	// they bound the run's wall time: no request is sent after them, and
	// the run returns at most Timeout later, whatever the schedule still
	// owes (counted as not sent).
	Duration, Warmup time.Duration
	// RequestsPerConn: 1 opens a new TCP connection per request, N closes
	// each connection after N requests, 0 keeps connections open.
	RequestsPerConn int
	// Timeout bounds each request: connect, send and the whole response
	// (scenarios.DefaultTimeout when zero).
	Timeout time.Duration
	// MaxInflight bounds the requests in flight at once
	// (scenarios.DefaultMaxInflight when zero). A send that finds the bound reached
	// waits for a free worker, and the run is invalid.
	MaxInflight int
	// Seed makes the choice of targets repeatable; 0 seeds randomly.
	Seed uint64
	// Tick, when set, sends in batches: the dispatcher wakes once per Tick
	// and sends at once every request due before the next tick
	// (BatchStart). Fewer wake-ups (less client CPU at high rates) for a
	// burstier arrival process: Rate*Tick requests at a time, which queue at
	// the server as any burst does. Latency and lag count from the batch's
	// start. Zero sends every request at its own due time; TickAuto (what
	// `kpbench load` and the engine use unless told otherwise) batches in
	// AutoTick ticks only above AutoTickAbove req/s (EffectiveTick).
	Tick time.Duration
	// Progress, when set, is called about once a second with what the run
	// has done so far (from a goroutine of its own; it must not block).
	Progress func(Progress)
	// AbortWhenBehind ends the run as soon as the client falls behind its
	// schedule (see Progress.Behind), rather than at its duration: a rate
	// the client cannot reach fails fast. The run is then invalid.
	AbortWhenBehind bool
	// LogRequests keeps a record of every request of the measured window
	// (Result.Requests): its start, connect, whether it opened its
	// connection, the backend that answered and its error kind. The
	// records' room is allocated before the run and they are built after
	// it, so that keeping them costs a request one atomic add and one
	// store (`kpbench load --requests-log`).
	LogRequests bool

	// idleReuse overrides maxIdleReuse (tests).
	idleReuse time.Duration
	// stallAt and stallFor stop the dispatcher once, for stallFor, when
	// stallAt has elapsed: a client descheduled mid-window (tests).
	stallAt, stallFor time.Duration
}

// TickAuto, as Config.Tick, sends each request at its own due time up to
// AutoTickAbove requests per second and in AutoTick batches above it. At
// and below 1,000 req/s a 1 ms tick would hold at most one request, so
// precise pacing sends the same requests at the same times; above it,
// precise pacing wakes the client and the idle server once per request,
// which costs the client more CPU per request than fortio (whose Go timers
// fire with about this granularity) spends sending the same requests in
// bursts (docs/loadgen.md). `--tick 0` keeps precise pacing at any rate.
const TickAuto time.Duration = -1

// AutoTick and AutoTickAbove are TickAuto's batch and the rate (req/s)
// above which it batches.
const (
	AutoTick      = time.Millisecond
	AutoTickAbove = 1000.0
)

// EffectiveTick is the tick c's requests are sent in: c.Tick, or for
// TickAuto, AutoTick above AutoTickAbove req/s and 0 (each request at its
// own due time) at or below it.
func (c *Config) EffectiveTick() time.Duration {
	if c.Tick != TickAuto {
		return c.Tick
	}
	if c.Rate > AutoTickAbove {
		return AutoTick
	}
	return 0
}

// ErrInvalidConfig marks a Config that Validate rejects.
var ErrInvalidConfig = errors.New("invalid load config")

// Validate reports every problem of c at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.URLs) == 0 {
		errs = append(errs, errors.New("at least one URL is needed"))
	}
	for _, u := range c.URLs {
		if _, err := ParseTarget(u); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := NewConstantPacer(c.Rate, 0); err != nil {
		errs = append(errs, err)
	}
	if c.Duration <= 0 {
		errs = append(errs, fmt.Errorf("duration must be positive, got %v", c.Duration))
	}
	if c.Warmup < 0 {
		errs = append(errs, fmt.Errorf("warmup must not be negative, got %v", c.Warmup))
	}
	if c.RequestsPerConn < 0 {
		errs = append(errs, fmt.Errorf("requests per connection must be 0 (persistent) or positive, got %d", c.RequestsPerConn))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout must not be negative, got %v", c.Timeout))
	}
	if c.Tick < 0 && c.Tick != TickAuto {
		errs = append(errs, fmt.Errorf("tick must be \"auto\", 0 or positive, got %v", c.Tick))
	}
	if c.MaxInflight < 0 {
		errs = append(errs, fmt.Errorf("max inflight must not be negative, got %d", c.MaxInflight))
	}
	if n := c.Rate * c.Duration.Seconds(); c.LogRequests && n > maxLoggedRequests {
		errs = append(errs, fmt.Errorf("a requests log keeps at most %d requests, and %g req/s for %v sends %.0f", maxLoggedRequests, c.Rate, c.Duration, n))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, errors.Join(errs...))
	}
	return nil
}
