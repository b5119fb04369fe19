package lab_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/labtest"
	"github.com/kpbench/kpbench/scenarios"
)

// TestLabScale is an opt-in check that the lab holds many Services
// (KPBENCH_LAB_SCALE=N, e.g. 10000): N Services × every backend are
// created, the last one answers through its ClusterIP in iptables mode and
// again after switching to nftables. It logs how long each step took.
func TestLabScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KPBENCH_LAB_SCALE"))
	if n <= 0 {
		t.Skip("scale check skipped: set KPBENCH_LAB_SCALE=N (e.g. 10000) to run it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	l := labtest.Start(t, lab.Config{}, scenarios.ModeIPTables)
	cfg, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := l.Backends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "kpbench-scale"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ips := make([]string, n)
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ip, err := createScaled(ctx, cs, ns, i, eps)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				ips[i] = ip
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	t.Logf("created %d Services with %d endpoints each in %s", n, len(eps), time.Since(start).Round(time.Millisecond))

	last := "http://" + net.JoinHostPort(ips[n-1], "80") + "/"
	created := time.Now()
	if code, err := getFromNode(ctx, l.LabName(), last, 10*time.Minute); code != http.StatusOK {
		t.Fatalf("iptables: last Service does not answer: %d %v", code, err)
	}
	t.Logf("iptables: last Service answered %s after the last write", time.Since(created).Round(time.Millisecond))
	var nat bytes.Buffer
	if err := l.ClientNode().Run(ctx, nil, &nat, nil, "iptables-save", "-t", "nat"); err != nil {
		t.Fatal(err)
	}
	t.Logf("iptables: nat table holds %d lines", strings.Count(nat.String(), "\n"))

	start = time.Now()
	if err := l.SetMode(ctx, scenarios.ModeNFTables); err != nil {
		t.Fatal(err)
	}
	t.Logf("switched to nftables in %s", time.Since(start).Round(time.Millisecond))
	if code, err := getFromNode(ctx, l.LabName(), last, 10*time.Minute); code != http.StatusOK {
		t.Fatalf("nftables: last Service does not answer: %d %v", code, err)
	}
	t.Logf("nftables: last Service answered %s after the switch began", time.Since(start).Round(time.Millisecond))
}

func createScaled(ctx context.Context, cs kubernetes.Interface, ns string, i int, eps []clusters.Endpoint) (string, error) {
	name := fmt.Sprintf("svc-%05d", i)
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(80)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", name, err)
	}
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(80)), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	for _, ep := range eps {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{ep.Addr.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("creating %s's endpoints: %w", name, err)
	}
	return svc.Spec.ClusterIP, nil
}
