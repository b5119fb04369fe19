package firstpacket

import (
	"math"
	"time"

	"github.com/kpbench/kpbench/runs"
)

// Summarize turns a window's timed connections into a point's figure: the
// time to first packet, from the events of kind First; client is the
// number of connections the load client says it opened in the same
// window. The way back is SummarizeReturn's.
func Summarize(events []Event, client int64) runs.FirstPacket {
	q := summarize(events, First)
	return runs.FirstPacket{Span: Span, Connections: q.n, ClientConnections: client,
		P01Us: q.p01, P10Us: q.p10, P50Us: q.p50, P90Us: q.p90, P99Us: q.p99, MeanUs: q.mean}
}

// SummarizeReturn is Summarize for the way back: the events of kind
// Return.
func SummarizeReturn(events []Event, client int64) runs.FirstPacketReturn {
	q := summarize(events, Return)
	return runs.FirstPacketReturn{Span: ReturnSpan, Connections: q.n, ClientConnections: client,
		P01Us: q.p01, P10Us: q.p10, P50Us: q.p50, P90Us: q.p90, P99Us: q.p99, MeanUs: q.mean}
}

// quantiles of one kind's spans, in µs; all zero without spans.
type quantiles struct {
	n                             int64
	p01, p10, p50, p90, p99, mean float64
}

func summarize(events []Event, k Kind) quantiles {
	sp := Spans(events, k)
	if len(sp) == 0 {
		return quantiles{}
	}
	var sum float64
	for _, d := range sp {
		sum += us(d)
	}
	return quantiles{n: int64(len(sp)),
		p01: quantile(sp, 0.01), p10: quantile(sp, 0.10), p50: quantile(sp, 0.50),
		p90: quantile(sp, 0.90), p99: quantile(sp, 0.99), mean: sum / float64(len(sp))}
}

// quantile of sorted spans, in µs, interpolated between order statistics
// (Hyndman–Fan type 7, as R's and NumPy's default).
func quantile(sorted []time.Duration, q float64) float64 {
	h := q * float64(len(sorted)-1)
	lo := int(math.Floor(h))
	if lo+1 >= len(sorted) {
		return us(sorted[len(sorted)-1])
	}
	return us(sorted[lo]) + (h-float64(lo))*(us(sorted[lo+1])-us(sorted[lo]))
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// Coverage is the share of the client's connections the probe timed.
func Coverage(fp runs.FirstPacket) float64 {
	if fp.ClientConnections == 0 {
		return 0
	}
	return float64(fp.Connections) / float64(fp.ClientConnections)
}
