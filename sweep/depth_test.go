package sweep

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// manyScaler lists n synthetic Services, 198.19.0.1 ... in creation order.
type manyScaler struct {
	fakeScaler
	n int
}

func (s *manyScaler) TargetURLs(_ context.Context, t scenarios.Targets) ([]string, error) {
	k := s.n
	if t == scenarios.TargetsOne {
		k = 1
	}
	var out []string
	for i := 1; i <= k; i++ {
		out = append(out, fmt.Sprintf("http://198.19.0.%d:80/", i))
	}
	return out, nil
}

// kubeServices writes nat KUBE-SERVICES with the Services 198.19.0.i in
// the given order, then the nodeports rule.
func kubeServices(order ...int) string {
	var b strings.Builder
	b.WriteString("*nat\n:KUBE-SERVICES - [0:0]\n")
	for _, i := range order {
		fmt.Fprintf(&b, "-A KUBE-SERVICES -d 198.19.0.%d/32 -p tcp -m comment --comment \"kpbench/svc-%d:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-%d\n", i, i, i)
	}
	b.WriteString("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\nCOMMIT\n")
	return b.String()
}

// nftServices writes kube-proxy's nftables table for the Services
// 198.19.0.1 ... 198.19.0.n.
func nftServices(n int) string {
	var els []string
	for i := 1; i <= n; i++ {
		els = append(els, fmt.Sprintf("198.19.0.%d . tcp . 80 : goto service-AAAA%04d-kpbench/svc-%d/tcp/http", i, i, i))
	}
	return "table ip kube-proxy {\n\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements = { " +
		strings.Join(els, ",\n\t\t\t") + " }\n\t}\n\n\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}\n\n" +
		"\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t}\n}\n"
}

// scriptedDepth returns the chains of script in turn, the last one for
// ever after; it counts its reads.
type scriptedDepth struct {
	mu     sync.Mutex
	script []string
	reads  int
}

func (d *scriptedDepth) Chain(_ context.Context, mode scenarios.Mode) (*collector.ServiceChain, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.script[min(d.reads, len(d.script)-1)]
	d.reads++
	if mode == scenarios.ModeNFTables {
		return collector.ParseNFTServices(strings.NewReader(nftServices(5)))
	}
	return collector.ParseKubeServices(strings.NewReader(s))
}

// urlLoad records the URLs of each run and reports connections spread as
// told.
type urlLoad struct {
	fakeLoad
	measured [][]string
	warmups  [][]string
	connects func(urls []string) []int64
}

func (l *urlLoad) Run(ctx context.Context, req LoadRequest) (*LoadResult, error) {
	if req.Warmup > 0 { // the warm-up runs inside the measured process
		l.warmups = append(l.warmups, req.URLs)
	}
	if req.RawDir != "" {
		l.measured = append(l.measured, req.URLs)
	}
	res, err := l.fakeLoad.Run(ctx, req)
	if err == nil && l.connects != nil && req.RawDir != "" {
		res.TargetConnects = l.connects(req.URLs)
	}
	return res, err
}

func depthSetup(t *testing.T, spec string, d *scriptedDepth) (*Engine, *runs.Run, string, *urlLoad) {
	t.Helper()
	e, run, dir, _, _, events := setup(t, spec)
	ul := &urlLoad{fakeLoad: fakeLoad{events: events}}
	e.Load = ul
	e.Scaler = &manyScaler{fakeScaler: fakeScaler{events: events}, n: 5}
	e.Depth = d
	return e, run, dir, ul
}

const depthSpec = "  modes: [iptables]\n  services: [5]\n  load:\n    duration: 1s\n    warmup: 1s\n    requestsPerConn: [1]\n    targets: %s\n  repetitions: %d\n"

func TestPlacementsPickByDepthAndRecordIt(t *testing.T) {
	chain := kubeServices(3, 5, 1, 4, 2) // depths: svc3 1, svc5 2, svc1 3, svc4 4, svc2 5
	for _, tc := range []struct {
		placement string
		url       string
		depth     float64
	}{
		{"deepest", "http://198.19.0.2:80/", 5},
		{"shallowest", "http://198.19.0.3:80/", 1},
		{"median", "http://198.19.0.1:80/", 3},
		// one: the first-created Service, wherever kube-proxy put it.
		{"one", "http://198.19.0.1:80/", 3},
	} {
		t.Run(tc.placement, func(t *testing.T) {
			d := &scriptedDepth{script: []string{chain}}
			e, run, dir, ul := depthSetup(t, fmt.Sprintf(depthSpec, tc.placement, 1), d)
			if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
				t.Fatal(err)
			}
			pts, _ := runs.ReadPoints(dir)
			if len(pts) != 1 || len(ul.measured) != 1 {
				t.Fatalf("%d points, %d loads", len(pts), len(ul.measured))
			}
			if got := ul.measured[0]; len(got) != 1 || got[0] != tc.url {
				t.Errorf("sent to %q, want %s", got, tc.url)
			}
			if len(ul.warmups) != 1 || ul.warmups[0][0] != tc.url {
				t.Errorf("warmed up %q, want the measured target", ul.warmups)
			}
			dp := pts[0].Depth
			if dp == nil {
				t.Fatal("no depth recorded")
			}
			want := runs.DepthReading{Mean: tc.depth, Min: int(tc.depth), Max: int(tc.depth), ChainLength: 6}
			if dp.Before != want || dp.After != want || dp.Changed || dp.Targets != 1 {
				t.Errorf("depth %+v, want %+v before and after", dp, want)
			}
			if !strings.Contains(dp.Via, fmt.Sprintf("rule %.0f of 6", tc.depth)) || !strings.HasPrefix(dp.Target, "kpbench/svc-") {
				t.Errorf("via %q target %q", dp.Via, dp.Target)
			}
			if w, ok := pts[0].RulesWalked(); !ok || w != tc.depth {
				t.Errorf("RulesWalked = %g, %v", w, ok)
			}
		})
	}
}

func TestDepthChangedDuringWindowKeepsBoth(t *testing.T) {
	// Read for the pick, before the window, then a sync reorders the chain.
	d := &scriptedDepth{script: []string{kubeServices(1, 2, 3, 4, 5), kubeServices(1, 2, 3, 4, 5), kubeServices(5, 4, 3, 2, 1)}}
	e, run, dir, ul := depthSetup(t, fmt.Sprintf(depthSpec, "deepest", 2), d)
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, _ := runs.ReadPoints(dir)
	if len(pts) != 2 {
		t.Fatalf("%d points", len(pts))
	}
	p := pts[0].Depth
	if ul.measured[0][0] != "http://198.19.0.5:80/" || p.Before.Mean != 5 || p.After.Mean != 1 || !p.Changed {
		t.Errorf("first point sent to %s, depth %+v; want svc 5, 5 before and 1 after, marked changed", ul.measured[0][0], p)
	}
	if _, ok := pts[0].RulesWalked(); ok {
		t.Error("a point whose depth changed has no single depth")
	}
	// A reorder inside the window makes the point invalid, by name.
	if want := []string{runs.ReasonReordered + ": depth 5→1"}; pts[0].Valid || !slices.Equal(pts[0].InvalidReasons, want) || !pts[1].Valid {
		t.Errorf("first point valid %v %q, want invalid %q; second valid %v", pts[0].Valid, pts[0].InvalidReasons, want, pts[1].Valid)
	}
	// The next point picks again from the new order.
	if ul.measured[1][0] != "http://198.19.0.1:80/" || pts[1].Depth.Before.Mean != 5 || pts[1].Depth.Changed {
		t.Errorf("second point sent to %s with depth %+v; want svc 1 at 5", ul.measured[1][0], pts[1].Depth)
	}
}

func TestPlacementPicksAgainAfterSyncBeforeWindow(t *testing.T) {
	// The pick reads one order; by the time the load starts a sync has
	// redrawn it: the engine picks again, then measures (and warms up,
	// inside the measured process) the new pick only.
	d := &scriptedDepth{script: []string{kubeServices(1, 2, 3, 4, 5), kubeServices(2, 3, 4, 5, 1), kubeServices(2, 3, 4, 5, 1)}}
	e, run, dir, ul := depthSetup(t, fmt.Sprintf(depthSpec, "deepest", 1), d)
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, _ := runs.ReadPoints(dir)
	if ul.measured[0][0] != "http://198.19.0.1:80/" {
		t.Errorf("measured %s, want the new deepest, svc 1", ul.measured[0][0])
	}
	if len(ul.warmups) != 1 || ul.warmups[0][0] != "http://198.19.0.1:80/" {
		t.Errorf("warm-ups %q, want the new pick's only", ul.warmups)
	}
	if dp := pts[0].Depth; dp.Before.Mean != 5 || dp.Repicks != 1 || dp.Changed {
		t.Errorf("depth %+v, want 5 after one re-pick", dp)
	}
}

func TestRandomTargetsDepthWeightedByConnections(t *testing.T) {
	d := &scriptedDepth{script: []string{kubeServices(1, 2, 3, 4, 5)}}
	e, run, dir, ul := depthSetup(t, fmt.Sprintf(depthSpec, "random", 1), d)
	// Connections: svc1 ×6 (depth 1), svc2 ×0, svc5 ×2 (depth 5), others 1.
	ul.connects = func(urls []string) []int64 { return []int64{6, 0, 1, 1, 2} }
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, _ := runs.ReadPoints(dir)
	if len(ul.measured[0]) != 5 {
		t.Errorf("random sent to %d Services, want all 5", len(ul.measured[0]))
	}
	want := runs.DepthReading{Mean: (6*1 + 1*3 + 1*4 + 2*5) / 10.0, Min: 1, Max: 5, ChainLength: 6}
	if dp := pts[0].Depth; dp.Before != want || dp.Targets != 5 || dp.Target != "" {
		t.Errorf("depth %+v, want %+v over 5 targets", dp, want)
	}
}

func TestDepthZeroModesPickTheFirstService(t *testing.T) {
	d := &scriptedDepth{script: []string{kubeServices(1, 2, 3, 4, 5)}}
	e, run, dir, ul := depthSetup(t, "  modes: [nftables]\n  services: [5]\n  load:\n    duration: 1s\n    warmup: 0s\n    requestsPerConn: [1]\n    targets: deepest\n", d)
	if err := e.Run(context.Background(), &runs.Record{Dir: dir, Run: run}); err != nil {
		t.Fatal(err)
	}
	pts, _ := runs.ReadPoints(dir)
	if ul.measured[0][0] != "http://198.19.0.1:80/" || pts[0].Depth == nil || pts[0].Depth.Before.Mean != 0 {
		t.Fatalf("sent to %s with depth %+v; want the first Service at 0", ul.measured[0][0], pts[0].Depth)
	}
	if want := "chain nat-output → services: vmap @service-ips (5 elements) → service-AAAA0001-kpbench/svc-1/tcp/http"; pts[0].Depth.Via != want {
		t.Errorf("via %q, want %q", pts[0].Depth.Via, want)
	}
}
