package existing

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/clusters/manifests"
	"github.com/kpbench/kpbench/scenarios"
)

// Every manifest kpbench generates passes the real apiserver's validation
// and admission (server-side dry-run) and nothing is persisted.
func TestIntegrationManifestsServerDryRun(t *testing.T) {
	cfg := realAPIServer(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Namespaced objects need their namespace to exist, even in a dry-run.
	if err := Apply(ctx, cs, []runtime.Object{manifests.NamespaceObject()}, false); err != nil {
		t.Fatal(err)
	}
	configs := map[string]manifests.Config{
		"kind":              {Backends: 10},
		"existing hostname": {Backends: 3, Image: "registry.example/kpbench:v1", ClientSelector: map[string]string{corev1.LabelHostname: "node-a"}, ServerSelector: map[string]string{}, AvoidNodes: []string{"node-a"}},
	}
	for name, c := range configs {
		t.Run(name, func(t *testing.T) {
			objs, err := manifests.Workloads(c)
			if err != nil {
				t.Fatal(err)
			}
			jobs, err := manifests.LoadJobs(c, manifests.LoadSpec{RunID: "iptables-s01000-rpc1-r0", Clients: 3, Deadline: 30 * time.Second, Args: []string{"--rate", "1000"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, j := range jobs {
				objs = append(objs, j)
			}
			if err := Apply(ctx, cs, objs, true); err != nil {
				t.Fatalf("server-side dry-run: %v", err)
			}
			if _, err := cs.AppsV1().Deployments(manifests.Namespace).Get(ctx, manifests.BackendName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("a dry-run persisted the Deployment: %v", err)
			}
			if _, err := cs.BatchV1().Jobs(manifests.Namespace).Get(ctx, jobs[0].Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("a dry-run persisted a Job: %v", err)
			}
		})
	}
	// And for real: creating and then updating (Apply twice) works.
	objs, _ := manifests.Workloads(manifests.Config{Backends: 2})
	if err := Apply(ctx, cs, objs, false); err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, cs, objs, false); err != nil {
		t.Fatalf("applying again (update): %v", err)
	}
	d, err := cs.AppsV1().Deployments(manifests.Namespace).Get(ctx, manifests.BackendName, metav1.GetOptions{})
	if err != nil || d.Labels[manifests.LabelManagedBy] != manifests.ManagedBy {
		t.Fatalf("deployment %v, %v", d, err)
	}
	_ = cs.AppsV1().Deployments(manifests.Namespace).Delete(ctx, manifests.BackendName, metav1.DeleteOptions{})
	_ = cs.AppsV1().DaemonSets(manifests.Namespace).Delete(ctx, manifests.AgentName, metav1.DeleteOptions{})
}

// kubeProxyDaemonSet is a kubeadm-like kube-proxy DaemonSet the apiserver
// accepts.
func kubeProxyDaemonSet() *appsv1.DaemonSet {
	labels := map[string]string{"k8s-app": "kube-proxy"}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyName, Namespace: KubeProxyNamespace, Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					HostNetwork: true,
					Containers: []corev1.Container{{
						Name:    KubeProxyName,
						Image:   "registry.k8s.io/kube-proxy:v1.36.3",
						Command: []string{"/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf"},
					}},
				},
			},
		},
	}
}

// playDaemonSetController reports every kube-proxy rollout as finished,
// as the DaemonSet controller of a one-node cluster would, until ctx ends.
func playDaemonSetController(ctx context.Context, t *testing.T, cs kubernetes.Interface) {
	go func() {
		_ = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			ds, err := cs.AppsV1().DaemonSets(KubeProxyNamespace).Get(ctx, KubeProxyName, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			if ds.Status.ObservedGeneration == ds.Generation {
				return false, nil
			}
			ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: 1,
				CurrentNumberScheduled: 1, UpdatedNumberScheduled: 1, NumberAvailable: 1, NumberReady: 1}
			if _, err := cs.AppsV1().DaemonSets(KubeProxyNamespace).UpdateStatus(ctx, ds, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
				t.Logf("updating kube-proxy status: %v", err)
			}
			return false, nil
		})
	}()
}

// The mode switch against a real apiserver: the ConfigMap's config.conf
// is patched, the DaemonSet gets the restart annotation (and a new
// generation), the rollout is waited for, and Down restores the original.
func TestIntegrationModeSwitch(t *testing.T) {
	cfg := realAPIServer(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	conf, err := os.ReadFile("testdata/kubeadm-config.conf")
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: KubeProxyName, Namespace: KubeProxyNamespace},
		Data:       map[string]string{KubeProxyConfigKey: string(conf)},
	}
	if _, err := cs.CoreV1().ConfigMaps(KubeProxyNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ds, err := cs.AppsV1().DaemonSets(KubeProxyNamespace).Create(ctx, kubeProxyDaemonSet(), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cs.AppsV1().DaemonSets(KubeProxyNamespace).Delete(c, KubeProxyName, metav1.DeleteOptions{})
		_ = cs.CoreV1().ConfigMaps(KubeProxyNamespace).Delete(c, KubeProxyName, metav1.DeleteOptions{})
	})
	gen0 := ds.Generation
	ctrlCtx, stopCtrl := context.WithCancel(ctx)
	defer stopCtrl()
	playDaemonSetController(ctrlCtx, t, cs)

	// The agent pod on the client node: no scheduler or kubelet here, so
	// the test sets its node and status the way they would.
	if err := Apply(ctx, cs, []runtime.Object{manifests.NamespaceObject()}, false); err != nil {
		t.Fatal(err)
	}
	agent := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kpbench-agent-test", Namespace: manifests.Namespace, Labels: manifests.Labels(manifests.ComponentAgent)},
		Spec: corev1.PodSpec{NodeName: "client-1", Containers: []corev1.Container{{
			Name: manifests.ContainerName, Image: manifests.DefaultImage, Command: []string{"/kpbench", "cluster", "agent"},
		}}},
	}
	agent, err = cs.CoreV1().Pods(manifests.Namespace).Create(ctx, agent, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	agent.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := cs.CoreV1().Pods(manifests.Namespace).UpdateStatus(ctx, agent, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		zero := int64(0)
		_ = cs.CoreV1().Pods(manifests.Namespace).Delete(c, "kpbench-agent-test", metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})

	// kube-proxy on the node: /proxyMode follows the live ConfigMap.
	execer := &liveExecer{cs: cs}
	playNamespaceController(ctrlCtx, t, cs)
	p, err := New(Options{
		RESTConfig: cfg, Clientset: cs, Execer: execer, Confirm: true, IPVSScheduler: "lc",
		StateDir: t.TempDir(), Kubeconfig: "integration", PollInterval: 100 * time.Millisecond,
		RolloutTimeout: 30 * time.Second, ReadyTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Versions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Kubernetes != k8sVersion || v.KubeProxy != "v1.36.3" {
		t.Errorf("versions = %+v", v)
	}

	start := time.Now().Add(-time.Second)
	if err := p.SetMode(ctx, scenarios.ModeIPVS); err != nil {
		t.Fatal(err)
	}
	cm, err = cs.CoreV1().ConfigMaps(KubeProxyNamespace).Get(ctx, KubeProxyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mode, sched, err := ParseProxyConfig([]byte(cm.Data[KubeProxyConfigKey]))
	if err != nil || mode != "ipvs" || sched != "lc" {
		t.Fatalf("patched ConfigMap mode=%q scheduler=%q err=%v", mode, sched, err)
	}
	if !strings.Contains(cm.Data[KubeProxyConfigKey], "kubeconfig: /var/lib/kube-proxy/kubeconfig.conf") {
		t.Error("the patch lost the rest of config.conf")
	}
	ds, err = cs.AppsV1().DaemonSets(KubeProxyNamespace).Get(ctx, KubeProxyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at, err := time.Parse(time.RFC3339, ds.Spec.Template.Annotations[RestartedAtAnnotation])
	if err != nil || at.Before(start) {
		t.Errorf("restart annotation %q (%v), want a time after %s", ds.Spec.Template.Annotations[RestartedAtAnnotation], err, start)
	}
	if ds.Generation <= gen0 {
		t.Errorf("generation %d, want > %d after the restart", ds.Generation, gen0)
	}
	if ds.Status.ObservedGeneration != ds.Generation {
		t.Errorf("SetMode returned before the rollout finished (observed %d of %d)", ds.Status.ObservedGeneration, ds.Generation)
	}

	// Down restores the mode as found ("" = iptables) and the scheduler,
	// and deletes the namespace.
	if err := p.Down(ctx); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if !execer.sawProxyMode("iptables") {
		t.Error("the restored mode was not verified on the node")
	}
	cm, _ = cs.CoreV1().ConfigMaps(KubeProxyNamespace).Get(ctx, KubeProxyName, metav1.GetOptions{})
	mode, sched, _ = ParseProxyConfig([]byte(cm.Data[KubeProxyConfigKey]))
	if mode != "" || sched != "" {
		t.Errorf("after Down mode=%q scheduler=%q, want both restored to unset", mode, sched)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, manifests.Namespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("kpbench namespace after Down: %v", err)
	}
}

// playNamespaceController finishes namespace deletions the way the
// namespace controller does: it deletes what kpbench puts in a namespace,
// then clears the namespace's finalizers.
func playNamespaceController(ctx context.Context, t *testing.T, cs kubernetes.Interface) {
	go func() {
		_ = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			ns, err := cs.CoreV1().Namespaces().Get(ctx, manifests.Namespace, metav1.GetOptions{})
			if err != nil || ns.DeletionTimestamp == nil {
				return false, nil
			}
			zero := int64(0)
			bg := metav1.DeletePropagationBackground
			del := metav1.DeleteOptions{GracePeriodSeconds: &zero, PropagationPolicy: &bg}
			_ = cs.AppsV1().Deployments(ns.Name).DeleteCollection(ctx, del, metav1.ListOptions{})
			_ = cs.AppsV1().DaemonSets(ns.Name).DeleteCollection(ctx, del, metav1.ListOptions{})
			_ = cs.BatchV1().Jobs(ns.Name).DeleteCollection(ctx, del, metav1.ListOptions{})
			_ = cs.CoreV1().Pods(ns.Name).DeleteCollection(ctx, del, metav1.ListOptions{})
			ns.Spec.Finalizers = nil
			if _, err := cs.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
				t.Logf("finalizing namespace: %v", err)
			}
			return false, nil
		})
	}()
}

// liveExecer plays the agent pod against a real apiserver: kube-proxy's
// /proxyMode follows the live ConfigMap (as a restarted kube-proxy would),
// and the node's rule tools print rules of every kind.
type liveExecer struct {
	cs   kubernetes.Interface
	mu   sync.Mutex
	seen []string
}

func (l *liveExecer) sawProxyMode(mode string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.seen, mode)
}

func (l *liveExecer) Exec(ctx context.Context, namespace, pod, container string, cmd []string, _ io.Reader, stdout, _ io.Writer) error {
	if _, err := l.cs.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{}); err != nil {
		return fmt.Errorf("exec into %s/%s: %w", namespace, pod, err)
	}
	joined := strings.Join(cmd, " ")
	switch {
	case strings.HasSuffix(joined, "/proxyMode"):
		st, err := ReadKubeProxy(ctx, l.cs)
		if err != nil {
			return err
		}
		l.mu.Lock()
		l.seen = append(l.seen, string(st.Mode))
		l.mu.Unlock()
		_, err = io.WriteString(stdout, string(st.Mode))
		return err
	case strings.Contains(joined, "iptables-save"):
		_, err := io.WriteString(stdout, "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n")
		return err
	case strings.Contains(joined, "nft list"):
		_, err := io.WriteString(stdout, "table ip kube-proxy {\n\tchain services {\n\t}\n}\n")
		return err
	case strings.Contains(joined, "ip -4 addr show dev kube-ipvs0"):
		_, err := io.WriteString(stdout, "5: kube-ipvs0: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN\n    inet 10.96.0.1/32 scope global kube-ipvs0\n")
		return err
	case strings.Contains(joined, "net/ip_vs"):
		_, err := io.WriteString(stdout, "IP Virtual Server version 1.2.1 (size=4096)\n")
		return err
	}
	return fmt.Errorf("unexpected command %q", joined)
}
