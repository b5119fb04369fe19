package loadgen

import (
	"encoding/csv"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"sync/atomic"
	"time"
)

// Second is one line of the per-second timeline of the measured window.
// Sent counts requests by the second they were sent; Completed, Errors and
// the latency percentiles by the second they finished. The percentiles are
// read from a coarse log-linear histogram (about 3% resolution): enough to
// see a stall; the run's summary uses the exact HDR histograms.
type Second struct {
	Second    int     `json:"second"`
	Sent      int64   `json:"sent"`
	Completed int64   `json:"completed"`
	Errors    int64   `json:"errors"`
	P50Us     float64 `json:"p50Us"`
	P99Us     float64 `json:"p99Us"`
}

// coarseBits sub-buckets per power of two: 2^4 = 16 gives ±3%.
const (
	coarseBits    = 4
	coarseBuckets = (64 - coarseBits + 1) << coarseBits
)

// coarseIndex maps a non-negative value to its log-linear bucket.
func coarseIndex(v int64) int {
	if v < 1<<coarseBits {
		return int(max(v, 0))
	}
	u := uint64(v)
	exp := bits.Len64(u) - coarseBits - 1 // shift that leaves coarseBits+1 bits
	mant := int(u>>uint(exp)) & (1<<coarseBits - 1)
	return (exp+1)<<coarseBits | mant
}

// coarseValue is the midpoint of bucket i.
func coarseValue(i int) float64 {
	if i < 1<<coarseBits {
		return float64(i)
	}
	exp := i>>coarseBits - 1
	mant := i & (1<<coarseBits - 1)
	lo := float64(uint64(1<<coarseBits|mant) << uint(exp))
	return lo + float64(uint64(1)<<uint(exp))/2
}

// secondBucket is shared by every worker; atomic adds keep the hot path
// free of locks (a few thousand adds a second do not contend).
type secondBucket struct {
	sent, completed, errors atomic.Int64
	latency                 [coarseBuckets]atomic.Uint32
}

// timeline holds one bucket per second of the measured window.
type timeline struct {
	start   int64 // window start, nanoseconds since the run's start
	seconds []secondBucket
}

func newTimeline(start int64, window time.Duration) *timeline {
	n := int((window + time.Second - 1) / time.Second)
	return &timeline{start: start, seconds: make([]secondBucket, max(n, 1))}
}

// bucket returns the second holding t (nanoseconds since the run's start),
// or nil before the window. Events after the window's end (the last
// requests, in flight or sent late) count in its last second.
func (tl *timeline) bucket(t int64) *secondBucket {
	i := (t - tl.start) / int64(time.Second)
	if i < 0 {
		return nil
	}
	if i >= int64(len(tl.seconds)) {
		i = int64(len(tl.seconds)) - 1
	}
	return &tl.seconds[i]
}

func (tl *timeline) sent(t int64) {
	if b := tl.bucket(t); b != nil {
		b.sent.Add(1)
	}
}

func (tl *timeline) completed(t int64, latency int64, failed bool) {
	b := tl.bucket(t)
	if b == nil {
		return
	}
	b.completed.Add(1)
	if failed {
		b.errors.Add(1)
		return
	}
	b.latency[coarseIndex(latency)].Add(1)
}

// seconds derives the timeline's lines.
func (tl *timeline) lines() []Second {
	out := make([]Second, len(tl.seconds))
	for i := range tl.seconds {
		b := &tl.seconds[i]
		s := Second{Second: i, Sent: b.sent.Load(), Completed: b.completed.Load(), Errors: b.errors.Load()}
		var total int64
		for j := range b.latency {
			total += int64(b.latency[j].Load())
		}
		if total > 0 {
			s.P50Us = coarseQuantile(&b.latency, total, 0.50) / 1e3
			s.P99Us = coarseQuantile(&b.latency, total, 0.99) / 1e3
		}
		out[i] = s
	}
	return out
}

func coarseQuantile(h *[coarseBuckets]atomic.Uint32, total int64, q float64) float64 {
	rank := int64(q*float64(total) + 0.5)
	rank = min(max(rank, 1), total)
	var seen int64
	for i := range h {
		seen += int64(h[i].Load())
		if seen >= rank {
			return coarseValue(i)
		}
	}
	return 0
}

// TimelineHeader is the header line of the timeline CSV.
var TimelineHeader = []string{"second", "sent", "completed", "errors", "p50Us", "p99Us"}

// WriteTimelineCSV writes lines as CSV with TimelineHeader.
func WriteTimelineCSV(w io.Writer, lines []Second) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(TimelineHeader); err != nil {
		return fmt.Errorf("writing timeline: %w", err)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	for _, s := range lines {
		rec := []string{strconv.Itoa(s.Second), strconv.FormatInt(s.Sent, 10), strconv.FormatInt(s.Completed, 10),
			strconv.FormatInt(s.Errors, 10), f(s.P50Us), f(s.P99Us)}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("writing timeline: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing timeline: %w", err)
	}
	return nil
}

// ReadTimelineCSV reads what WriteTimelineCSV wrote.
func ReadTimelineCSV(r io.Reader) ([]Second, error) {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("reading timeline: %w", err)
	}
	if len(recs) == 0 || len(recs[0]) != len(TimelineHeader) || recs[0][0] != TimelineHeader[0] {
		return nil, fmt.Errorf("reading timeline: missing header %v", TimelineHeader)
	}
	out := make([]Second, 0, len(recs)-1)
	for n, rec := range recs[1:] {
		var s Second
		var errs [6]error
		s.Second, errs[0] = strconv.Atoi(rec[0])
		s.Sent, errs[1] = strconv.ParseInt(rec[1], 10, 64)
		s.Completed, errs[2] = strconv.ParseInt(rec[2], 10, 64)
		s.Errors, errs[3] = strconv.ParseInt(rec[3], 10, 64)
		s.P50Us, errs[4] = strconv.ParseFloat(rec[4], 64)
		s.P99Us, errs[5] = strconv.ParseFloat(rec[5], 64)
		for _, e := range errs {
			if e != nil {
				return nil, fmt.Errorf("reading timeline line %d: %w", n+2, e)
			}
		}
		out = append(out, s)
	}
	return out, nil
}
