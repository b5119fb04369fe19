package sweep_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/labtest"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/runs"
)

// TestDepthPlacementsOnLab scales a real lab to 2,000 Services in iptables
// mode and measures the deepest and the shallowest target on the same
// rules, in turns: the depths recorded must be the chain's last Service
// rule and its first synthetic one, and the deepest target's connect p01
// must exceed the shallowest's. The walk costs about 8 ns per rule on the
// reference machine, so 2,000 rules are some 16 µs, where a few hundred
// were a few µs and lost to the machine's noise (one window's p01 moved
// by 40 µs at the same depth). Noise only adds time, so the comparison is
// of each placement's fastest window (its floor), over three turns each
// so that both meet the machine's quiet moments.
func TestDepthPlacementsOnLab(t *testing.T) {
	labtest.SkipUnlessIntegration(t)
	bin := labtest.KpbenchBin(t)
	name := labtest.UniqueName()
	t.Cleanup(func() {
		if l, err := lab.Open(lab.Config{Name: name}); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_ = l.Down(ctx)
		}
	})
	const services = 2000
	run := func(targets string, extra ...string) []runs.Point {
		t.Helper()
		spec := filepath.Join(t.TempDir(), targets+".yaml")
		if err := os.WriteFile(spec, []byte(fmt.Sprintf(`apiVersion: kpbench.io/v1alpha1
kind: Scenario
metadata:
  name: depth-%s
spec:
  modes: [iptables]
  services: [%d]
  endpointsPerService: 3
  backends: 3
  load:
    rate: 500
    duration: 3s
    warmup: 1s
    requestsPerConn: [1]
    targets: %s
  repetitions: 2
  sampling:
    interval: 500ms
`, targets, services, targets)), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		out := t.TempDir()
		args := append([]string{"run", "-f", spec, "--lab-name", name, "--out", out}, extra...)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "KPBENCH_CONFIG=")
		logs, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kpbench run (%s): %v\n%s", targets, err, logs)
		}
		dirs, _ := filepath.Glob(filepath.Join(out, "*_depth-"+targets))
		if len(dirs) != 1 {
			t.Fatalf("want one run directory for %s, got %v", targets, dirs)
		}
		pts, err := runs.ReadPoints(dirs[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != 2 {
			t.Fatalf("%s: %d points, want 2\n%s", targets, len(pts), logs)
		}
		return pts
	}
	// The first run leaves its lab up for the others, which then find the
	// Services in place (no sync between them); Cleanup brings it down.
	var deep, shallow []runs.Point
	for range 3 {
		deep = append(deep, run("deepest", "--keep")...)
		shallow = append(shallow, run("shallowest", "--keep")...)
	}

	// The chain as it stands now, read on the lab's client node.
	l, err := lab.Open(lab.Config{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	if err := l.ClientNode().Run(context.Background(), nil, &dump, nil, "iptables-save", "-t", "nat"); err != nil {
		t.Fatal(err)
	}
	chain, err := collector.ParseKubeServices(&dump)
	if err != nil {
		t.Fatal(err)
	}
	// The synthetic Services, the kubernetes Service, the nodeports rule.
	if chain.Length != services+2 {
		t.Errorf("KUBE-SERVICES holds %d rules, want %d", chain.Length, services+2)
	}
	// The kubernetes Service's rule may come first; the shallowest
	// synthetic Service is then second.
	kube, err := chain.Depth(collector.ServicePort{IP: netip.MustParseAddr("198.19.0.1"), Port: 443, Proto: "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	wantShallow := 1
	if kube == 1 {
		wantShallow = 2
	}
	wantDeep := chain.Length - 1 // the nodeports rule is last
	if kube == wantDeep {
		wantDeep--
	}
	check := func(pts []runs.Point, want int, what string) []float64 {
		var p01 []float64
		for _, p := range pts {
			d := p.Depth
			if d == nil {
				t.Fatalf("%s: no depth recorded", p.ID)
			}
			if d.Changed || d.Before.Mean != float64(want) || d.After.Mean != float64(want) {
				t.Errorf("%s (%s): depth %+v, want %d before and after", p.ID, what, d, want)
			}
			if d.Before.ChainLength != chain.Length || p.Rules.ChainLength != chain.Length {
				t.Errorf("%s: chain length %d recorded, %d counted, %d now", p.ID, d.Before.ChainLength, p.Rules.ChainLength, chain.Length)
			}
			if !p.Valid {
				t.Logf("%s invalid: %v", p.ID, p.InvalidReasons)
				continue
			}
			p01 = append(p01, p.Connect.P01Us)
		}
		if len(p01) == 0 {
			t.Fatalf("%s: no valid point", what)
		}
		sort.Float64s(p01)
		return p01
	}
	dp := check(deep, wantDeep, "deepest")
	sp := check(shallow, wantShallow, "shallowest")
	// Floors (the fastest window of each placement): ~2,000 rules more is
	// about 16 µs at 8 ns per rule.
	dm, sm := dp[0], sp[0]
	t.Logf("connect p01: deepest (depth %d) %v µs, shallowest (depth %d) %v µs", wantDeep, dp, wantShallow, sp)
	if dm <= sm {
		t.Errorf("deepest connect p01 floor %.1f µs is not above the shallowest's %.1f µs", dm, sm)
	}
}
