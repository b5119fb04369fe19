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
	dir, logs := runOnLab(t, "smoke", "--scenario", "smoke")
	if !strings.Contains(string(logs), "report: ") {
		t.Errorf("run did not print where the report is:\n%s", logs)
	}
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

// TestStepOrderEndToEnd runs a two-step scenario in the steps order on a
// real lab: kube-proxy is switched while the step's Services exist, and
// every mode must still be verified, programmed and measured at each step.
func TestStepOrderEndToEnd(t *testing.T) {
	labtest.SkipUnlessIntegration(t)
	spec := filepath.Join(t.TempDir(), "steps.yaml")
	if err := os.WriteFile(spec, []byte(`apiVersion: kpbench.io/v1alpha1
kind: Scenario
metadata:
  name: steps
spec:
  modes: [iptables, nftables]
  services: [1, 300]
  order: steps
  endpointsPerService: 3
  backends: 3
  load:
    rate: 200
    duration: 2s
    warmup: 0s
    requestsPerConn: [1]
  repetitions: 1
  sampling:
    interval: 500ms
`), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, logs := runOnLab(t, "steps", "-f", spec)
	points, err := runs.ReadPoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	byID := map[string]runs.Point{}
	for _, p := range points {
		ids = append(ids, p.ID)
		byID[p.ID] = p
	}
	// The points come in the order of the plan of the seed in run.json:
	// each step once (one repetition), both modes at each.
	run, err := runs.ReadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if run.Design == nil || run.Design.Order != scenarios.OrderSteps || run.Design.Unit != runs.UnitRepetition {
		t.Fatalf("design %+v", run.Design)
	}
	if len(ids) != 4 {
		t.Fatalf("points %v, want 4\n%s", ids, logs)
	}
	for i, p := range points {
		if p.Sequence != i+1 {
			t.Errorf("%s: sequence %d, want %d", p.ID, p.Sequence, i+1)
		}
	}
	if points[0].Services != points[1].Services || points[2].Services != points[3].Services || points[0].Services == points[2].Services ||
		points[0].Mode == points[1].Mode || points[2].Mode == points[3].Mode {
		t.Fatalf("points %v: want both modes at one step, then both at the other\n%s", ids, logs)
	}
	for _, p := range points {
		if !p.Valid {
			t.Errorf("%s invalid: %v", p.ID, p.InvalidReasons)
		}
		if p.Requests == 0 || p.Connect.Count == 0 {
			t.Errorf("%s: no traffic measured", p.ID)
		}
	}
	// Each mode's rules at 300 Services are its own, programmed in full:
	// iptables' grow with the Services, nftables' stay a handful of rules
	// plus map elements.
	for _, mode := range []string{"iptables", "nftables"} {
		lo, hi := byID[mode+"-s00001-rpc1-r1"].Rules, byID[mode+"-s00300-rpc1-r1"].Rules
		if hi.Total <= lo.Total {
			t.Errorf("%s: %d rules at 300 Services, not more than %d at 1", mode, hi.Total, lo.Total)
		}
	}
	if a, b := byID["iptables-s00300-rpc1-r1"].Rules.Total, byID["nftables-s00300-rpc1-r1"].Rules.Total; a < 2*b {
		t.Errorf("at 300 Services iptables has %d rules, nftables %d: the switch left the wrong rules", a, b)
	}
	if md, _ := os.ReadFile(filepath.Join(dir, "report.md")); !strings.Contains(string(md), "steps (each repetition a block") {
		t.Errorf("report.md does not say the run's order")
	}
	// The second step's first point saw the scaling (up or down); the
	// other mode there, switched in at the step's count, wrote nothing.
	if points[2].TimeToProgrammedSeconds <= 0 || points[3].TimeToProgrammedSeconds != 0 {
		t.Errorf("time to programmed at the second step: %s %v, %s %v; want only the mode that saw the scaling",
			points[2].ID, points[2].TimeToProgrammedSeconds, points[3].ID, points[3].TimeToProgrammedSeconds)
	}
}

// runOnLab runs `kpbench run ARGS` on a lab of its own and returns the run
// directory of the scenario named scenario, and the command's output.
func runOnLab(t *testing.T, scenario string, args ...string) (string, []byte) {
	t.Helper()
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
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"run"}, args...), "--lab-name", name, "--out", out)...)
	cmd.Env = append(os.Environ(), "KPBENCH_CONFIG=")
	logs, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kpbench run: %v\n%s", err, logs)
	}
	dirs, _ := filepath.Glob(filepath.Join(out, "*_"+scenario))
	if len(dirs) != 1 {
		t.Fatalf("want one run directory in %s, got %v", out, dirs)
	}
	return dirs[0], logs
}
