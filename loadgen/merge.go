package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kpbench/kpbench/runs"
)

// MergeSummaries folds the JSON summaries of load clients that ran one
// window at the same time into one summary, as if a single client had sent
// every request. It is the one merge of load summaries: the engine's
// in-cluster load (sweep.ClusterLoad) folds its clients with it.
//
// Every part is decoded with ReadSummary. With more than one part each must
// embed its histograms (`kpbench load --embed-histograms`), carry the same
// schemaVersion and the same requestsPerConn. Client N in errors and
// reasons is the part's index in parts.
//
// The histograms are added bucket by bucket, so latency, service time,
// connect and lag are read from the sums exactly as one client's summary
// reads them from its own; the merged summary embeds the sums, so merges
// compose. Rates, requests, errors (each kind), client CPU, in-flight
// figures, workers, inflight bound hits and warm-up requests and errors
// are summed (the clients ran concurrently); durationSeconds and the
// warm-up's seconds are the longest, startedAt the earliest, urls the union
// in first-seen order with the connections to each summed
// (targetConnects). Validity is judged over the merged numbers as for
// one client (and an interrupted client makes the merge invalid); every
// client's own reasons are kept in clientInvalidReasons.
//
// One part is returned re-encoded, its meaning unchanged.
func MergeSummaries(parts []json.RawMessage) (json.RawMessage, error) {
	if len(parts) == 0 {
		return nil, errors.New("merging load summaries: no summaries")
	}
	sums := make([]*Summary, len(parts))
	for i, p := range parts {
		s, err := ReadSummary(bytes.NewReader(p))
		if err != nil {
			return nil, fmt.Errorf("client %d: %w", i, err)
		}
		sums[i] = s
	}
	out := sums[0]
	if len(sums) > 1 {
		var err error
		if out, err = merge(sums); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encoding merged summary: %w", err)
	}
	return b, nil
}

// merge folds parts (at least one) into a new summary; see MergeSummaries.
func merge(parts []*Summary) (*Summary, error) {
	first := parts[0]
	out := &Summary{SchemaVersion: first.SchemaVersion, RequestsPerConn: first.RequestsPerConn, TickSeconds: first.TickSeconds}
	hist := newHistograms()
	byKind := map[string]int64{}
	seenURL := map[string]bool{}
	connects := map[string]int64{}
	interrupted := false
	for i, p := range parts {
		if p.SchemaVersion != first.SchemaVersion {
			return nil, fmt.Errorf("client %d: schemaVersion %d, client 0 has %d", i, p.SchemaVersion, first.SchemaVersion)
		}
		if p.RequestsPerConn != first.RequestsPerConn {
			return nil, fmt.Errorf("client %d: requestsPerConn %d, client 0 has %d; the clients of one window must run alike", i, p.RequestsPerConn, first.RequestsPerConn)
		}
		if p.TickSeconds != first.TickSeconds {
			return nil, fmt.Errorf("client %d: tickSeconds %g, client 0 has %g; the clients of one window must run alike", i, p.TickSeconds, first.TickSeconds)
		}
		if p.Histograms == nil {
			return nil, fmt.Errorf("client %d: summary has no histograms; run kpbench load with --embed-histograms", i)
		}
		h, err := p.Histograms.Decode()
		if err != nil {
			return nil, fmt.Errorf("client %d: histograms: %w", i, err)
		}
		if err := hist.add(h); err != nil {
			return nil, fmt.Errorf("client %d: %w", i, err)
		}

		out.TargetRate += p.TargetRate
		out.AchievedRate += p.AchievedRate
		out.SentRate += p.SentRate
		out.Requests += p.Requests
		out.Answered += p.Answered
		out.NotSent += p.NotSent
		out.BehindSeconds = max(out.BehindSeconds, p.BehindSeconds)
		out.Aborted = out.Aborted || p.Aborted
		out.MeasuredSeconds = max(out.MeasuredSeconds, p.MeasuredSeconds)
		out.Errors.Total += p.Errors.Total
		for k, n := range p.Errors.ByKind {
			byKind[k] += n
		}
		out.ClientCPUCores += p.ClientCPUCores
		out.DurationSeconds = max(out.DurationSeconds, p.DurationSeconds)
		if i == 0 || p.StartedAt.Before(out.StartedAt) {
			out.StartedAt = p.StartedAt
		}
		for j, u := range p.URLs {
			if j < len(p.TargetConnects) {
				connects[u] += p.TargetConnects[j]
			}
			if !seenURL[u] {
				seenURL[u] = true
				out.URLs = append(out.URLs, u)
			}
		}
		out.MaxInflight += p.MaxInflight
		out.PeakInflight += p.PeakInflight
		out.Workers += p.Workers
		out.InflightBoundHits += p.InflightBoundHits
		out.Warmup.Seconds = max(out.Warmup.Seconds, p.Warmup.Seconds)
		out.Warmup.Requests += p.Warmup.Requests
		out.Warmup.Errors += p.Warmup.Errors
		out.Warmup.NotSent += p.Warmup.NotSent

		for _, r := range p.InvalidReasons {
			// An interrupted client's numbers stop short; the merged
			// numbers cannot show it, so it carries.
			if r == runs.ReasonInterrupted {
				interrupted = true
			}
			out.ClientInvalidReasons = append(out.ClientInvalidReasons, fmt.Sprintf("client %d: %s", i, r))
		}
		for _, r := range p.ClientInvalidReasons {
			out.ClientInvalidReasons = append(out.ClientInvalidReasons, fmt.Sprintf("client %d: %s", i, r))
		}
	}
	if len(byKind) > 0 {
		out.Errors.ByKind = byKind
	}
	if len(connects) > 0 {
		out.TargetConnects = make([]int64, len(out.URLs))
		for i, u := range out.URLs {
			out.TargetConnects[i] = connects[u]
		}
	}
	out.setDistributions(hist)
	out.judge(interrupted)
	enc, err := hist.Encode()
	if err != nil {
		return nil, fmt.Errorf("encoding merged histograms: %w", err)
	}
	out.Histograms = enc
	return out, nil
}
