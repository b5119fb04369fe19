package sweep

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/churn"
	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/scaler"
	"github.com/kpbench/kpbench/scenarios"
)

// ServiceChurn is the engine's ChurnParts on a real cluster: churn's
// writer on the scaler's client and template, and "programmed" from
// kube-proxy's metrics on the client node (scaler.Wait); the watcher of the
// node's rules, the syncs and the traffic are bound in churn_parts.go.
type ServiceChurn struct {
	Client kubernetes.Interface
	// Template is the scaler's (scaler.Scaler.Config gives its fields).
	Template scaler.Template
	Node     clusters.ClientNode
	// WaitTimeout bounds the wait for kube-proxy to program the step put
	// back after a point (default 10 minutes).
	WaitTimeout time.Duration
	// Interval between reads of the node's rules (default
	// DefaultChurnInterval).
	Interval time.Duration
}

// churnPartsMissing says why a build without churn_parts.go cannot run a
// churn point.
const churnPartsMissing = "this kpbench was built without churn's watcher of the node's rules, syncs and traffic (sweep/churn_parts.go)"

// DefaultChurnInterval is how often the node's rules are read during
// churn: the resolution of a change's programming latency.
const DefaultChurnInterval = 100 * time.Millisecond

// Writer implements ChurnParts.
func (s *ServiceChurn) Writer(ctx context.Context, n int) (ChurnWriter, error) {
	w := churn.NewWriter(s.Client, s.Template, n, time.Now)
	if err := w.Load(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// Programmed implements ChurnParts: kube-proxy has nothing pending and
// synced after the last write (no probe: every Service of the step was
// there before).
func (s *ServiceChurn) Programmed(ctx context.Context, n int, lastWrite time.Time) error {
	timeout := s.WaitTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := scaler.Wait(wctx, scaler.ClientNode{Node: s.Node}, scaler.WaitConfig{LastWrite: lastWrite})
	return err
}

func (s *ServiceChurn) interval() time.Duration {
	if s.Interval > 0 {
		return s.Interval
	}
	return DefaultChurnInterval
}

var _ ChurnParts = (*ServiceChurn)(nil)

// newChurnParts returns the churn parts of a scenario with spec.churn on
// the scaler's client, template and client node; nil without it. A
// scenario that replaces endpoints needs a backend outside every Service's
// endpoints, and one churn measures from kube-proxy's rules needs
// kube-proxy (not mode external).
func newChurnParts(sc *scenarios.Scenario, client kubernetes.Interface, s *scaler.Scaler, node clusters.ClientNode, wait time.Duration) (ChurnParts, error) {
	c := sc.Spec.Churn
	if c == nil {
		return nil, nil
	}
	if slices.Contains(sc.Spec.Modes, scenarios.ModeExternal) {
		return nil, fmt.Errorf("%w: spec.churn reads kube-proxy's rules on the client node, and this cluster's dataplane replaces kube-proxy", ErrCannotRun)
	}
	cfg := s.Config()
	if c.Kinds != nil && c.Kinds.EndpointReplace > 0 && len(cfg.EndpointIPs) <= cfg.EndpointsPerService {
		return nil, fmt.Errorf("%w: spec.churn replaces endpoints, which needs more backends than the %d endpoints per Service (the cluster has %d)",
			ErrCannotRun, cfg.EndpointsPerService, len(cfg.EndpointIPs))
	}
	if !churnPartsBuilt {
		return nil, fmt.Errorf("%w: spec.churn: %s", ErrCannotRun, churnPartsMissing)
	}
	return &ServiceChurn{Client: client, Node: node, WaitTimeout: wait, Template: scaler.Template{Namespace: cfg.Namespace, Port: cfg.Port,
		TargetPort: cfg.TargetPort, EndpointIPs: cfg.EndpointIPs, EndpointsPerService: cfg.EndpointsPerService}}, nil
}
