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

// TestDefaultsAreTheScenarios: a bare `kpbench load` and a zero Config run
// as a scenario's point does.
func TestDefaultsAreTheScenarios(t *testing.T) {
	t.Parallel()
	got, err := ParseArgs([]string{"http://a/"})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{URLs: []string{"http://a/"}, Rate: scenarios.DefaultRate, Duration: scenarios.DefaultDuration, Warmup: scenarios.DefaultWarmup,
		Timeout: scenarios.DefaultTimeout, MaxInflight: scenarios.DefaultMaxInflight}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults %+v, want the scenario's %+v", got, want)
	}
	var sc scenarios.Scenario
	scenarios.SetDefaults(&sc)
	l := sc.Spec.Load
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
