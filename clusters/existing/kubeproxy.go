package existing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/scenarios"
)

// Where kubeadm-style clusters (kind included) keep kube-proxy.
const (
	KubeProxyNamespace = "kube-system"
	KubeProxyName      = "kube-proxy"
	KubeProxyConfigKey = "config.conf"
	// RestartedAtAnnotation is what `kubectl rollout restart` sets on the
	// pod template to roll every pod.
	RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"
)

// Errors callers branch on.
var (
	// ErrNoKubeProxy means kube-system has no kube-proxy DaemonSet: a
	// replacement (Cilium, Calico eBPF, ...) serves Services.
	ErrNoKubeProxy = errors.New("no kube-proxy DaemonSet in kube-system (kube-proxy is replaced)")
	// ErrNotConfirmed is returned before any change to a user's cluster
	// that the user did not confirm (--yes).
	ErrNotConfirmed = errors.New("changing kube-proxy on an existing cluster needs confirmation (--yes)")
)

// KubeProxyState is what the cluster says about kube-proxy.
type KubeProxyState struct {
	// Present is false when kube-proxy is replaced; Mode is then external.
	Present bool
	// Mode is the mode in config.conf, "" mapped to iptables (kube-proxy's
	// default on Linux).
	Mode scenarios.Mode
	// RawMode is the mode field as written ("" when unset).
	RawMode string
	// Scheduler is ipvs.scheduler as written.
	Scheduler string
	// Image is the kube-proxy container image.
	Image string
	// ConfigMapMissing is true when the DaemonSet exists but not the
	// kubeadm-style ConfigMap (a managed cluster configuring kube-proxy
	// otherwise); kpbench then cannot switch modes.
	ConfigMapMissing bool
}

// ReadKubeProxy reads kube-proxy's DaemonSet and ConfigMap.
func ReadKubeProxy(ctx context.Context, cs kubernetes.Interface) (KubeProxyState, error) {
	ds, err := cs.AppsV1().DaemonSets(KubeProxyNamespace).Get(ctx, KubeProxyName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return KubeProxyState{Present: false, Mode: scenarios.ModeExternal}, nil
	}
	if err != nil {
		return KubeProxyState{}, fmt.Errorf("reading the kube-proxy DaemonSet: %w", err)
	}
	st := KubeProxyState{Present: true, Image: kubeProxyImage(ds)}
	cm, err := cs.CoreV1().ConfigMaps(KubeProxyNamespace).Get(ctx, KubeProxyName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		st.ConfigMapMissing = true
		return st, nil
	}
	if err != nil {
		return KubeProxyState{}, fmt.Errorf("reading the kube-proxy ConfigMap: %w", err)
	}
	conf, ok := cm.Data[KubeProxyConfigKey]
	if !ok {
		return KubeProxyState{}, fmt.Errorf("kube-proxy ConfigMap has no %s key", KubeProxyConfigKey)
	}
	raw, sched, err := ParseProxyConfig([]byte(conf))
	if err != nil {
		return KubeProxyState{}, err
	}
	st.RawMode, st.Scheduler = raw, sched
	st.Mode = EffectiveMode(raw)
	return st, nil
}

func kubeProxyImage(ds *appsv1.DaemonSet) string {
	cs := ds.Spec.Template.Spec.Containers
	for _, c := range cs {
		if c.Name == KubeProxyName {
			return c.Image
		}
	}
	if len(cs) > 0 {
		return cs[0].Image
	}
	return ""
}

// ImageVersion returns the tag of an image reference ("v1.33.1" from
// "registry.k8s.io/kube-proxy:v1.33.1@sha256:..."), "" when untagged.
func ImageVersion(image string) string {
	image, _, _ = strings.Cut(image, "@")
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return ""
	}
	return image[i+1:]
}

// EffectiveMode maps config.conf's mode to the mode kube-proxy runs: an
// empty mode means iptables on Linux.
func EffectiveMode(raw string) scenarios.Mode {
	if raw == "" {
		return scenarios.ModeIPTables
	}
	return scenarios.Mode(raw)
}

// ParseProxyConfig returns mode and ipvs.scheduler from a
// KubeProxyConfiguration document.
func ParseProxyConfig(conf []byte) (mode, scheduler string, err error) {
	var c struct {
		Kind string `yaml:"kind"`
		Mode string `yaml:"mode"`
		IPVS struct {
			Scheduler string `yaml:"scheduler"`
		} `yaml:"ipvs"`
	}
	if err := yaml.Unmarshal(conf, &c); err != nil {
		return "", "", fmt.Errorf("parsing kube-proxy %s: %w", KubeProxyConfigKey, err)
	}
	if c.Kind != "" && c.Kind != "KubeProxyConfiguration" {
		return "", "", fmt.Errorf("kube-proxy %s is a %s, want a KubeProxyConfiguration", KubeProxyConfigKey, c.Kind)
	}
	return c.Mode, c.IPVS.Scheduler, nil
}

// PatchProxyConfig sets mode (and ipvs.scheduler when scheduler is not
// nil) in a KubeProxyConfiguration document, keeping every other field,
// its order and its comments.
func PatchProxyConfig(conf []byte, mode string, scheduler *string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(conf, &doc); err != nil {
		return nil, fmt.Errorf("parsing kube-proxy %s: %w", KubeProxyConfigKey, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("kube-proxy %s is not a YAML mapping", KubeProxyConfigKey)
	}
	root := doc.Content[0]
	setScalar(root, "mode", mode)
	if scheduler != nil {
		ipvs := mappingValue(root, "ipvs")
		if ipvs == nil {
			ipvs = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "ipvs"}, ipvs)
		} else if ipvs.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("kube-proxy %s: ipvs is not a mapping", KubeProxyConfigKey)
		}
		setScalar(ipvs, "scheduler", *scheduler)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("writing kube-proxy %s: %w", KubeProxyConfigKey, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("writing kube-proxy %s: %w", KubeProxyConfigKey, err)
	}
	return buf.Bytes(), nil
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func setScalar(m *yaml.Node, key, value string) {
	if v := mappingValue(m, key); v != nil {
		v.Kind, v.Tag, v.Value, v.Style, v.Content = yaml.ScalarNode, "!!str", value, 0, nil
		if value == "" {
			v.Style = yaml.DoubleQuotedStyle
		}
		return
	}
	v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}
	if value == "" {
		v.Style = yaml.DoubleQuotedStyle
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// WriteMode patches the kube-proxy ConfigMap's config.conf to mode (and
// ipvs.scheduler when scheduler is not nil; "" resets it to kube-proxy's
// default). It reports whether anything changed.
func WriteMode(ctx context.Context, cs kubernetes.Interface, mode string, scheduler *string) (changed bool, err error) {
	cms := cs.CoreV1().ConfigMaps(KubeProxyNamespace)
	cm, err := cms.Get(ctx, KubeProxyName, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("reading the kube-proxy ConfigMap: %w", err)
	}
	conf := cm.Data[KubeProxyConfigKey]
	curMode, curSched, err := ParseProxyConfig([]byte(conf))
	if err != nil {
		return false, err
	}
	if curMode == mode && (scheduler == nil || curSched == *scheduler) {
		return false, nil
	}
	patched, err := PatchProxyConfig([]byte(conf), mode, scheduler)
	if err != nil {
		return false, err
	}
	cm = cm.DeepCopy()
	cm.Data[KubeProxyConfigKey] = string(patched)
	// Update carries the resourceVersion read above, so a concurrent
	// change makes this fail instead of being overwritten.
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return false, fmt.Errorf("updating the kube-proxy ConfigMap: %w", err)
	}
	return true, nil
}

// RestartKubeProxy rolls every kube-proxy pod the way `kubectl rollout
// restart` does, and returns the DaemonSet generation the rollout must
// reach.
func RestartKubeProxy(ctx context.Context, cs kubernetes.Interface, now time.Time) (generation int64, err error) {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{%q:%q}}}}}`,
		RestartedAtAnnotation, now.Format(time.RFC3339))
	ds, err := cs.AppsV1().DaemonSets(KubeProxyNamespace).Patch(ctx, KubeProxyName,
		types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return 0, fmt.Errorf("restarting kube-proxy: %w", err)
	}
	if ds.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
		return 0, fmt.Errorf("restarting kube-proxy: its DaemonSet uses the OnDelete update strategy; delete its pods to apply the new mode")
	}
	return ds.Generation, nil
}

// RolloutStatus says whether a DaemonSet finished rolling out, and if
// not, why (as `kubectl rollout status` reports it).
func RolloutStatus(ds *appsv1.DaemonSet, generation int64) (done bool, reason string) {
	st := ds.Status
	if st.ObservedGeneration < generation || st.ObservedGeneration < ds.Generation {
		return false, "waiting for the DaemonSet controller to see the new spec"
	}
	if st.UpdatedNumberScheduled < st.DesiredNumberScheduled {
		return false, strconv.Itoa(int(st.UpdatedNumberScheduled)) + " of " + strconv.Itoa(int(st.DesiredNumberScheduled)) + " pods updated"
	}
	if st.NumberAvailable < st.DesiredNumberScheduled {
		return false, strconv.Itoa(int(st.NumberAvailable)) + " of " + strconv.Itoa(int(st.DesiredNumberScheduled)) + " updated pods available"
	}
	return true, ""
}

// WaitKubeProxyRollout polls the kube-proxy DaemonSet until its rollout
// reaches generation, or timeout.
func WaitKubeProxyRollout(ctx context.Context, cs kubernetes.Interface, generation int64, interval, timeout time.Duration) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		ds, err := cs.AppsV1().DaemonSets(KubeProxyNamespace).Get(ctx, KubeProxyName, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("reading the kube-proxy DaemonSet: %w", err)
		}
		done, reason := RolloutStatus(ds, generation)
		last = reason
		return done, nil
	})
	if err != nil {
		if last != "" {
			return fmt.Errorf("waiting for the kube-proxy rollout (%s): %w", last, err)
		}
		return fmt.Errorf("waiting for the kube-proxy rollout: %w", err)
	}
	return nil
}
