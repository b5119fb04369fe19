package churn

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// fakeClock is a clock that moves only when slept on or read through.
type fakeClock struct {
	t time.Time
	// stop, when set, cancels at that time (the end of a window).
	stop   time.Time
	cancel context.CancelFunc
}

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if d > 0 {
		c.t = c.t.Add(d)
	}
	if c.cancel != nil && !c.t.Before(c.stop) {
		c.cancel()
	}
	return ctx.Err()
}

// scripted is a node whose rules of each Service are a function of time;
// a read takes cost on the fake clock and sees the rules at its end.
type scripted struct {
	c      *fakeClock
	cost   time.Duration
	rules  func(svc ServiceRef, t time.Time) ServiceRules
	fail   func(svc ServiceRef, t time.Time) error
	onRead func(svc ServiceRef)
	reads  int
	rounds int
}

func (s *scripted) Read(_ context.Context, svc ServiceRef) (ServiceRules, error) {
	s.c.t = s.c.t.Add(s.cost)
	s.reads++
	if s.onRead != nil {
		s.onRead(svc)
	}
	if s.fail != nil {
		if err := s.fail(svc, s.c.t); err != nil {
			return ServiceRules{}, err
		}
	}
	return s.rules(svc, s.c.t), nil
}

func (s *scripted) StartRound() { s.rounds++ }

var t0 = time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func eps(a ...string) ServiceRules { return ServiceRules{Present: true, Endpoints: a} }

var (
	svcA = ServiceRef{Namespace: "kpbench", Name: "kpb-svc-00001", ClusterIP: "198.19.0.11", Port: 80}
	svcB = ServiceRef{Namespace: "kpbench", Name: "kpb-svc-00002", ClusterIP: "198.19.0.12", Port: 80}
)

func change(seq int, kind string, written time.Duration, removed, added []string) *runs.ChurnChange {
	return &runs.ChurnChange{Seq: seq, Kind: kind, Service: "kpbench/x", WrittenAt: at(written), Removed: removed, Added: added}
}

func newWatcher(c *fakeClock, r RuleReader, interval time.Duration) *Watcher {
	w := NewWatcher(scenarios.ModeIPTables, r, interval, c.now)
	w.Sleep = c.sleep
	return w
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestWatcherProgramsWhenTheRulesShowIt(t *testing.T) {
	c := &fakeClock{t: t0}
	node := &scripted{c: c, cost: ms(10), rules: func(_ ServiceRef, t time.Time) ServiceRules {
		if t.Before(at(1200 * time.Millisecond)) {
			return eps("198.18.1.1:80", "198.18.1.2:80")
		}
		return eps("198.18.1.2:80", "198.18.1.3:80")
	}}
	w := newWatcher(c, node, ms(100))
	ch := change(1, runs.ChurnEndpointReplace, 0, []string{"198.18.1.1:80"}, []string{"198.18.1.3:80"})
	w.Add(ch, svcA)
	w.Drain(context.Background(), 5*time.Second)
	if ch.ProgrammedAt == nil {
		t.Fatal("never programmed")
	}
	// Rounds start every 100 ms; the one starting at 1.2 s reads at 1.21 s.
	if got := ch.ProgrammedAt.Sub(ch.WrittenAt); got != ms(1210) {
		t.Errorf("latency %v, want 1.21s (the end of the first read that shows it)", got)
	}
	st := w.Stats()
	if st.Rounds != 13 || st.Reads != 13 || node.rounds != 13 {
		t.Errorf("%d rounds, %d reads, %d rounds started on the reader; want 13", st.Rounds, st.Reads, node.rounds)
	}
	// The change was not visible when the round before started (1.1 s).
	if st.Window.Count != 1 || !near(st.Window.Max, 0.11) {
		t.Errorf("window %+v, want 0.11 s", st.Window)
	}
	if w.Pending() != 0 {
		t.Errorf("%d pending", w.Pending())
	}
	if sum, un := Summarize([]runs.ChurnChange{*ch}); sum.Count != 1 || !near(sum.P50, 1.21) || un != 0 {
		t.Errorf("Summarize %+v, %d", sum, un)
	}
}

func TestWatcherNeverProgrammed(t *testing.T) {
	// kube-proxy is stopped: the rules keep the removed endpoint.
	c := &fakeClock{t: t0}
	node := &scripted{c: c, cost: ms(5), rules: func(ServiceRef, time.Time) ServiceRules { return eps("198.18.1.1:80", "198.18.1.2:80") }}
	w := newWatcher(c, node, ms(100))
	ch := change(1, runs.ChurnEndpointReplace, 0, []string{"198.18.1.1:80"}, []string{"198.18.1.3:80"})
	w.Add(ch, svcA)
	w.Drain(context.Background(), 2*time.Second)
	if ch.ProgrammedAt != nil {
		t.Fatalf("programmed at %v", ch.ProgrammedAt)
	}
	if c.t.Before(at(2*time.Second)) || c.t.After(at(2*time.Second+ms(10))) {
		t.Errorf("drained until %v, want the end of the 2 s grace", c.t.Sub(t0))
	}
	if node.reads < 19 {
		t.Errorf("only %d reads in the grace", node.reads)
	}
	failed := change(2, runs.ChurnEndpointReplace, 0, nil, nil)
	failed.Error = "etcdserver: request timed out"
	sum, un := Summarize([]runs.ChurnChange{*ch, *failed})
	if sum.Count != 0 || un != 1 {
		t.Errorf("Summarize: %+v, %d unprogrammed; want 0 programmed, 1 unprogrammed (a failed write is neither)", sum, un)
	}
}

func TestWatcherProgrammedInTheGrace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &fakeClock{t: t0, stop: at(time.Second), cancel: cancel}
	node := &scripted{c: c, cost: ms(10), rules: func(svc ServiceRef, t time.Time) ServiceRules {
		flip := ms(1500) // after the window, within the grace
		if svc == svcB {
			flip = 10 * time.Second // after the grace
		}
		if t.Before(at(flip)) {
			return eps("198.18.1.1:80")
		}
		return eps("198.18.1.2:80")
	}}
	w := newWatcher(c, node, ms(100))
	inGrace := change(1, runs.ChurnEndpointReplace, 0, []string{"198.18.1.1:80"}, []string{"198.18.1.2:80"})
	late := change(2, runs.ChurnEndpointReplace, ms(20), []string{"198.18.1.1:80"}, []string{"198.18.1.2:80"})
	w.Add(inGrace, svcA)
	w.Add(late, svcB)
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if inGrace.ProgrammedAt != nil || late.ProgrammedAt != nil {
		t.Fatal("programmed inside the window")
	}
	if c.t.Before(at(time.Second)) {
		t.Fatalf("Run returned at %v, before the window's end", c.t.Sub(t0))
	}
	w.Drain(context.Background(), 2*time.Second)
	if inGrace.ProgrammedAt == nil || inGrace.ProgrammedAt.Before(at(ms(1500))) || inGrace.ProgrammedAt.After(at(ms(1650))) {
		t.Errorf("programmed at %v, want within a round of 1.5 s", inGrace.ProgrammedAt)
	}
	if late.ProgrammedAt != nil {
		t.Errorf("programmed after the grace: %v", late.ProgrammedAt)
	}
	if _, un := Summarize([]runs.ChurnChange{*inGrace, *late}); un != 1 {
		t.Errorf("%d unprogrammed, want 1", un)
	}
}

func TestWatcherCoalescedChanges(t *testing.T) {
	// Two rolling-update steps on one Service; kube-proxy syncs both at
	// once: the rules never show the first step's state alone.
	c := &fakeClock{t: t0}
	node := &scripted{c: c, cost: ms(10), rules: func(_ ServiceRef, t time.Time) ServiceRules {
		if t.Before(at(time.Second)) {
			return eps("198.18.1.1:80", "198.18.1.9:80")
		}
		return eps("198.18.1.3:80", "198.18.1.9:80")
	}}
	w := newWatcher(c, node, ms(100))
	first := change(1, runs.ChurnEndpointReplace, 0, []string{"198.18.1.1:80"}, []string{"198.18.1.2:80"})
	second := change(2, runs.ChurnEndpointReplace, ms(0), []string{"198.18.1.2:80"}, []string{"198.18.1.3:80"})
	w.Add(first, svcA)
	w.Add(second, svcA)
	w.Drain(context.Background(), 3*time.Second)
	if first.ProgrammedAt == nil || second.ProgrammedAt == nil || !first.ProgrammedAt.Equal(*second.ProgrammedAt) {
		t.Fatalf("programmed at %v and %v, want both at the read that showed the second", first.ProgrammedAt, second.ProgrammedAt)
	}
	if first.ProgrammedAt.Before(at(time.Second)) {
		t.Errorf("programmed at %v, before the rules changed", first.ProgrammedAt.Sub(t0))
	}
}

func TestWatcherUndoneChangeIsNotProgrammed(t *testing.T) {
	zero := func(w time.Duration) *runs.ChurnChange {
		return change(1, runs.ChurnEndpointsToZero, w, []string{"198.18.1.1:80", "198.18.1.2:80"}, nil)
	}
	restore := func(w time.Duration) *runs.ChurnChange {
		return change(2, runs.ChurnEndpointsRestore, w, nil, []string{"198.18.1.1:80", "198.18.1.2:80"})
	}
	// kube-proxy stopped: the rules keep the endpoints throughout. The
	// restore's state is on the node, but it is the state before both
	// changes: neither is programmed.
	c := &fakeClock{t: t0}
	node := &scripted{c: c, cost: ms(10), rules: func(ServiceRef, time.Time) ServiceRules { return eps("198.18.1.1:80", "198.18.1.2:80") }}
	w := newWatcher(c, node, ms(100))
	z, r := zero(0), restore(ms(500))
	w.Add(z, svcA)
	w.Add(r, svcA)
	w.Drain(context.Background(), 2*time.Second)
	if z.ProgrammedAt != nil || r.ProgrammedAt != nil {
		t.Errorf("stale rules read as programmed: %v, %v", z.ProgrammedAt, r.ProgrammedAt)
	}
	// kube-proxy running: zero from 0.3 s, back from 0.8 s.
	c = &fakeClock{t: t0}
	node = &scripted{c: c, cost: ms(10), rules: func(_ ServiceRef, t time.Time) ServiceRules {
		if !t.Before(at(ms(300))) && t.Before(at(ms(800))) {
			return ServiceRules{}
		}
		return eps("198.18.1.1:80", "198.18.1.2:80")
	}}
	w = newWatcher(c, node, ms(100))
	z, r = zero(0), restore(ms(500))
	w.Add(z, svcA)
	w.Add(r, svcA)
	w.Drain(context.Background(), 2*time.Second)
	if z.ProgrammedAt == nil || r.ProgrammedAt == nil {
		t.Fatalf("programmed at %v, %v", z.ProgrammedAt, r.ProgrammedAt)
	}
	if got := z.ProgrammedAt.Sub(t0); got != ms(310) {
		t.Errorf("to zero programmed at %v, want 310ms", got)
	}
	if got := r.ProgrammedAt.Sub(t0); got != ms(810) {
		t.Errorf("restore programmed at %v, want 810ms", got)
	}
}

func TestWatcherServiceCreateAndDelete(t *testing.T) {
	c := &fakeClock{t: t0}
	node := &scripted{c: c, cost: ms(10), rules: func(svc ServiceRef, t time.Time) ServiceRules {
		switch {
		case svc == svcA && !t.Before(at(ms(400))): // created
			return eps("198.18.1.1:80")
		case svc == svcB && t.Before(at(ms(700))): // deleted
			return eps("198.18.1.1:80")
		}
		return ServiceRules{}
	}}
	w := newWatcher(c, node, ms(100))
	create := change(1, runs.ChurnServiceCreate, 0, nil, []string{"198.18.1.1"}) // a bare IP matches any port
	del := change(2, runs.ChurnServiceDelete, 0, nil, nil)
	w.Add(create, svcA)
	w.Add(del, svcB)
	w.Drain(context.Background(), 2*time.Second)
	if create.ProgrammedAt == nil || create.ProgrammedAt.Sub(t0) != ms(410) {
		t.Errorf("create programmed at %v, want 410ms", create.ProgrammedAt)
	}
	// Once svcA is programmed, a round reads svcB alone.
	if del.ProgrammedAt == nil || del.ProgrammedAt.Sub(t0) != ms(710) {
		t.Errorf("delete programmed at %v, want 710ms", del.ProgrammedAt)
	}
}

func TestWatcherJudgesOnlyChangesWrittenBeforeTheRound(t *testing.T) {
	// svcB's delete is written while a round reads svcA; the node shows
	// it at once, but the round's listing was taken before the write.
	c := &fakeClock{t: t0}
	var w *Watcher
	del := &runs.ChurnChange{Seq: 2, Kind: runs.ChurnServiceDelete}
	node := &scripted{c: c, cost: ms(10)}
	node.rules = func(svc ServiceRef, t time.Time) ServiceRules {
		if svc == svcB && !del.WrittenAt.IsZero() {
			return ServiceRules{}
		}
		return eps("198.18.1.1:80")
	}
	node.onRead = func(svc ServiceRef) {
		if svc == svcA && del.WrittenAt.IsZero() {
			del.WrittenAt = c.t
			w.Add(del, svcB)
		}
	}
	w = newWatcher(c, node, ms(100))
	stuck := change(1, runs.ChurnEndpointReplace, -time.Second, []string{"198.18.1.1:80"}, []string{"198.18.1.2:80"})
	w.Add(stuck, svcA)
	// svcB has an older pending change, so the first round reads it too.
	prior := change(0, runs.ChurnEndpointReplace, ms(-500), []string{"198.18.1.5:80"}, []string{"198.18.1.6:80"})
	w.Add(prior, svcB)
	w.Drain(context.Background(), 400*time.Millisecond)
	if del.ProgrammedAt == nil {
		t.Fatal("the delete was never programmed")
	}
	if !del.ProgrammedAt.After(at(ms(100))) {
		t.Errorf("the delete was judged by the round that started before its write (programmed at %v)", del.ProgrammedAt.Sub(t0))
	}
	if prior.ProgrammedAt == nil || !prior.ProgrammedAt.Equal(*del.ProgrammedAt) {
		t.Errorf("the change before the delete: %v", prior.ProgrammedAt)
	}
}

func TestWatcherDutyCycle(t *testing.T) {
	for _, tc := range []struct {
		duty   float64
		rounds int
	}{{0, 6}, {0.5, 11}, {1, 20}} { // the last round reads at the grace's end
		c := &fakeClock{t: t0}
		node := &scripted{c: c, cost: ms(50), rules: func(ServiceRef, time.Time) ServiceRules { return eps("198.18.1.1:80") }}
		w := newWatcher(c, node, ms(10))
		w.MaxDuty = tc.duty
		w.Add(change(1, runs.ChurnServiceDelete, 0, nil, nil), svcA)
		w.Drain(context.Background(), time.Second)
		if st := w.Stats(); st.Rounds != tc.rounds {
			t.Errorf("duty %v: %d rounds of 50 ms reads in 1 s, want %d", tc.duty, st.Rounds, tc.rounds)
		}
	}
}

func TestWatcherUnwatchedAndErrors(t *testing.T) {
	c := &fakeClock{t: t0}
	node := &scripted{c: c, cost: ms(10),
		rules: func(ServiceRef, time.Time) ServiceRules { return ServiceRules{} },
		fail: func(_ ServiceRef, t time.Time) error {
			if t.Before(at(ms(250))) {
				return errors.New("nice -n 19 nft list map ip kube-proxy service-ips: exit status 1: Error: Could not process rule: Device or resource busy")
			}
			return nil
		}}
	w := newWatcher(c, node, ms(100))
	failed := change(1, runs.ChurnServiceDelete, 0, nil, nil)
	failed.Error = "conflict"
	unknown := change(2, "scale-to-nine", 0, nil, nil)
	unwritten := &runs.ChurnChange{Seq: 3, Kind: runs.ChurnServiceDelete}
	w.Add(failed, svcA)
	w.Add(unknown, svcA)
	w.Add(unwritten, svcA)
	ok := change(4, runs.ChurnServiceDelete, 0, nil, nil)
	w.Add(ok, svcB)
	w.Drain(context.Background(), time.Second)
	st := w.Stats()
	if st.Unwatched != 3 || st.ReadErrors != 3 || st.LastError == "" {
		t.Errorf("stats %+v", st)
	}
	if ok.ProgrammedAt == nil || ok.ProgrammedAt.Sub(t0) != ms(310) {
		t.Errorf("programmed at %v, want 310ms (the first read that did not fail)", ok.ProgrammedAt)
	}
	if failed.ProgrammedAt != nil || unknown.ProgrammedAt != nil {
		t.Error("an unwatched change was programmed")
	}
}

func TestFacts(t *testing.T) {
	if !hasEndpoint([]string{"198.18.1.1:80"}, "198.18.1.1") || hasEndpoint([]string{"198.18.1.1:80"}, "198.18.1.1:8080") ||
		!hasEndpoint([]string{"[fd00::1]:80"}, "fd00::1") || hasEndpoint([]string{"198.18.1.10:80"}, "198.18.1.1") {
		t.Error("hasEndpoint")
	}
	f := before(change(1, runs.ChurnEndpointReplace, 0, []string{"a"}, []string{"b"}))
	f = f.apply(change(2, runs.ChurnEndpointReplace, 0, []string{"b"}, []string{"c"}))
	if !f.present || len(f.has) != 2 || f.has[0] != "a" && f.has[0] != "c" || !contains(f.hasNot, "b") || contains(f.has, "b") {
		t.Errorf("after a→b, b→c: %+v", f)
	}
}

// presenceNode is a scripted node that can also answer presence alone.
type presenceNode struct {
	*scripted
	presenceReads int
}

func (p *presenceNode) ReadPresence(ctx context.Context, svc ServiceRef) (ServiceRules, error) {
	p.presenceReads++
	got, err := p.Read(ctx, svc)
	p.reads--
	return ServiceRules{Present: got.Present}, err
}

func TestWatcherReadsPresenceAloneWhereItShows(t *testing.T) {
	c := &fakeClock{t: t0}
	node := &presenceNode{scripted: &scripted{c: c, cost: ms(10), rules: func(svc ServiceRef, t time.Time) ServiceRules {
		switch {
		case svc == svcA && t.Before(at(ms(300))):
			return eps("198.18.1.1:80", "198.18.1.2:80")
		case svc == svcA:
			return ServiceRules{}
		case t.Before(at(ms(500))):
			return eps("198.18.1.1:80")
		}
		return eps("198.18.1.2:80")
	}}}
	w := newWatcher(c, node, ms(100))
	zero := change(1, runs.ChurnEndpointsToZero, 0, []string{"198.18.1.1:80", "198.18.1.2:80"}, nil)
	replace := change(2, runs.ChurnEndpointReplace, 0, []string{"198.18.1.1:80"}, []string{"198.18.1.2:80"})
	w.Add(zero, svcA)
	w.Add(replace, svcB)
	w.Drain(context.Background(), 2*time.Second)
	if zero.ProgrammedAt == nil || zero.ProgrammedAt.Sub(t0) != ms(310) {
		t.Errorf("to zero programmed at %v, want 310ms", zero.ProgrammedAt)
	}
	if replace.ProgrammedAt == nil || replace.ProgrammedAt.Sub(t0) != ms(510) { // read alone once svcA is done
		t.Errorf("replace programmed at %v, want 510ms", replace.ProgrammedAt)
	}
	// svcA (to zero) was read for presence in the 4 rounds until 0.3 s;
	// svcB (a replace needs the endpoints) in full in all 6.
	if node.presenceReads != 4 || node.reads != 6 {
		t.Errorf("%d presence reads, %d full reads; want 4 and 6", node.presenceReads, node.reads)
	}
}

func TestNodeReaderPresence(t *testing.T) {
	n := &node{out: map[string][]byte{"nft list map ip kube-proxy service-ips": fixture(t, "nft-list-map.txt")}}
	r, _ := NewNodeReader(scenarios.ModeNFTables, n.run, ReaderOptions{})
	svc := ServiceRef{Namespace: "kpbench-fixture", Name: "svc-006", ClusterIP: "198.19.224.16", Port: 80, PortName: "http"}
	if got, err := r.ReadPresence(context.Background(), svc); err != nil || !got.Present || got.Endpoints != nil {
		t.Errorf("presence %+v, %v", got, err)
	}
	gone := svc
	gone.ClusterIP = "198.19.9.9"
	if got, err := r.ReadPresence(context.Background(), gone); err != nil || got.Present {
		t.Errorf("absent %+v, %v", got, err)
	}
	wrong := svc
	wrong.Name = "svc-007"
	wrong.ClusterIP = "198.19.224.16"
	if _, err := r.ReadPresence(context.Background(), wrong); !errors.Is(err, ErrRules) {
		t.Errorf("another Service's chain: %v", err)
	}
	if len(n.ran) != 1 {
		t.Errorf("ran %q, want the one listing", n.ran)
	}
}

// A rolling update's second step is added while the first is still
// pending; the rules show the first, then both. After the first is taken,
// the state before the second must include what the second tells (its
// removed endpoint there, its added one not), or a read after the second
// still looks like "before" and it is never programmed.
func TestWatcherTwoPendingChangesProgrammedOneByOne(t *testing.T) {
	c := &fakeClock{t: t0}
	node := &scripted{c: c, cost: ms(5), rules: func(_ ServiceRef, t time.Time) ServiceRules {
		switch {
		case t.Before(at(500 * time.Millisecond)):
			return eps("198.18.1.1:80", "198.18.1.2:80", "198.18.1.3:80")
		case t.Before(at(1500 * time.Millisecond)):
			return eps("198.18.1.2:80", "198.18.1.3:80", "198.18.1.4:80")
		}
		return eps("198.18.1.3:80", "198.18.1.4:80", "198.18.1.5:80")
	}}
	w := newWatcher(c, node, ms(100))
	first := change(1, runs.ChurnEndpointReplace, 0, []string{"198.18.1.1:80"}, []string{"198.18.1.4:80"})
	second := change(2, runs.ChurnEndpointReplace, 0, []string{"198.18.1.2:80"}, []string{"198.18.1.5:80"})
	w.Add(first, svcA)
	w.Add(second, svcA)
	w.Drain(context.Background(), 5*time.Second)
	if first.ProgrammedAt == nil || second.ProgrammedAt == nil {
		t.Fatalf("programmed: first %v, second %v; want both", first.ProgrammedAt, second.ProgrammedAt)
	}
	if got := first.ProgrammedAt.Sub(t0); got != ms(505) {
		t.Errorf("first at %v, want 505ms", got)
	}
	if got := second.ProgrammedAt.Sub(t0); got != ms(1505) {
		t.Errorf("second at %v, want 1.505s", got)
	}
}

// planned is a scripted reader told how many chains each round reads.
type planned struct {
	*scripted
	plans []int
}

func (p *planned) PlanRound(chains int) { p.plans = append(p.plans, chains) }

func (p *planned) ReadPresence(ctx context.Context, svc ServiceRef) (ServiceRules, error) {
	got, err := p.Read(ctx, svc)
	return ServiceRules{Present: got.Present}, err
}

// The watcher tells a reader that can plan its round how many Services'
// chains the round reads: those with an endpoint replaced pending, not
// those whose changes show in presence alone.
func TestWatcherPlansItsRounds(t *testing.T) {
	c := &fakeClock{t: t0}
	node := &planned{scripted: &scripted{c: c, cost: ms(5), rules: func(ServiceRef, time.Time) ServiceRules {
		return eps("198.18.1.2:80", "198.18.1.3:80")
	}}}
	w := newWatcher(c, node, ms(100))
	svcB := svcA
	svcB.Name, svcB.ClusterIP = "b", "198.19.0.2"
	w.Add(change(1, runs.ChurnEndpointReplace, 0, []string{"198.18.1.1:80"}, []string{"198.18.1.3:80"}), svcA)
	w.Add(change(2, runs.ChurnEndpointsToZero, 0, []string{"198.18.1.1:80"}, nil), svcB)
	w.round(context.Background())
	if len(node.plans) != 1 || node.plans[0] != 1 {
		t.Errorf("plans %v, want one round of 1 chain (the replacement; the to-zero reads presence)", node.plans)
	}
}
