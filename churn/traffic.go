package churn

import (
	"math"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/runs"
)

// Request is one request of the load client during a churn window
// (RequestsFrom makes them from the client's records).
type Request struct {
	Start   time.Time     // when the request (or its connection) started
	Connect time.Duration // 0 when it reused a connection (or its connect failed)
	NewConn bool
	Backend string // the backend's address as serve reports it ("" when no answer)
	Err     string // classified kind: "", refused, reset, timeout, other
	// Target is the address the request was sent to (ClusterIP:port); ""
	// when unknown. With it, a change counts against the requests sent to
	// its Service's ClusterIP; without, against every request when the
	// change is marked Target.
	Target string
}

// RequestsFrom turns the load client's records into Requests, their error
// kinds made coarse (loadgen.CoarseKind).
func RequestsFrom(recs []loadgen.RequestRecord) []Request {
	out := make([]Request, len(recs))
	for i, r := range recs {
		out[i] = Request{Start: r.Start, Connect: r.Connect, NewConn: r.NewConn, Backend: r.Backend,
			Err: loadgen.CoarseKind(r.Error), Target: r.Target}
	}
	return out
}

// Traffic is what the requests met during churn:
//   - errors by coarse kind;
//   - stale hits: requests answered by a backend while it was out of their
//     Service, that is after a change's removal of it was written and
//     before a later change added it back; StaleUnprogrammed when the
//     request started before the node's rules showed the removal
//     (ProgrammedAt, or never shown), StaleProgrammed after (a connection
//     the rules no longer lead there: conntrack, or a kept-alive
//     connection opened before);
//   - connect-time percentiles of the connections that started inside a
//     kube-proxy sync and of those that started outside every sync;
//   - the same over time, in bins (Timeline).
//
// Changes that failed (Error) or were never written are ignored.
func Traffic(reqs []Request, changes []runs.ChurnChange, syncs []runs.SyncSpan) runs.ChurnTraffic {
	t := runs.ChurnTraffic{Requests: int64(len(reqs))}
	if len(reqs) == 0 {
		return t
	}
	spans := staleSpans(changes)
	inSync := insideSyncs(syncs)
	tl := newTrafficTimeline(reqs)
	var in, out []time.Duration
	for i := range reqs {
		r := &reqs[i]
		b := tl.bin(r.Start)
		b.Requests++
		if kind := coarseKind(r.Err); kind != "" {
			if t.Errors == nil {
				t.Errors = map[string]int64{}
			}
			t.Errors[kind]++
			switch kind {
			case loadgen.CoarseRefused:
				b.Refused++
			case loadgen.CoarseReset:
				b.Reset++
			case loadgen.CoarseTimeout:
				b.Timeout++
			default:
				b.Other++
			}
		}
		switch staleHit(spans, r) {
		case staleUnprogrammed:
			t.StaleUnprogrammed++
			b.StaleUnprogrammed++
		case staleProgrammed:
			t.StaleProgrammed++
			b.StaleProgrammed++
		}
		if r.NewConn && r.Connect > 0 {
			tl.connect(r.Start, r.Connect)
			if inSync(r.Start) {
				in = append(in, r.Connect)
			} else {
				out = append(out, r.Connect)
			}
		}
	}
	t.ConnectInSync = connectPercentiles(in)
	t.ConnectOutOfSync = connectPercentiles(out)
	t.Timeline = tl.finish()
	return t
}

// coarse returns kind as one of the coarse kinds: a fine kind of
// loadgen.Classify is grouped, anything unknown is other.
func coarseKind(kind string) string {
	switch kind {
	case "", loadgen.CoarseRefused, loadgen.CoarseReset, loadgen.CoarseTimeout, loadgen.CoarseOther:
		return kind
	}
	return loadgen.CoarseKind(kind)
}

// backendAddr is an address as changes and backends name it: an IP, with
// its port when known (0 otherwise).
type backendAddr struct {
	ip   netip.Addr
	port uint16
	raw  string // when it does not parse
}

func parseBackendAddr(s string) backendAddr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return backendAddr{ip: ap.Addr().Unmap(), port: ap.Port()}
	}
	if ip, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return backendAddr{ip: ip.Unmap()}
	}
	return backendAddr{raw: s}
}

// key identifies the address without its port.
func (e backendAddr) key() string {
	if e.ip.IsValid() {
		return e.ip.String()
	}
	return e.raw
}

// same reports whether e and o are one address: the same IP, and the
// same port where both say one.
func (e backendAddr) same(o backendAddr) bool {
	if e.key() != o.key() {
		return false
	}
	return e.port == 0 || o.port == 0 || e.port == o.port
}

// staleSpan is a time during which a backend was out of a Service: from
// the write of the change that removed it until the write of the change
// that added it back (zero: not added back).
type staleSpan struct {
	service    string // the Service's ClusterIP, else its name
	serviceIP  bool   // service is a ClusterIP
	target     bool
	backend    backendAddr
	from       time.Time
	until      time.Time
	programmed *time.Time // the removal's ProgrammedAt
}

// staleSpans lists every backend's times out of its Service, by the
// backend's IP.
func staleSpans(changes []runs.ChurnChange) map[string][]staleSpan {
	var cs []*runs.ChurnChange
	for i := range changes {
		c := &changes[i]
		if c.Error == "" && !c.WrittenAt.IsZero() && (len(c.Removed) > 0 || len(c.Added) > 0) {
			cs = append(cs, c)
		}
	}
	sort.SliceStable(cs, func(i, j int) bool {
		if !cs[i].WrittenAt.Equal(cs[j].WrittenAt) {
			return cs[i].WrittenAt.Before(cs[j].WrittenAt)
		}
		return cs[i].Seq < cs[j].Seq
	})
	type openKey struct{ service, backend string }
	open := map[openKey]*staleSpan{}
	var all []*staleSpan
	for _, c := range cs {
		svc, svcIP := c.ClusterIP, false
		if svc == "" {
			svc = c.Service
		}
		if ip, err := netip.ParseAddr(svc); err == nil {
			svc, svcIP = ip.Unmap().String(), true
		}
		added := map[string]bool{}
		for _, a := range c.Added {
			added[parseBackendAddr(a).key()] = true
		}
		removed := map[string]bool{}
		for _, a := range c.Removed {
			removed[parseBackendAddr(a).key()] = true
		}
		for k := range added {
			if removed[k] {
				continue // left and came back in one write
			}
			if s := open[openKey{svc, k}]; s != nil {
				s.until = c.WrittenAt
				delete(open, openKey{svc, k})
			}
		}
		for _, a := range c.Removed {
			e := parseBackendAddr(a)
			k := openKey{svc, e.key()}
			if added[e.key()] || open[k] != nil {
				continue
			}
			s := &staleSpan{service: svc, serviceIP: svcIP, target: c.Target, backend: e, from: c.WrittenAt, programmed: c.ProgrammedAt}
			open[k] = s
			all = append(all, s)
		}
	}
	byBackend := map[string][]staleSpan{}
	for _, s := range all {
		byBackend[s.backend.key()] = append(byBackend[s.backend.key()], *s)
	}
	return byBackend
}

type staleKind int

const (
	notStale staleKind = iota
	staleUnprogrammed
	staleProgrammed
)

// staleHit says whether r was answered by a backend out of r's Service.
func staleHit(spans map[string][]staleSpan, r *Request) staleKind {
	if r.Backend == "" || len(spans) == 0 {
		return notStale
	}
	b := parseBackendAddr(r.Backend)
	var target string
	if r.Target != "" {
		target = parseBackendAddr(r.Target).key()
	}
	for i := range spans[b.key()] {
		s := &spans[b.key()][i]
		if !s.backend.same(b) || r.Start.Before(s.from) || (!s.until.IsZero() && !r.Start.Before(s.until)) {
			continue
		}
		// The request went to the span's Service: by its ClusterIP where
		// both are known, else by the change's Target mark.
		if target != "" && s.serviceIP {
			if target != s.service {
				continue
			}
		} else if !s.target {
			continue
		}
		if s.programmed == nil || r.Start.Before(*s.programmed) {
			return staleUnprogrammed
		}
		return staleProgrammed
	}
	return notStale
}

// insideSyncs returns whether an instant falls inside one of syncs (ends
// included).
func insideSyncs(syncs []runs.SyncSpan) func(time.Time) bool {
	ss := slices.Clone(syncs)
	sort.Slice(ss, func(i, j int) bool { return ss[i].Start.Before(ss[j].Start) })
	// maxEnd[i] is the latest end among ss[:i+1]: syncs may overlap.
	maxEnd := make([]time.Time, len(ss))
	for i, s := range ss {
		maxEnd[i] = s.End
		if i > 0 && maxEnd[i-1].After(s.End) {
			maxEnd[i] = maxEnd[i-1]
		}
	}
	return func(t time.Time) bool {
		// The last sync that started at or before t.
		i := sort.Search(len(ss), func(i int) bool { return ss[i].Start.After(t) }) - 1
		return i >= 0 && !t.After(maxEnd[i])
	}
}

// connectPercentiles of ds in µs, by nearest rank.
func connectPercentiles(ds []time.Duration) runs.Percentiles {
	if len(ds) == 0 {
		return runs.Percentiles{}
	}
	slices.Sort(ds)
	return runs.Percentiles{Count: int64(len(ds)), P50: durUs(trafficRank(ds, 0.50)), P99: durUs(trafficRank(ds, 0.99))}
}

// trafficRank is the nearest-rank q-quantile of sorted ds.
func trafficRank(ds []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func durUs(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// timelineMaxBins bounds a timeline's bins; timelineMinBin is the narrowest bin.
const (
	timelineMaxBins = 600
	timelineMinBin  = 100 * time.Millisecond
)

// timelineBinWidth is the narrowest of 0.1, 0.2, 0.5, 1, 2, 5, ... s that cuts span
// into at most timelineMaxBins bins.
func timelineBinWidth(span time.Duration) time.Duration {
	w := timelineMinBin
	for steps := 0; span/w >= timelineMaxBins; steps++ {
		switch steps % 3 {
		case 0, 2:
			w *= 2
		case 1:
			w = w * 5 / 2
		}
	}
	return w
}

type trafficTimeline struct {
	start    time.Time
	width    time.Duration
	bins     []runs.TrafficBin
	connects [][]time.Duration
}

func newTrafficTimeline(reqs []Request) *trafficTimeline {
	first, last := reqs[0].Start, reqs[0].Start
	for _, r := range reqs[1:] {
		if r.Start.Before(first) {
			first = r.Start
		}
		if r.Start.After(last) {
			last = r.Start
		}
	}
	w := timelineBinWidth(last.Sub(first))
	n := int(last.Sub(first)/w) + 1
	return &trafficTimeline{start: first, width: w, bins: make([]runs.TrafficBin, n), connects: make([][]time.Duration, n)}
}

func (t *trafficTimeline) index(at time.Time) int {
	return min(max(int(at.Sub(t.start)/t.width), 0), len(t.bins)-1)
}

func (t *trafficTimeline) bin(at time.Time) *runs.TrafficBin { return &t.bins[t.index(at)] }

func (t *trafficTimeline) connect(at time.Time, d time.Duration) {
	i := t.index(at)
	t.connects[i] = append(t.connects[i], d)
}

func (t *trafficTimeline) finish() *runs.TrafficTimeline {
	for i, cs := range t.connects {
		if len(cs) == 0 {
			continue
		}
		slices.Sort(cs)
		b := &t.bins[i]
		b.Connects = int64(len(cs))
		b.ConnectP50Us = durUs(trafficRank(cs, 0.5))
		b.ConnectMaxUs = durUs(cs[len(cs)-1])
	}
	return &runs.TrafficTimeline{Start: t.start, BinSeconds: t.width.Seconds(), Bins: t.bins}
}
