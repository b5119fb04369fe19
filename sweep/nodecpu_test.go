package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/runs"
)

// summaryNode answers `kpbench load` with a fixed summary.
type summaryNode struct {
	fakeAgentNode
	summary loadgen.Summary
	args    []string
}

func (n *summaryNode) Run(_ context.Context, _ io.Reader, stdout, _ io.Writer, args ...string) error {
	if len(args) < 2 || args[1] != "load" {
		return errors.New("unexpected command " + strings.Join(args, " "))
	}
	n.args = args
	return n.summary.WriteJSON(stdout)
}

// TestNodeLoadFirstPacket: asked to, the node's load client runs with
// --first-packet, and the figure its summary carries reaches the result;
// without it, the flag is not passed.
func TestNodeLoadFirstPacket(t *testing.T) {
	var sum loadgen.Summary
	f, err := os.Open(filepath.Join("testdata", "load-first-packet.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := json.NewDecoder(f).Decode(&sum); err != nil {
		t.Fatal(err)
	}
	n := &summaryNode{summary: sum}
	res, err := (&NodeLoad{Node: n, Bin: "kpbench", FirstPacket: true}).Run(context.Background(), LoadRequest{ID: "p", Rate: 20})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(n.args, "--first-packet") {
		t.Errorf("load ran as %q, want --first-packet", n.args)
	}
	fp := res.FirstPacket
	if fp == nil || fp.P50Us != 61.5 || fp.P99Us != 230.25 || fp.Connections != 100 || fp.ClientConnections != 100 || fp.Unavailable != "" {
		t.Fatalf("first packet %+v, want the summary's", fp)
	}
	n.summary.FirstPacket = nil
	if res, err = (&NodeLoad{Node: n, Bin: "kpbench"}).Run(context.Background(), LoadRequest{ID: "p", Rate: 20}); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(n.args, "--first-packet") || res.FirstPacket != nil {
		t.Errorf("not asked: load ran as %q, first packet %+v", n.args, res.FirstPacket)
	}
}

// TestNodeLoadKeepsItsSummary: the load client's own summary (its start,
// warm-up and measured window) is kept in the point's raw directory, and
// its window is the measured one, after the warm-up.
func TestNodeLoadKeepsItsSummary(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)
	n := &summaryNode{summary: loadgen.Summary{SchemaVersion: runs.SchemaVersion, StartedAt: t0, DurationSeconds: 4,
		Requests: 800, Warmup: loadgen.Warmup{Seconds: 2, Requests: 400}, Valid: true}}
	raw := t.TempDir()
	res, err := (&NodeLoad{Node: n, Bin: "kpbench"}).Run(context.Background(), LoadRequest{ID: "p", Rate: 200, RawDir: raw})
	if err != nil {
		t.Fatal(err)
	}
	if !res.WindowStart.Equal(t0.Add(2*time.Second)) || !res.WindowEnd.Equal(t0.Add(6*time.Second)) || res.Requests != 800 {
		t.Errorf("window %s – %s, %d requests", res.WindowStart, res.WindowEnd, res.Requests)
	}
	f, err := os.Open(filepath.Join(raw, RawLoadJSON))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kept, err := loadgen.ReadSummary(f)
	if err != nil || kept.Warmup.Requests != 400 || !kept.StartedAt.Equal(t0) {
		t.Errorf("kept summary %+v (%v)", kept, err)
	}
}

// requestsNode answers `kpbench load` as summaryNode does, and writes the
// requests log where --requests-log asks.
type requestsNode struct {
	summaryNode
	recs []loadgen.RequestRecord
}

func (n *requestsNode) Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	if i := slices.Index(args, "--requests-log"); i >= 0 && i+1 < len(args) {
		f, err := os.Create(args[i+1])
		if err != nil {
			return err
		}
		if err := loadgen.WriteRequestLog(f, n.recs); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return n.summaryNode.Run(ctx, stdin, stdout, stderr, args...)
}

// TestNodeLoadRequestsLog: asked for the requests log, the node's load
// client writes it into the point's raw directory (or a temporary one
// without), and the records reach the result; not asked, the flag is not
// passed and there are none.
func TestNodeLoadRequestsLog(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	recs := []loadgen.RequestRecord{
		{Start: t0, Connect: 40 * time.Microsecond, NewConn: true, Target: "10.96.0.10:80", Backend: "10.244.0.5:8080"},
		{Start: t0.Add(time.Millisecond), NewConn: true, Target: "10.96.0.10:80", Error: loadgen.KindConnectRefused},
	}
	n := &requestsNode{summaryNode: summaryNode{summary: loadgen.Summary{SchemaVersion: runs.SchemaVersion, StartedAt: t0, DurationSeconds: 1, Valid: true}}, recs: recs}
	raw := t.TempDir()
	for _, dir := range []string{raw, ""} {
		res, err := (&NodeLoad{Node: n, Bin: "kpbench"}).Run(context.Background(), LoadRequest{ID: "p", Rate: 2, RawDir: dir, RequestsLog: true})
		if err != nil {
			t.Fatalf("raw dir %q: %v", dir, err)
		}
		if len(res.RequestLog) != 2 || res.RequestLog[0].Backend != "10.244.0.5:8080" || res.RequestLog[1].Error != loadgen.KindConnectRefused ||
			!res.RequestLog[1].Start.Equal(t0.Add(time.Millisecond)) {
			t.Errorf("raw dir %q: records %+v", dir, res.RequestLog)
		}
	}
	if _, err := os.Stat(filepath.Join(raw, RawRequestsCSV)); err != nil {
		t.Errorf("the requests log is not kept in the raw directory: %v", err)
	}
	res, err := (&NodeLoad{Node: n, Bin: "kpbench"}).Run(context.Background(), LoadRequest{ID: "p", Rate: 2})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(n.args, "--requests-log") || res.RequestLog != nil {
		t.Errorf("not asked: load ran as %q, %d records", n.args, len(res.RequestLog))
	}
	if _, err := (&ClusterLoad{}).Run(context.Background(), LoadRequest{ID: "p", RequestsLog: true}); err == nil {
		t.Error("in-cluster load clients accepted a requests log they cannot return")
	}
}
