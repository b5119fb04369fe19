package loadgen

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/kpbench/kpbench/scenarios"
)

// A load run crosses a process boundary when the engine starts `kpbench
// load` on a client node (a network namespace, a VM) or in a pod. The
// request crosses it as `kpbench load` flags, which people type too: this
// file is the one place that writes them (Config.Args) and reads them
// (BindFlags), from one table, so the two cannot drift apart. The
// defaults are the scenario's (package scenarios), so that a bare
// `kpbench load` runs a point as a run would.

// flag is one field of Config on the command line.
type flag struct {
	name, usage string
	// bind registers the flag on fs for c with its default; arg returns
	// its value as Args writes it, "" to leave it out (the default).
	bind func(fs *pflag.FlagSet, c *Config, name, usage string)
	arg  func(c *Config) string
}

func durationFlag(get func(c *Config) *time.Duration, def time.Duration, always bool) (func(*pflag.FlagSet, *Config, string, string), func(*Config) string) {
	return func(fs *pflag.FlagSet, c *Config, name, usage string) { fs.DurationVar(get(c), name, def, usage) },
		func(c *Config) string {
			if d := *get(c); always || d != 0 {
				return d.String()
			}
			return ""
		}
}

// tickValue is --tick: "auto" (TickAuto) or a duration.
type tickValue time.Duration

func (t *tickValue) String() string {
	if time.Duration(*t) == TickAuto {
		return scenarios.TickAuto
	}
	return time.Duration(*t).String()
}

func (t *tickValue) Set(s string) error {
	d, auto, err := scenarios.ParseTick(s)
	if err != nil {
		return err
	}
	if auto {
		d = TickAuto
	}
	*t = tickValue(d)
	return nil
}

func (t *tickValue) Type() string { return "auto|duration" }

var flags = func() []flag {
	var fl []flag
	add := func(name, usage string, bind func(*pflag.FlagSet, *Config, string, string), arg func(*Config) string) {
		fl = append(fl, flag{name: name, usage: usage, bind: bind, arg: arg})
	}
	add("rate", "target rate in requests per second",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.Float64Var(&c.Rate, n, scenarios.DefaultRate, u) },
		func(c *Config) string { return strconv.FormatFloat(c.Rate, 'g', -1, 64) })
	b, a := durationFlag(func(c *Config) *time.Duration { return &c.Duration }, scenarios.DefaultDuration, true)
	add("duration", "measured window", b, a)
	b, a = durationFlag(func(c *Config) *time.Duration { return &c.Warmup }, scenarios.DefaultWarmup, true)
	add("warmup", "warm-up at the same rate before the window, excluded from the figures", b, a)
	add("requests-per-conn", "requests per TCP connection: 1 = a new connection per request, N = close after N, 0 = persistent",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.IntVar(&c.RequestsPerConn, n, 0, u) },
		func(c *Config) string { return strconv.Itoa(c.RequestsPerConn) })
	b, a = durationFlag(func(c *Config) *time.Duration { return &c.Timeout }, scenarios.DefaultTimeout, true)
	add("timeout", "bound on each request (connect, send, response)", b, a)
	add("max-inflight", "bound on requests in flight; hitting it makes the run invalid",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			fs.IntVar(&c.MaxInflight, n, scenarios.DefaultMaxInflight, u)
		},
		func(c *Config) string { return strconv.Itoa(c.MaxInflight) })
	add("seed", "seed for the choice of URLs (0: random)",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.Uint64Var(&c.Seed, n, 0, u) },
		func(c *Config) string {
			if c.Seed == 0 {
				return ""
			}
			return strconv.FormatUint(c.Seed, 10)
		})
	add("tick", "send in batches: wake once per tick and send at once every request due before the next tick (fewer wake-ups, so less client CPU at high rates, for burstier arrivals; lag and latency count from the batch's start); 0 = every request at its own due time; auto = 0 up to 1,000 req/s and 1ms above",
		func(fs *pflag.FlagSet, c *Config, n, u string) {
			c.Tick = TickAuto
			fs.Var((*tickValue)(&c.Tick), n, u)
		},
		func(c *Config) string {
			if c.Tick == TickAuto {
				return ""
			}
			return c.Tick.String()
		})
	add("abort-when-behind", "end the run (invalid) as soon as the client falls behind its schedule, rather than at --duration",
		func(fs *pflag.FlagSet, c *Config, n, u string) { fs.BoolVar(&c.AbortWhenBehind, n, false, u) },
		func(c *Config) string {
			if !c.AbortWhenBehind {
				return ""
			}
			return "true"
		})
	return fl
}()

// BindFlags registers on fs the flags of every field of c that a load run
// takes from its command line (its URLs are the arguments), with the
// scenario's defaults.
func BindFlags(fs *pflag.FlagSet, c *Config) {
	for _, f := range flags {
		f.bind(fs, c, f.name, f.usage)
	}
}

// Args returns c as `kpbench load` arguments: the flags BindFlags reads,
// then the URLs. Rate, duration, warm-up, requests per connection,
// timeout and the in-flight bound are always written (a zero is a value);
// the tick unless it is TickAuto (the flag's default; a zero tick is
// precise pacing and is written); the rest only when set.
func (c Config) Args() []string {
	var args []string
	for _, f := range flags {
		if v := f.arg(&c); v != "" {
			args = append(args, "--"+f.name+"="+v)
		}
	}
	return append(args, c.URLs...)
}

// ParseArgs reads what Args wrote back into a Config.
func ParseArgs(args []string) (Config, error) {
	var c Config
	fs := pflag.NewFlagSet("load", pflag.ContinueOnError)
	BindFlags(fs, &c)
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	c.URLs = fs.Args()
	return c, nil
}
