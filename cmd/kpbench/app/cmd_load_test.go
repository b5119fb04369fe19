package app

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/loadgen/loadgentest"
)

func serveForTest(t *testing.T) (*loadgen.Server, string) {
	return loadgentest.Serve(t, loadgen.ServerConfig{BodyBytes: loadgen.DefaultBodyBytes})
}

func TestLoadCommandWritesJSONTimelineAndHistograms(t *testing.T) {
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	srv, url := serveForTest(t)
	dir := t.TempDir()
	tl, hist := filepath.Join(dir, "timeline.csv"), filepath.Join(dir, "hist.json")
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), nil, &stdout, &stderr, []string{"load", "--rate", "400", "--duration", "1s", "--warmup", "250ms",
		"--requests-per-conn", "1", "--json", "-", "--timeline", tl, "--histograms", hist, url})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	s, err := loadgen.ReadSummary(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests != 400 || s.Warmup.Requests != 100 || s.TargetRate != 400 || s.RequestsPerConn != 1 {
		t.Errorf("summary %+v", s)
	}
	if srv.Connections() != 500 {
		t.Errorf("server saw %d connections, want 500", srv.Connections())
	}
	f, err := os.Open(tl)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, err := loadgen.ReadTimelineCSV(f)
	if err != nil || len(lines) != 1 || lines[0].Sent != 400 {
		t.Errorf("timeline %+v, %v", lines, err)
	}
	hf, err := os.Open(hist)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	h, err := loadgen.ReadHistograms(hf)
	if err != nil {
		t.Fatal(err)
	}
	if h.Connect.TotalCount() != 400 || h.Latency.TotalCount()+s.Errors.Total != 400 {
		t.Errorf("histograms hold %d connects and %d latencies", h.Connect.TotalCount(), h.Latency.TotalCount())
	}
}

func TestLoadCommandEmbedsHistograms(t *testing.T) {
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	_, url := serveForTest(t)
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), nil, &stdout, &stderr, []string{"load", "--rate", "200", "--duration", "1s", "--warmup", "0s",
		"--requests-per-conn", "1", "--embed-histograms", "--json", "-", url})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	raw := stdout.Bytes()
	s, err := loadgen.ReadSummary(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if s.Histograms == nil {
		t.Fatal("summary has no histograms")
	}
	h, err := s.Histograms.Decode()
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests != 200 || s.Errors.Total != 0 {
		t.Fatalf("%d requests, %d errors; want 200 and none on loopback", s.Requests, s.Errors.Total)
	}
	if h.Latency.TotalCount() != s.Requests || h.ServiceTime.TotalCount() != s.Requests || h.Connect.TotalCount() != s.Requests || h.Lag.TotalCount() != s.Requests {
		t.Errorf("histograms hold %d latencies, %d service times, %d connects, %d lags; want %d each",
			h.Latency.TotalCount(), h.ServiceTime.TotalCount(), h.Connect.TotalCount(), h.Lag.TotalCount(), s.Requests)
	}
	// The summary's figures are the embedded histogram's.
	if got := math.Round(float64(h.Latency.Max())/100) / 10; got != s.Latency.MaxUs {
		t.Errorf("embedded latency max %.1f µs, summary says %.1f µs", got, s.Latency.MaxUs)
	}
	// One client's summary goes through the merger unchanged.
	merged, err := loadgen.MergeSummaries([]json.RawMessage{raw})
	if err != nil {
		t.Fatal(err)
	}
	again, err := loadgen.ReadSummary(bytes.NewReader(merged))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, s) {
		t.Errorf("merging one summary changed it:\n%+v\nwant\n%+v", again, s)
	}
}

func TestLoadCommandPrintsTable(t *testing.T) {
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	_, url := serveForTest(t)
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), nil, &stdout, &stderr, []string{"load", "--rate", "200", "--duration", "500ms", "--warmup", "0s", url})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"latency", "service time", "connect", "schedule lag", "100 requests", "req/s achieved", "client CPU"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, stdout.String())
		}
	}
}

func TestLoadCommandRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no URL", []string{"load"}},
		{"zero rate", []string{"load", "--rate", "0", "http://127.0.0.1:1/"}},
		{"https", []string{"load", "https://127.0.0.1/"}},
		{"negative requests per conn", []string{"load", "--requests-per-conn", "-1", "http://127.0.0.1:1/"}},
		{"embedded histograms without JSON", []string{"load", "--embed-histograms", "http://127.0.0.1:1/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Run(context.Background(), nil, &stdout, &stderr, tt.args); code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr.String())
			}
		})
	}
}

func TestLoadCommandInterruptedWritesResultsAndFails(t *testing.T) {
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	_, url := serveForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := Run(ctx, nil, &stdout, &stderr, []string{"load", "--rate", "100", "--duration", "10s", "--warmup", "0s", "--json", "-", url})
	if code != 130 {
		t.Errorf("exit %d, want 130 (stderr %q)", code, stderr.String())
	}
	s, err := loadgen.ReadSummary(&stdout)
	if err != nil {
		t.Fatalf("no summary after the interruption: %v", err)
	}
	if s.Valid || s.Requests == 0 {
		t.Errorf("summary valid %v with %d requests, want invalid with some", s.Valid, s.Requests)
	}
}

// TestLoadUnreachableRateReturnsOnTime is the user's view of the wall-time
// bound: a rate no client reaches returns within a few seconds, invalid,
// saying why and how far behind, with a warning on stderr.
func TestLoadUnreachableRateReturnsOnTime(t *testing.T) {
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	_, url := serveForTest(t)
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := Run(context.Background(), nil, &stdout, &stderr, []string{"--log-format", "human", "load", "--rate", "1e7", "--warmup", "1s", "--duration", "1s", "--fail-invalid", url})
	took := time.Since(start)
	if took > 5*time.Second {
		t.Errorf("load --rate 1e7 --warmup 1s --duration 1s took %v", took)
	}
	if code != ExitFailed {
		t.Errorf("exit %d with --fail-invalid, want 1", code)
	}
	for _, want := range []string{"requests not sent: the client fell", "INVALID: ", "requests not sent: "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "! warning: the client cannot keep this rate") {
		t.Errorf("no early warning on stderr:\n%s", stderr.String())
	}
}

func TestLoadProgressLineAndWarning(t *testing.T) {
	var stderr bytes.Buffer
	g := &globals{stderr: &stderr}
	g.logger, _ = newLogger(&stderr, logHuman, 0)
	v, err := loadProgress(g, "line", false)
	if err != nil {
		t.Fatal(err)
	}
	v.report(loadgen.Progress{Elapsed: time.Second, Warmup: true, Due: 1000, Sent: 1000, Answered: 998, Failed: 1})
	v.report(loadgen.Progress{Elapsed: 2 * time.Second, Due: 20000, Sent: 5000, Answered: 4990, Behind: 1500 * time.Millisecond, IsBehind: true})
	v.report(loadgen.Progress{Elapsed: 3 * time.Second, Due: 30000, Sent: 6000, Behind: 2500 * time.Millisecond, IsBehind: true})
	v.done()
	out := stderr.String()
	for _, want := range []string{
		"\r\033[K1s warm-up: 1000 sent of 1000 due, 998 answered, 1 failed, 0s behind",
		"! warning: the client cannot keep this rate: 1.5s behind its schedule after 2s (5000 of 20000 requests sent)",
		"3s window: 6000 sent of 30000 due",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr lacks %q:\n%q", want, out)
		}
	}
	if strings.Count(out, "cannot keep this rate") != 1 {
		t.Errorf("warned %d times, want once", strings.Count(out, "cannot keep this rate"))
	}
	if _, err := loadProgress(g, "bar", false); err == nil {
		t.Error("--progress bar accepted")
	}
}

// load --first-packet times this process's connections of the measured
// window in the kernel (root), and says why not elsewhere; the load runs
// either way.
func TestLoadCommandFirstPacket(t *testing.T) {
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	_, url := serveForTest(t)
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), nil, &stdout, &stderr, []string{"load", "--rate", "400", "--duration", "1s", "--warmup", "250ms",
		"--requests-per-conn", "1", "--first-packet", "--json", "-", url})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	s, err := loadgen.ReadSummary(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	fp := s.FirstPacket
	if fp == nil {
		t.Fatal("no firstPacket in the summary")
	}
	if os.Geteuid() != 0 {
		if fp.Unavailable == "" {
			t.Errorf("not root, and the probe says it timed %d connections", fp.Connections)
		}
		return
	}
	// The warm-up's 100 connections are outside the window; the window's
	// are timed to within 1% (a connection due just before the window's
	// end whose SYN left after it is the client's, not the window's).
	if fp.Unavailable != "" || fp.ClientConnections != s.Connect.Count || s.Connect.Count != 400 ||
		fp.Connections > s.Connect.Count || float64(fp.Connections) < 0.99*float64(s.Connect.Count) || fp.P50Us <= 0 || fp.Emulated {
		t.Errorf("first packet %+v, client's connections %d", fp, s.Connect.Count)
	}
	// Without the flag there is no figure.
	stdout.Reset()
	if code := Run(context.Background(), nil, &stdout, &stderr, []string{"load", "--rate", "100", "--duration", "200ms", "--warmup", "0s", "--json", "-", url}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if s, err := loadgen.ReadSummary(&stdout); err != nil || s.FirstPacket != nil {
		t.Errorf("without --first-packet: %+v (%v)", s.FirstPacket, err)
	}
}

// TestLoadCommandWritesRequestsLog: --requests-log writes one record per
// request of the window, each naming the backend that answered.
func TestLoadCommandWritesRequestsLog(t *testing.T) {
	_, url := serveForTest(t)
	path := filepath.Join(t.TempDir(), "requests.csv")
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), nil, &stdout, &stderr, []string{"load", "--rate", "200", "--duration", "250ms", "--warmup", "0s",
		"--requests-per-conn", "1", "--json", "-", "--progress", "none", "--requests-log", path, url})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	s, err := loadgen.ReadSummary(&stdout)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := loadgen.ReadRequestLog(f)
	if err != nil {
		t.Fatal(err)
	}
	backend := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	if int64(len(recs)) != s.Requests || len(recs) == 0 {
		t.Fatalf("%d records for %d requests", len(recs), s.Requests)
	}
	for _, r := range recs {
		if r.Error == "" && (r.Backend != backend || !r.NewConn) {
			t.Errorf("record %+v, want a new connection answered by %s", r, backend)
		}
	}
}
