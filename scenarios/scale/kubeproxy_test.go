package scale

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kpbench/kpbench/scenarios/scale/scaletest"
)

// programmedStep is one scale step measured against a real kube-proxy.
type programmedStep struct {
	Mode                    string  `json:"mode"`
	Services                int     `json:"services"`
	ScaleSeconds            float64 `json:"scaleSeconds"`
	TimeToProgrammedSeconds float64 `json:"timeToProgrammedSeconds"`
	SyncedAfterWriteSeconds float64 `json:"syncedAfterWriteSeconds"`
	LastSyncSeconds         float64 `json:"lastSyncSeconds"`
	Syncs                   uint64  `json:"syncs"`
	MeanSyncSeconds         float64 `json:"meanSyncSeconds"`
}

// TestKubeProxyProgrammed runs etcd, kube-apiserver, kube-proxy and ten
// backends in a network namespace of its own and scales through
// KPBENCH_PROGRAMMED_STEPS (default 500,200,0) in each mode of
// KPBENCH_PROGRAMMED_MODES (default iptables,nftables). After every step it
// waits until kube-proxy has programmed it, checks the object counts, that a
// random Service answers through its ClusterIP from a backend its slice
// lists, and after scaling down that the last removed Service no longer
// answers. KPBENCH_PROGRAMMED_OUT writes the steps as JSON.
func TestKubeProxyProgrammed(t *testing.T) {
	scaletest.SkipUnlessRoot(t)
	scaletest.SkipUnlessAvailable(t)
	var steps []int
	for _, s := range strings.Split(cmp.Or(os.Getenv("KPBENCH_PROGRAMMED_STEPS"), "500,200,0"), ",") {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("KPBENCH_PROGRAMMED_STEPS: %q is not a count", s)
		}
		steps = append(steps, n)
	}
	var all []programmedStep
	for _, mode := range strings.Split(cmp.Or(os.Getenv("KPBENCH_PROGRAMMED_MODES"), "iptables,nftables"), ",") {
		t.Run(mode, func(t *testing.T) {
			tool := map[string]string{"iptables": "iptables-restore", "nftables": "nft", "ipvs": "ipvsadm"}[mode]
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s mode needs %s: %v", mode, tool, err)
			}
			all = append(all, programmedSteps(t, mode, steps)...)
		})
	}
	for _, s := range all {
		t.Logf("%-9s %6d services: scale %6.1fs, programmed %6.2fs after the last write (synced +%.2fs), last sync %.3fs, %d syncs (mean %.3fs)",
			s.Mode, s.Services, s.ScaleSeconds, s.TimeToProgrammedSeconds, s.SyncedAfterWriteSeconds, s.LastSyncSeconds, s.Syncs, s.MeanSyncSeconds)
	}
	if out := os.Getenv("KPBENCH_PROGRAMMED_OUT"); out != "" {
		b, _ := json.MarshalIndent(map[string]any{"schemaVersion": 1, "steps": all}, "", "  ")
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func programmedSteps(t *testing.T, mode string, steps []int) []programmedStep {
	backends := tenBackends()
	nodeIP := netip.MustParseAddr("198.18.0.2")
	ns := scaletest.NewNetNS(t, backends...)
	// The node's own address on a veth pair (both ends in the namespace)
	// that also carries the default route, so ClusterIPs route and,
	// without rules, vanish.
	scaletest.IP(t, ns, "link", "add", "kpbt0", "type", "veth", "peer", "name", "kpbt1")
	scaletest.IP(t, ns, "addr", "add", nodeIP.String()+"/16", "dev", "kpbt0")
	scaletest.IP(t, ns, "link", "set", "kpbt0", "up")
	scaletest.IP(t, ns, "link", "set", "kpbt1", "up")
	scaletest.IP(t, ns, "route", "add", "default", "dev", "kpbt0")

	// The backends: one HTTP server on :80 answering with the address it
	// was reached at.
	l, err := scaletest.Listen(ns, "tcp", "0.0.0.0:80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		host, _, _ := net.SplitHostPort(addr.String())
		fmt.Fprint(w, host)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	api := scaletest.StartIn(t, ns)
	node := api.KubeProxy(t, mode, "kpbt-node", nodeIP)
	client := api.Client(t, 1000)
	s, err := New(client, Config{Namespace: "kpbt-prog", EndpointIPs: backends, EndpointsPerService: 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	var out []programmedStep
	var prevLast *ServiceRef
	for _, n := range steps {
		base, err := Scrape(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Scale(ctx, n)
		if err != nil {
			t.Fatalf("Scale(%d): %v", n, err)
		}
		wc := WaitConfig{Baseline: &base, LastWrite: res.LastWrite}
		if res.Last != nil {
			wc.Probe = netip.AddrPortFrom(netip.MustParseAddr(res.Last.ClusterIP), 80)
		}
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
		p, err := Wait(wctx, node, wc)
		wcancel()
		if err != nil {
			t.Fatalf("%s, %d services: %v", mode, n, err)
		}
		out = append(out, programmedStep{
			Mode: mode, Services: n, ScaleSeconds: res.Duration.Seconds(),
			TimeToProgrammedSeconds: p.TimeToProgrammed.Seconds(), SyncedAfterWriteSeconds: p.SyncedAfterWrite.Seconds(),
			LastSyncSeconds: p.LastSyncDuration.Seconds(), Syncs: p.Syncs, MeanSyncSeconds: p.MeanSyncDuration.Seconds(),
		})

		svcs, sls := countSynthetic(t, client, "kpbt-prog")
		if len(svcs) != n || len(sls) != n {
			t.Fatalf("%d services: found %d Services and %d EndpointSlices", n, len(svcs), len(sls))
		}
		if n > 0 {
			i := rand.IntN(n)
			svc, err := client.CoreV1().Services("kpbt-prog").Get(ctx, ServiceName(i), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sl, err := client.DiscoveryV1().EndpointSlices("kpbt-prog").Get(ctx, SliceName(i), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var listed []string
			for _, e := range sl.Endpoints {
				listed = append(listed, e.Addresses...)
			}
			gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
			got, err := node.Get(gctx, "http://"+svc.Spec.ClusterIP+"/")
			gcancel()
			if err != nil || !slices.Contains(listed, got) {
				t.Errorf("%s (%s) answered %q, %v; want one of its endpoints %v", svc.Name, svc.Spec.ClusterIP, got, err, listed)
			}
		}
		if prevLast != nil && (res.Last == nil || prevLast.Index > res.Last.Index) {
			gone := netip.AddrPortFrom(netip.MustParseAddr(prevLast.ClusterIP), 80)
			cctx, ccancel := context.WithTimeout(ctx, time.Second)
			if err := node.Connect(cctx, gone); err == nil {
				t.Errorf("removed %s (%s) still answers", prevLast.Name, gone)
			}
			ccancel()
		}
		prevLast = res.Last
	}
	return out
}
