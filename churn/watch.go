package churn

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// RuleReader reads the client node's rules; the sweep gives a NodeReader
// built on collector.Runner (kubeproxy.NodeRunner(node.Run)), which runs a
// command on the node, or, in nftables mode on the lab's node, an
// NFTNetlinkReader, which speaks netlink in the node's namespace.
type RuleReader interface {
	// Read returns what the node's rules say of one Service: the endpoint
	// addresses its rules lead to, and whether its ClusterIP has a rule at
	// all.
	Read(ctx context.Context, svc ServiceRef) (ServiceRules, error)
}

// roundReader is a RuleReader sharing one listing among the reads of a
// poll round (NodeReader): the watcher starts every round with it.
type roundReader interface{ StartRound() }

// roundPlanner is told, after StartRound, how many Services' chains the
// round reads (NodeReader: in nftables mode several are cheaper from one
// dump of the table).
type roundPlanner interface{ PlanRound(chains int) }

// presenceReader can tell whether a Service's ClusterIP leads anywhere
// more cheaply than reading its endpoints (NodeReader: from the round's
// listing alone). The watcher uses it for a Service whose pending changes
// all show in presence alone (create, delete, endpoints to zero or
// restored): in nftables mode at 10,000 Services, reading one Service's
// chain costs seconds, the listing a quarter of one.
type presenceReader interface {
	ReadPresence(ctx context.Context, svc ServiceRef) (ServiceRules, error)
}

// costReader reports what its reads cost (NodeReader).
type costReader interface {
	Cost() map[string]CommandCost
}

// DefaultMaxDuty is the share of wall time the watcher's reads may take
// when Watcher.MaxDuty is 0.
const DefaultMaxDuty = 0.25

// Watcher polls the node's rules for the Services of the changes it is
// handed and sets each change's ProgrammedAt when a read first shows it.
//
// A Service's changes are judged in the order they were written: the
// rules of a Service are a function of the prefix of its changes kube-proxy
// has applied (it may apply several in one sync). A read shows change j
// when it matches the state after changes 1..j (its endpoints: those
// added are there, those removed are not; or its ClusterIP leads nowhere)
// and does not match the state before the oldest pending change; the
// oldest such j is taken, and changes 1..j are programmed at that read.
// A change whose net effect was undone before the rules showed it (an
// endpoint removed and restored between two syncs) is never shown, and
// stays unprogrammed.
type Watcher struct {
	mode     scenarios.Mode
	r        RuleReader
	interval time.Duration
	now      func() time.Time

	// MaxDuty caps the share of wall time the reads take (DefaultMaxDuty
	// when 0): a round that took d is followed by the next no sooner than
	// d/MaxDuty after its start, so the reads never take more than that
	// share of one of the node's CPUs, however slow a listing gets.
	MaxDuty float64
	// Sleep waits d or until ctx is done (tests pass a fake clock's).
	Sleep func(ctx context.Context, d time.Duration) error

	roundMu sync.Mutex // one round at a time (Run, Drain)
	mu      sync.Mutex
	svcs    map[string]*watched
	stats   WatchStats
	windows []float64 // seconds: each programmed change's uncertainty
}

// watched is one Service's changes not programmed yet.
type watched struct {
	ref     ServiceRef
	pending []*runs.ChurnChange
	// base is what the rules show before the oldest pending change.
	base facts
	// prevRound is when the last round that read the Service started:
	// the change was not visible then (or it would have been marked).
	prevRound time.Time
}

// WatchStats is what the watcher did.
type WatchStats struct {
	Rounds     int    `json:"rounds"`
	Reads      int    `json:"reads"`
	ReadErrors int    `json:"readErrors"`
	LastError  string `json:"lastError,omitempty"`
	// Unwatched counts changes the watcher could not judge: failed API
	// writes, unknown kinds.
	Unwatched int `json:"unwatched"`
	// Window is the uncertainty of the programmed changes: from the later
	// of the write and the start of the last round that did not show the
	// change, to the end of the read that did. ProgrammedAt is that
	// read's end, so a latency is an upper bound by at most this much.
	Window runs.DurationSummary `json:"window"`
	// Cost is what the reads cost on the node, by kind of command or,
	// for NFTNetlinkReader, of netlink request (when the reader reports
	// it).
	Cost map[string]CommandCost `json:"cost,omitempty"`
}

// NewWatcher returns a watcher of mode's rules through r, polling every
// interval while changes are pending; now is its clock (time.Now when
// nil).
func NewWatcher(mode scenarios.Mode, r RuleReader, interval time.Duration, now func() time.Time) *Watcher {
	if now == nil {
		now = time.Now
	}
	return &Watcher{mode: mode, r: r, interval: interval, now: now, svcs: map[string]*watched{}}
}

// Add hands the watcher a change that was written (WrittenAt set) to the
// Service svc; the watcher sets c.ProgrammedAt when a read of the node's
// rules first shows it. c must stay valid (not an element of a slice that
// grows) and be read only after Drain returns. A change whose write
// failed (Error set) is not watched.
func (w *Watcher) Add(c *runs.ChurnChange, svc ServiceRef) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c == nil || c.Error != "" || c.WrittenAt.IsZero() || !knownKind(c.Kind) {
		w.stats.Unwatched++
		return
	}
	k := svc.String()
	s := w.svcs[k]
	if s == nil {
		s = &watched{ref: svc}
		w.svcs[k] = s
	}
	if len(s.pending) == 0 {
		s.base = before(c)
	}
	s.pending = append(s.pending, c)
}

// Pending is the number of changes not programmed yet.
func (w *Watcher) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.svcs {
		n += len(s.pending)
	}
	return n
}

// Stats returns what the watcher did so far.
func (w *Watcher) Stats() WatchStats {
	w.mu.Lock()
	st := w.stats
	st.Window = summarize(append([]float64(nil), w.windows...))
	w.mu.Unlock()
	if cr, ok := w.r.(costReader); ok {
		st.Cost = cr.Cost()
	}
	return st
}

// Run polls the pending changes' Services every interval until ctx is
// done; it then returns nil.
func (w *Watcher) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		start := w.now()
		w.round(ctx)
		if w.sleep(ctx, w.wait(start, w.now())) != nil {
			break
		}
	}
	return nil
}

// Drain polls until every change is programmed or grace has elapsed on
// the watcher's clock (or ctx is done), reading at least once. Call it
// after Run returned.
func (w *Watcher) Drain(ctx context.Context, grace time.Duration) {
	deadline := w.now().Add(grace)
	for ctx.Err() == nil && w.Pending() > 0 {
		start := w.now()
		w.round(ctx)
		if w.Pending() == 0 || !w.now().Before(deadline) {
			return
		}
		d := w.wait(start, w.now())
		if left := deadline.Sub(w.now()); d > left {
			d = left
		}
		if w.sleep(ctx, d) != nil {
			return
		}
	}
}

// wait is how long to wait after a round that ran from start to end.
func (w *Watcher) wait(start, end time.Time) time.Duration {
	duty := w.MaxDuty
	if duty <= 0 || duty > 1 {
		duty = DefaultMaxDuty
	}
	took := end.Sub(start)
	period := w.interval
	if p := time.Duration(float64(took) / duty); p > period {
		period = p
	}
	if d := period - took; d > 0 {
		return d
	}
	return 0
}

func (w *Watcher) sleep(ctx context.Context, d time.Duration) error {
	if w.Sleep != nil {
		return w.Sleep(ctx, d)
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// round reads every Service with a pending change once, oldest pending
// change first.
func (w *Watcher) round(ctx context.Context) {
	w.roundMu.Lock()
	defer w.roundMu.Unlock()
	// The order is taken under the lock: Add may grow a Service's
	// pending list while the round reads.
	type item struct {
		s        *watched
		first    time.Time
		seq      int
		presence bool // every pending change shows in presence alone
	}
	pr, canPresence := w.r.(presenceReader)
	w.mu.Lock()
	var todo []item
	for _, s := range w.svcs {
		if len(s.pending) > 0 {
			todo = append(todo, item{s, s.pending[0].WrittenAt, s.pending[0].Seq, canPresence && presenceShows(s.pending)})
		}
	}
	w.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	sort.Slice(todo, func(i, j int) bool {
		if !todo[i].first.Equal(todo[j].first) {
			return todo[i].first.Before(todo[j].first)
		}
		return todo[i].seq < todo[j].seq
	})
	if rr, ok := w.r.(roundReader); ok {
		rr.StartRound()
		if rp, ok := w.r.(roundPlanner); ok {
			chains := 0
			for _, it := range todo {
				if !it.presence {
					chains++
				}
			}
			rp.PlanRound(chains)
		}
	}
	start := w.now()
	for _, it := range todo {
		if ctx.Err() != nil {
			break
		}
		s := it.s
		var got ServiceRules
		var err error
		if it.presence {
			got, err = pr.ReadPresence(ctx, s.ref)
		} else {
			got, err = w.r.Read(ctx, s.ref)
		}
		end := w.now()
		if err != nil && ctx.Err() != nil {
			break // cut short by the window's end: not a failed read
		}
		w.mu.Lock()
		w.stats.Reads++
		if err != nil {
			w.stats.ReadErrors++
			w.stats.LastError = err.Error()
		} else {
			w.observe(s, got, it.presence, start, end)
		}
		w.mu.Unlock()
	}
	w.mu.Lock()
	w.stats.Rounds++
	w.mu.Unlock()
}

// observe judges one read of s, made in the round that started at start
// and ending at end; presence: the read told only whether the ClusterIP
// leads anywhere. Only changes written before the round started can show
// in it. w.mu is held.
func (w *Watcher) observe(s *watched, got ServiceRules, presence bool, start, end time.Time) {
	defer func() { s.prevRound = start }()
	match := func(f facts) bool {
		if presence {
			return f.present == got.Present
		}
		return f.match(got)
	}
	n := 0
	for n < len(s.pending) && !s.pending[n].WrittenAt.After(start) {
		n++
	}
	if n == 0 || match(s.base) {
		return
	}
	f := s.base
	for j := 0; j < n; j++ {
		f = f.apply(s.pending[j])
		if j+1 < len(s.pending) {
			// The state after change j is the state before the next:
			// what the next tells of it (its removed endpoint there, its
			// added one not) holds too. Without it, once j is taken, a
			// read after the next would still match the base.
			f = f.and(before(s.pending[j+1]))
		}
		if !match(f) {
			continue
		}
		for _, c := range s.pending[:j+1] {
			at := end
			c.ProgrammedAt = &at
			lower := c.WrittenAt
			if s.prevRound.After(lower) {
				lower = s.prevRound
			}
			w.windows = append(w.windows, end.Sub(lower).Seconds())
		}
		s.pending = append([]*runs.ChurnChange(nil), s.pending[j+1:]...)
		s.base = f
		return
	}
}

// facts are what the rules of a Service must show in one state.
type facts struct {
	present bool
	has     []string // endpoints that must be there (when present)
	hasNot  []string // endpoints that must not be there
}

// presenceShows tells whether every change in cs shows in whether the
// Service's ClusterIP leads anywhere: all but an endpoint replaced.
func presenceShows(cs []*runs.ChurnChange) bool {
	for _, c := range cs {
		if c.Kind == runs.ChurnEndpointReplace {
			return false
		}
	}
	return true
}

func knownKind(kind string) bool {
	switch kind {
	case runs.ChurnEndpointReplace, runs.ChurnEndpointsToZero, runs.ChurnEndpointsRestore,
		runs.ChurnServiceCreate, runs.ChurnServiceDelete:
		return true
	}
	return false
}

// before is what the rules show before c, as far as c tells.
func before(c *runs.ChurnChange) facts {
	switch c.Kind {
	case runs.ChurnEndpointReplace:
		return facts{present: true, has: c.Removed, hasNot: c.Added}
	case runs.ChurnEndpointsToZero:
		return facts{present: true, has: c.Removed}
	case runs.ChurnServiceDelete:
		return facts{present: true}
	}
	return facts{} // restore, create: the ClusterIP leads nowhere
}

// apply is the state after c, from the state f before it.
func (f facts) apply(c *runs.ChurnChange) facts {
	switch c.Kind {
	case runs.ChurnEndpointReplace:
		return facts{present: true, has: union(minus(f.has, c.Removed), c.Added), hasNot: union(minus(f.hasNot, c.Added), c.Removed)}
	case runs.ChurnEndpointsRestore, runs.ChurnServiceCreate:
		return facts{present: true, has: append([]string(nil), c.Added...)}
	}
	return facts{} // to zero, delete
}

// and is f with what g, another account of the same state, adds to it.
// A Service that leads nowhere in either leads nowhere.
func (f facts) and(g facts) facts {
	if !f.present || !g.present {
		return facts{}
	}
	return facts{present: true, has: union(f.has, g.has), hasNot: union(f.hasNot, g.hasNot)}
}

// match tells whether a read shows this state.
func (f facts) match(r ServiceRules) bool {
	if !f.present {
		return !r.Present
	}
	if !r.Present {
		return false
	}
	for _, a := range f.has {
		if !hasEndpoint(r.Endpoints, a) {
			return false
		}
	}
	for _, a := range f.hasNot {
		if hasEndpoint(r.Endpoints, a) {
			return false
		}
	}
	return true
}

// hasEndpoint tells whether eps (IP:port) holds addr, an IP:port or a
// bare IP (any port).
func hasEndpoint(eps []string, addr string) bool {
	want, err := netip.ParseAddrPort(addr)
	bare := false
	if err != nil {
		ip, err := netip.ParseAddr(strings.Trim(addr, "[]"))
		if err != nil {
			for _, e := range eps {
				if e == addr {
					return true
				}
			}
			return false
		}
		want, bare = netip.AddrPortFrom(ip, 0), true
	}
	for _, e := range eps {
		got, err := netip.ParseAddrPort(e)
		if err != nil {
			continue
		}
		if got.Addr() == want.Addr() && (bare || got.Port() == want.Port()) {
			return true
		}
	}
	return false
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, x := range b {
		if !contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func contains(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// String describes the watcher's state for logs.
func (w *Watcher) String() string {
	st := w.Stats()
	return fmt.Sprintf("%s rule watcher: %d pending, %d rounds, %d reads (%d failed)", w.mode, w.Pending(), st.Rounds, st.Reads, st.ReadErrors)
}
