package firstpacket

import (
	"math"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var ev []Event
	// 1..101 µs, shuffled order: the median is 51, p01 2, p99 100.
	for i := 101; i >= 1; i-- {
		ev = append(ev, Event{Span: time.Duration(i) * time.Microsecond})
	}
	fp := Summarize(ev, 101)
	for name, c := range map[string][2]float64{
		"p01": {fp.P01Us, 2}, "p50": {fp.P50Us, 51}, "p99": {fp.P99Us, 100}, "mean": {fp.MeanUs, 51},
		"p10": {fp.P10Us, 11}, "p90": {fp.P90Us, 91},
	} {
		if math.Abs(c[0]-c[1]) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, c[0], c[1])
		}
	}
	if fp.Connections != 101 || Coverage(fp) != 1 || fp.Span != Span {
		t.Errorf("summary %+v", fp)
	}
	if got := Summarize(nil, 10); got.Connections != 0 || got.P50Us != 0 || Coverage(got) != 0 {
		t.Errorf("empty window: %+v", got)
	}
	// Interpolated between order statistics: 4 values, median 2.5 µs.
	two := Summarize([]Event{{Span: 4000}, {Span: 1000}, {Span: 3000}, {Span: 2000}}, 5)
	if two.P50Us != 2.5 || Coverage(two) != 0.8 {
		t.Errorf("4 values: p50 %v, coverage %v", two.P50Us, Coverage(two))
	}
}

// The way back is summarized from the Return spans alone, the first
// packet from the First spans alone.
func TestSummarizeReturn(t *testing.T) {
	var ev []Event
	for i := 1; i <= 101; i++ {
		ev = append(ev, Event{Span: time.Duration(i) * time.Microsecond, Kind: Return},
			Event{Span: time.Duration(1000+i) * time.Microsecond, Kind: First})
	}
	// A connection whose way back was not timed.
	ev = append(ev, Event{Span: 2000 * time.Microsecond, Kind: First})
	r := SummarizeReturn(ev, 102)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if r.Connections != 101 || r.ClientConnections != 102 || !near(r.P50Us, 51) || !near(r.P01Us, 2) || !near(r.P99Us, 100) ||
		!near(r.MeanUs, 51) || r.Span != ReturnSpan {
		t.Errorf("way back %+v", r)
	}
	fp := Summarize(ev, 102)
	if fp.Connections != 102 || fp.P01Us < 1001 || Coverage(fp) != 1 {
		t.Errorf("first packet %+v: the way back's spans leaked in", fp)
	}
	if got := SummarizeReturn(ev[:0], 10); got.Connections != 0 || got.P50Us != 0 {
		t.Errorf("empty window: %+v", got)
	}
}
