package kind_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// tinyScenario: two modes, two Service steps, two repetitions, windows of
// seconds: the in-cluster path end to end, not figures to cite.
const tinyScenario = `apiVersion: kpbench.io/v1alpha1
kind: Scenario
metadata:
  name: kind-tiny
  description: Two modes, two Service steps, two repetitions, short windows; the kind path end to end.
spec:
  modes: [iptables, nftables]
  services: [1, 100]
  endpointsPerService: 3
  backends: 3
  load:
    rate: 200
    duration: 3s
    warmup: 1s
    requestsPerConn: [1]
    targets: one
    timeout: 2s
    maxInflight: 1000
    clients: 1
  repetitions: 2
  order: steps
  sampling:
    interval: 500ms
`

// kpbench run --provider kind with the offline node image: a cluster is
// created, the scenario runs through the in-cluster load Jobs and the
// agent in both modes (switched through kube-proxy's ConfigMap), every
// point is valid or invalid with a reason, the node CPU covers the client
// node container's cgroup, and the cluster is deleted leaving nothing
// behind.
func TestIntegrationKindRunOffline(t *testing.T) {
	needKind(t)
	archive, bin := kpbenchImage(t)
	dir := t.TempDir()
	scenario := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(scenario, []byte(tinyScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	before := leftovers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	run := runTiny(ctx, t, "kpbench run --provider kind", bin, filepath.Join(dir, "results"),
		"--provider", "kind", "--k8s-image", "offline", "--name", "kpb-run-it", "--image-archive", archive, "-f", scenario)
	var meta struct {
		Provider struct {
			Name    string            `json:"name"`
			Details map[string]string `json:"details"`
		} `json:"provider"`
	}
	b, err := os.ReadFile(filepath.Join(run, "run.json"))
	if err == nil {
		err = json.Unmarshal(b, &meta)
	}
	if err != nil || meta.Provider.Name != "kind" || !strings.HasPrefix(meta.Provider.Details["nodeImage"], "localhost/kpbench/node:") {
		t.Errorf("run.json: %v, provider %+v", err, meta.Provider)
	}
	rows, col := checkPoints(t, run)
	for _, r := range rows {
		if c := r[col["cpu.node.covers"]]; !strings.Contains(c, "client node container's cgroup") {
			t.Errorf("%s: the node CPU covers %q, want the client node container's cgroup", r[col["id"]], c)
		}
	}
	after := leftovers(t)
	for what, b := range before {
		if !slices.Equal(b, after[what]) {
			t.Errorf("%s before the run: %q; after it: %q", what, b, after[what])
		}
	}
}

// checkPoints reads the tiny scenario's points.csv in dir and checks its 8
// points: both modes, each valid or invalid with a reason. It returns the
// points' rows and the columns by name.
func checkPoints(t *testing.T, dir string) ([][]string, map[string]int) {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "points.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("points.csv: %v, %d rows", err, len(rows))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	var modes []string
	valid := 0
	for _, r := range rows[1:] {
		if !slices.Contains(modes, r[col["mode"]]) {
			modes = append(modes, r[col["mode"]])
		}
		switch {
		case r[col["valid"]] == "true":
			valid++
		case strings.TrimSpace(r[col["invalidReasons"]]) == "":
			t.Errorf("%s: invalid without a reason", r[col["id"]])
		}
	}
	slices.Sort(modes)
	if len(rows)-1 != 8 || !slices.Equal(modes, []string{"iptables", "nftables"}) {
		t.Errorf("%d points in modes %v, want 8 in iptables and nftables", len(rows)-1, modes)
	}
	t.Logf("%d of %d points valid", valid, len(rows)-1)
	return rows[1:], col
}
