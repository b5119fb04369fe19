package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/kpbench/kpbench/runs"
)

// loadClient describes one load client's run for the merge tests.
type loadClient struct {
	seed       uint64
	ok         int   // successful requests
	loNs, hiNs int64 // their latencies, uniform in [loNs, hiNs)
	errs       map[string]int64
	target     float64
	achieved   float64
	cpu        float64
	boundHits  int64
	interrupt  bool
	rpc        int
	startedAt  time.Time
	duration   float64
	urls       []string
}

var start0 = time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)

// steady is a client of 10,000 successful requests at 1,000 of 1,000 req/s.
func steady(seed uint64, lo, hi int64) loadClient {
	return loadClient{seed: seed, ok: 10000, loNs: lo, hiNs: hi, target: 1000, achieved: 1000, cpu: 0.1, rpc: 1,
		startedAt: start0, duration: 10, urls: []string{"http://198.19.0.10/"}}
}

// record records c's requests into its own histograms and into all (the
// one client that saw everything), then builds its summary as the runner
// does: the same figures from the histograms, the same judgement, the
// histograms embedded as `kpbench load --embed-histograms` embeds them.
func (c loadClient) record(t *testing.T, all Histograms) (json.RawMessage, *Summary) {
	t.Helper()
	h := newHistograms()
	rng := rand.New(rand.NewPCG(c.seed, 7))
	for range c.ok {
		v := c.loNs + rng.Int64N(c.hiNs-c.loNs)
		for _, h := range []Histograms{h, all} {
			record(h.Latency, v)
			record(h.ServiceTime, v*3/4)
			record(h.Connect, v/4)
			record(h.Lag, v/200) // sends on schedule: well within the lag bounds
		}
	}
	s := Summary{
		SchemaVersion: schemaVersion, TargetRate: c.target, AchievedRate: c.achieved,
		Requests: int64(c.ok), ClientCPUCores: c.cpu, DurationSeconds: c.duration, RequestsPerConn: c.rpc,
		URLs: c.urls, StartedAt: c.startedAt, MaxInflight: 1000, PeakInflight: 5, Workers: 6,
		InflightBoundHits: c.boundHits, Warmup: Warmup{Seconds: 1, Requests: 1000, Errors: 1},
	}
	for k, n := range c.errs {
		if s.Errors.ByKind == nil {
			s.Errors.ByKind = map[string]int64{}
		}
		s.Errors.ByKind[k] += n
		s.Errors.Total += n
		s.Requests += n
		for range n {
			record(h.Lag, 1000) // a failed request has a lag, no latency
			record(all.Lag, 1000)
		}
	}
	s.setDistributions(h)
	s.judge(c.interrupt)
	var err error
	if s.Histograms, err = h.Encode(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), &s
}

func mergeOf(t *testing.T, parts ...json.RawMessage) *Summary {
	t.Helper()
	raw, err := MergeSummaries(parts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ReadSummary(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("merged summary does not read back: %v\n%s", err, raw)
	}
	return s
}

func TestMergeSummaries(t *testing.T) {
	short := steady(3, 150_000, 400_000)
	short.achieved = 985
	late := steady(4, 90_000, 200_000)
	late.startedAt = start0.Add(-2 * time.Second)
	late.duration = 12
	late.urls = []string{"http://198.19.0.11/", "http://198.19.0.10/"}
	withErrs := func(c loadClient, n int64) loadClient {
		c.errs = map[string]int64{"connect_refused": n - 1, "http_503": 1}
		c.ok -= int(n)
		return c
	}
	interrupted := steady(5, 100_000, 200_000)
	interrupted.interrupt = true
	bound := steady(6, 100_000, 200_000)
	bound.boundHits = 3
	half := steady(7, 100_000, 200_000)
	half.achieved = 900

	tests := []struct {
		name    string
		clients []loadClient
		// wantReasons are the merged judgement's reason prefixes;
		// wantClient the clients' own reasons, carried with their prefix.
		wantReasons []string
		wantClient  []string
	}{
		{name: "two latency regimes", clients: []loadClient{steady(1, 100_000, 300_000), steady(2, 1_000_000, 5_000_000)}},
		{name: "three clients, urls and start", clients: []loadClient{steady(1, 100_000, 300_000), late, steady(2, 50_000, 80_000_000)}},
		{name: "one client over its error threshold, the merge under it",
			clients:    []loadClient{steady(1, 100_000, 300_000), withErrs(steady(2, 100_000, 300_000), 15)},
			wantClient: []string{"client 1: " + runs.ReasonErrors + ": 15 of 10000 requests failed"}},
		{name: "errors over the threshold in the merge too",
			clients:     []loadClient{steady(1, 100_000, 300_000), withErrs(steady(2, 100_000, 300_000), 25)},
			wantReasons: []string{runs.ReasonErrors + ": 25 of 20000 requests failed"},
			wantClient:  []string{"client 1: " + runs.ReasonErrors + ": 25 of 10000 requests failed"}},
		{name: "one client short of its rate, the merge within 1%",
			clients:    []loadClient{steady(1, 100_000, 300_000), steady(2, 100_000, 300_000), short},
			wantClient: []string{"client 2: " + runs.ReasonRateShort + ": 985.0 of 1000 req/s"}},
		{name: "one client far short of its rate",
			clients:     []loadClient{half, steady(1, 100_000, 300_000)},
			wantReasons: []string{runs.ReasonRateShort + ": 1900.0 of 2000 req/s"},
			wantClient:  []string{"client 0: " + runs.ReasonRateShort + ": 900.0 of 1000 req/s"}},
		{name: "an interrupted client invalidates the merge",
			clients:     []loadClient{steady(1, 100_000, 300_000), interrupted},
			wantReasons: []string{runs.ReasonInterrupted},
			wantClient:  []string{"client 1: " + runs.ReasonInterrupted}},
		{name: "inflight bound hits add up",
			clients:     []loadClient{steady(1, 100_000, 300_000), bound},
			wantReasons: []string{runs.ReasonInflightBound + ": 3 sends waited for one of 2000 workers"},
			wantClient:  []string{"client 1: " + runs.ReasonInflightBound + ": 3 sends waited for one of 1000 workers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := newHistograms()
			var parts []json.RawMessage
			var sums []*Summary
			for _, c := range tt.clients {
				raw, s := c.record(t, all)
				parts = append(parts, raw)
				sums = append(sums, s)
			}
			got := mergeOf(t, parts...)

			// Percentiles are those of one histogram that recorded
			// every client's requests.
			var want Summary
			want.setDistributions(all)
			if got.Latency != want.Latency || got.ServiceTime != want.ServiceTime || got.Connect != want.Connect || got.Lag != want.Lag {
				t.Errorf("merged distributions\n%+v %+v %+v %+v\nwant (one histogram)\n%+v %+v %+v %+v",
					got.Latency, got.ServiceTime, got.Connect, got.Lag, want.Latency, want.ServiceTime, want.Connect, want.Lag)
			}
			if all.Latency.ValueAtQuantile(99) == 0 || got.Latency.P99Us != us(float64(all.Latency.ValueAtQuantile(99))) ||
				got.Latency.MaxUs != us(float64(all.Latency.Max())) {
				t.Errorf("p99 %.1f µs, max %.1f µs; want %d and %d ns", got.Latency.P99Us, got.Latency.MaxUs,
					all.Latency.ValueAtQuantile(99), all.Latency.Max())
			}
			if got.Histograms == nil {
				t.Fatal("the merge embeds no histograms")
			}
			h, err := got.Histograms.Decode()
			if err != nil {
				t.Fatal(err)
			}
			if !h.Latency.Equals(all.Latency) || !h.ServiceTime.Equals(all.ServiceTime) || !h.Connect.Equals(all.Connect) || !h.Lag.Equals(all.Lag) {
				t.Error("embedded histograms differ from one histogram that recorded everything")
			}

			// Counts and rates add up; the window is the longest, the
			// start the earliest.
			var (
				target, achieved, cpu  float64
				requests, errs, warmup int64
				kinds                  = map[string]int64{}
				dur                    float64
				start                  = sums[0].StartedAt
				urls                   []string
			)
			for _, s := range sums {
				target += s.TargetRate
				achieved += s.AchievedRate
				cpu += s.ClientCPUCores
				requests += s.Requests
				errs += s.Errors.Total
				warmup += s.Warmup.Requests
				for k, n := range s.Errors.ByKind {
					kinds[k] += n
				}
				dur = max(dur, s.DurationSeconds)
				if s.StartedAt.Before(start) {
					start = s.StartedAt
				}
				for _, u := range s.URLs {
					if !slices.Contains(urls, u) {
						urls = append(urls, u)
					}
				}
			}
			if got.TargetRate != target || got.AchievedRate != achieved || got.ClientCPUCores != cpu {
				t.Errorf("rates %g/%g cpu %g, want %g/%g cpu %g", got.TargetRate, got.AchievedRate, got.ClientCPUCores, target, achieved, cpu)
			}
			if got.Requests != requests || got.Errors.Total != errs || got.Warmup.Requests != warmup || got.Warmup.Errors != int64(len(sums)) {
				t.Errorf("requests %d errors %d warm-up %+v; want %d, %d, %d", got.Requests, got.Errors.Total, got.Warmup, requests, errs, warmup)
			}
			if len(kinds) == 0 {
				kinds = nil
			}
			if !reflect.DeepEqual(got.Errors.ByKind, kinds) {
				t.Errorf("errors by kind %v, want %v", got.Errors.ByKind, kinds)
			}
			if got.DurationSeconds != dur || !got.StartedAt.Equal(start) || !reflect.DeepEqual(got.URLs, urls) {
				t.Errorf("duration %g start %v urls %q; want %g, %v, %q", got.DurationSeconds, got.StartedAt, got.URLs, dur, start, urls)
			}
			n := len(sums)
			if got.MaxInflight != 1000*n || got.PeakInflight != 5*n || got.Workers != 6*n || got.RequestsPerConn != 1 {
				t.Errorf("maxInflight %d peak %d workers %d rpc %d", got.MaxInflight, got.PeakInflight, got.Workers, got.RequestsPerConn)
			}

			if got.Valid != (len(tt.wantReasons) == 0) || len(got.InvalidReasons) != len(tt.wantReasons) {
				t.Fatalf("valid %v, reasons %q; want %q", got.Valid, got.InvalidReasons, tt.wantReasons)
			}
			for i, r := range tt.wantReasons {
				if !strings.HasPrefix(got.InvalidReasons[i], r) {
					t.Errorf("reason %q, want %q", got.InvalidReasons[i], r)
				}
			}
			if !reflect.DeepEqual(got.ClientInvalidReasons, tt.wantClient) {
				t.Errorf("client reasons %q, want %q", got.ClientInvalidReasons, tt.wantClient)
			}
		})
	}
}

func TestMergeSummariesRejects(t *testing.T) {
	all := newHistograms()
	good, _ := steady(1, 100_000, 200_000).record(t, all)
	other := steady(2, 100_000, 200_000)
	other.rpc = 0
	persistent, _ := other.record(t, all)
	noHist := dropHistograms(t, good)
	var s Summary
	if err := json.Unmarshal(good, &s); err != nil {
		t.Fatal(err)
	}
	s.Histograms.Latency = "bm90IGEgaGlzdG9ncmFt" // base64, not a histogram
	corrupt, _ := json.Marshal(&s)
	s.Histograms.Latency, s.Histograms.Unit = "", "ms"
	ms, _ := json.Marshal(&s)
	coarse := newHistograms()
	coarse.Latency = hdrhistogram.New(1, 1_000_000, 2)
	enc, err := coarse.Encode()
	if err != nil {
		t.Fatal(err)
	}
	s.Histograms = enc
	otherBounds, _ := json.Marshal(&s)
	future := bytes.Replace(good, []byte(`"schemaVersion": 1,`), []byte(`"schemaVersion": 2,`), 1)
	batched := bytes.Replace(good, []byte(`"tickSeconds": 0,`), []byte(`"tickSeconds": 0.001,`), 1)
	if bytes.Equal(batched, good) {
		t.Fatal("the summary fixture has no tickSeconds")
	}

	tests := []struct {
		name   string
		parts  []json.RawMessage
		want   string
		wantIs error
	}{
		{name: "nothing", parts: nil, want: "no summaries"},
		{name: "no histograms", parts: []json.RawMessage{good, noHist},
			want: "client 1: summary has no histograms; run kpbench load with --embed-histograms"},
		{name: "requests per connection differ", parts: []json.RawMessage{good, persistent},
			want: "client 1: requestsPerConn 0, client 0 has 1"},
		{name: "ticks differ", parts: []json.RawMessage{good, batched},
			want: "client 1: tickSeconds 0.001, client 0 has 0"},
		{name: "schema version differs", parts: []json.RawMessage{good, future}, want: "client 1:", wantIs: ErrSchemaVersion},
		{name: "corrupt histogram", parts: []json.RawMessage{corrupt, good}, want: "client 0: histograms: decoding histogram latency"},
		{name: "histograms in another unit", parts: []json.RawMessage{good, ms}, want: `client 1: histograms: unit "ms", want ns`},
		{name: "histograms of other bounds", parts: []json.RawMessage{good, otherBounds},
			want: "client 1: histogram latency spans 1 to 1000000 ns at 2 digits, want 1 to 100000000000 at 3"},
		{name: "not a summary", parts: []json.RawMessage{good, []byte(`{"schemaVersion": 1, "p99": 3}`)}, want: "client 1: reading summary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := MergeSummaries(tt.parts)
			if err == nil {
				t.Fatalf("merged: %s", out)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want %v", err, tt.wantIs)
			}
		})
	}
}

func dropHistograms(t *testing.T, raw json.RawMessage) json.RawMessage {
	t.Helper()
	s, err := ReadSummary(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	s.Histograms = nil
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMergeSummariesComposes(t *testing.T) {
	all := newHistograms()
	a, _ := steady(1, 100_000, 300_000).record(t, all)
	bc := steady(2, 1_000_000, 3_000_000)
	bc.errs = map[string]int64{"reset": 20}
	bc.startedAt = start0.Add(time.Second)
	b, _ := bc.record(t, all)
	cc := steady(3, 50_000, 9_000_000)
	cc.urls = []string{"http://198.19.0.12/"}
	cc.achieved = 950
	c, _ := cc.record(t, all)

	ab, err := MergeSummaries([]json.RawMessage{a, b})
	if err != nil {
		t.Fatal(err)
	}
	nested := mergeOf(t, ab, c)
	flat := mergeOf(t, a, b, c)

	// The clients' own reasons nest their prefixes; the leaf reasons are
	// the same.
	if len(flat.ClientInvalidReasons) != 2 {
		t.Fatalf("client reasons %q, want clients 1 and 2's", flat.ClientInvalidReasons)
	}
	for i, want := range []string{"client 1: ", "client 2: "} {
		leaf, ok := strings.CutPrefix(flat.ClientInvalidReasons[i], want)
		if !ok || !strings.Contains(strings.Join(nested.ClientInvalidReasons, "\n"), leaf) {
			t.Errorf("nested merge lost %q: %q", flat.ClientInvalidReasons[i], nested.ClientInvalidReasons)
		}
	}
	nested.ClientInvalidReasons, flat.ClientInvalidReasons = nil, nil
	if !reflect.DeepEqual(nested, flat) {
		t.Errorf("merge of merges\n%+v\nwant the 3-way merge\n%+v", nested, flat)
	}
	var want Summary
	want.setDistributions(all)
	if flat.Latency != want.Latency {
		t.Errorf("latency %+v, want %+v", flat.Latency, want.Latency)
	}
}

func TestMergeSummariesOnePart(t *testing.T) {
	// One part needs no histograms: it is returned as it is.
	raw, err := os.ReadFile(filepath.Join("testdata", "summary-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReadSummary(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := mergeOf(t, raw); !reflect.DeepEqual(got, want) {
		t.Errorf("one part came back as\n%+v\nwant\n%+v", got, want)
	}
}

func TestMergeSummariesTargetConnects(t *testing.T) {
	all := newHistograms()
	a, b := steady(1, 100_000, 200_000), steady(2, 100_000, 200_000)
	a.urls = []string{"http://198.19.0.10/", "http://198.19.0.11/"}
	b.urls = []string{"http://198.19.0.11/", "http://198.19.0.12/"}
	_, sa := a.record(t, all)
	_, sb := b.record(t, all)
	sa.TargetConnects, sb.TargetConnects = []int64{4, 6}, []int64{5, 7}
	enc := func(s *Summary) json.RawMessage {
		var buf bytes.Buffer
		if err := s.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	got := mergeOf(t, enc(sa), enc(sb))
	if want := []int64{4, 11, 7}; !reflect.DeepEqual(got.TargetConnects, want) || len(got.URLs) != 3 {
		t.Errorf("urls %q targetConnects %v, want the union with %v", got.URLs, got.TargetConnects, want)
	}
}
