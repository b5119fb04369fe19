package churn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scaler"
)

// Writer makes churn's API writes to one step's synthetic Services and
// EndpointSlices: the objects package scaler creates, with its names,
// labels and Template. Every endpoint it writes is one of the template's
// backends (real backend pods). Restore puts the step back as the scaler
// left it. A Writer serves one point; its methods may not run
// concurrently with each other (they are serialised anyway).
type Writer struct {
	client kubernetes.Interface
	tmpl   scaler.Template
	n      int
	now    func() time.Time

	mu   sync.Mutex
	svcs map[int]*svcState
	byIP map[string]int
	seq  int
}

// svcState is what the writer knows of one Service: the step's, or one it
// created.
type svcState struct {
	name      string
	clusterIP string
	uid       types.UID
	// slice is the EndpointSlice as last read or written (nil: not read
	// yet).
	slice *discoveryv1.EndpointSlice
	// shift counts the endpoint replacements made: the endpoints are the
	// template's backends at ring positions index+shift ..
	// index+shift+endpointsPerService-1 (the scaler's are shift 0).
	shift int
	// zero: the endpoints were written away (endpoints-to-zero).
	zero bool
	// created: churn created the Service (index past the step's);
	// deleted: churn deleted it again; sliceLeft: its EndpointSlice is
	// still to delete.
	created, deleted, sliceLeft bool
}

// NewWriter returns a writer for the step of services Services described
// by tmpl (scaler.Scaler's Config gives its fields). now is the clock of
// the acknowledgements (time.Now in a run).
func NewWriter(client kubernetes.Interface, tmpl scaler.Template, services int, now func() time.Time) *Writer {
	if now == nil {
		now = time.Now
	}
	return &Writer{client: client, tmpl: tmpl, n: services, now: now, svcs: map[int]*svcState{}, byIP: map[string]int{}}
}

// Load reads the step's Services (their ClusterIPs and UIDs) as the scaler
// left them. Every one of the step's indices must be there.
func (w *Writer) Load(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if eps := w.tmpl.EndpointsPerService; eps < 1 || len(w.tmpl.EndpointIPs) < eps {
		return fmt.Errorf("a template of %d endpoints per service over %d backends", eps, len(w.tmpl.EndpointIPs))
	}
	opts := metav1.ListOptions{LabelSelector: scaler.Selector, Limit: 500}
	for {
		list, err := w.client.CoreV1().Services(w.tmpl.Namespace).List(ctx, opts)
		if err != nil {
			return fmt.Errorf("listing the step's services in %s: %w", w.tmpl.Namespace, err)
		}
		for k := range list.Items {
			svc := &list.Items[k]
			i, ok := scaler.ParseIndex(svc.Name)
			if !ok || i >= w.n {
				continue
			}
			w.svcs[i] = &svcState{name: svc.Name, clusterIP: svc.Spec.ClusterIP, uid: svc.UID}
			if svc.Spec.ClusterIP != "" {
				w.byIP[svc.Spec.ClusterIP] = i
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	var missing []string
	for i := range w.n {
		if w.svcs[i] == nil {
			missing = append(missing, scaler.ServiceName(i))
			if len(missing) == 5 {
				break
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the step of %d services is not in %s (missing %v): scale it first", w.n, w.tmpl.Namespace, missing)
	}
	return nil
}

// IndexOf returns the index of the step's Service with that ClusterIP.
func (w *Writer) IndexOf(clusterIP string) (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, ok := w.byIP[clusterIP]
	return i, ok
}

// Prepare reads the EndpointSlices of the step's Services the plan
// touches, so that the window's writes need no read first.
func (w *Writer) Prepare(ctx context.Context, plan []Planned) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range plan {
		if p.Service >= w.n {
			continue
		}
		st, err := w.step(p.Service)
		if err != nil {
			return err
		}
		if st.slice == nil {
			if err := w.readSlice(ctx, st); err != nil {
				return err
			}
		}
	}
	return nil
}

// Apply makes one planned change and returns it as recorded: its Seq (from
// 1, in the order applied), the Service, its ClusterIP, the endpoint
// addresses removed and added (IP:port), and WrittenAt, the moment the API
// server acknowledged the write; or Error when the write failed (the
// writer's state is then as before it). PlannedAt is the caller's.
func (w *Writer) Apply(ctx context.Context, p Planned) runs.ChurnChange {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	c := runs.ChurnChange{Seq: w.seq, Kind: p.Kind, Service: w.tmpl.Namespace + "/" + scaler.ServiceName(p.Service), Target: p.Target}
	var err error
	switch p.Kind {
	case runs.ChurnEndpointReplace:
		err = w.replace(ctx, p.Service, &c)
	case runs.ChurnEndpointsToZero:
		err = w.toZero(ctx, p.Service, &c)
	case runs.ChurnEndpointsRestore:
		err = w.restoreEndpoints(ctx, p.Service, &c)
	case runs.ChurnServiceCreate:
		err = w.create(ctx, p.Service, &c)
	case runs.ChurnServiceDelete:
		err = w.deleteService(ctx, p.Service, &c)
	default:
		err = fmt.Errorf("unknown change kind %q", p.Kind)
	}
	if err != nil {
		c.Error = err.Error()
		c.WrittenAt = time.Time{}
	}
	return c
}

// step returns the state of one of the step's Services.
func (w *Writer) step(i int) (*svcState, error) {
	if i < 0 || i >= w.n {
		return nil, fmt.Errorf("service index %d is not one of the step's %d", i, w.n)
	}
	st := w.svcs[i]
	if st == nil {
		return nil, fmt.Errorf("service %s was not loaded", scaler.ServiceName(i))
	}
	return st, nil
}

// endpointsStep returns one of the step's Services with its slice read.
func (w *Writer) endpointsStep(ctx context.Context, i int) (*svcState, error) {
	st, err := w.step(i)
	if err != nil {
		return nil, err
	}
	if st.slice == nil {
		if err := w.readSlice(ctx, st); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func (w *Writer) readSlice(ctx context.Context, st *svcState) error {
	sl, err := w.client.DiscoveryV1().EndpointSlices(w.tmpl.Namespace).Get(ctx, st.name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading endpointslice %s: %w", st.name, err)
	}
	st.slice = sl
	return nil
}

// ring returns the backends at ring positions index+shift onwards, as many
// as a Service lists: the scaler's endpoints at shift 0.
func (w *Writer) ring(index, shift int) []netip.Addr {
	nb := len(w.tmpl.EndpointIPs)
	out := make([]netip.Addr, w.tmpl.EndpointsPerService)
	for k := range out {
		out[k] = w.tmpl.EndpointIPs[(index+shift+k)%nb]
	}
	return out
}

// addr is an endpoint as a change records it: IP:port.
func (w *Writer) addr(ip netip.Addr) string {
	return netip.AddrPortFrom(ip, uint16(w.tmpl.TargetPort)).String()
}

func (w *Writer) addrs(ips []netip.Addr) []string {
	out := make([]string, len(ips))
	for k, ip := range ips {
		out[k] = w.addr(ip)
	}
	return out
}

func (w *Writer) replace(ctx context.Context, i int, c *runs.ChurnChange) error {
	st, err := w.endpointsStep(ctx, i)
	if err != nil {
		return err
	}
	c.ClusterIP = st.clusterIP
	if st.zero {
		return fmt.Errorf("service %s has no endpoints to replace", st.name)
	}
	nb, eps := len(w.tmpl.EndpointIPs), w.tmpl.EndpointsPerService
	if nb <= eps {
		return fmt.Errorf("no backend outside service %s's endpoints: %d backends, %d endpoints per service", st.name, nb, eps)
	}
	// A rolling update's step: the oldest endpoint leaves, the next
	// backend on the ring (not one of the Service's) joins.
	leaving := w.tmpl.EndpointIPs[(i+st.shift)%nb]
	joining := w.tmpl.EndpointIPs[(i+st.shift+eps)%nb]
	at, err := w.writeEndpoints(ctx, st, w.ring(i, st.shift+1))
	if err != nil {
		return err
	}
	st.shift++
	c.Removed, c.Added, c.WrittenAt = []string{w.addr(leaving)}, []string{w.addr(joining)}, at
	return nil
}

func (w *Writer) toZero(ctx context.Context, i int, c *runs.ChurnChange) error {
	st, err := w.endpointsStep(ctx, i)
	if err != nil {
		return err
	}
	c.ClusterIP = st.clusterIP
	if st.zero {
		return fmt.Errorf("service %s has no endpoints already", st.name)
	}
	at, err := w.writeEndpoints(ctx, st, nil)
	if err != nil {
		return err
	}
	st.zero = true
	c.Removed, c.WrittenAt = w.addrs(w.ring(i, st.shift)), at
	return nil
}

func (w *Writer) restoreEndpoints(ctx context.Context, i int, c *runs.ChurnChange) error {
	st, err := w.endpointsStep(ctx, i)
	if err != nil {
		return err
	}
	c.ClusterIP = st.clusterIP
	if !st.zero {
		return fmt.Errorf("service %s has its endpoints: nothing to restore", st.name)
	}
	back := w.ring(i, st.shift)
	at, err := w.writeEndpoints(ctx, st, back)
	if err != nil {
		return err
	}
	st.zero = false
	c.Added, c.WrittenAt = w.addrs(back), at
	return nil
}

// writeEndpoints updates st's EndpointSlice to list ips (ready), from the
// slice as last known; on a conflict it reads it again and retries once.
// It returns when the API server acknowledged the update.
func (w *Writer) writeEndpoints(ctx context.Context, st *svcState, ips []netip.Addr) (time.Time, error) {
	api := w.client.DiscoveryV1().EndpointSlices(w.tmpl.Namespace)
	for attempt := 0; ; attempt++ {
		want := st.slice.DeepCopy()
		want.Endpoints = endpoints(ips)
		w.triggered(&want.ObjectMeta)
		got, err := api.Update(ctx, want, metav1.UpdateOptions{})
		if err == nil {
			at := w.now()
			st.slice = got
			return at, nil
		}
		if !apierrors.IsConflict(err) || attempt > 0 {
			return time.Time{}, fmt.Errorf("updating endpointslice %s: %w", st.name, err)
		}
		if err := w.readSlice(ctx, st); err != nil {
			return time.Time{}, err
		}
	}
}

// triggered stamps an EndpointSlice with the moment of its change
// (endpoints.kubernetes.io/last-change-trigger-time), as the EndpointSlice
// controller does: kube-proxy then observes the change's programming in
// its own network_programming_duration_seconds, beside the latency read
// from the node's rules. The scaler ignores the annotation when it
// compares a slice with its template.
func (w *Writer) triggered(m *metav1.ObjectMeta) {
	if m.Annotations == nil {
		m.Annotations = map[string]string{}
	}
	m.Annotations[corev1.EndpointsLastChangeTriggerTime] = w.now().UTC().Format(time.RFC3339Nano)
}

// endpoints lists ips as ready endpoints, as the scaler's template does.
func endpoints(ips []netip.Addr) []discoveryv1.Endpoint {
	yes, no := true, false
	out := make([]discoveryv1.Endpoint, len(ips))
	for k, ip := range ips {
		out[k] = discoveryv1.Endpoint{
			Addresses:  []string{ip.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: &yes, Serving: &yes, Terminating: &no},
		}
	}
	return out
}

// create makes Service j (past the step's) and its EndpointSlice with the
// template's endpoints; the change is written when the slice is.
func (w *Writer) create(ctx context.Context, j int, c *runs.ChurnChange) error {
	if j < w.n {
		return fmt.Errorf("service index %d is one of the step's %d: churn creates past them", j, w.n)
	}
	if st := w.svcs[j]; st != nil && st.created && !st.deleted {
		return fmt.Errorf("service %s was created already", st.name)
	}
	if j > scaler.MaxServices {
		return fmt.Errorf("service index %d is past the scaler's %d", j, scaler.MaxServices)
	}
	got, err := w.client.CoreV1().Services(w.tmpl.Namespace).Create(ctx, w.tmpl.Service(j), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating service %s: %w", scaler.ServiceName(j), err)
	}
	st := &svcState{name: got.Name, clusterIP: got.Spec.ClusterIP, uid: got.UID, created: true}
	w.svcs[j] = st
	c.ClusterIP = got.Spec.ClusterIP
	want := w.tmpl.EndpointSlice(j, got.UID)
	w.triggered(&want.ObjectMeta)
	sl, err := w.client.DiscoveryV1().EndpointSlices(w.tmpl.Namespace).Create(ctx, want, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating endpointslice %s: %w", scaler.SliceName(j), err)
	}
	c.WrittenAt = w.now()
	st.slice, st.sliceLeft = sl, true
	c.Added = w.addrs(w.ring(j, 0))
	return nil
}

// deleteService deletes Service j, which churn created, then its
// EndpointSlice; the change is written when the Service is deleted (its
// rules go with it). A slice left behind is deleted by Restore.
func (w *Writer) deleteService(ctx context.Context, j int, c *runs.ChurnChange) error {
	st := w.svcs[j]
	if st == nil || !st.created || st.deleted {
		return fmt.Errorf("service %s is not one churn created and has not deleted", scaler.ServiceName(j))
	}
	c.ClusterIP = st.clusterIP
	err := w.client.CoreV1().Services(w.tmpl.Namespace).Delete(ctx, st.name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting service %s: %w", st.name, err)
	}
	c.WrittenAt = w.now()
	st.deleted = true
	if st.slice != nil {
		c.Removed = w.addrs(w.ring(j, 0))
	}
	if st.sliceLeft {
		if err := w.deleteSlice(ctx, st); err == nil {
			st.sliceLeft = false
		}
	}
	return nil
}

func (w *Writer) deleteSlice(ctx context.Context, st *svcState) error {
	err := w.client.DiscoveryV1().EndpointSlices(w.tmpl.Namespace).Delete(ctx, st.name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting endpointslice %s: %w", st.name, err)
	}
	return nil
}

// Restore puts the step back as the scaler left it: every Service whose
// endpoints churn changed gets the template's again, and every Service
// churn created and has not deleted is deleted, with its EndpointSlice.
// None of this is a change of the window (nothing is recorded). It returns
// when the last write was acknowledged (zero when nothing was written) and
// every error at once; what failed is left for the scaler to repair.
func (w *Writer) Restore(ctx context.Context) (time.Time, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	idx := make([]int, 0, len(w.svcs))
	for i := range w.svcs {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	var (
		last time.Time
		errs []error
	)
	wrote := func(at time.Time) {
		if at.After(last) {
			last = at
		}
	}
	for _, i := range idx {
		st := w.svcs[i]
		switch {
		case st.created:
			if !st.deleted {
				if err := w.client.CoreV1().Services(w.tmpl.Namespace).Delete(ctx, st.name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("deleting service %s: %w", st.name, err))
					continue
				}
				wrote(w.now())
				st.deleted = true
			}
			if st.sliceLeft {
				if err := w.deleteSlice(ctx, st); err != nil {
					errs = append(errs, err)
					continue
				}
				wrote(w.now())
				st.sliceLeft = false
			}
		case st.slice != nil && (st.zero || st.shift%len(w.tmpl.EndpointIPs) != 0):
			at, err := w.writeEndpoints(ctx, st, w.ring(i, 0))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			wrote(at)
			st.shift, st.zero = 0, false
		}
	}
	return last, errors.Join(errs...)
}

// Changed reports whether the writer left anything that Restore has not
// put back.
func (w *Writer) Changed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, st := range w.svcs {
		if st.created && (!st.deleted || st.sliceLeft) || !st.created && (st.zero || st.shift%len(w.tmpl.EndpointIPs) != 0) {
			return true
		}
	}
	return false
}
