package manifests

import "testing"

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
