package loadgen

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/kpbench/kpbench/runs"
)

// Summary is the JSON document `kpbench load --json` writes: the measured
// window only (warm-up excluded), durations in microseconds. Its fields are
// stable; schemaVersion follows the results schema (runs.SchemaVersion).
type Summary struct {
	SchemaVersion int `json:"schemaVersion"`
	// TargetRate, AchievedRate and SentRate are requests per second over
	// the window's real length (MeasuredSeconds): achieved counts the
	// requests answered (errors excluded), sent every request sent.
	TargetRate   float64 `json:"targetRate"`
	AchievedRate float64 `json:"achievedRate"`
	SentRate     float64 `json:"sentRate"`
	// Requests sent in the measured window (successes and errors);
	// Answered are those that got a response without error.
	Requests int64       `json:"requests"`
	Answered int64       `json:"answered"`
	Errors   runs.Errors `json:"errors"`
	// NotSent counts the window's requests the schedule asked for (up to
	// where the run stopped) that were never sent: the client could not
	// keep the rate, and the run stops at its duration whatever it owes.
	// BehindSeconds is how far behind its schedule the client was when
	// sending stopped.
	NotSent       int64   `json:"notSent"`
	BehindSeconds float64 `json:"behindSeconds,omitempty"`
	// Aborted says the run was ended early because the client fell behind
	// (load --abort-when-behind).
	Aborted bool `json:"aborted,omitempty"`
	// Latency counts from each request's intended send time (coordinated
	// omission corrected); ServiceTime from its actual send (connect
	// included for a new connection). Successful requests only.
	Latency     runs.Latency `json:"latency"`
	ServiceTime runs.Latency `json:"serviceTime"`
	// Connect is the TCP handshake of every connection opened in the
	// window: from just before connect(2) to the socket being connected.
	Connect runs.Connect `json:"connect"`
	// Lag is how late sends started against the schedule.
	Lag runs.Lag `json:"lag"`
	// ClientCPUCores is this process's CPU (user+system) over the window,
	// in cores.
	ClientCPUCores float64 `json:"clientCpuCores"`
	// PID is the load process's own, as its node sees it: the kernel
	// probe keeps only this process's connections.
	PID            int      `json:"pid,omitempty"`
	Valid          bool     `json:"valid"`
	InvalidReasons []string `json:"invalidReasons,omitempty"`

	// What was asked, and a few facts that explain the numbers.
	// MeasuredSeconds is the window's real length: DurationSeconds, or
	// less when the run was interrupted or aborted.
	DurationSeconds float64 `json:"durationSeconds"`
	MeasuredSeconds float64 `json:"measuredSeconds"`
	RequestsPerConn int     `json:"requestsPerConn"`
	// TickSeconds is the tick the requests were sent in (Config.Tick as
	// EffectiveTick resolved it): 0 when each left at its own due time.
	TickSeconds float64  `json:"tickSeconds"`
	URLs        []string `json:"urls"`
	// TargetConnects counts, with several URLs, the connections opened to
	// each (same order as URLs) in the measured window: which Services the
	// random choice actually used, to weigh their depths.
	TargetConnects []int64   `json:"targetConnects,omitempty"`
	StartedAt      time.Time `json:"startedAt"`
	// MaxInflight is the configured bound; PeakInflight the most requests
	// that were in flight at once.
	MaxInflight  int `json:"maxInflight"`
	PeakInflight int `json:"peakInflight"`
	// Workers is how many senders were started; each holds at most one
	// connection at a time.
	Workers int `json:"workers"`
	// InflightBoundHits counts sends that had to wait for a free worker.
	InflightBoundHits int64  `json:"inflightBoundHits"`
	Warmup            Warmup `json:"warmup"`

	// ClientInvalidReasons appear in a merged summary only (see
	// MergeSummaries): each client's own invalid reasons, prefixed
	// "client N: " with N its index among the merged parts. They are kept
	// so that nothing is lost, but validity is judged over the merged
	// numbers: a client that fell short on its own does not by itself make
	// the merge invalid (an interrupted client does).
	ClientInvalidReasons []string `json:"clientInvalidReasons,omitempty"`
	// Histograms are the four HDR histograms the figures above were read
	// from, present when `kpbench load --embed-histograms` wrote the
	// summary (and in every merged summary): what MergeSummaries needs to
	// merge the summaries of several clients exactly.
	Histograms *EncodedHistograms `json:"histograms,omitempty"`
	// FirstPacket is the kernel's time to first packet of this process's
	// connections in the measured window, timed in this machine's kernel
	// (`kpbench load --first-packet`); absent without the flag. A probe
	// that could not run says why in its Unavailable. Merged summaries
	// leave it out.
	FirstPacket *runs.FirstPacket `json:"firstPacket,omitempty"`
}

// Window is the measured window as the client saw it: from its start
// plus the warm-up, for DurationSeconds.
func (s *Summary) Window() (start, end time.Time) {
	start = s.StartedAt.Add(time.Duration(s.Warmup.Seconds * float64(time.Second)))
	return start, start.Add(time.Duration(s.DurationSeconds * float64(time.Second)))
}

// Warmup is what happened before the measured window.
type Warmup struct {
	Seconds  float64 `json:"seconds"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	NotSent  int64   `json:"notSent,omitempty"`
}

// ErrSchemaVersion is returned when a document's schemaVersion is not one
// this build reads.
var ErrSchemaVersion = errors.New("unsupported schemaVersion")

// WriteJSON writes s as indented JSON.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("writing summary: %w", err)
	}
	return nil
}

// ReadSummary decodes a summary strictly (unknown fields are errors) and
// checks its schemaVersion.
func ReadSummary(r io.Reader) (*Summary, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var s Summary
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("reading summary: %w", err)
	}
	if s.SchemaVersion != runs.SchemaVersion {
		return nil, fmt.Errorf("reading summary: %w %d (this build reads %d)", ErrSchemaVersion, s.SchemaVersion, runs.SchemaVersion)
	}
	return &s, nil
}

// Histograms are the run's HDR histograms of the measured window, in
// nanoseconds.
type Histograms struct {
	Latency     *hdrhistogram.Histogram
	ServiceTime *hdrhistogram.Histogram
	Connect     *hdrhistogram.Histogram
	Lag         *hdrhistogram.Histogram
}

// Histogram bounds: 1 ns to 100 s at 3 significant digits. Larger values
// (a schedule more than 100 s behind) are recorded as 100 s.
const (
	histLowest  = 1
	histHighest = int64(100 * time.Second)
	histDigits  = 3
)

func newHistograms() Histograms {
	return Histograms{
		Latency:     hdrhistogram.New(histLowest, histHighest, histDigits),
		ServiceTime: hdrhistogram.New(histLowest, histHighest, histDigits),
		Connect:     hdrhistogram.New(histLowest, histHighest, histDigits),
		Lag:         hdrhistogram.New(histLowest, histHighest, histDigits),
	}
}

// record adds v nanoseconds to h, clamped to its range.
func record(h *hdrhistogram.Histogram, v int64) {
	_ = h.RecordValue(min(max(v, histLowest), histHighest))
}

// EncodedHistograms is the JSON form of Histograms: each one HDR V2
// compressed and base64 encoded, as HdrHistogram's log format stores them
// (hdrhistogram.Decode reads one back). It is the document `kpbench load
// --histograms` writes, and the "histograms" field of a summary.
type EncodedHistograms struct {
	SchemaVersion int    `json:"schemaVersion"`
	Unit          string `json:"unit"`
	Latency       string `json:"latency"`
	ServiceTime   string `json:"serviceTime"`
	Connect       string `json:"connect"`
	Lag           string `json:"lag"`
}

// Encode returns h HDR encoded, in nanoseconds.
func (h Histograms) Encode() (*EncodedHistograms, error) {
	e := &EncodedHistograms{SchemaVersion: runs.SchemaVersion, Unit: "ns"}
	for _, p := range []struct {
		name string
		dst  *string
		h    *hdrhistogram.Histogram
	}{{"latency", &e.Latency, h.Latency}, {"serviceTime", &e.ServiceTime, h.ServiceTime}, {"connect", &e.Connect, h.Connect}, {"lag", &e.Lag, h.Lag}} {
		b, err := p.h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			return nil, fmt.Errorf("encoding histogram %s: %w", p.name, err)
		}
		*p.dst = string(b)
	}
	return e, nil
}

// Decode checks e's schemaVersion and unit and decodes its histograms.
func (e *EncodedHistograms) Decode() (Histograms, error) {
	if e.SchemaVersion != runs.SchemaVersion {
		return Histograms{}, fmt.Errorf("%w %d (this build reads %d)", ErrSchemaVersion, e.SchemaVersion, runs.SchemaVersion)
	}
	if e.Unit != "ns" {
		return Histograms{}, fmt.Errorf("unit %q, want ns", e.Unit)
	}
	var h Histograms
	for _, p := range []struct {
		name string
		src  string
		dst  **hdrhistogram.Histogram
	}{{"latency", e.Latency, &h.Latency}, {"serviceTime", e.ServiceTime, &h.ServiceTime}, {"connect", e.Connect, &h.Connect}, {"lag", e.Lag, &h.Lag}} {
		if _, err := base64.StdEncoding.DecodeString(p.src); err != nil {
			return Histograms{}, fmt.Errorf("histogram %s: %w", p.name, err)
		}
		d, err := hdrhistogram.Decode(bytes.TrimSpace([]byte(p.src)))
		if err != nil {
			return Histograms{}, fmt.Errorf("decoding histogram %s: %w", p.name, err)
		}
		*p.dst = d
	}
	return h, nil
}

// add adds o's counts to h bucket by bucket, so that h holds what one set
// of histograms that recorded both would. o must have the bounds and
// precision newHistograms gives, or the sum could not be exact.
func (h Histograms) add(o Histograms) error {
	for _, p := range []struct {
		name     string
		dst, src *hdrhistogram.Histogram
	}{{"latency", h.Latency, o.Latency}, {"serviceTime", h.ServiceTime, o.ServiceTime}, {"connect", h.Connect, o.Connect}, {"lag", h.Lag, o.Lag}} {
		if lo, hi, d := p.src.LowestTrackableValue(), p.src.HighestTrackableValue(), p.src.SignificantFigures(); lo != histLowest || hi != histHighest || d != histDigits {
			return fmt.Errorf("histogram %s spans %d to %d ns at %d digits, want %d to %d at %d", p.name, lo, hi, d, int64(histLowest), histHighest, histDigits)
		}
		if dropped := p.dst.Merge(p.src); dropped > 0 {
			return fmt.Errorf("adding histogram %s: %d values out of range", p.name, dropped)
		}
	}
	return nil
}

// WriteJSON writes the histograms, HDR encoded, as one JSON document.
func (h Histograms) WriteJSON(w io.Writer) error {
	e, err := h.Encode()
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(e); err != nil {
		return fmt.Errorf("writing histograms: %w", err)
	}
	return nil
}

// ReadHistograms reads what Histograms.WriteJSON wrote.
func ReadHistograms(r io.Reader) (Histograms, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var e EncodedHistograms
	if err := dec.Decode(&e); err != nil {
		return Histograms{}, fmt.Errorf("reading histograms: %w", err)
	}
	h, err := e.Decode()
	if err != nil {
		return Histograms{}, fmt.Errorf("reading histograms: %w", err)
	}
	return h, nil
}

// us converts nanoseconds to microseconds, rounded to 0.1 µs.
func us(ns float64) float64 { return math.Round(ns/100) / 10 }

// setDistributions sets the latency, service time, connect and lag figures
// from h.
func (s *Summary) setDistributions(h Histograms) {
	s.Latency = latencyOf(h.Latency)
	s.ServiceTime = latencyOf(h.ServiceTime)
	s.Connect = connectOf(h.Connect)
	s.Lag = lagOf(h.Lag)
}

func latencyOf(h *hdrhistogram.Histogram) runs.Latency {
	if h.TotalCount() == 0 {
		return runs.Latency{}
	}
	return runs.Latency{
		MeanUs: us(h.Mean()),
		P50Us:  us(float64(h.ValueAtQuantile(50))),
		P90Us:  us(float64(h.ValueAtQuantile(90))),
		P99Us:  us(float64(h.ValueAtQuantile(99))),
		P999Us: us(float64(h.ValueAtQuantile(99.9))),
		MaxUs:  us(float64(h.Max())),
	}
}

func connectOf(h *hdrhistogram.Histogram) runs.Connect {
	c := runs.Connect{Count: h.TotalCount()}
	if c.Count == 0 {
		return c
	}
	c.P01Us = us(float64(h.ValueAtQuantile(1)))
	c.P50Us = us(float64(h.ValueAtQuantile(50)))
	c.P90Us = us(float64(h.ValueAtQuantile(90)))
	c.P99Us = us(float64(h.ValueAtQuantile(99)))
	return c
}

func lagOf(h *hdrhistogram.Histogram) runs.Lag {
	if h.TotalCount() == 0 {
		return runs.Lag{}
	}
	return runs.Lag{
		P50Us: us(float64(h.ValueAtQuantile(50))),
		P99Us: us(float64(h.ValueAtQuantile(99))),
		MaxUs: us(float64(h.Max())),
	}
}

// Validity thresholds (DESIGN.md: a point is valid when the client held its
// rate, errors stayed rare and no send waited for a worker).
const (
	MinAchievedFraction = 0.99
	MaxErrorFraction    = 0.001
)

// Schedule bounds. Every late send is charged to the dataplane as latency
// (latency counts from the intended send time), so a client that fell
// behind its schedule reports its own delay as the Service's.
//
//   - SendLagBound: no send may start later than 0.4% of the window
//     (SendLagShare), and never less than 20 ms (MinSendLag): 20 ms in
//     quick's 5 s window, 40 ms in a 10 s one. A longer gap is a client
//     stall (the process descheduled, a GC pause, a CPU taken by
//     something else), not scheduler jitter. Measured on the lab's runs
//     of 2026-12-06 (107 points of 5 s windows, docs/loadgen.md gives the
//     command): the latest send of any point was 14.7 ms late, the 99th
//     percentile of the per-point maxima 11.2 ms. A stall of S at rate R
//     delays S×R requests, S/window of them: 0.4% keeps it off p99 and
//     below. The share grows the bound with the window because the
//     largest of more sends is larger: the reference run's 10 s windows
//     on a busy machine reached 51 ms.
//   - MaxMedianLag: the median send may not be more than 1 ms late. Then
//     the client is behind throughout, catching up in bursts (which keeps
//     the achieved rate near the target while every figure is shifted).
//     The reference run's median lag was 68–112 µs.
//
// BehindSchedule (lag p99 above 1 ms or a tenth of the interval) is a
// warning for `kpbench load`: on a loaded 2-core machine it fires on most
// points (the reference run's lag p99 was 0.3–3.2 ms) without the figures
// being the client's.
const (
	SendLagShare = 0.004
	MinSendLag   = 20 * time.Millisecond
	MaxMedianLag = time.Millisecond
)

// SendLagBound is how late a send may start in a window of the given
// length before the run is invalid: SendLagShare of it, at least
// MinSendLag.
func SendLagBound(window time.Duration) time.Duration {
	return max(MinSendLag, time.Duration(SendLagShare*float64(window)))
}

// judge sets Valid and InvalidReasons from the numbers.
func (s *Summary) judge(interrupted bool) {
	s.InvalidReasons = nil
	if s.AchievedRate < MinAchievedFraction*s.TargetRate {
		s.InvalidReasons = append(s.InvalidReasons, fmt.Sprintf("%s: %.1f of %g req/s", runs.ReasonRateShort, s.AchievedRate, s.TargetRate))
	}
	if s.Requests > 0 && float64(s.Errors.Total) > MaxErrorFraction*float64(s.Requests) {
		s.InvalidReasons = append(s.InvalidReasons, fmt.Sprintf("%s: %d of %d requests failed", runs.ReasonErrors, s.Errors.Total, s.Requests))
	}
	bound := SendLagBound(time.Duration(s.DurationSeconds * float64(time.Second)))
	if s.Lag.MaxUs > float64(bound.Microseconds()) {
		of := ""
		if s.DurationSeconds > 0 {
			of = fmt.Sprintf(", %.1f%% of the %gs window", 100*bound.Seconds()/s.DurationSeconds, s.DurationSeconds)
		}
		s.InvalidReasons = append(s.InvalidReasons, fmt.Sprintf("%s: a send started %.1f ms late (bound %v%s: the client stalled, and its stall counts as latency)",
			runs.ReasonScheduleBehind, s.Lag.MaxUs/1000, bound, of))
	}
	if medUs := float64(MaxMedianLag.Microseconds()); s.Lag.P50Us > medUs {
		s.InvalidReasons = append(s.InvalidReasons, fmt.Sprintf("%s: the median send started %.1f ms late (bound %v: the client could not keep its schedule)",
			runs.ReasonScheduleBehind, s.Lag.P50Us/1000, MaxMedianLag))
	}
	if s.InflightBoundHits > 0 {
		s.InvalidReasons = append(s.InvalidReasons, fmt.Sprintf("%s: %d sends waited for one of %d workers", runs.ReasonInflightBound, s.InflightBoundHits, s.MaxInflight))
	}
	if s.NotSent > 0 {
		s.InvalidReasons = append(s.InvalidReasons, fmt.Sprintf("%s: %d of %d requests due, %.3fs behind schedule", runs.ReasonNotSent, s.NotSent, s.NotSent+s.Requests, s.BehindSeconds))
	}
	if s.Aborted {
		s.InvalidReasons = append(s.InvalidReasons, runs.ReasonAborted)
	}
	if interrupted {
		s.InvalidReasons = append(s.InvalidReasons, runs.ReasonInterrupted)
	}
	s.Valid = len(s.InvalidReasons) == 0
}

// interrupted reports whether the run was cut short by a signal.
func (s *Summary) interrupted() bool {
	for _, r := range s.InvalidReasons {
		if r == runs.ReasonInterrupted {
			return true
		}
	}
	return false
}

// BehindSchedule reports whether sends started late enough to matter: lag
// p99 above a millisecond or above a tenth of the interval between sends.
func (s *Summary) BehindSchedule() bool {
	if s.TargetRate <= 0 {
		return false
	}
	intervalUs := 1e6 / s.TargetRate
	return s.Lag.P99Us > 1000 || s.Lag.P99Us > max(intervalUs/10, 100)
}

// schemaVersion is written in every loadgen document.
const schemaVersion = runs.SchemaVersion
