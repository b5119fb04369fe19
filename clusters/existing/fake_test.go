package existing

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kpbench/kpbench/clusters/manifests"
)

// fakeCluster is a fake clientset plus what the fake lacks: a DaemonSet
// controller that finishes kube-proxy rollouts a few reads after a
// restart, a kube-proxy whose /proxyMode follows the ConfigMap, and
// kubelets that make kpbench's pods ready.
type fakeCluster struct {
	t  *testing.T
	cs *fake.Clientset

	mu sync.Mutex
	// dsGeneration counts kube-proxy template changes; the controller
	// reports it observed after staleReads further reads.
	dsGeneration int64
	staleReads   int
	dsReads      int
	// proxyModeOverride, when set, is what /proxyMode answers.
	proxyModeOverride string
	// rules are the outputs of the rule tools on the node.
	rules map[string]string
	execs [][]string
	// workloadsReady makes Deployments and DaemonSets in kpbench ready.
	workloadsReady bool
}

var dsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}

func kubeProxyObjects(t *testing.T, conf string) []runtime.Object {
	t.Helper()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	return []runtime.Object{
		&appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: KubeProxyName, Namespace: KubeProxyNamespace, Generation: 1},
			Spec: appsv1.DaemonSetSpec{
				UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: KubeProxyName, Image: "registry.k8s.io/kube-proxy:v1.33.1",
				}}}},
			},
		},
		&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: KubeProxyName, Namespace: KubeProxyNamespace},
			Data:       map[string]string{KubeProxyConfigKey: string(b), "kubeconfig.conf": "not read by kpbench"},
		},
	}
}

func node(name string, labels map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func newFakeCluster(t *testing.T, objs ...runtime.Object) *fakeCluster {
	f := &fakeCluster{t: t, cs: fake.NewClientset(objs...), dsGeneration: 1, staleReads: 2,
		rules: map[string]string{
			"iptables-save": "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n",
			"nft":           "table ip kube-proxy {\n\tchain services {\n\t}\n}\n",
			"cat":           "IP Virtual Server version 1.2.1 (size=4096)\n",
			"ip":            "5: kube-ipvs0: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN\n    inet 10.96.0.1/32 scope global kube-ipvs0\n",
		},
		workloadsReady: true,
	}
	f.cs.PrependReactor("patch", "daemonsets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetNamespace() == KubeProxyNamespace {
			f.mu.Lock()
			f.dsGeneration++
			f.dsReads = 0
			f.mu.Unlock()
		}
		return false, nil, nil
	})
	f.cs.PrependReactor("get", "daemonsets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ga := a.(k8stesting.GetAction)
		obj, err := f.cs.Tracker().Get(dsGVR, ga.GetNamespace(), ga.GetName())
		if err != nil {
			return true, nil, err
		}
		ds := obj.(*appsv1.DaemonSet).DeepCopy()
		f.mu.Lock()
		defer f.mu.Unlock()
		if ga.GetNamespace() == KubeProxyNamespace {
			ds.Generation = f.dsGeneration
			ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 2, UpdatedNumberScheduled: 2, NumberAvailable: 2, ObservedGeneration: f.dsGeneration}
			f.dsReads++
			if f.dsReads <= f.staleReads {
				ds.Status.ObservedGeneration = f.dsGeneration - 1
				ds.Status.UpdatedNumberScheduled = 1
			}
		} else if f.workloadsReady {
			ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 1, NumberReady: 1}
		}
		return true, ds, nil
	})
	f.cs.PrependReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ga := a.(k8stesting.GetAction)
		obj, err := f.cs.Tracker().Get(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, ga.GetNamespace(), ga.GetName())
		if err != nil {
			return true, nil, err
		}
		d := obj.(*appsv1.Deployment).DeepCopy()
		if f.workloadsReady {
			d.Status.ReadyReplicas = *d.Spec.Replicas
		}
		return true, d, nil
	})
	// The fake does not delete namespaces' contents nor the namespace
	// itself asynchronously; deleting is immediate, which is what Down
	// waits for anyway.
	return f
}

// addAgentPod adds a running, ready agent pod on nodeName.
func (f *fakeCluster) addAgentPod(name, nodeName string) {
	f.t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: manifests.Namespace, Labels: manifests.Labels(manifests.ComponentAgent)},
		Spec:       corev1.PodSpec{NodeName: nodeName},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue},
		}},
	}
	if err := f.cs.Tracker().Add(pod); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fakeCluster) configConf(ctx context.Context) string {
	f.t.Helper()
	cm, err := f.cs.CoreV1().ConfigMaps(KubeProxyNamespace).Get(ctx, KubeProxyName, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return cm.Data[KubeProxyConfigKey]
}

func (f *fakeCluster) restartedAt(ctx context.Context) string {
	f.t.Helper()
	obj, err := f.cs.Tracker().Get(dsGVR, KubeProxyNamespace, KubeProxyName)
	if err != nil {
		f.t.Fatal(err)
	}
	return obj.(*appsv1.DaemonSet).Spec.Template.Annotations[RestartedAtAnnotation]
}

// Exec plays the agent pod: `kpbench cluster agent get .../proxyMode`
// answers the ConfigMap's mode (kube-proxy restarted with it); host tools
// print the configured rule dumps.
func (f *fakeCluster) Exec(ctx context.Context, namespace, pod, container string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	f.mu.Lock()
	f.execs = append(f.execs, cmd)
	override := f.proxyModeOverride
	f.mu.Unlock()
	if namespace != manifests.Namespace || container != manifests.ContainerName {
		return fmt.Errorf("exec in %s/%s container %s", namespace, pod, container)
	}
	joined := strings.Join(cmd, " ")
	switch {
	case strings.HasSuffix(joined, "/proxyMode"):
		mode := override
		if mode == "" {
			raw, _, err := ParseProxyConfig([]byte(f.configConf(ctx)))
			if err != nil {
				return err
			}
			mode = string(EffectiveMode(raw))
		}
		fmt.Fprint(stdout, mode)
		return nil
	case strings.Contains(joined, "agent host -- iptables-save"):
		fmt.Fprint(stdout, f.rules["iptables-save"])
		return nil
	case strings.Contains(joined, "agent host -- nft"):
		if f.rules["nft"] == "" {
			fmt.Fprint(stderr, "Error: No such file or directory")
			return &ExitError{Cmd: cmd, Code: 1}
		}
		fmt.Fprint(stdout, f.rules["nft"])
		return nil
	case strings.Contains(joined, "agent host -- ip -4 addr show dev kube-ipvs0"):
		if f.rules["ip"] == "" {
			fmt.Fprint(stderr, `Device "kube-ipvs0" does not exist.`)
			return &ExitError{Cmd: cmd, Code: 1}
		}
		fmt.Fprint(stdout, f.rules["ip"])
		return nil
	case strings.Contains(joined, "agent cat"):
		fmt.Fprint(stdout, f.rules["cat"])
		return nil
	case strings.Contains(joined, "agent ipvs"):
		return nil
	case strings.Contains(joined, "agent pid"):
		fmt.Fprintln(stdout, "4242")
		return nil
	}
	return fmt.Errorf("unexpected command %q", joined)
}

func (f *fakeCluster) provider(t *testing.T, opts Options) *Provider {
	t.Helper()
	opts.Clientset = f.cs
	opts.Execer = f
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	if opts.Kubeconfig == "" {
		opts.Kubeconfig = "/nonexistent/kubeconfig"
	}
	opts.PollInterval = time.Millisecond
	if opts.RolloutTimeout == 0 {
		opts.RolloutTimeout = 2 * time.Second
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 2 * time.Second
	}
	opts.Now = func() time.Time { return time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC) }
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
