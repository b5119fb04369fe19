package manifests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// ErrNoSummary is returned when a load client's log holds no JSON summary
// (the client crashed, or was killed before it finished).
var ErrNoSummary = errors.New("no JSON summary in the load client's log")

// ParseSummary returns the load client's JSON summary from its pod log.
// The log interleaves stdout (the summary, compact or indented) with
// stderr (log records, text or JSON), so it returns the last top-level JSON
// object that is not a log record (one with "level" and "msg" keys).
func ParseSummary(log []byte) (json.RawMessage, error) {
	var last json.RawMessage
	rest := log
	for len(rest) > 0 {
		line, next, _ := bytes.Cut(rest, []byte("\n"))
		trimmed := bytes.TrimLeft(line, " \t\r")
		if len(trimmed) == 0 || trimmed[0] != '{' {
			rest = next
			continue
		}
		start := len(log) - len(rest) + (len(line) - len(trimmed))
		dec := json.NewDecoder(bytes.NewReader(log[start:]))
		var obj json.RawMessage
		if err := dec.Decode(&obj); err != nil || !isObject(obj) {
			rest = next
			continue
		}
		if !isLogRecord(obj) {
			last = obj
		}
		end := start + int(dec.InputOffset())
		rest = log[end:]
	}
	if last == nil {
		return nil, ErrNoSummary
	}
	return last, nil
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

func isLogRecord(raw json.RawMessage) bool {
	var probe struct {
		Level *json.RawMessage `json:"level"`
		Msg   *json.RawMessage `json:"msg"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return false
	}
	return probe.Level != nil && probe.Msg != nil
}

// SummaryMerger folds the JSON summaries of several load clients of one
// window into one summary. The load generator owns its summary format, so
// it provides the merger; its histograms must be mergeable exactly (HDR
// histograms are: see MergeEncodedHistograms).
type SummaryMerger interface {
	MergeSummaries(parts []json.RawMessage) (json.RawMessage, error)
}

// SummaryMergerFunc adapts a function to SummaryMerger.
type SummaryMergerFunc func(parts []json.RawMessage) (json.RawMessage, error)

// MergeSummaries calls f.
func (f SummaryMergerFunc) MergeSummaries(parts []json.RawMessage) (json.RawMessage, error) {
	return f(parts)
}

// MergeLoad folds the summaries of one window's load clients into one with
// m; a single summary is returned as it is, and needs no merger.
func MergeLoad(m SummaryMerger, parts []json.RawMessage) (json.RawMessage, error) {
	switch {
	case len(parts) == 0:
		return nil, errors.New("no load results to merge")
	case len(parts) == 1:
		return parts[0], nil
	case m == nil:
		return nil, fmt.Errorf("%d load clients but no merger", len(parts))
	}
	out, err := m.MergeSummaries(parts)
	if err != nil {
		return nil, fmt.Errorf("merging %d load clients: %w", len(parts), err)
	}
	return out, nil
}

// MergeEncodedHistograms decodes HDR histograms written by
// hdrhistogram-go's Encode (V2 compressed), adds them up and encodes the
// sum the same way. Counts are added bucket by bucket, so percentiles of
// the sum are those of one histogram that recorded every client's values.
func MergeEncodedHistograms(encoded [][]byte) ([]byte, error) {
	h, err := SumEncodedHistograms(encoded)
	if err != nil {
		return nil, err
	}
	out, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, fmt.Errorf("encoding merged histogram: %w", err)
	}
	return out, nil
}

// SumEncodedHistograms decodes and adds up encoded HDR histograms. Values a
// histogram cannot hold make it an error, never a silent drop.
func SumEncodedHistograms(encoded [][]byte) (*hdrhistogram.Histogram, error) {
	if len(encoded) == 0 {
		return nil, errors.New("no histograms to merge")
	}
	var sum *hdrhistogram.Histogram
	for i, e := range encoded {
		h, err := hdrhistogram.Decode(e)
		if err != nil {
			return nil, fmt.Errorf("decoding histogram %d: %w", i, err)
		}
		if sum == nil {
			sum = h
			continue
		}
		if dropped := sum.Merge(h); dropped > 0 {
			return nil, fmt.Errorf("merging histogram %d: %d values out of range", i, dropped)
		}
	}
	return sum, nil
}

// SumSnapshots adds up histograms exported with Histogram.Export (the
// JSON-friendly form).
func SumSnapshots(snaps []*hdrhistogram.Snapshot) (*hdrhistogram.Histogram, error) {
	if len(snaps) == 0 {
		return nil, errors.New("no histograms to merge")
	}
	var sum *hdrhistogram.Histogram
	for i, s := range snaps {
		if s == nil {
			return nil, fmt.Errorf("histogram %d is missing", i)
		}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("histogram %d: %w", i, err)
		}
		h := hdrhistogram.Import(s)
		if sum == nil {
			sum = h
			continue
		}
		if dropped := sum.Merge(h); dropped > 0 {
			return nil, fmt.Errorf("merging histogram %d: %d values out of range", i, dropped)
		}
	}
	return sum, nil
}
