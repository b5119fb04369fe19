package loadgen

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kpbench/kpbench/runs"
)

// WriteText writes s as a short table in the manner of wrk, followed by a
// warning when sends fell behind schedule and the reasons a run is invalid.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	target := "1 URL"
	if len(s.URLs) == 1 {
		target = s.URLs[0]
	} else {
		target = fmt.Sprintf("%d URLs", len(s.URLs))
	}
	rpc := "persistent connections"
	switch s.RequestsPerConn {
	case 0:
	case 1:
		rpc = "a new connection per request"
	default:
		rpc = fmt.Sprintf("%d requests per connection", s.RequestsPerConn)
	}
	warmNotSent := ""
	if s.Warmup.NotSent > 0 {
		warmNotSent = fmt.Sprintf(", %d not sent", s.Warmup.NotSent)
	}
	batches := ""
	if s.TickSeconds > 0 {
		batches = " in " + time.Duration(s.TickSeconds*float64(time.Second)).Round(time.Microsecond).String() + " batches"
	}
	fmt.Fprintf(&b, "%gs at %g req/s%s @ %s, %s (warm-up %gs: %d requests, %d errors%s)\n",
		s.DurationSeconds, s.TargetRate, batches, target, rpc, s.Warmup.Seconds, s.Warmup.Requests, s.Warmup.Errors, warmNotSent)
	switch {
	case s.interrupted():
		fmt.Fprintf(&b, "INTERRUPTED after %.2fs of the %gs window: the figures cover the time run\n", s.MeasuredSeconds, s.DurationSeconds)
	case s.Aborted:
		fmt.Fprintf(&b, "ABORTED after %.2fs of the %gs window: the client fell behind its schedule (--abort-when-behind)\n", s.MeasuredSeconds, s.DurationSeconds)
	}
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\tmean\tp50\tp90\tp99\tp99.9\tmax\t\n")
	lat := func(name string, l runs.Latency) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, dur(l.MeanUs), dur(l.P50Us), dur(l.P90Us), dur(l.P99Us), dur(l.P999Us), dur(l.MaxUs))
	}
	lat("latency", s.Latency)
	lat("service time", s.ServiceTime)
	fmt.Fprintf(tw, "\tcount\tp01\tp50\tp90\tp99\t\t\n")
	fmt.Fprintf(tw, "connect\t%d\t%s\t%s\t%s\t%s\t\t\n", s.Connect.Count, dur(s.Connect.P01Us), dur(s.Connect.P50Us), dur(s.Connect.P90Us), dur(s.Connect.P99Us))
	fmt.Fprintf(tw, "\t\t\tp50\t\tp99\tmax\t\n")
	fmt.Fprintf(tw, "schedule lag\t\t\t%s\t\t%s\t%s\t\n", dur(s.Lag.P50Us), dur(s.Lag.P99Us), dur(s.Lag.MaxUs))
	if err := tw.Flush(); err != nil {
		return err
	}
	perReq := 0.0
	if s.SentRate > 0 {
		perReq = s.ClientCPUCores / s.SentRate * 1e6
	}
	fmt.Fprintf(&b, "%d requests sent (%.1f req/s), %d answered: %.1f req/s achieved (%.2f%% of target), %d errors%s\n",
		s.Requests, s.SentRate, s.Answered, s.AchievedRate, pct(s.AchievedRate, s.TargetRate), s.Errors.Total, kinds(s.Errors.ByKind))
	if s.NotSent > 0 {
		end := "stopped at the window's end"
		if s.Aborted || s.interrupted() {
			end = "stopped early"
		}
		fmt.Fprintf(&b, "%d requests not sent: the client fell %.2fs behind its schedule and %s; %g req/s is beyond this client (lower --rate, or spread the load over more clients)\n",
			s.NotSent, s.BehindSeconds, end, s.TargetRate)
	}
	fmt.Fprintf(&b, "client CPU %.3f cores (%.1f µs per request), peak %d in flight of %d\n",
		s.ClientCPUCores, perReq, s.PeakInflight, s.MaxInflight)
	if fp := s.FirstPacket; fp != nil {
		if fp.Unavailable != "" {
			fmt.Fprintf(&b, "kernel time to first packet unavailable: %s\n", fp.Unavailable)
		} else {
			fmt.Fprintf(&b, "kernel time to first packet p50 %s, p99 %s (%d of %d connections timed)\n",
				dur(fp.P50Us), dur(fp.P99Us), fp.Connections, fp.ClientConnections)
		}
		switch r := fp.Return; {
		case r == nil:
		case r.Unavailable != "":
			fmt.Fprintf(&b, "kernel time of the SYN-ACK's way back unavailable: %s\n", r.Unavailable)
		default:
			fmt.Fprintf(&b, "kernel time of the SYN-ACK's way back p50 %s, p99 %s (%d of %d connections timed)\n",
				dur(r.P50Us), dur(r.P99Us), r.Connections, r.ClientConnections)
		}
	}
	if s.BehindSchedule() {
		fmt.Fprintf(&b, "WARNING: the schedule fell behind (lag p99 %s, max %s); latency still counts from intended send times\n",
			dur(s.Lag.P99Us), dur(s.Lag.MaxUs))
	}
	if s.Valid {
		b.WriteString("valid\n")
	} else {
		fmt.Fprintf(&b, "INVALID: %s\n", strings.Join(s.InvalidReasons, "; "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func pct(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * a / b
}

func kinds(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// dur formats microseconds the way wrk does: µs, ms or s.
func dur(us float64) string {
	switch {
	case us == 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%.1fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.2fms", us/1e3)
	default:
		return fmt.Sprintf("%.2fs", us/1e6)
	}
}
