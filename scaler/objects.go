package scaler

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Labels and names every synthetic object carries.
const (
	// LabelManagedBy marks every object kpbench creates.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of LabelManagedBy (and of the EndpointSlice
	// managed-by label).
	ManagedBy = "kpbench"
	// LabelIndex holds a synthetic Service's index (decimal, no padding).
	// Only synthetic Services and their EndpointSlices carry it, so other
	// kpbench objects in the namespace (backends, the load client) are
	// never selected for deletion.
	LabelIndex = "kpbench.io/service-index"
	// NamePrefix starts every synthetic Service's name.
	NamePrefix = "kpb-svc-"
	// MaxServices is the largest Service count the scaler handles: the
	// zero-padded index has IndexDigits digits, so names sort in creation
	// order for every count up to it.
	MaxServices = 99999
	// IndexDigits is the width of the zero-padded index in names.
	IndexDigits = 5
)

// Selector selects every synthetic Service and EndpointSlice kpbench made.
var Selector = LabelManagedBy + "=" + ManagedBy + "," + LabelIndex

// ServiceName is the name of the synthetic Service with index i
// (kpb-svc-00042): fixed-width so names sort in creation order.
func ServiceName(i int) string {
	return fmt.Sprintf("%s%0*d", NamePrefix, IndexDigits, i)
}

// SliceName is the name of the EndpointSlice of the Service with index i.
// A Service and its slice share the name; they are different kinds.
func SliceName(i int) string { return ServiceName(i) }

// ParseIndex returns the index a synthetic object's name encodes, and false
// for names kpbench did not derive from an index.
func ParseIndex(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, NamePrefix)
	if !ok || len(digits) != IndexDigits {
		return 0, false
	}
	i, err := strconv.Atoi(digits)
	if err != nil || i < 0 {
		return 0, false
	}
	return i, true
}

// objectIndex returns the index of a listed object whose name and index
// label agree, and false for anything else (a stray to delete).
func objectIndex(meta metav1.ObjectMeta) (int, bool) {
	i, ok := ParseIndex(meta.Name)
	if !ok || meta.Labels[LabelIndex] != strconv.Itoa(i) {
		return 0, false
	}
	return i, true
}

// Template describes the synthetic objects: the Service port and the
// backends every Service's endpoints point at.
type Template struct {
	Namespace string
	// Port is the Service port (TCP).
	Port int32
	// TargetPort is the port the backends listen on.
	TargetPort int32
	// EndpointIPs are the backend pods' IPv4 addresses.
	EndpointIPs []netip.Addr
	// EndpointsPerService is how many of EndpointIPs each Service lists,
	// starting at a different IP for each Service so that load spreads
	// over every backend.
	EndpointsPerService int
}

func labels(i int) map[string]string {
	return map[string]string{
		LabelManagedBy: ManagedBy,
		LabelIndex:     strconv.Itoa(i),
	}
}

// Service builds the synthetic Service with index i: selector-less, type
// ClusterIP, one unnamed TCP port.
func (t *Template) Service(i int) *corev1.Service {
	return &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      ServiceName(i),
			Namespace: t.Namespace,
			Labels:    labels(i),
		},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeClusterIP,
			Ports: t.servicePorts(),
		},
	}
}

func (t *Template) servicePorts() []corev1.ServicePort {
	return []corev1.ServicePort{{
		Protocol:   corev1.ProtocolTCP,
		Port:       t.Port,
		TargetPort: intstr.FromInt32(t.TargetPort),
	}}
}

// EndpointSlice builds the EndpointSlice of the Service with index i. owner
// is the Service's UID; when set, the slice names the Service as its owner
// so a cluster's garbage collector removes it with the Service.
func (t *Template) EndpointSlice(i int, owner types.UID) *discoveryv1.EndpointSlice {
	name := ServiceName(i)
	l := labels(i)
	l[discoveryv1.LabelServiceName] = name
	l[discoveryv1.LabelManagedBy] = ManagedBy
	s := &discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      SliceName(i),
			Namespace: t.Namespace,
			Labels:    l,
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   t.endpoints(i),
		Ports:       t.slicePorts(),
	}
	if owner != "" {
		s.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: "v1",
			Kind:       "Service",
			Name:       name,
			UID:        owner,
		}}
	}
	return s
}

func (t *Template) slicePorts() []discoveryv1.EndpointPort {
	name := ""
	proto := corev1.ProtocolTCP
	port := t.TargetPort
	return []discoveryv1.EndpointPort{{Name: &name, Protocol: &proto, Port: &port}}
}

func (t *Template) endpoints(i int) []discoveryv1.Endpoint {
	n := len(t.EndpointIPs)
	eps := make([]discoveryv1.Endpoint, t.EndpointsPerService)
	yes, no := true, false
	for k := range eps {
		eps[k] = discoveryv1.Endpoint{
			Addresses: []string{t.EndpointIPs[(i+k)%n].String()},
			Conditions: discoveryv1.EndpointConditions{
				Ready:       &yes,
				Serving:     &yes,
				Terminating: &no,
			},
		}
	}
	return eps
}

// serviceMatches reports whether a listed Service already is what Service(i)
// would create: the fields kpbench sets, ignoring what the apiserver fills
// in (ClusterIP, defaults).
func (t *Template) serviceMatches(i int, svc *corev1.Service) bool {
	if !labelsInclude(svc.Labels, labels(i)) || len(svc.Spec.Selector) != 0 ||
		svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 1 {
		return false
	}
	p, want := svc.Spec.Ports[0], t.servicePorts()[0]
	return p.Name == want.Name && p.Protocol == want.Protocol && p.Port == want.Port &&
		p.TargetPort == want.TargetPort
}

// sliceMatches reports whether a listed EndpointSlice already holds what
// EndpointSlice(i, owner) would create. A slice owned by another UID (a
// Service deleted and recreated) does not match: a garbage collector would
// delete it.
func (t *Template) sliceMatches(i int, s *discoveryv1.EndpointSlice, owner types.UID) bool {
	want := t.EndpointSlice(i, "")
	if owner != "" && (len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != owner) {
		return false
	}
	if !labelsInclude(s.Labels, want.Labels) || s.AddressType != want.AddressType ||
		len(s.Endpoints) != len(want.Endpoints) || len(s.Ports) != 1 {
		return false
	}
	gp, wp := s.Ports[0], want.Ports[0]
	if gp.Name == nil || *gp.Name != *wp.Name || gp.Port == nil || *gp.Port != *wp.Port ||
		gp.Protocol == nil || *gp.Protocol != *wp.Protocol {
		return false
	}
	for k, e := range s.Endpoints {
		w := want.Endpoints[k]
		if len(e.Addresses) != 1 || e.Addresses[0] != w.Addresses[0] ||
			e.Conditions.Ready == nil || !*e.Conditions.Ready {
			return false
		}
	}
	return true
}

func labelsInclude(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
