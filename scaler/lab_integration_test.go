package scaler_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/labtest"
	"github.com/kpbench/kpbench/scaler"
	"github.com/kpbench/kpbench/scenarios"
)

// httpStatusFromNode sends one HTTP/1.0 GET from the lab's client node to
// addr and returns the status line ("" when nothing answered in time).
func httpStatusFromNode(ctx context.Context, node clusters.ClientNode, addr netip.AddrPort) string {
	script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%d && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && head -n1 <&3`, addr.Addr(), addr.Port())
	var out bytes.Buffer
	if err := node.Run(ctx, nil, &out, nil, "timeout", "2", "bash", "-c", script); err != nil {
		return ""
	}
	return strings.TrimSpace(out.String())
}

// TestScaleInLab scales synthetic Services against the lab's real
// kube-apiserver and kube-proxy: to 500 (every Service and EndpointSlice
// there, a random Service answers through its ClusterIP), down to 200 (a
// removed Service no longer answers), and to 0 (nothing left).
func TestScaleInLab(t *testing.T) {
	l := labtest.Start(t, lab.Config{Backends: 10}, scenarios.ModeIPTables)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	eps, err := l.Backends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ips := make([]netip.Addr, len(eps))
	for i, e := range eps {
		ips[i] = e.Addr
	}
	client, target, err := scaler.NewClient(scaler.ClientOptions{Kubeconfig: l.KubeconfigPath(), QPS: 500, Burst: 500})
	if err != nil {
		t.Fatal(err)
	}
	if !target.Lab {
		t.Errorf("the lab's kubeconfig is not recognised as a lab (context %q)", target.Context)
	}
	s, err := scaler.New(client, scaler.Config{EndpointIPs: ips, EndpointsPerService: 10})
	if err != nil {
		t.Fatal(err)
	}
	node := l.ClientNode()
	step := func(n int) scaler.Result {
		t.Helper()
		res, err := s.Scale(ctx, n)
		if err != nil {
			t.Fatalf("scale to %d: %v", n, err)
		}
		cfg := scaler.WaitConfig{LastWrite: res.LastWrite}
		if res.Last != nil {
			cfg.Probe = netip.AddrPortFrom(netip.MustParseAddr(res.Last.ClusterIP), 80)
		}
		p, err := scaler.Wait(ctx, scaler.ClientNode{Node: node}, cfg)
		if err != nil {
			t.Fatalf("wait for %d services to be programmed: %v", n, err)
		}
		t.Logf("%d services: %d writes in %s, programmed %s after the last write, last sync %s",
			n, res.Writes(), res.Duration.Round(time.Millisecond), p.TimeToProgrammed.Round(time.Millisecond), p.LastSyncDuration.Round(time.Millisecond))
		checkObjects(t, ctx, client, n)
		return res
	}

	step(500)
	svcs := services(t, ctx, client)
	pick := svcs[rand.IntN(len(svcs))]
	addr := netip.AddrPortFrom(netip.MustParseAddr(pick.ip), 80)
	if got := httpStatusFromNode(ctx, node, addr); !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Errorf("service %s (%s) answered %q through its ClusterIP, want HTTP 200", pick.name, addr, got)
	}
	if res, err := s.Scale(ctx, 500); err != nil || res.Writes() != 0 {
		t.Errorf("scaling to the same count again wrote %d objects (err %v), want none", res.Writes(), err)
	}

	step(200)
	gone := svcs[len(svcs)-1] // the last created is deleted first
	if got := httpStatusFromNode(ctx, node, netip.AddrPortFrom(netip.MustParseAddr(gone.ip), 80)); got != "" {
		t.Errorf("removed service %s still answers: %q", gone.name, got)
	}

	step(0)
}

type svcIP struct{ name, ip string }

func services(t *testing.T, ctx context.Context, c kubernetes.Interface) []svcIP {
	t.Helper()
	list, err := c.CoreV1().Services(scaler.DefaultNamespace).List(ctx, metav1.ListOptions{LabelSelector: scaler.Selector})
	if err != nil {
		t.Fatal(err)
	}
	var out []svcIP
	for _, s := range list.Items {
		out = append(out, svcIP{s.Name, s.Spec.ClusterIP})
	}
	return out
}

func checkObjects(t *testing.T, ctx context.Context, c kubernetes.Interface, n int) {
	t.Helper()
	ns := scaler.DefaultNamespace
	svcs, err := c.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: scaler.LabelManagedBy + "=" + scaler.ManagedBy})
	if err != nil {
		t.Fatal(err)
	}
	slices, err := c.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: scaler.LabelManagedBy + "=" + scaler.ManagedBy})
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs.Items) != n || len(slices.Items) != n {
		t.Fatalf("at %d: %d services and %d endpointslices labelled managed-by kpbench", n, len(svcs.Items), len(slices.Items))
	}
	for _, sl := range slices.Items {
		if len(sl.Endpoints) != 10 || sl.Labels["kubernetes.io/service-name"] == "" || sl.Labels["endpointslice.kubernetes.io/managed-by"] != "kpbench" {
			t.Fatalf("endpointslice %s: %d endpoints, labels %v", sl.Name, len(sl.Endpoints), sl.Labels)
		}
	}
}
