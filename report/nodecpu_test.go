package report

import (
	"bytes"
	"encoding/csv"
	"errors"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
)

// TestNodeCPUCoversLabelled: the report says what the client-node CPU is
// the busy time of (a kind node container's cgroup is not the lab's
// pinned CPUs), in the environment table, the methodology and the CPU
// plot's caption; compare names a change of it at the top.
func TestNodeCPUCoversLabelled(t *testing.T) {
	const kind = "the client node container's cgroup (kind-worker)"
	d := derive(t, load(t, "sweep"), nil, func(p *runs.Point) bool {
		p.CPU.Node.Covers = kind
		return true
	})
	doc := reportMarkdown(t, d)
	for _, w := range []string{
		"| Client-node CPU | " + kind + " |",
		"Client-node CPU is the busy time, over the measured window and in cores, of " + kind,
		"Busy time of " + kind + ", in cores.",
	} {
		if !strings.Contains(doc, w) {
			t.Errorf("report lacks %q", w)
		}
	}
	if strings.Contains(doc, "pinned CPUs from /proc/stat") {
		t.Error("the report still says the figure is the pinned CPUs' /proc/stat")
	}

	// Points of older runs say nothing: the client node's /proc/stat.
	if got := nodeCPUCovers(load(t, "sweep").Points); got != legacyCovers {
		t.Errorf("unlabelled points: %q", got)
	}

	base := load(t, "compare-base")
	next := derive(t, base, nil, func(p *runs.Point) bool {
		p.CPU.Node.Covers = kind
		return true
	})
	defaults, _ := LookupMetrics(DefaultMetrics)
	// The cpu rows would compare different things: a mismatch (exit 2)
	// unless allowed, and then printed at the top.
	if _, err := Compare(base, next, CompareOptions{Metrics: defaults, Threshold: 0.1}); !errors.Is(err, ErrScenarioMismatch) ||
		!strings.Contains(err.Error(), "client-node CPU covers: base "+legacyCovers+", new "+kind) {
		t.Fatalf("err = %v, want a mismatch of what node CPU covers", err)
	}
	c, err := Compare(base, next, CompareOptions{Metrics: defaults, Threshold: 0.1, AllowMismatch: true})
	if err != nil {
		t.Fatal(err)
	}
	out := text(t, c)
	if top := out[:strings.Index(out, "latency:")]; !strings.Contains(top, "SCENARIO MISMATCH: client-node CPU covers: base "+legacyCovers+", new "+kind) {
		t.Errorf("compare's top lacks the change of what node CPU covers:\n%s", top)
	}
}

// TestPointsCSVNodeShares: a node CPU summed over client nodes keeps what
// it covers and each node's part in points.csv.
func TestPointsCSVNodeShares(t *testing.T) {
	p := runs.Point{ID: "x", CPU: runs.CPU{Node: runs.NodeCPU{Covers: "all CPUs of the 2 client nodes (/proc/stat), summed (a, b)", Total: 0.5,
		Nodes: []runs.NodeShare{{Node: "a", Total: 0.3}, {Node: "b", Total: 0.2}}}}}
	got := csvFields(t, p)
	if got["cpu.node.covers"] != p.CPU.Node.Covers || got["cpu.node.nodes"] != "a=0.3; b=0.2" || got["cpu.node.total"] != "0.5" {
		t.Errorf("covers %q, nodes %q, total %q", got["cpu.node.covers"], got["cpu.node.nodes"], got["cpu.node.total"])
	}
}

// csvFields is p's row of points.csv, by column name.
func csvFields(t *testing.T, p runs.Point) map[string]string {
	t.Helper()
	b, err := PointsCSV([]runs.Point{p})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for i, h := range rows[0] {
		got[h] = rows[1][i]
	}
	return got
}
