package firstpacket

import (
	"math"
	"time"

	"github.com/kpbench/kpbench/runs"
)

// Summarize turns a window's timed connections into a point's figure;
// client is the number of connections the load client says it opened in
// the same window.
func Summarize(events []Event, client int64) runs.FirstPacket {
	fp := runs.FirstPacket{Span: Span, Connections: int64(len(events)), ClientConnections: client}
	if len(events) == 0 {
		return fp
	}
	sp := Spans(events)
	var sum float64
	for _, d := range sp {
		sum += us(d)
	}
	fp.P01Us = quantile(sp, 0.01)
	fp.P10Us = quantile(sp, 0.10)
	fp.P50Us = quantile(sp, 0.50)
	fp.P90Us = quantile(sp, 0.90)
	fp.P99Us = quantile(sp, 0.99)
	fp.MeanUs = sum / float64(len(sp))
	return fp
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
