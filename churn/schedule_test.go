package churn

import (
	"context"
	"errors"
	"math"
	mrand "math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

func spec(rate, fraction float64, kinds scenarios.ChurnKinds, target bool, hold time.Duration) scenarios.Churn {
	return scenarios.Churn{Rate: rate, Kinds: &kinds, Fraction: fraction, Target: &target, Hold: scenarios.Duration(hold)}
}

var replaceOnly = scenarios.ChurnKinds{EndpointReplace: 1}

// TestPlanRate: floor(rate × window) writes, 1/rate apart, the first half
// an interval in, all inside the window.
func TestPlanRate(t *testing.T) {
	for _, tc := range []struct {
		rate   float64
		window time.Duration
		want   int
	}{{10, 30 * time.Second, 300}, {7.5, 2 * time.Second, 15}, {0.5, 3 * time.Second, 1}, {100, 1500 * time.Millisecond, 150}} {
		p := Plan(spec(tc.rate, 0.1, replaceOnly, true, time.Second), 100, 0, tc.window, 1)
		if len(p) != tc.want {
			t.Errorf("rate %g over %s: %d writes, want %d", tc.rate, tc.window, len(p), tc.want)
			continue
		}
		step := time.Duration(float64(time.Second) / tc.rate)
		for k, c := range p {
			want := step/2 + time.Duration(k)*step
			if d := c.At - want; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("rate %g: write %d at %s, want %s", tc.rate, k, c.At, want)
				break
			}
			if c.At <= 0 || c.At >= tc.window {
				t.Errorf("rate %g: write %d at %s, outside the %s window", tc.rate, k, c.At, tc.window)
			}
		}
	}
	if p := Plan(spec(0.1, 0.1, replaceOnly, true, time.Second), 100, 0, 5*time.Second, 1); p != nil {
		t.Errorf("0.1/s over 5 s planned %d writes, want none", len(p))
	}
}

func distinct(p []Planned) map[int]int {
	out := map[int]int{}
	for _, c := range p {
		out[c.Service]++
	}
	return out
}

// TestPlanFraction: the endpoint changes touch round(fraction × services)
// Services, each equally often; the target is among them, flagged, only
// when asked.
func TestPlanFraction(t *testing.T) {
	const services, target = 1000, 417
	window := 60 * time.Second
	on := Plan(spec(10, 0.01, replaceOnly, true, time.Second), services, target, window, 7)
	d := distinct(on)
	if len(d) != 10 {
		t.Errorf("%d Services touched, want 10 (1%% of 1000)", len(d))
	}
	for svc, n := range d {
		if n != 60 {
			t.Errorf("service %d changed %d times, want 60 (600 writes cycling over 10)", svc, n)
		}
	}
	if d[target] == 0 {
		t.Error("the target is not among the touched Services")
	}
	for _, c := range on {
		if c.Target != (c.Service == target) {
			t.Fatalf("change %+v: Target flag wrong", c)
		}
		if c.Service < 0 || c.Service >= services || c.Kind != runs.ChurnEndpointReplace {
			t.Fatalf("change %+v outside the step or of another kind", c)
		}
	}
	off := Plan(spec(10, 0.01, replaceOnly, false, time.Second), services, target, window, 7)
	if d := distinct(off); len(d) != 10 || d[target] != 0 {
		t.Errorf("target off: %d touched, target changed %d times; want 10 and 0", len(d), d[target])
	}
	none := Plan(spec(10, 0.05, replaceOnly, true, time.Second), services, -1, window, 7)
	if d := distinct(none); len(d) != 50 {
		t.Errorf("no single target: %d touched, want 50", len(d))
	}
	for _, c := range none {
		if c.Target {
			t.Fatalf("change %+v flagged as the target without one", c)
		}
	}
	if d := distinct(Plan(spec(10, 0.0001, replaceOnly, false, time.Second), services, target, window, 7)); len(d) != 1 || d[target] != 0 {
		t.Errorf("a tiny fraction touched %v, want one Service, not the target", d)
	}
	if d := distinct(Plan(spec(10, 1, replaceOnly, false, time.Second), 5, 2, window, 7)); len(d) != 4 || d[2] != 0 {
		t.Errorf("fraction 1 without the target touched %v, want the 4 others", d)
	}
	// A step of one Service and the target left out: nothing to change.
	if p := Plan(spec(10, 1, replaceOnly, false, time.Second), 1, 0, window, 7); p != nil {
		t.Errorf("planned %d writes with no Service to touch", len(p))
	}
}

// TestPlanKinds: the operations come in the proportions of their weights;
// every to-zero is restored and every created Service deleted, a hold
// later, and no change meets a Service in the wrong state.
func TestPlanKinds(t *testing.T) {
	const services, hold = 2000, 2 * time.Second
	k := scenarios.ChurnKinds{EndpointReplace: 2, EndpointsToZero: 1, ServiceCreate: 1}
	p := Plan(spec(100, 0.1, k, true, hold), services, 0, 600*time.Second, 99)
	count := map[string]int{}
	zeroAt := map[int]time.Duration{}
	createdAt := map[int]time.Duration{}
	for _, c := range p {
		count[c.Kind]++
		switch c.Kind {
		case runs.ChurnEndpointReplace, runs.ChurnEndpointsToZero:
			if _, z := zeroAt[c.Service]; z {
				t.Fatalf("%s of service %d while it has no endpoints", c.Kind, c.Service)
			}
			if c.Kind == runs.ChurnEndpointsToZero {
				zeroAt[c.Service] = c.At
			}
		case runs.ChurnEndpointsRestore:
			at, z := zeroAt[c.Service]
			if !z {
				t.Fatalf("restore of service %d, which has its endpoints", c.Service)
			}
			if c.At-at < hold {
				t.Errorf("service %d restored %s after going to zero, want at least %s", c.Service, c.At-at, hold)
			}
			delete(zeroAt, c.Service)
		case runs.ChurnServiceCreate:
			if c.Service < services {
				t.Fatalf("created service %d is one of the step's", c.Service)
			}
			if _, dup := createdAt[c.Service]; dup {
				t.Fatalf("service %d created twice", c.Service)
			}
			createdAt[c.Service] = c.At
		case runs.ChurnServiceDelete:
			at, ok := createdAt[c.Service]
			if !ok {
				t.Fatalf("delete of service %d, never created", c.Service)
			}
			if c.At-at < hold {
				t.Errorf("service %d deleted %s after its creation, want at least %s", c.Service, c.At-at, hold)
			}
			delete(createdAt, c.Service)
		}
	}
	if len(p) != 60000 {
		t.Fatalf("%d writes, want 60000", len(p))
	}
	// Open pairs at the end are the window's last hold only.
	if len(zeroAt)+len(createdAt) > 2*int(hold.Seconds()*100) {
		t.Errorf("%d operations left open, more than a hold's worth", len(zeroAt)+len(createdAt))
	}
	first := count[runs.ChurnEndpointReplace] + count[runs.ChurnEndpointsToZero] + count[runs.ChurnServiceCreate]
	for kind, w := range map[string]float64{runs.ChurnEndpointReplace: 0.5, runs.ChurnEndpointsToZero: 0.25, runs.ChurnServiceCreate: 0.25} {
		sd := math.Sqrt(float64(first) * w * (1 - w))
		if got := float64(count[kind]); math.Abs(got-w*float64(first)) > 4*sd {
			t.Errorf("%s: %v of %d operations, want %.0f ± %.0f", kind, got, first, w*float64(first), 4*sd)
		}
	}
	if count[runs.ChurnEndpointsRestore] < count[runs.ChurnEndpointsToZero]-int(hold.Seconds()*100) {
		t.Errorf("%d restores for %d to-zero", count[runs.ChurnEndpointsRestore], count[runs.ChurnEndpointsToZero])
	}
	// A zero weight is never drawn.
	for _, c := range Plan(spec(100, 0.1, scenarios.ChurnKinds{EndpointsToZero: 1}, true, hold), services, 0, 60*time.Second, 5) {
		if c.Kind != runs.ChurnEndpointsToZero && c.Kind != runs.ChurnEndpointsRestore {
			t.Fatalf("a %s without its weight", c.Kind)
		}
	}
}

// TestPlanAllAtZero: when every touched Service is at zero endpoints, the
// earliest restore is written early and the rate holds.
func TestPlanAllAtZero(t *testing.T) {
	p := Plan(spec(10, 0.0001, scenarios.ChurnKinds{EndpointsToZero: 1}, true, 5*time.Second), 100, 3, 10*time.Second, 1)
	if len(p) != 100 {
		t.Fatalf("%d writes, want 100", len(p))
	}
	for k, c := range p {
		want := runs.ChurnEndpointsToZero
		if k%2 == 1 {
			want = runs.ChurnEndpointsRestore
		}
		if c.Kind != want || c.Service != 3 || !c.Target {
			t.Fatalf("write %d: %+v, want %s of the target", k, c, want)
		}
	}
}

// TestPlanDeterministic: a seed fixes the plan; another seed gives
// another.
func TestPlanDeterministic(t *testing.T) {
	k := scenarios.ChurnKinds{EndpointReplace: 1, EndpointsToZero: 1, ServiceCreate: 1}
	s := spec(20, 0.02, k, true, time.Second)
	a := Plan(s, 5000, 12, 30*time.Second, 42)
	b := Plan(s, 5000, 12, 30*time.Second, 42)
	if !reflect.DeepEqual(a, b) {
		t.Error("the same seed planned two schedules")
	}
	if c := Plan(s, 5000, 12, 30*time.Second, 43); reflect.DeepEqual(a, c) {
		t.Error("two seeds planned the same schedule")
	}
	// The draws are the PCG's and this package's: pinned, so that a Go
	// release cannot move them.
	r := mrand.NewPCG(42, planStream)
	got := Touched(s, 5000, 12, r)
	r2 := mrand.NewPCG(42, planStream)
	if again := Touched(s, 5000, 12, r2); !reflect.DeepEqual(got, again) || len(got) != 100 || got[0] != 12 {
		t.Errorf("touched %v (again %v), want 100 Services, the target first", got[:min(5, len(got))], again[:min(5, len(again))])
	}
}

// stepClock advances only when told to sleep (or by the test).
type stepClock struct{ now time.Time }

func (c *stepClock) Now() time.Time { return c.now }
func (c *stepClock) SleepUntil(ctx context.Context, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.After(c.now) {
		c.now = t
	}
	return nil
}

// TestReplayFakeClock: the writes happen at the planned times; a slow write
// delays the ones due meanwhile, which then go at once; a cancelled
// context stops the replay.
func TestReplayFakeClock(t *testing.T) {
	start := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	clock := &stepClock{now: start}
	plan := Plan(spec(10, 0.1, replaceOnly, true, time.Second), 100, 0, 3*time.Second, 1)
	var at []time.Time
	err := Replay(context.Background(), clock, start, plan, func(_ context.Context, p Planned) {
		at = append(at, clock.Now())
		if p.At == 1050*time.Millisecond { // this write takes 350 ms
			clock.now = clock.now.Add(350 * time.Millisecond)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(at) != 30 {
		t.Fatalf("%d writes, want 30", len(at))
	}
	for k, got := range at {
		want := start.Add(plan[k].At)
		if plan[k].At > 1050*time.Millisecond && plan[k].At < 1400*time.Millisecond {
			want = start.Add(1400 * time.Millisecond) // due while the slow write ran
		}
		if !got.Equal(want) {
			t.Errorf("write %d at %s, want %s", k, got.Sub(start), want.Sub(start))
		}
	}
	// Per second of the window, the asked rate.
	perSecond := map[int]int{}
	for _, got := range at {
		perSecond[int(got.Sub(start)/time.Second)]++
	}
	if perSecond[0] != 10 || perSecond[1] != 10 || perSecond[2] != 10 {
		t.Errorf("writes per second %v, want 10 in each", perSecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	err = Replay(ctx, &stepClock{now: start}, start, plan, func(context.Context, Planned) {
		if n++; n == 5 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || n != 5 {
		t.Errorf("after a cancel: %d writes, err %v; want 5 and context.Canceled", n, err)
	}
}
