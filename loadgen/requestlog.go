package loadgen

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RequestRecord is one request of the measured window, as a run keeps it
// when Config.LogRequests is set (`kpbench load --requests-log`).
type RequestRecord struct {
	// Start is when the request started: before its connect when it
	// opened a connection.
	Start time.Time
	// Connect is the TCP handshake of the connection the request opened:
	// 0 on a reused connection and when the connect failed.
	Connect time.Duration
	// NewConn says the request opened its connection (a failed connect
	// is NewConn with Connect 0 and an Error).
	NewConn bool
	// Target is the address the request was sent to: its URL's host:port,
	// resolved (a Service's ClusterIP and port).
	Target string
	// Backend is the backend that answered as it names itself
	// (BackendHeader: its IP:port); "" when no response arrived or the
	// server does not name itself.
	Backend string
	// Error is the request's error kind (Classify); "" for a success.
	Error string
}

// maxLoggedRequests bounds the records a run keeps (32 bytes each while
// it runs): 10 million is 2.7 hours at 1,000 req/s.
const maxLoggedRequests = 10_000_000

// requestLog is a run's per-request records, kept while it runs at the
// cost of one atomic add and one store per request: its slots are
// allocated before the window for every request the schedule can send in
// it, workers write disjoint slots, names (backends, error kinds) are
// interned once per connection or error, and the records are built only
// after the run.
type requestLog struct {
	slots   []logSlot
	next    atomic.Int64
	dropped atomic.Int64

	mu    sync.Mutex
	index map[string]uint16
	names []string // names[i-1] is the name of id i
}

// logSlot is one record while the run goes on; times in ns (start since
// the run's t0).
type logSlot struct {
	start, connect int64
	target         uint32
	// backend and kind are name ids (0: none).
	backend, kind uint16
	newConn       bool
}

func newRequestLog(n int) *requestLog {
	return &requestLog{slots: make([]logSlot, n), index: map[string]uint16{}}
}

// add keeps s, or counts it as dropped when every slot is taken.
func (l *requestLog) add(s logSlot) {
	i := l.next.Add(1) - 1
	if i >= int64(len(l.slots)) {
		l.dropped.Add(1)
		return
	}
	l.slots[i] = s
}

// intern returns the id of name (b's bytes), 0 when the table is full.
func (l *requestLog) intern(b []byte) uint16 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if id, ok := l.index[string(b)]; ok {
		return id
	}
	if len(l.names) >= 1<<16-1 {
		return 0
	}
	name := string(b)
	l.names = append(l.names, name)
	id := uint16(len(l.names))
	l.index[name] = id
	return id
}

func (l *requestLog) name(id uint16) string {
	if id == 0 || int(id) > len(l.names) {
		return ""
	}
	return l.names[id-1]
}

// records builds the kept records, by start time, once every worker has
// stopped; dropped counts the requests that found no slot.
func (l *requestLog) records(t0 time.Time, targets []Target) (recs []RequestRecord, dropped int64) {
	n := min(l.next.Load(), int64(len(l.slots)))
	recs = make([]RequestRecord, n)
	for i, s := range l.slots[:n] {
		r := &recs[i]
		r.Start = t0.Add(time.Duration(s.start))
		r.Connect = time.Duration(s.connect)
		r.NewConn = s.newConn
		if int(s.target) < len(targets) {
			r.Target = targets[s.target].Addr
		}
		r.Backend = l.name(s.backend)
		r.Error = l.name(s.kind)
	}
	slices.SortStableFunc(recs, func(a, b RequestRecord) int { return a.Start.Compare(b.Start) })
	return recs, l.dropped.Load()
}

// requestLogHeader is the first line of a requests log.
var requestLogHeader = []string{"start_unix_ns", "connect_ns", "new_conn", "target", "backend", "error"}

// WriteRequestLog writes recs as CSV (`kpbench load --requests-log`): a
// header, then one line per request: its start (Unix ns, wall clock), its
// connect time (ns, 0 when it opened no connection or the connect
// failed), 1 when it opened its connection, the address it was sent to,
// the backend that answered and its error kind.
func WriteRequestLog(w io.Writer, recs []RequestRecord) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	if err := cw.Write(requestLogHeader); err != nil {
		return err
	}
	row := make([]string, len(requestLogHeader))
	for _, r := range recs {
		row[0] = strconv.FormatInt(r.Start.UnixNano(), 10)
		row[1] = strconv.FormatInt(int64(r.Connect), 10)
		row[2] = "0"
		if r.NewConn {
			row[2] = "1"
		}
		row[3], row[4], row[5] = r.Target, r.Backend, r.Error
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// ReadRequestLog reads what WriteRequestLog wrote. It counts the bad lines
// and names the first ten at once.
func ReadRequestLog(r io.Reader) ([]RequestRecord, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 64<<10))
	cr.FieldsPerRecord = len(requestLogHeader)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("requests log header: %w", err)
	}
	if !slices.Equal(head, requestLogHeader) {
		return nil, fmt.Errorf("requests log header %q, want %q", head, requestLogHeader)
	}
	var (
		recs  []RequestRecord
		errs  []error
		bad   int
		names = map[string]string{} // one string per distinct name
	)
	intern := func(s string) string {
		if s == "" {
			return ""
		}
		if v, ok := names[s]; ok {
			return v
		}
		v := string([]byte(s))
		names[v] = v
		return v
	}
	for line := 2; ; line++ {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("requests log: %w", err)
		}
		start, err1 := strconv.ParseInt(row[0], 10, 64)
		connect, err2 := strconv.ParseInt(row[1], 10, 64)
		if err1 != nil || err2 != nil || connect < 0 || (row[2] != "0" && row[2] != "1") {
			if bad++; bad <= 10 {
				errs = append(errs, fmt.Errorf("line %d: %q", line, row))
			}
			continue
		}
		recs = append(recs, RequestRecord{Start: time.Unix(0, start).UTC(), Connect: time.Duration(connect), NewConn: row[2] == "1",
			Target: intern(row[3]), Backend: intern(row[4]), Error: intern(row[5])})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("requests log: %d bad lines: %w", bad, errors.Join(errs...))
	}
	return recs, nil
}
