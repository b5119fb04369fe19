package scaler

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

const ns = "kpbench"

var backends = []netip.Addr{
	netip.MustParseAddr("198.18.0.10"),
	netip.MustParseAddr("198.18.0.11"),
	netip.MustParseAddr("198.18.0.12"),
}

// fastBackoff keeps retry tests quick.
var fastBackoff = wait.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 4}

// newClient returns a fake clientset that, like an apiserver, gives every
// created Service a ClusterIP and a UID.
func newClient(objs ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objs...)
	var next atomic.Int64
	c.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		svc := a.(k8stesting.CreateAction).GetObject().(*corev1.Service)
		n := next.Add(1)
		svc.Spec.ClusterIP = fmt.Sprintf("198.19.%d.%d", n/256, n%256)
		svc.UID = types.UID("uid-" + svc.Name)
		return false, nil, nil
	})
	return c
}

func newScaler(t *testing.T, c *fake.Clientset, mod func(*Config)) *Scaler {
	t.Helper()
	cfg := Config{
		Namespace:           ns,
		EndpointIPs:         backends,
		EndpointsPerService: 2,
		Concurrency:         4,
		Backoff:             fastBackoff,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(c, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func listServices(t *testing.T, c *fake.Clientset, namespace string) []corev1.Service {
	t.Helper()
	l, err := c.CoreV1().Services(namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	return l.Items
}

func listSlices(t *testing.T, c *fake.Clientset, namespace string) []discoveryv1.EndpointSlice {
	t.Helper()
	l, err := c.DiscoveryV1().EndpointSlices(namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	return l.Items
}

func names[T any](items []T, name func(*T) string) []string {
	out := make([]string, len(items))
	for i := range items {
		out[i] = name(&items[i])
	}
	return out
}

func svcNames(items []corev1.Service) []string {
	return names(items, func(s *corev1.Service) string { return s.Name })
}

func sliceNames(items []discoveryv1.EndpointSlice) []string {
	return names(items, func(s *discoveryv1.EndpointSlice) string { return s.Name })
}

func wantNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = ServiceName(i)
	}
	return out
}

// writes returns the create/update/delete/patch actions the fake saw, as
// "verb resource name".
func writes(c *fake.Clientset) []string {
	var out []string
	for _, a := range c.Actions() {
		switch a.GetVerb() {
		case "create", "update", "delete", "patch":
			name := ""
			switch x := a.(type) {
			case k8stesting.CreateAction:
				name = x.GetObject().(metav1.Object).GetName()
			case k8stesting.UpdateAction:
				name = x.GetObject().(metav1.Object).GetName()
			case k8stesting.DeleteAction:
				name = x.GetName()
			}
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource+" "+name)
		}
	}
	return out
}

func TestScaleCreates(t *testing.T) {
	c := newClient()
	res, err := newScaler(t, c, nil).Scale(context.Background(), 5)
	if err != nil {
		t.Fatalf("Scale: %v", err)
	}
	if res.Services != 5 || res.Before != 0 || res.Created != 10 || res.Updated != 0 || res.Deleted != 0 {
		t.Errorf("result = %+v, want 5 services, 10 created", res)
	}
	if res.LastWrite.IsZero() || res.LastWrite.Before(res.StartedAt) {
		t.Errorf("LastWrite %v not after StartedAt %v", res.LastWrite, res.StartedAt)
	}
	if res.Last == nil || res.Last.Name != "kpb-svc-00004" || res.Last.Index != 4 || res.Last.ClusterIP == "" {
		t.Errorf("Last = %+v, want kpb-svc-00004 with a ClusterIP", res.Last)
	}

	nsObj, err := c.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("namespace not created: %v", err)
	}
	if nsObj.Labels[LabelManagedBy] != ManagedBy {
		t.Errorf("namespace labels = %v", nsObj.Labels)
	}

	svcs := listServices(t, c, ns)
	if got := svcNames(svcs); !slices.Equal(got, wantNames(5)) {
		t.Fatalf("services = %v, want %v", got, wantNames(5))
	}
	for i, svc := range svcs {
		if svc.Labels[LabelManagedBy] != ManagedBy || svc.Labels[LabelIndex] != strconv.Itoa(i) {
			t.Errorf("%s labels = %v", svc.Name, svc.Labels)
		}
		if svc.Spec.Selector != nil || svc.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("%s: selector %v type %s, want selector-less ClusterIP", svc.Name, svc.Spec.Selector, svc.Spec.Type)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].Protocol != corev1.ProtocolTCP ||
			svc.Spec.Ports[0].TargetPort != intstr.FromInt32(80) || svc.Spec.Ports[0].Name != "" {
			t.Errorf("%s ports = %+v, want one unnamed TCP 80->80", svc.Name, svc.Spec.Ports)
		}
	}

	sls := listSlices(t, c, ns)
	if got := sliceNames(sls); !slices.Equal(got, wantNames(5)) {
		t.Fatalf("slices = %v, want %v", got, wantNames(5))
	}
	// Two endpoints per Service, starting one backend further each time.
	wantAddrs := [][]string{
		{"198.18.0.10", "198.18.0.11"},
		{"198.18.0.11", "198.18.0.12"},
		{"198.18.0.12", "198.18.0.10"},
		{"198.18.0.10", "198.18.0.11"},
		{"198.18.0.11", "198.18.0.12"},
	}
	for i, sl := range sls {
		svc := ServiceName(i)
		for k, v := range map[string]string{
			LabelManagedBy:               ManagedBy,
			LabelIndex:                   strconv.Itoa(i),
			discoveryv1.LabelServiceName: svc,
			discoveryv1.LabelManagedBy:   ManagedBy,
		} {
			if sl.Labels[k] != v {
				t.Errorf("%s label %s = %q, want %q", sl.Name, k, sl.Labels[k], v)
			}
		}
		if sl.AddressType != discoveryv1.AddressTypeIPv4 {
			t.Errorf("%s addressType %s", sl.Name, sl.AddressType)
		}
		var addrs []string
		for _, e := range sl.Endpoints {
			addrs = append(addrs, e.Addresses...)
			if e.Conditions.Ready == nil || !*e.Conditions.Ready {
				t.Errorf("%s endpoint %v not ready", sl.Name, e.Addresses)
			}
		}
		if !slices.Equal(addrs, wantAddrs[i]) {
			t.Errorf("%s endpoints = %v, want %v", sl.Name, addrs, wantAddrs[i])
		}
		if len(sl.Ports) != 1 || *sl.Ports[0].Name != "" || *sl.Ports[0].Port != 80 || *sl.Ports[0].Protocol != corev1.ProtocolTCP {
			t.Errorf("%s ports = %+v", sl.Name, sl.Ports)
		}
		if len(sl.OwnerReferences) != 1 || sl.OwnerReferences[0].UID != types.UID("uid-"+svc) || sl.OwnerReferences[0].Kind != "Service" {
			t.Errorf("%s owners = %+v, want Service %s", sl.Name, sl.OwnerReferences, svc)
		}
	}
}

func TestScaleIdempotent(t *testing.T) {
	c := newClient()
	s := newScaler(t, c, nil)
	if _, err := s.Scale(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
	c.ClearActions()
	res, err := s.Scale(context.Background(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if w := writes(c); len(w) != 0 {
		t.Errorf("second Scale(7) wrote %v, want nothing", w)
	}
	if res.Writes() != 0 || !res.LastWrite.IsZero() || res.Before != 7 || res.Services != 7 {
		t.Errorf("result = %+v, want no writes, 7 before and after", res)
	}
	if res.Last == nil || res.Last.Name != ServiceName(6) || res.Last.ClusterIP == "" {
		t.Errorf("Last = %+v, want the listed %s with its ClusterIP", res.Last, ServiceName(6))
	}
}

func TestScaleDownReverseOrder(t *testing.T) {
	c := newClient()
	s := newScaler(t, c, func(cfg *Config) { cfg.Concurrency = 1 })
	if _, err := s.Scale(context.Background(), 6); err != nil {
		t.Fatal(err)
	}
	c.ClearActions()
	res, err := s.Scale(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"delete endpointslices kpb-svc-00005", "delete services kpb-svc-00005",
		"delete endpointslices kpb-svc-00004", "delete services kpb-svc-00004",
		"delete endpointslices kpb-svc-00003", "delete services kpb-svc-00003",
	}
	if got := writes(c); !slices.Equal(got, want) {
		t.Errorf("writes = %v\nwant %v", got, want)
	}
	if res.Deleted != 6 || res.Before != 6 || res.Services != 3 || res.Created != 0 {
		t.Errorf("result = %+v", res)
	}
	if got := svcNames(listServices(t, c, ns)); !slices.Equal(got, wantNames(3)) {
		t.Errorf("services left = %v", got)
	}
	if got := sliceNames(listSlices(t, c, ns)); !slices.Equal(got, wantNames(3)) {
		t.Errorf("slices left = %v", got)
	}
	if res.Last == nil || res.Last.Name != ServiceName(2) {
		t.Errorf("Last = %+v, want %s", res.Last, ServiceName(2))
	}
}

func TestScaleUpFromExisting(t *testing.T) {
	c := newClient()
	s := newScaler(t, c, func(cfg *Config) { cfg.Concurrency = 1 })
	if _, err := s.Scale(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	c.ClearActions()
	if _, err := s.Scale(context.Background(), 4); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"create services kpb-svc-00002", "create endpointslices kpb-svc-00002",
		"create services kpb-svc-00003", "create endpointslices kpb-svc-00003",
	}
	if got := writes(c); !slices.Equal(got, want) {
		t.Errorf("writes = %v\nwant %v", got, want)
	}
}

// Objects kpbench did not make as synthetic Services are never touched:
// other namespaces, unlabelled objects, and kpbench objects without the
// index label (the backends' own Service, say).
func TestScaleZeroLeavesUnrelated(t *testing.T) {
	keep := []runtime.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kpb-svc-00000", Namespace: "other",
			Labels: map[string]string{LabelManagedBy: ManagedBy, LabelIndex: "0"}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "user-svc", Namespace: ns}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "backends", Namespace: ns,
			Labels: map[string]string{LabelManagedBy: ManagedBy}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "backends-abcde", Namespace: ns,
			Labels: map[string]string{LabelManagedBy: ManagedBy, discoveryv1.LabelServiceName: "backends"}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "user-svc-xyz", Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: "user-svc"}}},
	}
	c := newClient(keep...)
	s := newScaler(t, c, nil)
	if _, err := s.Scale(context.Background(), 4); err != nil {
		t.Fatal(err)
	}
	res, err := s.Scale(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 8 || res.Strays != 0 || res.Last != nil {
		t.Errorf("result = %+v, want 8 deleted, no strays, no last", res)
	}
	if got, want := svcNames(listServices(t, c, ns)), []string{"backends", "user-svc"}; !slices.Equal(got, want) {
		t.Errorf("services left in %s = %v, want %v", ns, got, want)
	}
	if got, want := sliceNames(listSlices(t, c, ns)), []string{"backends-abcde", "user-svc-xyz"}; !slices.Equal(got, want) {
		t.Errorf("slices left in %s = %v, want %v", ns, got, want)
	}
	if got := svcNames(listServices(t, c, "other")); len(got) != 1 {
		t.Errorf("services in other namespace = %v, want untouched", got)
	}
}

func TestScaleRemovesStrays(t *testing.T) {
	lbl := func(i string) map[string]string {
		return map[string]string{LabelManagedBy: ManagedBy, LabelIndex: i}
	}
	strays := []runtime.Object{
		// A slice whose Service is gone (index above the target).
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "kpb-svc-00007", Namespace: ns, Labels: lbl("7")}},
		// Name and index label disagree.
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "kpb-svc-00001", Namespace: ns, Labels: lbl("9")}},
		// A name the scaler never derives.
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kpb-svc-1", Namespace: ns, Labels: lbl("1")}},
	}
	tests := []struct {
		name      string
		n         int
		wantStray int
		wantSvcs  []string
	}{
		{"to zero", 0, 2, nil},
		{"to two", 2, 2, wantNames(2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(strays...)
			res, err := newScaler(t, c, nil).Scale(context.Background(), tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if res.Strays != tt.wantStray {
				t.Errorf("strays = %d, want %d", res.Strays, tt.wantStray)
			}
			if got := svcNames(listServices(t, c, ns)); !slices.Equal(got, tt.wantSvcs) {
				t.Errorf("services = %v, want %v", got, tt.wantSvcs)
			}
			if got := sliceNames(listSlices(t, c, ns)); !slices.Equal(got, tt.wantSvcs) {
				t.Errorf("slices = %v, want %v", got, tt.wantSvcs)
			}
		})
	}
}

func TestScaleRepairs(t *testing.T) {
	c := newClient()
	s := newScaler(t, c, func(cfg *Config) { cfg.Concurrency = 1 })
	if _, err := s.Scale(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Break Service 0's port, slice 1's endpoints; drop slice 2.
	svc, _ := c.CoreV1().Services(ns).Get(ctx, ServiceName(0), metav1.GetOptions{})
	svc.Spec.Ports[0].Port = 8080
	if _, err := c.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	sl, _ := c.DiscoveryV1().EndpointSlices(ns).Get(ctx, SliceName(1), metav1.GetOptions{})
	sl.Endpoints = sl.Endpoints[:1]
	if _, err := c.DiscoveryV1().EndpointSlices(ns).Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.DiscoveryV1().EndpointSlices(ns).Delete(ctx, SliceName(2), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.ClearActions()
	res, err := s.Scale(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"update services kpb-svc-00000",
		"update endpointslices kpb-svc-00001",
		"create endpointslices kpb-svc-00002",
	}
	if got := writes(c); !slices.Equal(got, want) {
		t.Errorf("writes = %v\nwant %v", got, want)
	}
	if res.Updated != 2 || res.Created != 1 {
		t.Errorf("result = %+v", res)
	}
	svc, _ = c.CoreV1().Services(ns).Get(ctx, ServiceName(0), metav1.GetOptions{})
	if svc.Spec.Ports[0].Port != 80 {
		t.Errorf("service 0 port = %d after repair", svc.Spec.Ports[0].Port)
	}

	// New backend IPs: every slice is rewritten, Services stay.
	s2 := newScaler(t, c, func(cfg *Config) {
		cfg.EndpointIPs = []netip.Addr{netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.1.2")}
	})
	c.ClearActions()
	res, err = s2.Scale(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if res.Updated != 3 || res.Created != 0 {
		t.Errorf("after new IPs: result = %+v, want 3 slice updates", res)
	}
	for _, sl := range listSlices(t, c, ns) {
		if a := sl.Endpoints[0].Addresses[0]; a != "198.18.1.1" && a != "198.18.1.2" {
			t.Errorf("%s still points at %s", sl.Name, a)
		}
	}
}

// A Service created by an interrupted or concurrent run is adopted, not an
// error.
func TestScaleAlreadyExists(t *testing.T) {
	c := newClient()
	tmpl := Template{Namespace: ns, Port: 80, TargetPort: 80, EndpointIPs: backends, EndpointsPerService: 2}
	var once sync.Once
	c.PrependReactor("create", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		svc := a.(k8stesting.CreateAction).GetObject().(*corev1.Service)
		if svc.Name != ServiceName(1) {
			return false, nil, nil
		}
		raced := false
		once.Do(func() {
			other := tmpl.Service(1)
			other.Spec.ClusterIP = "198.19.9.9"
			_ = c.Tracker().Add(other)
			raced = true
		})
		if raced {
			return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "services"}, svc.Name)
		}
		return false, nil, nil
	})
	res, err := newScaler(t, c, nil).Scale(context.Background(), 2)
	if err != nil {
		t.Fatalf("Scale: %v", err)
	}
	if got := sliceNames(listSlices(t, c, ns)); !slices.Equal(got, wantNames(2)) {
		t.Errorf("slices = %v", got)
	}
	if res.Last == nil || res.Last.ClusterIP != "198.19.9.9" {
		t.Errorf("Last = %+v, want the adopted Service's ClusterIP", res.Last)
	}
	if res.Created != 3 || res.Updated != 0 {
		t.Errorf("result = %+v, want 3 created (one Service adopted), none updated", res)
	}
}

func TestScaleRetries(t *testing.T) {
	gr := schema.GroupResource{Resource: "services"}
	tests := []struct {
		name        string
		verb, res   string
		err         error
		failures    int
		wantErr     bool
		wantRetries int
	}{
		{"429 on create", "create", "services", apierrors.NewTooManyRequests("slow down", 0), 2, false, 2},
		{"server timeout on slice create", "create", "endpointslices", apierrors.NewServerTimeout(gr, "create", 0), 1, false, 1},
		{"conflict on update", "update", "endpointslices", apierrors.NewConflict(gr, "kpb-svc-00000", errors.New("changed")), 3, false, 3},
		{"unavailable on delete", "delete", "services", apierrors.NewServiceUnavailable("restarting"), 1, false, 1},
		{"throttled on list", "list", "services", apierrors.NewTooManyRequests("slow down", 0), 1, false, 0},
		{"forbidden is final", "create", "services", apierrors.NewForbidden(gr, "x", errors.New("no")), 1, true, 0},
		{"too many failures", "create", "services", apierrors.NewTooManyRequests("slow down", 0), 10, true, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient()
			s := newScaler(t, c, func(cfg *Config) { cfg.Concurrency = 1 })
			ctx := context.Background()
			// State to work on: one Service to update or delete.
			if _, err := s.Scale(ctx, 1); err != nil {
				t.Fatal(err)
			}
			n := 2
			switch tt.verb {
			case "update":
				sl, _ := c.DiscoveryV1().EndpointSlices(ns).Get(ctx, SliceName(0), metav1.GetOptions{})
				sl.Endpoints = nil
				_, _ = c.DiscoveryV1().EndpointSlices(ns).Update(ctx, sl, metav1.UpdateOptions{})
				n = 1
			case "delete":
				n = 0
			}
			var calls atomic.Int64
			c.PrependReactor(tt.verb, tt.res, func(k8stesting.Action) (bool, runtime.Object, error) {
				if calls.Add(1) <= int64(tt.failures) {
					return true, nil, tt.err
				}
				return false, nil, nil
			})
			res, err := s.Scale(ctx, n)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Scale succeeded, want an error")
				}
				if !errors.Is(err, tt.err) && !apierrors.IsForbidden(err) && !apierrors.IsTooManyRequests(err) {
					t.Errorf("error %v does not wrap the API error", err)
				}
			} else if err != nil {
				t.Fatalf("Scale: %v", err)
			}
			if res.Retries != tt.wantRetries {
				t.Errorf("retries = %d, want %d", res.Retries, tt.wantRetries)
			}
			if !tt.wantErr {
				if got := svcNames(listServices(t, c, ns)); !slices.Equal(got, wantNames(n)) {
					t.Errorf("services = %v, want %v", got, wantNames(n))
				}
			}
		})
	}
}

// The lists page: a reactor serves one page per call and the scaler must
// follow Continue to the end.
func TestScaleListPages(t *testing.T) {
	c := newClient()
	s := newScaler(t, c, nil)
	if _, err := s.Scale(context.Background(), 23); err != nil {
		t.Fatal(err)
	}
	var pages atomic.Int64
	c.PrependReactor("list", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
		opts := a.(k8stesting.ListActionImpl).ListOptions
		all, err := c.Tracker().List(schema.GroupVersionResource{Version: "v1", Resource: "services"},
			schema.GroupVersionKind{Version: "v1", Kind: "Service"}, ns)
		if err != nil {
			return true, nil, err
		}
		items := all.(*corev1.ServiceList).Items
		sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
		start := 0
		if opts.Continue != "" {
			start, _ = strconv.Atoi(opts.Continue)
		}
		end := min(start+int(opts.Limit), len(items))
		page := &corev1.ServiceList{Items: items[start:end]}
		if end < len(items) {
			page.Continue = strconv.Itoa(end)
		}
		pages.Add(1)
		return true, page, nil
	})
	s = newScaler(t, c, func(cfg *Config) { cfg.PageSize = 5 })
	c.ClearActions()
	res, err := s.Scale(context.Background(), 23)
	if err != nil {
		t.Fatal(err)
	}
	if pages.Load() != 5 {
		t.Errorf("listed %d pages, want 5 (23 Services by 5)", pages.Load())
	}
	if res.Before != 23 || res.Writes() != 0 {
		t.Errorf("result = %+v, want all 23 found and nothing written", res)
	}
}

func TestScaleInvalid(t *testing.T) {
	v6 := netip.MustParseAddr("fd00::1")
	tests := []struct {
		name string
		mod  func(*Config)
		n    int
	}{
		{"negative count", nil, -1},
		{"count above max", nil, MaxServices + 1},
		{"no IPs", func(c *Config) { c.EndpointIPs = nil }, 1},
		{"more endpoints than IPs", func(c *Config) { c.EndpointsPerService = 4 }, 1},
		{"IPv6 endpoint", func(c *Config) { c.EndpointIPs = []netip.Addr{v6}; c.EndpointsPerService = 1 }, 1},
		{"duplicate IP", func(c *Config) { c.EndpointIPs = []netip.Addr{backends[0], backends[0]} }, 1},
		{"bad port", func(c *Config) { c.Port = 70000 }, 1},
		{"bad concurrency", func(c *Config) { c.Concurrency = -1 }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Namespace: ns, EndpointIPs: backends, EndpointsPerService: 2}
			if tt.mod != nil {
				tt.mod(&cfg)
			}
			c := newClient()
			s, err := New(c, cfg)
			if err == nil {
				_, err = s.Scale(context.Background(), tt.n)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if w := writes(c); len(w) != 0 {
				t.Errorf("invalid request wrote %v", w)
			}
		})
	}
	// Zero Services needs no endpoint IPs.
	s, err := New(newClient(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Scale(context.Background(), 0); err != nil {
		t.Errorf("Scale(0) without IPs: %v", err)
	}
}

func TestScaleCancelled(t *testing.T) {
	c := newClient()
	ctx, cancel := context.WithCancel(context.Background())
	var creates atomic.Int64
	c.PrependReactor("create", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		if creates.Add(1) == 3 {
			cancel()
		}
		return false, nil, nil
	})
	_, err := newScaler(t, c, func(cfg *Config) { cfg.Concurrency = 1 }).Scale(ctx, 50)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := len(listServices(t, c, ns)); n >= 50 || n < 3 {
		t.Errorf("%d Services after cancel, want a prefix", n)
	}
	// A later run finishes the job.
	if _, err := newScaler(t, c, nil).Scale(context.Background(), 50); err != nil {
		t.Fatal(err)
	}
	if got := svcNames(listServices(t, c, ns)); !slices.Equal(got, wantNames(50)) {
		t.Errorf("services after resume = %d", len(got))
	}
}

type recProgress struct {
	mu     sync.Mutex
	events []string
	added  int
}

func (p *recProgress) Start(phase string, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, fmt.Sprintf("start %s %d", phase, total))
	p.added = 0
}

func (p *recProgress) Add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.added += n
}

func (p *recProgress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, fmt.Sprintf("finish %d", p.added))
}

func TestScaleProgress(t *testing.T) {
	c := newClient()
	p := &recProgress{}
	s := newScaler(t, c, func(cfg *Config) { cfg.Progress = p })
	ctx := context.Background()
	for _, n := range []int{6, 6, 2} {
		if _, err := s.Scale(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"start create 6", "finish 6", "start delete 4", "finish 4"}
	if !slices.Equal(p.events, want) {
		t.Errorf("progress = %v, want %v", p.events, want)
	}
}
