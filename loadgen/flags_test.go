package loadgen

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/kpbench/kpbench/scenarios"
)

// TestArgsRoundTrip: what the engine writes for `kpbench load` reads back
// as the same request, for every field the command line carries.
func TestArgsRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"a point", Config{URLs: []string{"http://198.19.0.10:80/"}, Rate: 1000, Duration: 30 * time.Second, Warmup: 5 * time.Second,
			RequestsPerConn: 1, Timeout: 2 * time.Second, MaxInflight: 1000}},
		{"a client's share of the rate", Config{URLs: []string{"http://a/", "http://b/"}, Rate: 1000.0 / 3, Duration: 1500 * time.Millisecond,
			RequestsPerConn: 100, Timeout: 250 * time.Millisecond, MaxInflight: 7}},
		{"no warm-up, persistent connections", Config{URLs: []string{"http://a/"}, Rate: 0.5, Duration: time.Minute + 30*time.Second, Warmup: 0,
			RequestsPerConn: 0, Timeout: time.Second, MaxInflight: 1}},
		{"every optional field", Config{URLs: []string{"http://a/"}, Rate: 10000, Duration: 3 * time.Second, Warmup: time.Millisecond,
			RequestsPerConn: 0, Timeout: time.Second, MaxInflight: 2000, Seed: 42, Tick: 500 * time.Microsecond, AbortWhenBehind: true}},
		{"the automatic tick", Config{URLs: []string{"http://a/"}, Rate: 2000, Duration: time.Second, Timeout: time.Second, MaxInflight: 1, Tick: TickAuto}},
		{"precise pacing above 1,000 req/s", Config{URLs: []string{"http://a/"}, Rate: 2000, Duration: time.Second, Timeout: time.Second, MaxInflight: 1, Tick: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseArgs(tt.cfg.Args())
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tt.cfg.Args(), err)
			}
			if !reflect.DeepEqual(got, tt.cfg) {
				t.Errorf("round trip of %q:\n got %+v\nwant %+v", tt.cfg.Args(), got, tt.cfg)
			}
		})
	}
}

// TestDefaultsAreTheScenarios: a bare `kpbench load` runs as a scenario's
// point does (the engine's side, the automatic tick, is sweep's
// TestLoadRequestTicksAutomatically).
func TestDefaultsAreTheScenarios(t *testing.T) {
	t.Parallel()
	got, err := ParseArgs([]string{"http://a/"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{URLs: []string{"http://a/"}, Rate: scenarios.DefaultRate, Duration: scenarios.DefaultDuration, Warmup: scenarios.DefaultWarmup,
		Timeout: scenarios.DefaultTimeout, MaxInflight: scenarios.DefaultMaxInflight, Tick: TickAuto}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults %+v, want the scenario's %+v", got, want)
	}
	var sc scenarios.Scenario
	scenarios.SetDefaults(&sc)
	l := sc.Spec.Load
	if _, auto, err := l.TickDuration(); !auto || err != nil || got.Tick != TickAuto {
		t.Errorf("a defaulted scenario's tick %q (auto %v, %v), kpbench load's %v: both should be auto", l.Tick, auto, err, got.Tick)
	}
	if l.Rate != got.Rate || l.Duration.D() != got.Duration || l.WarmupDuration() != got.Warmup || l.Timeout.D() != got.Timeout || l.MaxInflight != got.MaxInflight {
		t.Errorf("a defaulted scenario's load %+v differs from kpbench load's defaults %+v", l, got)
	}
}

// TestBindFlagsNamesEveryArg: every flag Args may write is one BindFlags
// registers, and the other way round.
func TestBindFlagsNamesEveryArg(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("load", pflag.ContinueOnError)
	var c Config
	BindFlags(fs, &c)
	full := Config{URLs: []string{"http://a/"}, Rate: 1, Duration: time.Second, Seed: 1, Tick: time.Millisecond, AbortWhenBehind: true}
	written := map[string]bool{}
	for _, a := range full.Args() {
		if name, _, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok && strings.HasPrefix(a, "--") {
			written[name] = true
			if fs.Lookup(name) == nil {
				t.Errorf("Args writes --%s, which BindFlags does not register", name)
			}
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !written[f.Name] {
			t.Errorf("BindFlags registers --%s, which Args never writes", f.Name)
		}
	})
}

// TestTickFlag: --tick takes auto, 0 or a positive duration; anything else
// is refused with what it takes. Args leaves auto out (the default) and
// writes a zero tick, which is precise pacing, not the default.
func TestTickFlag(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		arg  string
		want time.Duration
	}{{"auto", TickAuto}, {"0", 0}, {"0s", 0}, {"1ms", time.Millisecond}, {"250us", 250 * time.Microsecond}} {
		c, err := ParseArgs([]string{"--tick", tt.arg, "http://a/"})
		if err != nil || c.Tick != tt.want {
			t.Errorf("--tick %s: tick %v, err %v; want %v", tt.arg, c.Tick, err, tt.want)
		}
	}
	for _, arg := range []string{"-1ms", "soon", "1", ""} {
		_, err := ParseArgs([]string{"--tick", arg, "http://a/"})
		if err == nil || !strings.Contains(err.Error(), "auto") {
			t.Errorf("--tick %q: err %v, want a refusal that names auto", arg, err)
		}
	}
	args := strings.Join(Config{URLs: []string{"http://a/"}, Rate: 2000, Tick: TickAuto}.Args(), " ")
	if strings.Contains(args, "--tick") {
		t.Errorf("auto tick written as %q; it is the default", args)
	}
	args = strings.Join(Config{URLs: []string{"http://a/"}, Rate: 2000}.Args(), " ")
	if !strings.Contains(args, "--tick=0s") {
		t.Errorf("a zero tick written as %q; want --tick=0s (precise pacing)", args)
	}
}

// TestEffectiveTick: auto batches in 1 ms ticks above 1,000 req/s only; a
// tick that was set is kept at any rate; Validate refuses a negative one
// that is not auto.
func TestEffectiveTick(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		rate float64
		tick time.Duration
		want time.Duration
	}{
		{1, TickAuto, 0},
		{1000, TickAuto, 0},
		{1000.5, TickAuto, time.Millisecond},
		{2000, TickAuto, time.Millisecond},
		{50000, TickAuto, time.Millisecond},
		{2000, 0, 0},
		{100, 5 * time.Millisecond, 5 * time.Millisecond},
	} {
		c := Config{Rate: tt.rate, Tick: tt.tick}
		if got := c.EffectiveTick(); got != tt.want {
			t.Errorf("rate %g, tick %v: effective %v, want %v", tt.rate, tt.tick, got, tt.want)
		}
	}
	c := Config{URLs: []string{"http://a/"}, Rate: 10, Duration: time.Second, Tick: -2 * time.Millisecond}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "tick") {
		t.Errorf("tick -2ms: %v, want refused", err)
	}
	c.Tick = TickAuto
	if err := c.Validate(); err != nil {
		t.Errorf("auto tick refused: %v", err)
	}
}
