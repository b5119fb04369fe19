package churn

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scaler"
)

const testNS = "kpbench"

var testBackends = []netip.Addr{
	netip.MustParseAddr("198.18.0.10"),
	netip.MustParseAddr("198.18.0.11"),
	netip.MustParseAddr("198.18.0.12"),
	netip.MustParseAddr("198.18.0.13"),
}

// newClient returns a fake clientset that, like an apiserver, gives every
// created Service a ClusterIP and a UID.
func newClient() *fake.Clientset {
	c := fake.NewClientset()
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

// scaled returns a client holding the scaler's n Services (2 endpoints
// each over 4 backends), the scaler and its template.
func scaled(t *testing.T, n int) (*fake.Clientset, *scaler.Scaler, scaler.Template) {
	t.Helper()
	c := newClient()
	s, err := scaler.New(c, scaler.Config{Namespace: testNS, EndpointIPs: testBackends, EndpointsPerService: 2, TargetPort: 8080})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Scale(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	cfg := s.Config()
	return c, s, scaler.Template{Namespace: cfg.Namespace, Port: cfg.Port, TargetPort: cfg.TargetPort,
		EndpointIPs: cfg.EndpointIPs, EndpointsPerService: cfg.EndpointsPerService}
}

// tick is a clock that moves a millisecond at each reading.
func tick() (func() time.Time, time.Time) {
	start := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	var n atomic.Int64
	return func() time.Time { return start.Add(time.Duration(n.Add(1)) * time.Millisecond) }, start
}

func sliceAddrs(t *testing.T, c *fake.Clientset, i int) []string {
	t.Helper()
	sl, err := c.DiscoveryV1().EndpointSlices(testNS).Get(context.Background(), scaler.SliceName(i), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range sl.Endpoints {
		if e.Conditions.Ready == nil || !*e.Conditions.Ready {
			t.Errorf("slice %d: endpoint %v not ready", i, e.Addresses)
		}
		out = append(out, e.Addresses...)
	}
	return out
}

func ep(k int) string { return testBackends[k].String() + ":8080" }
func ip(k int) string { return testBackends[k].String() }

func mustApply(t *testing.T, w *Writer, p Planned) runs.ChurnChange {
	t.Helper()
	c := w.Apply(context.Background(), p)
	if c.Error != "" {
		t.Fatalf("%s of service %d: %s", p.Kind, p.Service, c.Error)
	}
	if c.WrittenAt.IsZero() {
		t.Fatalf("%s of service %d: no acknowledgement time", p.Kind, p.Service)
	}
	return c
}

// TestWriterEndpointChanges: a replacement removes the Service's oldest
// endpoint and adds the next backend it does not list; to-zero empties
// its slice and restore gives the endpoints back; each change records the
// addresses, the ClusterIP and when the write was acknowledged.
func TestWriterEndpointChanges(t *testing.T) {
	c, _, tmpl := scaled(t, 5)
	now, _ := tick()
	w := NewWriter(c, tmpl, 5, now)
	ctx := context.Background()
	if err := w.Load(ctx); err != nil {
		t.Fatal(err)
	}
	svc1, err := c.CoreV1().Services(testNS).Get(ctx, scaler.ServiceName(1), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if i, ok := w.IndexOf(svc1.Spec.ClusterIP); !ok || i != 1 {
		t.Errorf("IndexOf(%s) = %d, %v; want 1", svc1.Spec.ClusterIP, i, ok)
	}
	if err := w.Prepare(ctx, []Planned{{Service: 1}, {Service: 3}, {Service: 7}}); err != nil {
		t.Fatal(err)
	}
	// Service 1 lists backends 1 and 2 (the scaler's ring).
	if got := sliceAddrs(t, c, 1); !reflect.DeepEqual(got, []string{ip(1), ip(2)}) {
		t.Fatalf("service 1 starts with %v", got)
	}
	ch := mustApply(t, w, Planned{Kind: runs.ChurnEndpointReplace, Service: 1, Target: true})
	if ch.Seq != 1 || ch.Service != testNS+"/"+scaler.ServiceName(1) || ch.ClusterIP != svc1.Spec.ClusterIP || !ch.Target ||
		!reflect.DeepEqual(ch.Removed, []string{ep(1)}) || !reflect.DeepEqual(ch.Added, []string{ep(3)}) {
		t.Errorf("first replacement recorded %+v", ch)
	}
	if got := sliceAddrs(t, c, 1); !reflect.DeepEqual(got, []string{ip(2), ip(3)}) {
		t.Errorf("after one replacement service 1 lists %v, want backends 2 and 3", got)
	}
	// The slice carries the change's moment for kube-proxy's own latency.
	sl, err := c.DiscoveryV1().EndpointSlices(testNS).Get(ctx, scaler.SliceName(1), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	trig, err := time.Parse(time.RFC3339Nano, sl.Annotations[corev1.EndpointsLastChangeTriggerTime])
	if err != nil || trig.IsZero() || !trig.Before(ch.WrittenAt) {
		t.Errorf("trigger time %q (%v), want a moment before the acknowledgement %v", sl.Annotations[corev1.EndpointsLastChangeTriggerTime], err, ch.WrittenAt)
	}
	ch2 := mustApply(t, w, Planned{Kind: runs.ChurnEndpointReplace, Service: 1})
	if !reflect.DeepEqual(ch2.Removed, []string{ep(2)}) || !reflect.DeepEqual(ch2.Added, []string{ep(0)}) || !ch2.WrittenAt.After(ch.WrittenAt) {
		t.Errorf("second replacement recorded %+v", ch2)
	}
	if got := sliceAddrs(t, c, 1); !reflect.DeepEqual(got, []string{ip(3), ip(0)}) {
		t.Errorf("after two replacements service 1 lists %v, want backends 3 and 0", got)
	}

	z := mustApply(t, w, Planned{Kind: runs.ChurnEndpointsToZero, Service: 3})
	if !reflect.DeepEqual(z.Removed, []string{ep(3), ep(0)}) || len(z.Added) != 0 || z.ClusterIP == "" {
		t.Errorf("to-zero recorded %+v", z)
	}
	if got := sliceAddrs(t, c, 3); len(got) != 0 {
		t.Errorf("service 3 at zero lists %v", got)
	}
	if bad := w.Apply(ctx, Planned{Kind: runs.ChurnEndpointReplace, Service: 3}); bad.Error == "" || !bad.WrittenAt.IsZero() {
		t.Errorf("a replacement at zero endpoints was made: %+v", bad)
	}
	r := mustApply(t, w, Planned{Kind: runs.ChurnEndpointsRestore, Service: 3})
	if !reflect.DeepEqual(r.Added, []string{ep(3), ep(0)}) || len(r.Removed) != 0 {
		t.Errorf("restore recorded %+v", r)
	}
	if got := sliceAddrs(t, c, 3); !reflect.DeepEqual(got, []string{ip(3), ip(0)}) {
		t.Errorf("service 3 restored lists %v", got)
	}
	if bad := w.Apply(ctx, Planned{Kind: runs.ChurnEndpointReplace, Service: 5}); bad.Error == "" {
		t.Error("a replacement outside the step was made")
	}
}

// TestWriterServices: churn creates Services past the step's, with their
// EndpointSlice, and deletes them again.
func TestWriterServices(t *testing.T) {
	c, _, tmpl := scaled(t, 3)
	now, _ := tick()
	w := NewWriter(c, tmpl, 3, now)
	ctx := context.Background()
	if err := w.Load(ctx); err != nil {
		t.Fatal(err)
	}
	cr := mustApply(t, w, Planned{Kind: runs.ChurnServiceCreate, Service: 3})
	svc, err := c.CoreV1().Services(testNS).Get(ctx, scaler.ServiceName(3), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("created service: %v", err)
	}
	if cr.ClusterIP == "" || cr.ClusterIP != svc.Spec.ClusterIP || svc.Labels[scaler.LabelIndex] != "3" {
		t.Errorf("create recorded %+v for %s %v", cr, svc.Spec.ClusterIP, svc.Labels)
	}
	// Index 3 over 4 backends: backends 3 and 0.
	if got := sliceAddrs(t, c, 3); !reflect.DeepEqual(got, []string{ip(3), ip(0)}) || !reflect.DeepEqual(cr.Added, []string{ep(3), ep(0)}) {
		t.Errorf("created slice lists %v, change added %v", got, cr.Added)
	}
	if bad := w.Apply(ctx, Planned{Kind: runs.ChurnServiceCreate, Service: 1}); bad.Error == "" {
		t.Error("created one of the step's Services")
	}
	del := mustApply(t, w, Planned{Kind: runs.ChurnServiceDelete, Service: 3})
	if del.ClusterIP != cr.ClusterIP || !reflect.DeepEqual(del.Removed, cr.Added) {
		t.Errorf("delete recorded %+v", del)
	}
	if _, err := c.CoreV1().Services(testNS).Get(ctx, scaler.ServiceName(3), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("deleted service still there: %v", err)
	}
	if _, err := c.DiscoveryV1().EndpointSlices(testNS).Get(ctx, scaler.SliceName(3), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("deleted service's slice still there: %v", err)
	}
	if bad := w.Apply(ctx, Planned{Kind: runs.ChurnServiceDelete, Service: 3}); bad.Error == "" {
		t.Error("deleted a Service twice")
	}
	if bad := w.Apply(ctx, Planned{Kind: runs.ChurnServiceDelete, Service: 0}); bad.Error == "" {
		t.Error("deleted one of the step's Services")
	}
}

// TestWriterRestore: after a window of every kind of change, Restore
// leaves the step exactly as the scaler left it: the scaler, asked for the
// same step, has nothing to write. Without Restore it would.
func TestWriterRestore(t *testing.T) {
	ctx := context.Background()
	window := func(w *Writer) {
		mustApply(t, w, Planned{Kind: runs.ChurnEndpointReplace, Service: 0})
		mustApply(t, w, Planned{Kind: runs.ChurnEndpointReplace, Service: 2})
		mustApply(t, w, Planned{Kind: runs.ChurnEndpointReplace, Service: 2})
		mustApply(t, w, Planned{Kind: runs.ChurnEndpointsToZero, Service: 1}) // left at zero
		mustApply(t, w, Planned{Kind: runs.ChurnServiceCreate, Service: 4})   // left created
		mustApply(t, w, Planned{Kind: runs.ChurnServiceCreate, Service: 5})
		mustApply(t, w, Planned{Kind: runs.ChurnServiceDelete, Service: 5})
	}
	c, s, tmpl := scaled(t, 4)
	now, _ := tick()
	w := NewWriter(c, tmpl, 4, now)
	if err := w.Load(ctx); err != nil {
		t.Fatal(err)
	}
	before, _ := c.CoreV1().Services(testNS).List(ctx, metav1.ListOptions{})
	window(w)
	if !w.Changed() {
		t.Error("Changed is false after a window of changes")
	}
	last, err := w.Restore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if last.IsZero() || w.Changed() {
		t.Errorf("Restore: last write %v, changed %v", last, w.Changed())
	}
	res, err := s.Scale(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if res.Writes() != 0 {
		t.Errorf("after Restore the scaler still wrote %d objects (created %d, updated %d, deleted %d)", res.Writes(), res.Created, res.Updated, res.Deleted)
	}
	after, _ := c.CoreV1().Services(testNS).List(ctx, metav1.ListOptions{})
	ips := func(l *corev1.ServiceList) map[string]string {
		m := map[string]string{}
		for _, s := range l.Items {
			m[s.Name] = s.Spec.ClusterIP
		}
		return m
	}
	if !reflect.DeepEqual(ips(before), ips(after)) {
		t.Errorf("the step's Services changed: %v, then %v", ips(before), ips(after))
	}
	if again, err := w.Restore(ctx); err != nil || !again.IsZero() {
		t.Errorf("a second Restore wrote at %v (%v)", again, err)
	}

	// The same window without Restore leaves the scaler work to do.
	c2, s2, tmpl2 := scaled(t, 4)
	w2 := NewWriter(c2, tmpl2, 4, now)
	if err := w2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	window(w2)
	res2, err := s2.Scale(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Writes() == 0 {
		t.Error("the window changed nothing the scaler sees")
	}
}

// TestWriterAPIErrors: a failed write is recorded with its error and no
// acknowledgement, and leaves the writer's state as it was; a conflict is
// read again and retried once.
func TestWriterAPIErrors(t *testing.T) {
	c, _, tmpl := scaled(t, 3)
	now, _ := tick()
	w := NewWriter(c, tmpl, 3, now)
	ctx := context.Background()
	if err := w.Load(ctx); err != nil {
		t.Fatal(err)
	}
	var fail, conflict atomic.Int64
	c.PrependReactor("update", "endpointslices", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if fail.Add(-1) >= 0 {
			return true, nil, apierrors.NewTooManyRequests("slow down", 1)
		}
		if conflict.Add(-1) >= 0 {
			name := a.(k8stesting.UpdateAction).GetObject().(metav1.Object).GetName()
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, name, fmt.Errorf("changed"))
		}
		return false, nil, nil
	})
	fail.Store(1)
	bad := w.Apply(ctx, Planned{Kind: runs.ChurnEndpointReplace, Service: 2})
	if bad.Error == "" || !strings.Contains(bad.Error, "slow down") || !bad.WrittenAt.IsZero() || bad.ClusterIP == "" {
		t.Errorf("failed write recorded %+v", bad)
	}
	if got := sliceAddrs(t, c, 2); !reflect.DeepEqual(got, []string{ip(2), ip(3)}) {
		t.Errorf("service 2 after a failed write lists %v", got)
	}
	conflict.Store(1)
	ok := mustApply(t, w, Planned{Kind: runs.ChurnEndpointReplace, Service: 2})
	if !reflect.DeepEqual(ok.Removed, []string{ep(2)}) || !reflect.DeepEqual(ok.Added, []string{ep(0)}) || ok.Seq != 2 {
		t.Errorf("the write after a failure and a conflict recorded %+v", ok)
	}
	if got := sliceAddrs(t, c, 2); !reflect.DeepEqual(got, []string{ip(3), ip(0)}) {
		t.Errorf("service 2 lists %v, want backends 3 and 0", got)
	}
	conflict.Store(2)
	if twice := w.Apply(ctx, Planned{Kind: runs.ChurnEndpointReplace, Service: 2}); twice.Error == "" {
		t.Error("two conflicts in a row were not an error")
	}
}

// TestWriterLoadNeedsTheStep: a writer for a step that is not (all) there
// says so.
func TestWriterLoadNeedsTheStep(t *testing.T) {
	c, _, tmpl := scaled(t, 2)
	if err := NewWriter(c, tmpl, 3, nil).Load(context.Background()); err == nil || !strings.Contains(err.Error(), scaler.ServiceName(2)) {
		t.Errorf("Load of a missing step: %v", err)
	}
	tmpl.EndpointIPs = tmpl.EndpointIPs[:1]
	if err := NewWriter(c, tmpl, 2, nil).Load(context.Background()); err == nil {
		t.Error("Load with fewer backends than endpoints per service")
	}
}
