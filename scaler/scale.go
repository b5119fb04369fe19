package scaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// ErrInvalid is wrapped by every error about bad input (a Config or a
// Service count the scaler cannot honour); callers branch on it to tell a
// usage error from a failing cluster.
var ErrInvalid = errors.New("invalid scale request")

// Defaults for the zero values of Config.
const (
	DefaultNamespace           = "kpbench"
	DefaultPort                = 80
	DefaultEndpointsPerService = 10
	DefaultConcurrency         = 32
	DefaultPageSize            = 500
	DefaultMaxRetries          = 8
)

// DefaultBackoff is the retry schedule for throttled, timed-out and
// conflicting writes: 50 ms doubling to about 6 s, with jitter so a pool of
// workers does not retry in lockstep. A server's Retry-After wins when it is
// longer.
var DefaultBackoff = wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: DefaultMaxRetries, Cap: 10 * time.Second}

// Config describes the synthetic Services and how to write them.
type Config struct {
	// Namespace holds the synthetic objects; it is created (labelled
	// managed-by kpbench) when missing. Default "kpbench".
	Namespace string
	// Port is each Service's TCP port. Default 80.
	Port int32
	// TargetPort is the port the backends listen on. Default 80.
	TargetPort int32
	// EndpointIPs are the backend pods' IPv4 addresses. Required when
	// scaling to more than zero Services.
	EndpointIPs []netip.Addr
	// EndpointsPerService is the number of endpoints in each Service's
	// EndpointSlice, at most len(EndpointIPs). Default 10.
	EndpointsPerService int
	// Concurrency bounds the writes in flight. Default 32.
	Concurrency int
	// PageSize is the list page size. Default 500.
	PageSize int64
	// Backoff is the retry schedule; its Steps bound the retries of one
	// write. Zero value: DefaultBackoff.
	Backoff wait.Backoff
	// Progress receives progress; nil reports nothing.
	Progress Progress
	// Logger receives debug lines about retries and strays; nil discards.
	Logger *slog.Logger
}

// Scaler creates and deletes synthetic Services. Build it with New.
type Scaler struct {
	client kubernetes.Interface
	cfg    Config
	tmpl   Template
	log    *slog.Logger
}

// New returns a Scaler writing through client. It validates cfg (a Service
// count of zero needs no endpoint IPs, so those are checked by Scale).
func New(client kubernetes.Interface, cfg Config) (*Scaler, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: no Kubernetes client", ErrInvalid)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.TargetPort == 0 {
		cfg.TargetPort = DefaultPort
	}
	if cfg.EndpointsPerService == 0 {
		cfg.EndpointsPerService = DefaultEndpointsPerService
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Backoff.Steps == 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Progress == nil {
		cfg.Progress = NopProgress{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	if cfg.Port < 1 || cfg.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is not in 1-65535", cfg.Port))
	}
	if cfg.TargetPort < 1 || cfg.TargetPort > 65535 {
		errs = append(errs, fmt.Errorf("target port %d is not in 1-65535", cfg.TargetPort))
	}
	if cfg.EndpointsPerService < 1 {
		errs = append(errs, fmt.Errorf("endpoints per service %d must be at least 1", cfg.EndpointsPerService))
	}
	if cfg.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency %d must be at least 1", cfg.Concurrency))
	}
	if cfg.PageSize < 1 {
		errs = append(errs, fmt.Errorf("page size %d must be at least 1", cfg.PageSize))
	}
	seen := make(map[netip.Addr]bool, len(cfg.EndpointIPs))
	for _, ip := range cfg.EndpointIPs {
		switch {
		case !ip.Is4():
			errs = append(errs, fmt.Errorf("endpoint IP %s is not IPv4 (the EndpointSlices are IPv4)", ip))
		case seen[ip]:
			errs = append(errs, fmt.Errorf("endpoint IP %s is listed twice", ip))
		}
		seen[ip] = true
	}
	if len(cfg.EndpointIPs) > 0 && cfg.EndpointsPerService > len(cfg.EndpointIPs) {
		errs = append(errs, fmt.Errorf("endpoints per service (%d) exceeds the number of endpoint IPs (%d)", cfg.EndpointsPerService, len(cfg.EndpointIPs)))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &Scaler{
		client: client,
		cfg:    cfg,
		log:    log,
		tmpl: Template{
			Namespace:           cfg.Namespace,
			Port:                cfg.Port,
			TargetPort:          cfg.TargetPort,
			EndpointIPs:         cfg.EndpointIPs,
			EndpointsPerService: cfg.EndpointsPerService,
		},
	}, nil
}

// Config returns the effective configuration (defaults filled in).
func (s *Scaler) Config() Config { return s.cfg }

// ServiceRef names one synthetic Service.
type ServiceRef struct {
	Index     int    `json:"index"`
	Name      string `json:"name"`
	ClusterIP string `json:"clusterIP"`
}

// Result tells what one Scale call found and did.
type Result struct {
	Namespace string
	// Before and Services are the synthetic Service counts before and
	// after.
	Before   int
	Services int
	// Object writes by kind of write, Services and EndpointSlices together
	// (the namespace, when created, is not counted).
	Created int
	Updated int
	Deleted int
	// Strays are labelled objects that were not part of the set (an
	// EndpointSlice whose Service is gone, a misnamed object); they are
	// deleted and counted in Deleted too.
	Strays int
	// Retries counts retried requests (throttling, timeouts, conflicts).
	Retries int
	// StartedAt is when Scale began; Duration how long it took.
	StartedAt time.Time
	Duration  time.Duration
	// LastWrite is when the last successful write returned; zero when
	// nothing was written.
	LastWrite time.Time
	// Last is the highest-index Service left (the last created); nil at
	// zero Services.
	Last *ServiceRef
}

// Writes is the number of object writes Scale made.
func (r Result) Writes() int { return r.Created + r.Updated + r.Deleted }

// state is what Scale found in the namespace.
type state struct {
	services     map[int]*corev1.Service
	slices       map[int]*discoveryv1.EndpointSlice
	strayService []string
	straySlices  []string
}

// run carries one Scale call's counters, updated by every worker.
type run struct {
	created, updated, deleted, strays, retries atomic.Int64
	mu                                         sync.Mutex
	lastWrite                                  time.Time
	last                                       *ServiceRef
}

func (r *run) wrote(kind *atomic.Int64) {
	kind.Add(1)
	now := time.Now()
	r.mu.Lock()
	if now.After(r.lastWrite) {
		r.lastWrite = now
	}
	r.mu.Unlock()
}

// Scale brings the number of synthetic Services in the namespace to exactly
// n. It deletes Services with an index of n or more, highest index first,
// and every stray labelled object; then creates (or repairs) Services 0..n-1
// in index order, each Service before its EndpointSlice. An object that
// already exists as wanted is left alone, so a second call with the same n
// writes nothing. On error the namespace holds a prefix of the work done; a
// later call finishes it.
func (s *Scaler) Scale(ctx context.Context, n int) (res Result, err error) {
	res = Result{Namespace: s.cfg.Namespace, StartedAt: time.Now()}
	if n < 0 || n > MaxServices {
		return res, fmt.Errorf("%w: service count %d is not in 0-%d", ErrInvalid, n, MaxServices)
	}
	if n > 0 && len(s.cfg.EndpointIPs) == 0 {
		return res, fmt.Errorf("%w: no endpoint IPs to point %d Services at", ErrInvalid, n)
	}
	r := &run{}
	defer func() {
		res.Created = int(r.created.Load())
		res.Updated = int(r.updated.Load())
		res.Deleted = int(r.deleted.Load())
		res.Strays = int(r.strays.Load())
		res.Retries = int(r.retries.Load())
		res.LastWrite = r.lastWrite
		res.Duration = time.Since(res.StartedAt)
	}()

	if n > 0 {
		if err := s.ensureNamespace(ctx, r); err != nil {
			return res, err
		}
	}
	st, err := s.list(ctx)
	if err != nil {
		return res, err
	}
	res.Before = len(st.services)

	if err := s.removeExtra(ctx, r, st, n); err != nil {
		return res, fmt.Errorf("scaling %s to %d services: %w", s.cfg.Namespace, n, err)
	}
	if err := s.ensure(ctx, r, st, n); err != nil {
		return res, fmt.Errorf("scaling %s to %d services: %w", s.cfg.Namespace, n, err)
	}
	res.Services = n
	res.Last = r.last
	return res, nil
}

// ensureNamespace creates the namespace when missing.
func (s *Scaler) ensureNamespace(ctx context.Context, r *run) error {
	_, err := s.client.CoreV1().Namespaces().Get(ctx, s.cfg.Namespace, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("getting namespace %s: %w", s.cfg.Namespace, err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   s.cfg.Namespace,
		Labels: map[string]string{LabelManagedBy: ManagedBy},
	}}
	err = s.retry(ctx, r, func(ctx context.Context) error {
		_, err := s.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		return err
	})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", s.cfg.Namespace, err)
	}
	return nil
}

// list reads every synthetic Service and EndpointSlice, page by page.
func (s *Scaler) list(ctx context.Context) (*state, error) {
	st := &state{
		services: map[int]*corev1.Service{},
		slices:   map[int]*discoveryv1.EndpointSlice{},
	}
	opts := metav1.ListOptions{LabelSelector: Selector, Limit: s.cfg.PageSize}
	for {
		var list *corev1.ServiceList
		err := s.retry(ctx, nil, func(ctx context.Context) error {
			var err error
			list, err = s.client.CoreV1().Services(s.cfg.Namespace).List(ctx, opts)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("listing services in %s: %w", s.cfg.Namespace, err)
		}
		for k := range list.Items {
			svc := &list.Items[k]
			if i, ok := objectIndex(svc.ObjectMeta); ok {
				st.services[i] = svc
			} else {
				st.strayService = append(st.strayService, svc.Name)
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	opts.Continue = ""
	for {
		var list *discoveryv1.EndpointSliceList
		err := s.retry(ctx, nil, func(ctx context.Context) error {
			var err error
			list, err = s.client.DiscoveryV1().EndpointSlices(s.cfg.Namespace).List(ctx, opts)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("listing endpointslices in %s: %w", s.cfg.Namespace, err)
		}
		for k := range list.Items {
			sl := &list.Items[k]
			if i, ok := objectIndex(sl.ObjectMeta); ok {
				st.slices[i] = sl
			} else {
				st.straySlices = append(st.straySlices, sl.Name)
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	return st, nil
}

// removeExtra deletes indices >= n (highest first, slice before Service)
// and every stray.
func (s *Scaler) removeExtra(ctx context.Context, r *run, st *state, n int) error {
	idx := map[int]bool{}
	for i := range st.services {
		if i >= n {
			idx[i] = true
		}
	}
	for i := range st.slices {
		if i >= n {
			idx[i] = true
		}
	}
	order := make([]int, 0, len(idx))
	for i := range idx {
		order = append(order, i)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(order)))
	strays := len(st.straySlices) + len(st.strayService)
	if len(order)+strays == 0 {
		return nil
	}
	for _, name := range st.straySlices {
		s.log.Debug("deleting stray endpointslice", "namespace", s.cfg.Namespace, "name", name)
	}
	for _, name := range st.strayService {
		s.log.Debug("deleting stray service", "namespace", s.cfg.Namespace, "name", name)
	}

	s.cfg.Progress.Start("delete", len(order)+strays)
	defer s.cfg.Progress.Finish()
	// Index i >= 0 deletes Service order[i]; negative ones are strays.
	items := make([]func(context.Context) error, 0, len(order)+strays)
	for _, i := range order {
		_, hasSlice := st.slices[i]
		_, hasSvc := st.services[i]
		items = append(items, func(ctx context.Context) error {
			if hasSlice {
				if err := s.deleteSlice(ctx, r, SliceName(i)); err != nil {
					return err
				}
			}
			if hasSvc {
				return s.deleteService(ctx, r, ServiceName(i))
			}
			return nil
		})
	}
	for _, name := range st.straySlices {
		items = append(items, func(ctx context.Context) error {
			r.strays.Add(1)
			return s.deleteSlice(ctx, r, name)
		})
	}
	for _, name := range st.strayService {
		items = append(items, func(ctx context.Context) error {
			r.strays.Add(1)
			return s.deleteService(ctx, r, name)
		})
	}
	return s.pool(ctx, items)
}

func (s *Scaler) deleteSlice(ctx context.Context, r *run, name string) error {
	err := s.retry(ctx, r, func(ctx context.Context) error {
		return s.client.DiscoveryV1().EndpointSlices(s.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	})
	switch {
	case err == nil:
		r.wrote(&r.deleted)
	case apierrors.IsNotFound(err):
	default:
		return fmt.Errorf("deleting endpointslice %s: %w", name, err)
	}
	return nil
}

func (s *Scaler) deleteService(ctx context.Context, r *run, name string) error {
	err := s.retry(ctx, r, func(ctx context.Context) error {
		return s.client.CoreV1().Services(s.cfg.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	})
	switch {
	case err == nil:
		r.wrote(&r.deleted)
	case apierrors.IsNotFound(err):
	default:
		return fmt.Errorf("deleting service %s: %w", name, err)
	}
	return nil
}

// ensure creates or repairs Services 0..n-1 and their slices, in index
// order.
func (s *Scaler) ensure(ctx context.Context, r *run, st *state, n int) error {
	var todo []int
	for i := range n {
		svc, sl := st.services[i], st.slices[i]
		if svc == nil || sl == nil || !s.tmpl.serviceMatches(i, svc) || !s.tmpl.sliceMatches(i, sl, svc.UID) {
			todo = append(todo, i)
		}
	}
	if n > 0 {
		if svc := st.services[n-1]; svc != nil {
			r.last = &ServiceRef{Index: n - 1, Name: svc.Name, ClusterIP: svc.Spec.ClusterIP}
		}
	}
	if len(todo) == 0 {
		return nil
	}
	s.cfg.Progress.Start("create", len(todo))
	defer s.cfg.Progress.Finish()
	items := make([]func(context.Context) error, len(todo))
	for k, i := range todo {
		items[k] = func(ctx context.Context) error {
			svc, err := s.ensureService(ctx, r, i, st.services[i])
			if err != nil {
				return err
			}
			if i == n-1 {
				r.mu.Lock()
				r.last = &ServiceRef{Index: i, Name: svc.Name, ClusterIP: svc.Spec.ClusterIP}
				r.mu.Unlock()
			}
			return s.ensureSlice(ctx, r, i, svc.UID, st.slices[i])
		}
	}
	return s.pool(ctx, items)
}

// ensureService makes Service i exist as wanted and returns it.
func (s *Scaler) ensureService(ctx context.Context, r *run, i int, have *corev1.Service) (*corev1.Service, error) {
	api := s.client.CoreV1().Services(s.cfg.Namespace)
	if have == nil {
		var got *corev1.Service
		err := s.retry(ctx, r, func(ctx context.Context) error {
			var err error
			got, err = api.Create(ctx, s.tmpl.Service(i), metav1.CreateOptions{})
			return err
		})
		if err == nil {
			r.wrote(&r.created)
			return got, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating service %s: %w", ServiceName(i), err)
		}
		// Made by an interrupted run or a concurrent one: adopt it.
	} else if s.tmpl.serviceMatches(i, have) {
		return have, nil
	}
	var got *corev1.Service
	updated := false
	err := s.retry(ctx, r, func(ctx context.Context) error {
		cur := have
		if cur == nil {
			var err error
			if cur, err = api.Get(ctx, ServiceName(i), metav1.GetOptions{}); err != nil {
				return err
			}
		}
		have = nil // a retry (conflict) reads the object afresh
		if s.tmpl.serviceMatches(i, cur) {
			got = cur
			return nil
		}
		want := cur.DeepCopy()
		if want.Labels == nil {
			want.Labels = map[string]string{}
		}
		for k, v := range labels(i) {
			want.Labels[k] = v
		}
		want.Spec.Type = corev1.ServiceTypeClusterIP
		want.Spec.Selector = nil
		want.Spec.Ports = s.tmpl.servicePorts()
		var err error
		got, err = api.Update(ctx, want, metav1.UpdateOptions{})
		updated = err == nil
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("updating service %s: %w", ServiceName(i), err)
	}
	if updated {
		r.wrote(&r.updated)
	}
	return got, nil
}

// ensureSlice makes EndpointSlice i exist as wanted.
func (s *Scaler) ensureSlice(ctx context.Context, r *run, i int, owner types.UID, have *discoveryv1.EndpointSlice) error {
	api := s.client.DiscoveryV1().EndpointSlices(s.cfg.Namespace)
	if have == nil {
		err := s.retry(ctx, r, func(ctx context.Context) error {
			_, err := api.Create(ctx, s.tmpl.EndpointSlice(i, owner), metav1.CreateOptions{})
			return err
		})
		if err == nil {
			r.wrote(&r.created)
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating endpointslice %s: %w", SliceName(i), err)
		}
	} else if s.tmpl.sliceMatches(i, have, owner) {
		return nil
	}
	updated, recreate := false, false
	err := s.retry(ctx, r, func(ctx context.Context) error {
		cur := have
		if cur == nil {
			var err error
			if cur, err = api.Get(ctx, SliceName(i), metav1.GetOptions{}); err != nil {
				return err
			}
		}
		have = nil
		if s.tmpl.sliceMatches(i, cur, owner) {
			return nil
		}
		if cur.AddressType != discoveryv1.AddressTypeIPv4 {
			recreate = true // addressType is immutable
			return nil
		}
		want := s.tmpl.EndpointSlice(i, owner)
		want.ResourceVersion = cur.ResourceVersion
		_, err := api.Update(ctx, want, metav1.UpdateOptions{})
		updated = err == nil
		return err
	})
	if err != nil {
		return fmt.Errorf("updating endpointslice %s: %w", SliceName(i), err)
	}
	if updated {
		r.wrote(&r.updated)
	}
	if recreate {
		if err := s.deleteSlice(ctx, r, SliceName(i)); err != nil {
			return err
		}
		return s.ensureSlice(ctx, r, i, owner, nil)
	}
	return nil
}

// pool runs items on Concurrency workers, handing them out in order. The
// first error cancels the rest and is returned.
func (s *Scaler) pool(ctx context.Context, items []func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan func(context.Context) error)
	var wg sync.WaitGroup
	workers := min(s.cfg.Concurrency, len(items))
	for range workers {
		wg.Go(func() {
			for item := range work {
				if err := item(ctx); err != nil {
					cancel(err)
					continue
				}
				s.cfg.Progress.Add(1)
			}
		})
	}
feed:
	for _, item := range items {
		select {
		case work <- item:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}
