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
	"github.com/kpbench/kpbench/clusters/existing/apitest"
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
