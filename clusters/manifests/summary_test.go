package manifests

import (
	"math/rand/v2"
	"strings"
	"testing"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

func TestMergeEncodedHistogramsIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	all := hdrhistogram.New(1, 60_000_000, 3)
	var parts [][]byte
	for c := 0; c < 3; c++ {
		h := hdrhistogram.New(1, 60_000_000, 3)
		for i := 0; i < 5000; i++ {
			// Each client sees a different latency regime, so a merge
			// that averaged percentiles would be visibly wrong.
			v := int64(50*(c+1)) + rng.Int64N(int64(200*(c+1)))
			if err := h.RecordValue(v); err != nil {
				t.Fatal(err)
			}
			if err := all.RecordValue(v); err != nil {
				t.Fatal(err)
			}
		}
		enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, enc)
	}
	merged, err := MergeEncodedHistograms(parts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := hdrhistogram.Decode(merged)
	if err != nil {
		t.Fatal(err)
	}
	if got.TotalCount() != all.TotalCount() {
		t.Errorf("count = %d, want %d", got.TotalCount(), all.TotalCount())
	}
	for _, q := range []float64{1, 50, 90, 99, 99.9, 100} {
		if g, w := got.ValueAtQuantile(q), all.ValueAtQuantile(q); g != w {
			t.Errorf("p%v = %d, want %d", q, g, w)
		}
	}

	snaps := make([]*hdrhistogram.Snapshot, 0, len(parts))
	for _, p := range parts {
		h, _ := hdrhistogram.Decode(p)
		snaps = append(snaps, h.Export())
	}
	viaSnaps, err := SumSnapshots(snaps)
	if err != nil {
		t.Fatal(err)
	}
	if viaSnaps.ValueAtQuantile(99) != all.ValueAtQuantile(99) || viaSnaps.TotalCount() != all.TotalCount() {
		t.Error("snapshot merge differs from recording everything in one histogram")
	}
}

func TestMergeHistogramErrors(t *testing.T) {
	tests := []struct {
		name string
		run  func() error
		want string
	}{
		{name: "none", run: func() error { _, err := MergeEncodedHistograms(nil); return err }, want: "no histograms"},
		{name: "garbage", run: func() error { _, err := MergeEncodedHistograms([][]byte{[]byte("nope")}); return err }, want: "decoding histogram 0"},
		{name: "nil snapshot", run: func() error { _, err := SumSnapshots([]*hdrhistogram.Snapshot{nil}); return err }, want: "missing"},
		{name: "out of range", run: func() error {
			small := hdrhistogram.New(1, 1000, 2)
			big := hdrhistogram.New(1, 10_000_000, 2)
			_ = big.RecordValue(5_000_000)
			_, err := SumSnapshots([]*hdrhistogram.Snapshot{small.Export(), big.Export()})
			return err
		}, want: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// BenchmarkMergeEncodedHistograms merges the latency histograms of 8
// clients of a 1,000 req/s × 60 s window (60,000 values each).
func BenchmarkMergeEncodedHistograms(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	parts := make([][]byte, 8)
	for c := range parts {
		h := hdrhistogram.New(1, 60_000_000, 3)
		for i := 0; i < 60_000; i++ {
			_ = h.RecordValue(100 + rng.Int64N(5_000))
		}
		enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
		if err != nil {
			b.Fatal(err)
		}
		parts[c] = enc
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := MergeEncodedHistograms(parts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSummary reads a summary from the end of a 1 MB pod log.
func BenchmarkParseSummary(b *testing.B) {
	var log []byte
	for len(log) < 1<<20 {
		log = append(log, "time=2026-11-22T02:00:00Z level=INFO msg=progress sent=1000 errors=0\n"...)
	}
	log = append(log, `{"requests": 60000, "latency": {"p50Us": 180}}`+"\n"...)
	b.SetBytes(int64(len(log)))
	for b.Loop() {
		if _, err := ParseSummary(log); err != nil {
			b.Fatal(err)
		}
	}
}
