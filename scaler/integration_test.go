package scaler

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/scaler/scaletest"
)

func tenBackends() []netip.Addr {
	ips := make([]netip.Addr, 10)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)})
	}
	return ips
}

func countSynthetic(t *testing.T, c kubernetes.Interface, namespace string) ([]corev1.Service, []discoveryv1.EndpointSlice) {
	t.Helper()
	ctx := context.Background()
	svcs, err := c.CoreV1().Services(namespace).List(ctx, metav1.ListOptions{LabelSelector: Selector})
	if err != nil {
		t.Fatal(err)
	}
	sls, err := c.DiscoveryV1().EndpointSlices(namespace).List(ctx, metav1.ListOptions{LabelSelector: Selector})
	if err != nil {
		t.Fatal(err)
	}
	return svcs.Items, sls.Items
}

// TestAPIServerScale runs the scaler against a real kube-apiserver and
// etcd: 500 Services × 10 endpoints, the same again (no writes), down to
// 200, then 0.
func TestAPIServerScale(t *testing.T) {
	api := scaletest.Start(t)
	c := api.Client(t, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := New(c, Config{Namespace: "kpbt-scale", EndpointIPs: tenBackends(), EndpointsPerService: 10})
	if err != nil {
		t.Fatal(err)
	}

	res, err := s.Scale(ctx, 500)
	if err != nil {
		t.Fatalf("Scale(500): %v", err)
	}
	t.Logf("0 -> 500: %v, %d writes, %d retries", res.Duration, res.Writes(), res.Retries)
	if res.Created != 1000 {
		t.Errorf("created %d objects, want 1000", res.Created)
	}
	svcs, sls := countSynthetic(t, c, "kpbt-scale")
	if len(svcs) != 500 || len(sls) != 500 {
		t.Fatalf("%d services, %d slices; want 500 each", len(svcs), len(sls))
	}
	uids := map[string]string{}
	ips := map[string]bool{}
	svcRange := netip.MustParsePrefix("198.19.0.0/16")
	for _, svc := range svcs {
		uids[svc.Name] = string(svc.UID)
		ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
		if err != nil || !svcRange.Contains(ip) || ips[svc.Spec.ClusterIP] {
			t.Errorf("%s ClusterIP %q: want a unique address in %s", svc.Name, svc.Spec.ClusterIP, svcRange)
		}
		ips[svc.Spec.ClusterIP] = true
	}
	for _, sl := range sls {
		if len(sl.Endpoints) != 10 {
			t.Errorf("%s has %d endpoints", sl.Name, len(sl.Endpoints))
		}
		if len(sl.OwnerReferences) != 1 || string(sl.OwnerReferences[0].UID) != uids[sl.Labels[discoveryv1.LabelServiceName]] {
			t.Errorf("%s owner %v does not match its Service", sl.Name, sl.OwnerReferences)
		}
	}
	if res.Last == nil || res.Last.Name != ServiceName(499) || !ips[res.Last.ClusterIP] {
		t.Errorf("Last = %+v", res.Last)
	}

	res, err = s.Scale(ctx, 500)
	if err != nil {
		t.Fatal(err)
	}
	if res.Writes() != 0 || res.Before != 500 {
		t.Errorf("second Scale(500): %+v, want no writes", res)
	}

	res, err = s.Scale(ctx, 200)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("500 -> 200: %v", res.Duration)
	svcs, sls = countSynthetic(t, c, "kpbt-scale")
	if len(svcs) != 200 || len(sls) != 200 || res.Deleted != 600 {
		t.Errorf("after 200: %d services, %d slices, %d deleted", len(svcs), len(sls), res.Deleted)
	}
	for _, svc := range svcs {
		if i, _ := ParseIndex(svc.Name); i >= 200 {
			t.Errorf("%s survived scaling to 200", svc.Name)
		}
	}

	if _, err := s.Scale(ctx, 0); err != nil {
		t.Fatal(err)
	}
	svcs, sls = countSynthetic(t, c, "kpbt-scale")
	if len(svcs) != 0 || len(sls) != 0 {
		t.Errorf("after 0: %d services, %d slices left", len(svcs), len(sls))
	}
	// Everything labelled kpbench is gone, too (nothing else was made).
	all, err := c.DiscoveryV1().EndpointSlices("kpbt-scale").List(ctx, metav1.ListOptions{LabelSelector: LabelManagedBy + "=" + ManagedBy})
	if err != nil || len(all.Items) != 0 {
		t.Errorf("labelled slices left: %v %v", len(all.Items), err)
	}
}

// TestAPIServerPaging lists in pages of 7 from a real apiserver (its
// continue tokens, not a fake's).
func TestAPIServerPaging(t *testing.T) {
	api := scaletest.Start(t)
	c := api.Client(t, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := New(c, Config{Namespace: "kpbt-page", EndpointIPs: tenBackends(), EndpointsPerService: 1, PageSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Scale(ctx, 30); err != nil {
		t.Fatal(err)
	}
	res, err := s.Scale(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if res.Before != 30 || res.Writes() != 0 {
		t.Errorf("paged re-list found %d Services and wrote %d, want 30 and 0", res.Before, res.Writes())
	}
	if _, err := s.Scale(ctx, 0); err != nil {
		t.Fatal(err)
	}
}

func Example_scale() {
	// Against a cluster: client from a kubeconfig, then scale.
	client, target, err := NewClient(ClientOptions{QPS: 1000})
	if err != nil || !target.Lab {
		return
	}
	s, err := New(client, Config{EndpointIPs: []netip.Addr{netip.MustParseAddr("198.18.0.10")}, EndpointsPerService: 1})
	if err != nil {
		return
	}
	res, err := s.Scale(context.Background(), 100)
	fmt.Println(res.Services, err)
}
