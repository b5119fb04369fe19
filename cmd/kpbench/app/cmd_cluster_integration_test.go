package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/clusters/existing"
	"github.com/kpbench/kpbench/clusters/lab/apitest"
	"github.com/kpbench/kpbench/clusters/manifests"
)

// `kpbench cluster mode` and `set-mode` through a kubeconfig file against
// a real apiserver; the test plays the DaemonSet controller.
func TestIntegrationClusterModeCLI(t *testing.T) {
	srv := apitest.Start(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := srv.Kubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(srv.Config)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	fakeKubeProxy(ctx, t, cs)
	// The state file (none is written by these commands) goes to a temp dir.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())

	code, out, errs := runKpbench(t, "cluster", "mode", "--kubeconfig", kubeconfig)
	if code != 0 || !strings.Contains(out, "configmap: iptables") || !strings.Contains(out, "kube-proxy: v1.36.3") || !strings.Contains(out, "no kpbench agent") {
		t.Fatalf("mode: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runKpbench(t, "cluster", "set-mode", "nftables", "--yes", "--kubeconfig", kubeconfig, "--wait", "30s")
	if code != 0 || !strings.Contains(out, "restarted in nftables mode") {
		t.Fatalf("set-mode: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, _ = runKpbench(t, "cluster", "mode", "--kubeconfig", kubeconfig)
	if code != 0 || !strings.Contains(out, "configmap: nftables") {
		t.Fatalf("mode after switch: exit %d\n%s", code, out)
	}
	ds, err := cs.AppsV1().DaemonSets(existing.KubeProxyNamespace).Get(ctx, existing.KubeProxyName, metav1.GetOptions{})
	if err != nil || ds.Spec.Template.Annotations[existing.RestartedAtAnnotation] == "" {
		t.Fatalf("restart annotation missing: %v", err)
	}
	code, out, _ = runKpbench(t, "cluster", "set-mode", "nftables", "--yes", "--kubeconfig", kubeconfig)
	if code != 0 || !strings.Contains(out, "already configured") {
		t.Errorf("second set-mode: exit %d %s", code, out)
	}
	code, _, _ = runKpbench(t, "cluster", "cleanup", "--kubeconfig", kubeconfig)
	if code != 0 {
		t.Errorf("cleanup with nothing to undo: exit %d", code)
	}
	_ = os.Remove(kubeconfig)
}

// fakeKubeProxy creates a kubeadm-style kube-system/kube-proxy ConfigMap
// (mode "", iptables) and DaemonSet, and plays the DaemonSet controller:
// every new generation is reported rolled out.
func fakeKubeProxy(ctx context.Context, t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	labels := map[string]string{"k8s-app": "kube-proxy"}
	_, err := cs.CoreV1().ConfigMaps(existing.KubeProxyNamespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: existing.KubeProxyName, Namespace: existing.KubeProxyNamespace},
		Data:       map[string]string{existing.KubeProxyConfigKey: "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: \"\"\n"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.AppsV1().DaemonSets(existing.KubeProxyNamespace).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: existing.KubeProxyName, Namespace: existing.KubeProxyNamespace},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "kube-proxy", Image: "registry.k8s.io/kube-proxy:v1.36.3"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			ds, err := cs.AppsV1().DaemonSets(existing.KubeProxyNamespace).Get(ctx, existing.KubeProxyName, metav1.GetOptions{})
			if err != nil || ds.Status.ObservedGeneration == ds.Generation {
				return false, nil
			}
			ds.Status = appsv1.DaemonSetStatus{ObservedGeneration: ds.Generation, DesiredNumberScheduled: 1, UpdatedNumberScheduled: 1, NumberAvailable: 1}
			_, _ = cs.AppsV1().DaemonSets(existing.KubeProxyNamespace).UpdateStatus(ctx, ds, metav1.UpdateOptions{})
			return false, nil
		})
	}()
}

// A run on an existing cluster whose pods never start (this apiserver has
// no kubelet) fails with the reason and leaves nothing behind: no results
// directory, kube-proxy's ConfigMap as it was, kpbench's namespace deleted.
func TestIntegrationRunExistingFailedStartCleansUp(t *testing.T) {
	srv := apitest.Start(t)
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := srv.Kubeconfig(kubeconfig); err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(srv.Config)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fakeKubeProxy(ctx, t, cs)
	_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: "client-1", Labels: map[string]string{manifests.LabelRole: manifests.RoleClient},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	out := t.TempDir()

	code, _, errs := runKpbench(t, "run", "--provider", "existing", "--kubeconfig", kubeconfig, "--scenario", "smoke", "--out", out)
	if code != 2 || !strings.Contains(errs, "pass --yes") {
		t.Fatalf("without --yes: exit %d, %s", code, errs)
	}
	code, _, errs = runKpbench(t, "run", "--provider", "existing", "--kubeconfig", kubeconfig, "--yes",
		"--scenario", "smoke", "--out", out, "--wait", "3s")
	if code == 0 || !strings.Contains(errs, "waiting for kpbench's pods (0 of 3 backends ready)") {
		t.Fatalf("exit %d, want a failure naming the backends that never became ready:\n%s", code, errs)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("a failed start left %d entries in --out", len(entries))
	}
	cm, err := cs.CoreV1().ConfigMaps(existing.KubeProxyNamespace).Get(ctx, existing.KubeProxyName, metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data[existing.KubeProxyConfigKey], `mode: ""`) {
		t.Errorf("kube-proxy's ConfigMap changed: %v %v", cm.Data, err)
	}
	// Without a namespace controller the namespace cannot finish going,
	// but its deletion must have been asked for.
	ns, err := cs.CoreV1().Namespaces().Get(ctx, manifests.Namespace, metav1.GetOptions{})
	if err == nil && ns.DeletionTimestamp == nil {
		t.Errorf("namespace %s left in place after the failed start", manifests.Namespace)
	}
}
