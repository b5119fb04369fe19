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
