package sweep_test

import (
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/labtest"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// TestSmokeEndToEnd runs `kpbench run --scenario smoke` on a real lab (real
// apiserver, kube-proxy and kernel rules) and checks the results directory.
func TestSmokeEndToEnd(t *testing.T) {
	labtest.SkipUnlessIntegration(t)
	bin := labtest.KpbenchBin(t)
	name := labtest.UniqueName()
	out := t.TempDir()
	t.Cleanup(func() {
		// The run tears its lab down; make sure of it even when it failed.
		if l, err := lab.Open(lab.Config{Name: name}); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_ = l.Down(ctx)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "--scenario", "smoke", "--lab-name", name, "--out", out)
	cmd.Env = append(os.Environ(), "KPBENCH_CONFIG=")
	logs, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kpbench run: %v\n%s", err, logs)
	}
	if !strings.Contains(string(logs), "report: ") {
		t.Errorf("run did not print where the report is:\n%s", logs)
	}

	dirs, _ := filepath.Glob(filepath.Join(out, "*_smoke"))
	if len(dirs) != 1 {
		t.Fatalf("want one run directory in %s, got %v", out, dirs)
	}
	dir := dirs[0]
	run, err := runs.ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != runs.StatusComplete {
		t.Errorf("run status %q", run.Status)
	}
	env := run.Environment
	if env.Kernel == "" || env.CPUModel == "" || env.Cores < 1 || env.KubernetesVersion == "" || env.KubeProxyVersion == "" || env.IPTablesBackend == "" {
		t.Errorf("environment incomplete: %+v", env)
	}
	if run.Pinning == nil || len(run.Pinning.NodeCPUs) == 0 {
		t.Errorf("pinning not recorded: %+v", run.Pinning)
	}

	points, err := runs.ReadPoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	sc := run.Scenario.Spec
	byID := map[string]runs.Point{}
	for _, p := range points {
		byID[p.ID] = p
	}
	valid := 0
	for _, mode := range sc.Modes {
		prevRules := -1
		for _, n := range sc.Services {
			for _, rpc := range sc.Load.RequestsPerConn {
				id := runs.PointID(mode, n, rpc, 1)
				p, ok := byID[id]
				if !ok {
					t.Errorf("point %s missing", id)
					continue
				}
				if p.Valid != (len(p.InvalidReasons) == 0) {
					t.Errorf("%s: valid=%v but reasons %v", id, p.Valid, p.InvalidReasons)
				}
				if p.Valid {
					valid++
				} else {
					t.Logf("%s invalid: %v", id, p.InvalidReasons)
				}
				if p.CPU.Node.Total <= 0 || p.CPU.Processes.Client <= 0 {
					t.Errorf("%s: CPU not measured: %+v", id, p.CPU)
				}
				if p.Requests == 0 || p.Latency.P50Us <= 0 || p.Connect.Count == 0 {
					t.Errorf("%s: no traffic measured: requests %d, latency %+v, connect %+v", id, p.Requests, p.Latency, p.Connect)
				}
				if rpc == 1 && p.Connect.Count < p.Requests*9/10 {
					t.Errorf("%s: %d connects for %d requests without keepalive", id, p.Connect.Count, p.Requests)
				}
				for _, f := range []string{"histograms.json", "timeline.csv", "cpu.csv"} {
					if _, err := os.Stat(filepath.Join(dir, runs.RawDir, id, f)); err != nil {
						t.Errorf("%s: raw %s missing: %v", id, f, err)
					}
				}
			}
			p := byID[runs.PointID(mode, n, sc.Load.RequestsPerConn[0], 1)]
			if p.Rules.Total <= prevRules {
				t.Errorf("%s at %d services: %d rules, not more than %d at the step before", mode, n, p.Rules.Total, prevRules)
			}
			prevRules = p.Rules.Total
		}
	}
	total := len(sc.Modes) * len(sc.Services) * len(sc.Load.RequestsPerConn)
	if len(points) != total {
		t.Errorf("%d points, want %d", len(points), total)
	}
	if valid*2 < total {
		t.Errorf("only %d of %d points valid", valid, total)
	}
	if mode := scenarios.ModeIPVS; len(run.SkippedModes) > 0 && run.SkippedModes[0].Mode != mode {
		t.Errorf("unexpected skipped modes %+v", run.SkippedModes)
	}

	for _, f := range []string{"report.md", "report.html", "points.csv"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() < 1000 {
			t.Errorf("%s missing or tiny: %v", f, err)
		}
	}
	pngs, _ := filepath.Glob(filepath.Join(dir, runs.PlotsDir, "*.png"))
	if len(pngs) < 5 {
		t.Errorf("%d plots, want at least 5: %v", len(pngs), pngs)
	}
	for _, p := range pngs {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() < 400 {
			t.Errorf("%s: not a usable plot: %v", p, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, p := range points {
		if !strings.Contains(string(md), p.ID) {
			t.Errorf("report.md does not list point %s", p.ID)
		}
	}
}
