package scaler

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// LabContextPrefix starts the kubeconfig context (and cluster) name of a
// kpbench lab. A kubeconfig whose current context does not start with it
// points at an existing cluster, where scaling needs the user's consent.
const LabContextPrefix = "kpbench-lab"

// Target is the cluster a kubeconfig points at.
type Target struct {
	// Context and Cluster are the kubeconfig's names for it.
	Context string
	Cluster string
	// Host is the apiserver URL.
	Host string
	// Lab is true when the context or cluster name starts with
	// LabContextPrefix.
	Lab bool
}

// ClientOptions tune the client for bulk writes.
type ClientOptions struct {
	// Kubeconfig is the file to read; empty: $KUBECONFIG, then
	// ~/.kube/config (client-go's rules).
	Kubeconfig string
	// Context overrides the current context.
	Context string
	// QPS and Burst bound the client-side rate limiter (client-go's
	// defaults, 5 and 10, would take over an hour for 10,000 Services).
	QPS   float32
	Burst int
	// Timeout bounds each request. Default 30 s.
	Timeout time.Duration
}

// NewClient loads the kubeconfig and returns a clientset tuned for bulk
// writes (protobuf encoding, the given QPS and burst) and where it points.
// Credentials stay inside the returned config; Target holds none.
func NewClient(o ClientOptions) (kubernetes.Interface, Target, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.Kubeconfig != "" {
		rules.ExplicitPath = o.Kubeconfig
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.Context})
	raw, err := loader.RawConfig()
	if err != nil {
		return nil, Target{}, fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, Target{}, fmt.Errorf("loading kubeconfig: %w", err)
	}
	t := Target{Context: raw.CurrentContext, Host: cfg.Host}
	if o.Context != "" {
		t.Context = o.Context
	}
	if c := raw.Contexts[t.Context]; c != nil {
		t.Cluster = c.Cluster
	}
	t.Lab = strings.HasPrefix(t.Context, LabContextPrefix) || strings.HasPrefix(t.Cluster, LabContextPrefix)
	Tune(cfg, o.QPS, o.Burst, o.Timeout)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, t, fmt.Errorf("building Kubernetes client for %s: %w", t.Host, err)
	}
	return cs, t, nil
}

// Tune sets cfg up for bulk writes: protobuf, QPS and burst (burst
// defaults to twice QPS), request timeout (default 30 s).
func Tune(cfg *rest.Config, qps float32, burst int, timeout time.Duration) {
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	if qps > 0 {
		cfg.QPS = qps
		if burst <= 0 {
			burst = int(2 * qps)
		}
		cfg.Burst = burst
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	cfg.Timeout = timeout
	cfg.UserAgent = "kpbench-scale"
}
