package manifests_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/manifests"
	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/runs"
)

// TestMergeLoadWithTheLoadGeneratorsMerger follows two clients' summaries
// from their pod logs through MergeLoad with loadgen's merger.
func TestMergeLoadWithTheLoadGeneratorsMerger(t *testing.T) {
	// loadgen's histograms: 1 ns to 100 s at 3 significant digits.
	newHist := func() *hdrhistogram.Histogram { return hdrhistogram.New(1, int64(100*time.Second), 3) }
	all := newHist()
	var results []clusters.LoadResult
	for i, span := range []int64{200_000, 3_000_000} {
		h := loadgen.Histograms{Latency: newHist(), ServiceTime: newHist(), Connect: newHist(), Lag: newHist()}
		for v := int64(1); v <= 5000; v++ {
			ns := 50_000 + v*span/5000
			for _, dst := range []*hdrhistogram.Histogram{h.Latency, h.ServiceTime, all} {
				if err := dst.RecordValue(ns); err != nil {
					t.Fatal(err)
				}
			}
			_ = h.Lag.RecordValue(1000)
		}
		s := loadgen.Summary{SchemaVersion: runs.SchemaVersion, TargetRate: 500, AchievedRate: 500, Requests: 5000,
			RequestsPerConn: 1, DurationSeconds: 10, Valid: true}
		var err error
		if s.Histograms, err = h.Encode(); err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		log.WriteString("time=x level=INFO msg=start\n")
		if err := s.WriteJSON(&log); err != nil {
			t.Fatal(err)
		}
		log.WriteString("time=x level=INFO msg=done\n")
		summary, err := manifests.ParseSummary(log.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, clusters.LoadResult{Client: i, Summary: summary})
	}

	merged, err := manifests.MergeLoad(manifests.SummaryMergerFunc(loadgen.MergeSummaries), summaries(results))
	if err != nil {
		t.Fatal(err)
	}
	s, err := loadgen.ReadSummary(bytes.NewReader(merged))
	if err != nil {
		t.Fatal(err)
	}
	us := func(ns int64) float64 { return math.Round(float64(ns)/100) / 10 }
	if s.Requests != 10000 || s.TargetRate != 1000 || !s.Valid {
		t.Errorf("merged %d requests at %g req/s, valid %v", s.Requests, s.TargetRate, s.Valid)
	}
	if s.Latency.P50Us != us(all.ValueAtQuantile(50)) || s.Latency.P99Us != us(all.ValueAtQuantile(99)) || s.Latency.MaxUs != us(all.Max()) {
		t.Errorf("merged latency %+v, want p50 %d p99 %d max %d ns", s.Latency, all.ValueAtQuantile(50), all.ValueAtQuantile(99), all.Max())
	}

	// A client that did not embed its histograms cannot be merged.
	bare, err := loadgen.ReadSummary(bytes.NewReader(results[1].Summary))
	if err != nil {
		t.Fatal(err)
	}
	bare.Histograms = nil
	var buf bytes.Buffer
	if err := bare.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	results[1].Summary = buf.Bytes()
	_, err = manifests.MergeLoad(manifests.SummaryMergerFunc(loadgen.MergeSummaries), summaries(results))
	if err == nil || !strings.Contains(err.Error(), "merging 2 load clients: client 1: summary has no histograms") {
		t.Errorf("err = %v, want client 1's missing histograms", err)
	}
}

func summaries(results []clusters.LoadResult) []json.RawMessage {
	out := make([]json.RawMessage, len(results))
	for i, r := range results {
		out[i] = r.Summary
	}
	return out
}

func TestMergeLoadOfOneOrNone(t *testing.T) {
	one := json.RawMessage(`{"requests":7}`)
	if got, err := manifests.MergeLoad(nil, []json.RawMessage{one}); err != nil || string(got) != string(one) {
		t.Errorf("one client: %s, %v; want it as it is, without a merger", got, err)
	}
	if _, err := manifests.MergeLoad(nil, nil); err == nil {
		t.Error("no clients merged without error")
	}
	if _, err := manifests.MergeLoad(nil, []json.RawMessage{one, one}); err == nil || !strings.Contains(err.Error(), "no merger") {
		t.Errorf("two clients without a merger: %v", err)
	}
}
