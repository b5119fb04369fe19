package churn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/runs"
)

var trT0 = time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)

func trAt(s float64) time.Time { return trT0.Add(time.Duration(math.Round(s * float64(time.Second)))) }
func trAtP(s float64) *time.Time {
	t := trAt(s)
	return &t
}

const (
	trClusterIP = "10.96.0.10"
	trTarget    = trClusterIP + ":80"
)

func trBackend(i int) string { return fmt.Sprintf("10.244.0.%d:8080", i) }
func trEndpointIP(i int) string {
	return fmt.Sprintf("10.244.0.%d", i)
}

// trDataplane simulates the node's rules for the target Service: the
// backends a new connection may reach, as of the last programmed state.
type trDataplane struct {
	backends []int
	next     int
}

func (d *trDataplane) pick() int {
	b := d.backends[d.next%len(d.backends)]
	d.next++
	return b
}

// TestTrafficKubeProxyStopped: kube-proxy is stopped while a backend is
// replaced, so the node's rules keep sending new connections to the
// removed backend until kube-proxy is back and programs the change: those
// hits are stale and unprogrammed, they accumulate while it is stopped,
// and stop once the change is programmed. Changes to another Service that
// remove the same backend, and a write that failed, count for nothing.
func TestTrafficKubeProxyStopped(t *testing.T) {
	changes := []runs.ChurnChange{
		// Another Service loses backend 2 for good: not the target's.
		{Seq: 1, Kind: runs.ChurnEndpointReplace, Service: "kpbench/svc-00007", ClusterIP: "10.96.0.77",
			Removed: []string{trEndpointIP(2)}, Added: []string{trEndpointIP(9)}, WrittenAt: trAt(2), ProgrammedAt: trAtP(2.5)},
		// A write that failed removes nothing.
		{Seq: 2, Kind: runs.ChurnEndpointReplace, Service: "kpbench/svc-00000", ClusterIP: trClusterIP, Target: true,
			Removed: []string{trEndpointIP(3)}, Added: []string{trEndpointIP(6)}, WrittenAt: trAt(3), Error: "conflict"},
		// kube-proxy is stopped from 5 s to 12 s; backend 1 is replaced
		// by 5 at 6 s and the change is programmed at 12.3 s.
		{Seq: 3, Kind: runs.ChurnEndpointReplace, Service: "kpbench/svc-00000", ClusterIP: trClusterIP, Target: true,
			Removed: []string{trEndpointIP(1)}, Added: []string{trEndpointIP(5)}, WrittenAt: trAt(6), ProgrammedAt: trAtP(12.3)},
	}
	dp := &trDataplane{backends: []int{1, 2, 3, 4}}
	var reqs []Request
	var wantStale int64
	firstStale, lastStale := time.Time{}, time.Time{}
	for i := range 2000 { // 100 req/s for 20 s, a new connection each
		start := trAt(float64(i) / 100)
		if !start.Before(trAt(12.3)) && dp.backends[0] == 1 {
			dp.backends = []int{2, 3, 4, 5}
		}
		b := dp.pick()
		if b == 1 && !start.Before(trAt(6)) {
			wantStale++
			if firstStale.IsZero() {
				firstStale = start
			}
			lastStale = start
		}
		reqs = append(reqs, Request{Start: start, Connect: 50 * time.Microsecond, NewConn: true, Backend: trBackend(b), Target: trTarget})
	}
	if wantStale < 100 {
		t.Fatalf("the simulation sent only %d requests to the removed backend", wantStale)
	}
	tr := Traffic(reqs, changes, nil)
	if tr.Requests != 2000 || tr.StaleUnprogrammed != wantStale || tr.StaleProgrammed != 0 || len(tr.Errors) != 0 {
		t.Fatalf("traffic %+v, want %d stale unprogrammed hits and nothing else", tr, wantStale)
	}
	// Over time: the hits accumulate from the removal while kube-proxy is
	// stopped, and stop once the change is programmed.
	tl := tr.Timeline
	if tl == nil || tl.BinSeconds != 0.1 || len(tl.Bins) != 200 || !tl.Start.Equal(trT0) {
		t.Fatalf("trafficTimeline %+v, want 200 bins of 0.1 s from the first request", tl)
	}
	var sum int64
	for i, b := range tl.Bins {
		from := tl.Start.Add(time.Duration(math.Round(float64(i) * tl.BinSeconds * float64(time.Second))))
		if b.Requests != 10 {
			t.Errorf("bin %d: %d requests, want 10", i, b.Requests)
		}
		sum += b.StaleUnprogrammed
		switch {
		case from.Before(trAt(6)) || !from.Before(trAt(12.3)):
			if b.StaleUnprogrammed != 0 {
				t.Errorf("bin at %v: %d stale hits outside the removal's unprogrammed time", from.Sub(trT0), b.StaleUnprogrammed)
			}
		case from.Before(trAt(12.2)):
			if b.StaleUnprogrammed == 0 {
				t.Errorf("bin at %v: no stale hit while kube-proxy was stopped", from.Sub(trT0))
			}
		}
	}
	if sum != wantStale || firstStale.Before(trAt(6)) || !lastStale.Before(trAt(12.3)) {
		t.Errorf("%d hits in the bins, want %d; first %v, last %v", sum, wantStale, firstStale.Sub(trT0), lastStale.Sub(trT0))
	}

	// Never programmed (kube-proxy not back by the end of the grace): every
	// hit after the removal is unprogrammed, however late.
	changes[2].ProgrammedAt = nil
	dp = &trDataplane{backends: []int{1, 2, 3, 4}}
	wantStale = 0
	for i := range reqs {
		b := dp.pick()
		reqs[i].Backend = trBackend(b)
		if b == 1 && !reqs[i].Start.Before(trAt(6)) {
			wantStale++
		}
	}
	tr = Traffic(reqs, changes, nil)
	if tr.StaleUnprogrammed != wantStale || tr.StaleProgrammed != 0 || wantStale < 300 {
		t.Errorf("never programmed: %d unprogrammed and %d programmed hits, want %d and 0", tr.StaleUnprogrammed, tr.StaleProgrammed, wantStale)
	}
}

// TestTrafficKeptAliveAndRestore: a kept-alive connection to a backend
// outlives its removal: its requests are stale, unprogrammed until the
// node's rules show the removal and programmed after (the rules no longer
// lead there, the connection does); once the backend is added back
// (endpoints restored), they are not stale any more. Without the
// request's target, the change's Target mark decides.
func TestTrafficKeptAliveAndRestore(t *testing.T) {
	all := []string{trEndpointIP(1), trEndpointIP(2), trEndpointIP(3)}
	changes := []runs.ChurnChange{
		{Seq: 1, Kind: runs.ChurnEndpointsToZero, Service: "kpbench/svc-00000", ClusterIP: trClusterIP, Target: true,
			Removed: all, WrittenAt: trAt(8), ProgrammedAt: trAtP(9)},
		{Seq: 2, Kind: runs.ChurnEndpointsRestore, Service: "kpbench/svc-00000", ClusterIP: trClusterIP, Target: true,
			Added: all, WrittenAt: trAt(15), ProgrammedAt: trAtP(15.4)},
	}
	var reqs []Request
	want := map[string]int64{}
	for i := range 200 { // 10 req/s for 20 s on one connection to backend 2
		start := trAt(float64(i) / 10)
		r := Request{Start: start, Backend: trBackend(2), Target: trTarget}
		if i == 0 {
			r.NewConn, r.Connect = true, 60*time.Microsecond
		}
		reqs = append(reqs, r)
		switch {
		case start.Before(trAt(8)) || !start.Before(trAt(15)):
		case start.Before(trAt(9)):
			want["unprogrammed"]++
		default:
			want["programmed"]++
		}
	}
	tr := Traffic(reqs, changes, nil)
	if tr.StaleUnprogrammed != want["unprogrammed"] || tr.StaleProgrammed != want["programmed"] ||
		want["unprogrammed"] != 10 || want["programmed"] != 60 {
		t.Errorf("stale %d unprogrammed and %d programmed, want %v", tr.StaleUnprogrammed, tr.StaleProgrammed, want)
	}
	// The request's target decides over the Target mark: requests sent to
	// another ClusterIP are not the changed Service's.
	other := append([]Request(nil), reqs...)
	for i := range other {
		other[i].Target = "10.96.0.99:80"
	}
	if tr := Traffic(other, changes, nil); tr.StaleUnprogrammed+tr.StaleProgrammed != 0 {
		t.Errorf("requests to another Service counted %d stale hits", tr.StaleUnprogrammed+tr.StaleProgrammed)
	}
	// Without targets, the mark decides.
	for i := range other {
		other[i].Target = ""
	}
	if tr := Traffic(other, changes, nil); tr.StaleUnprogrammed != 10 || tr.StaleProgrammed != 60 {
		t.Errorf("without targets: %d and %d stale hits, want 10 and 60", tr.StaleUnprogrammed, tr.StaleProgrammed)
	}
	changes[0].Target, changes[1].Target = false, false
	if tr := Traffic(other, changes, nil); tr.StaleUnprogrammed+tr.StaleProgrammed != 0 {
		t.Errorf("without targets, changes not marked Target counted %d stale hits", tr.StaleUnprogrammed+tr.StaleProgrammed)
	}
	// Removed and added back twice: stale only while out each time; a
	// replace that names the same backend on both sides changes nothing.
	changes = []runs.ChurnChange{
		{Seq: 1, ClusterIP: trClusterIP, Removed: []string{trEndpointIP(2)}, WrittenAt: trAt(2), ProgrammedAt: trAtP(2.5)},
		{Seq: 2, ClusterIP: trClusterIP, Added: []string{trEndpointIP(2)}, WrittenAt: trAt(4)},
		{Seq: 3, ClusterIP: trClusterIP, Removed: []string{trEndpointIP(2)}, Added: []string{trEndpointIP(2)}, WrittenAt: trAt(5)},
		{Seq: 4, ClusterIP: trClusterIP, Removed: []string{trBackend(2)}, WrittenAt: trAt(10), ProgrammedAt: trAtP(11)},
		{Seq: 5, ClusterIP: trClusterIP, Added: []string{trEndpointIP(2)}, WrittenAt: trAt(12)},
	}
	tr = Traffic(reqs, changes, nil)
	// [2, 2.5) 5 unprogrammed, [2.5, 4) 15 programmed; [10, 11) 10 and [11, 12) 10.
	if tr.StaleUnprogrammed != 15 || tr.StaleProgrammed != 25 {
		t.Errorf("removed twice: %d unprogrammed and %d programmed hits, want 15 and 25", tr.StaleUnprogrammed, tr.StaleProgrammed)
	}
}

// TestTrafficErrorsAndSyncs: errors are counted by coarse kind (fine
// kinds of the load client grouped); connect times split by whether the
// connection started inside a sync (its ends included, overlapping syncs
// merged), with nearest-rank percentiles in µs; reused connections and
// failed connects have no connect time.
func TestTrafficErrorsAndSyncs(t *testing.T) {
	syncs := []runs.SyncSpan{
		{Start: trAt(5), End: trAt(6)},
		{Start: trAt(1), End: trAt(2), Full: true},
		{Start: trAt(5.5), End: trAt(5.8)}, // inside the first: ends earlier
	}
	reqs := []Request{
		{Start: trAt(0.5), NewConn: true, Connect: 30 * time.Microsecond},
		{Start: trAt(1), NewConn: true, Connect: 300 * time.Microsecond},      // a sync's start
		{Start: trAt(1.5), NewConn: true, Connect: 200 * time.Microsecond},    // inside
		{Start: trAt(2), NewConn: true, Connect: 400 * time.Microsecond},      // a sync's end
		{Start: trAt(3), NewConn: true, Connect: 40 * time.Microsecond},       // between
		{Start: trAt(5.9), NewConn: true, Connect: 500 * time.Microsecond},    // inside the long one, after the short one
		{Start: trAt(6.1), NewConn: true, Connect: 20 * time.Microsecond},     // after
		{Start: trAt(6.2), Connect: 0},                                        // reused
		{Start: trAt(5.2), NewConn: true, Err: loadgen.KindConnectRefused},    // failed connect, in a sync
		{Start: trAt(7), NewConn: true, Err: loadgen.CoarseRefused},           // already coarse
		{Start: trAt(7.1), Err: loadgen.KindEOF},                              // reset
		{Start: trAt(7.2), Err: loadgen.KindTimeout},                          // timeout
		{Start: trAt(7.3), Err: loadgen.KindAddrUnavailable},                  // other
		{Start: trAt(7.4), Err: "http_503", Backend: trBackend(1)},            // other
		{Start: trAt(7.5), NewConn: true, Connect: 10 * time.Microsecond},     // after
		{Start: trAt(7.6), NewConn: true, Connect: 60 * time.Microsecond},     // after
		{Start: trAt(7.7), NewConn: true, Connect: 50 * time.Microsecond},     // after
		{Start: trAt(7.8), Err: "something new"},                              // other
		{Start: trAt(7.9), NewConn: true, Err: loadgen.KindUnreachable},       // refused
		{Start: trAt(8), NewConn: true, Connect: 70 * time.Microsecond},       // after
		{Start: trAt(0.9), NewConn: true, Connect: 35 * time.Microsecond},     // before
		{Start: trAt(4.99), NewConn: true, Connect: 45 * time.Microsecond},    // just before a sync
		{Start: trAt(5.8001), NewConn: true, Connect: 800 * time.Microsecond}, // inside the long one
	}
	tr := Traffic(reqs, nil, syncs)
	wantErr := map[string]int64{"refused": 3, "reset": 1, "timeout": 1, "other": 3}
	if len(tr.Errors) != len(wantErr) {
		t.Errorf("errors %v, want %v", tr.Errors, wantErr)
	}
	for k, n := range wantErr {
		if tr.Errors[k] != n {
			t.Errorf("errors %v, want %v", tr.Errors, wantErr)
		}
	}
	// Inside: 300 200 400 500 800 µs; outside: 30 40 20 10 60 50 70 35 45.
	if in := tr.ConnectInSync; in.Count != 5 || in.P50 != 400 || in.P99 != 800 {
		t.Errorf("inside syncs %+v, want 5, p50 400, p99 800", in)
	}
	if out := tr.ConnectOutOfSync; out.Count != 9 || out.P50 != 40 || out.P99 != 70 {
		t.Errorf("outside syncs %+v, want 9, p50 40, p99 70", out)
	}
	if tr.StaleUnprogrammed+tr.StaleProgrammed != 0 {
		t.Errorf("stale hits without changes: %+v", tr)
	}
	// The timeline: 0.1 s bins from 0.5 s; the bin of 7.4 s has one other
	// error, the one of 1.5 s one connect of 200 µs.
	tl := tr.Timeline
	bin := func(s float64) runs.TrafficBin { return tl.Bins[int((s-0.5)/tl.BinSeconds+1e-9)] }
	if b := bin(7.4); b.Other != 1 || b.Requests != 1 {
		t.Errorf("bin at 7.4 s: %+v", b)
	}
	if b := bin(1.5); b.Connects != 1 || b.ConnectP50Us != 200 || b.ConnectMaxUs != 200 {
		t.Errorf("bin at 1.5 s: %+v", b)
	}
	if b := bin(5.2); b.Refused != 1 || b.Connects != 0 {
		t.Errorf("bin at 5.2 s: %+v", b)
	}
	if tr := Traffic(nil, nil, syncs); tr.Requests != 0 || tr.Timeline != nil {
		t.Errorf("no requests: %+v", tr)
	}
}

// TestTrafficPercentilesBySimulation: on seeded draws the in/out split and
// the percentiles agree with a direct count, whatever the order of the
// requests.
func TestTrafficPercentilesBySimulation(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 25))
	syncs := []runs.SyncSpan{{Start: trAt(2), End: trAt(2.5)}, {Start: trAt(6), End: trAt(6.1)}}
	var reqs []Request
	var in, out []time.Duration
	for range 5000 {
		s := rng.Float64() * 10
		d := time.Duration(20_000 + rng.IntN(200_000))
		reqs = append(reqs, Request{Start: trAt(s), NewConn: true, Connect: d})
		if (s >= 2 && s <= 2.5) || (s >= 6 && s <= 6.1) {
			in = append(in, d)
		} else {
			out = append(out, d)
		}
	}
	tr := Traffic(reqs, nil, syncs)
	for _, c := range []struct {
		name string
		got  runs.Percentiles
		ds   []time.Duration
	}{{"inside", tr.ConnectInSync, in}, {"outside", tr.ConnectOutOfSync, out}} {
		// The nearest rank, counted: the smallest value with at least
		// q of the values at or below it.
		q := func(p float64) float64 {
			best := time.Duration(-1)
			for _, v := range c.ds {
				below := 0
				for _, d := range c.ds {
					if d <= v {
						below++
					}
				}
				if float64(below) >= p*float64(len(c.ds)) && (best < 0 || v < best) {
					best = v
				}
			}
			return float64(best) / 1e3
		}
		if c.got.Count != int64(len(c.ds)) || c.got.P50 != q(0.5) || c.got.P99 != q(0.99) {
			t.Errorf("%s: %+v, want %d, p50 %v, p99 %v", c.name, c.got, len(c.ds), q(0.5), q(0.99))
		}
	}
}

// TestTimelineBinWidth: bins widen in 1-2-5 steps from 0.1 s so that a window
// never has more than timelineMaxBins of them.
func TestTimelineBinWidth(t *testing.T) {
	for _, c := range []struct {
		span time.Duration
		want time.Duration
	}{
		{0, 100 * time.Millisecond},
		{30 * time.Second, 100 * time.Millisecond},
		{59*time.Second + 900*time.Millisecond, 100 * time.Millisecond},
		{60 * time.Second, 200 * time.Millisecond},
		{2 * time.Minute, 500 * time.Millisecond},
		{599 * time.Second, time.Second},
		{10 * time.Minute, 2 * time.Second}, // 1 s bins would be 601
		{time.Hour, 10 * time.Second},
	} {
		w := timelineBinWidth(c.span)
		if w != c.want || int(c.span/w)+1 > timelineMaxBins {
			t.Errorf("timelineBinWidth(%v) = %v, want %v", c.span, w, c.want)
		}
	}
}

// TestRequestsFrom: the load client's records become Requests with
// coarse error kinds.
func TestRequestsFrom(t *testing.T) {
	recs := []loadgen.RequestRecord{
		{Start: trAt(1), Connect: time.Millisecond, NewConn: true, Target: trTarget, Backend: trBackend(1)},
		{Start: trAt(2), NewConn: true, Target: trTarget, Error: loadgen.KindConnectRefused},
		{Start: trAt(3), Target: trTarget, Error: loadgen.KindEOF},
	}
	got := RequestsFrom(recs)
	want := []Request{
		{Start: trAt(1), Connect: time.Millisecond, NewConn: true, Target: trTarget, Backend: trBackend(1)},
		{Start: trAt(2), NewConn: true, Target: trTarget, Err: loadgen.CoarseRefused},
		{Start: trAt(3), Target: trTarget, Err: loadgen.CoarseReset},
	}
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestTrafficStaleBySimulation: a seeded simulation of churn on the target
// Service — backends replaced, all removed and restored — with the node's
// rules following the writes after a random lag (and not at all while
// kube-proxy is stopped), new connections per request routed by the rules
// and kept-alive connections that outlive their backend's removal. The
// simulation knows, for every answered request, whether its backend was in
// the Service when it started and whether the rules had caught up with its
// removal; Traffic must find the same counts.
func TestTrafficStaleBySimulation(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 25))
		const window = 30.0
		member := map[int]bool{}
		for b := 1; b <= 10; b++ {
			member[b] = true
		}
		var changes []runs.ChurnChange
		// Each change's write, programming, and the membership after it.
		type state struct {
			written, programmed float64
			member              map[int]bool
		}
		states := []state{{written: -1, programmed: -1, member: trClone(member)}}
		lastProg := 0.0
		stopFrom := 5 + rng.Float64()*10 // kube-proxy stopped for 2 to 7 s
		stopTo := stopFrom + 2 + rng.Float64()*5
		for at0 := 0.5; at0 < window; at0 += 0.3 + rng.Float64() {
			c := runs.ChurnChange{Seq: len(changes) + 1, Service: "kpbench/svc-00000", ClusterIP: trClusterIP, Target: true, WrittenAt: trAt(at0)}
			var members, others []int
			for b := 1; b <= 14; b++ {
				if member[b] {
					members = append(members, b)
				} else {
					others = append(others, b)
				}
			}
			switch r := rng.Float64(); {
			case len(members) == 0:
				c.Kind = runs.ChurnEndpointsRestore
				for _, b := range others[:10] {
					c.Added = append(c.Added, trEndpointIP(b))
					member[b] = true
				}
			case r < 0.15:
				c.Kind = runs.ChurnEndpointsToZero
				for _, b := range members {
					c.Removed = append(c.Removed, trEndpointIP(b))
					member[b] = false
				}
			default:
				c.Kind = runs.ChurnEndpointReplace
				out, in := members[rng.IntN(len(members))], others[rng.IntN(len(others))]
				c.Removed, c.Added = []string{trEndpointIP(out)}, []string{trBackend(in)}
				member[out], member[in] = false, true
			}
			// The rules follow after a lag, in order, and not while
			// kube-proxy is stopped; a change still pending at the end
			// is never seen.
			prog := math.Max(lastProg, at0+0.05+rng.Float64()*1.5)
			if prog >= stopFrom && prog < stopTo {
				prog = stopTo + 0.2
			}
			lastProg = prog
			if prog < window {
				c.ProgrammedAt = trAtP(prog)
			}
			changes = append(changes, c)
			states = append(states, state{written: at0, programmed: prog, member: trClone(member)})
		}
		// The membership written by s, and the rules programmed by s.
		memberAt := func(s float64) map[int]bool {
			m := states[0].member
			for _, st := range states[1:] {
				if st.written <= s {
					m = st.member
				}
			}
			return m
		}
		rulesAt := func(s float64) []int {
			m := states[0].member
			for _, st := range states[1:] {
				if st.programmed <= s {
					m = st.member
				}
			}
			var bs []int
			for b := 1; b <= 14; b++ {
				if m[b] {
					bs = append(bs, b)
				}
			}
			return bs
		}
		// removedAt is when the rules showed b out, given it is out of the
		// membership at s: the programming of the change that removed it.
		removedProgrammed := func(b int, s float64) float64 {
			when := math.Inf(1)
			for i := 1; i < len(states); i++ {
				if states[i].written > s {
					break
				}
				if states[i-1].member[b] && !states[i].member[b] {
					when = states[i].programmed
				}
			}
			return when
		}
		var reqs []Request
		var wantU, wantP int64
		answer := func(s float64, b int, newConn bool) {
			r := Request{Start: trAt(s), NewConn: newConn, Backend: trBackend(b), Target: trTarget}
			if newConn {
				r.Connect = 50 * time.Microsecond
			}
			reqs = append(reqs, r)
			if !memberAt(s)[b] {
				if removedProgrammed(b, s) > s {
					wantU++
				} else {
					wantP++
				}
			}
		}
		kept := rulesAt(0)[0] // a kept-alive connection opened at the start
		for i := range int(window * 50) {
			s := float64(i) / 50
			if bs := rulesAt(s); len(bs) == 0 {
				reqs = append(reqs, Request{Start: trAt(s), NewConn: true, Target: trTarget, Err: loadgen.CoarseRefused})
			} else {
				answer(s, bs[rng.IntN(len(bs))], true)
			}
			answer(s+0.001, kept, false)
		}
		tr := Traffic(reqs, changes, nil)
		if tr.StaleUnprogrammed != wantU || tr.StaleProgrammed != wantP {
			t.Errorf("seed %d: %d unprogrammed and %d programmed stale hits, the simulation counted %d and %d",
				seed, tr.StaleUnprogrammed, tr.StaleProgrammed, wantU, wantP)
		}
		if wantU == 0 {
			t.Errorf("seed %d: the simulation made no unprogrammed hit to check", seed)
		}
	}
}

func trClone(m map[int]bool) map[int]bool {
	out := make(map[int]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
