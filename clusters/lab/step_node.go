package lab

// The node step: the client node's Node object, which kube-proxy reads
// (kube-proxy itself starts in mode.go, which also switches modes).

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kpbench/kpbench/clusters/lab/build"
)

// stepNode creates the client node's Node object (kube-proxy reads its
// addresses) and waits for the apiserver's own kubernetes Service, so
// kube-proxy has a Service to program from the start.
func (l *Lab) stepNode(ctx context.Context, _ build.Binaries) error {
	cs, err := l.clientset()
	if err != nil {
		return err
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   NodeName,
			Labels: map[string]string{"kubernetes.io/hostname": NodeName, "kubernetes.io/os": "linux", "app.kubernetes.io/managed-by": "kpbench"},
		},
	}
	created, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("creating Node %s: %w", NodeName, err)
	}
	created.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: NodeIP.String()},
		{Type: corev1.NodeHostName, Address: NodeName},
	}
	created.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KpbenchLab",
		Message: "kpbench lab node (no kubelet)", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("setting Node %s addresses: %w", NodeName, err)
	}
	st, _ := l.state()
	api, _ := st.proc(CompAPIServer)
	return waitFor(ctx, api, l.cfg.ReadyTimeout, "serving the kubernetes Service", func(ctx context.Context) error {
		_, err := cs.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
		return err
	})
}
