package existing

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/manifests"
)

// ErrNamespaceTaken is returned when the kpbench namespace exists but was
// not made by kpbench: kpbench never adopts or deletes it.
var ErrNamespaceTaken = errors.New("namespace exists and is not managed by kpbench")

// Apply creates objs, or updates them when they exist (objects kpbench
// manages only). DryRun sends them with server-side dry-run.
func Apply(ctx context.Context, cs kubernetes.Interface, objs []runtime.Object, dryRun bool) error {
	var dry []string
	if dryRun {
		dry = []string{metav1.DryRunAll}
	}
	copts := metav1.CreateOptions{DryRun: dry, FieldManager: "kpbench"}
	uopts := metav1.UpdateOptions{DryRun: dry, FieldManager: "kpbench"}
	for _, o := range objs {
		var err error
		switch obj := o.(type) {
		case *corev1.Namespace:
			_, err = cs.CoreV1().Namespaces().Create(ctx, obj, copts)
			if apierrors.IsAlreadyExists(err) {
				cur, gerr := cs.CoreV1().Namespaces().Get(ctx, obj.Name, metav1.GetOptions{})
				if gerr != nil {
					return fmt.Errorf("reading namespace %s: %w", obj.Name, gerr)
				}
				if cur.Labels[manifests.LabelManagedBy] != manifests.ManagedBy {
					return fmt.Errorf("namespace %s: %w", obj.Name, ErrNamespaceTaken)
				}
				if cur.DeletionTimestamp != nil {
					return fmt.Errorf("namespace %s is being deleted; retry when it is gone", obj.Name)
				}
				err = nil
			}
		case *appsv1.Deployment:
			c := cs.AppsV1().Deployments(obj.Namespace)
			_, err = c.Create(ctx, obj, copts)
			if apierrors.IsAlreadyExists(err) {
				var cur *appsv1.Deployment
				if cur, err = c.Get(ctx, obj.Name, metav1.GetOptions{}); err == nil {
					obj = obj.DeepCopy()
					obj.ResourceVersion = cur.ResourceVersion
					_, err = c.Update(ctx, obj, uopts)
				}
			}
		case *appsv1.DaemonSet:
			c := cs.AppsV1().DaemonSets(obj.Namespace)
			_, err = c.Create(ctx, obj, copts)
			if apierrors.IsAlreadyExists(err) {
				var cur *appsv1.DaemonSet
				if cur, err = c.Get(ctx, obj.Name, metav1.GetOptions{}); err == nil {
					obj = obj.DeepCopy()
					obj.ResourceVersion = cur.ResourceVersion
					_, err = c.Update(ctx, obj, uopts)
				}
			}
		case *batchv1.Job:
			_, err = cs.BatchV1().Jobs(obj.Namespace).Create(ctx, obj, copts)
		default:
			return fmt.Errorf("apply: unsupported object %T", o)
		}
		if err != nil {
			m := o.(metav1.ObjectMetaAccessor).GetObjectMeta()
			return fmt.Errorf("applying %s %s: %w", o.GetObjectKind().GroupVersionKind().Kind, m.GetName(), err)
		}
	}
	return nil
}

// WaitWorkloads waits until every backend replica is ready and an agent
// pod runs on every client node the DaemonSet selects.
func WaitWorkloads(ctx context.Context, cs kubernetes.Interface, backends int, interval, timeout time.Duration) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(manifests.Namespace).Get(ctx, manifests.BackendName, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("reading the backend Deployment: %w", err)
		}
		ds, err := cs.AppsV1().DaemonSets(manifests.Namespace).Get(ctx, manifests.AgentName, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("reading the agent DaemonSet: %w", err)
		}
		if err := stuckPods(ctx, cs); err != nil {
			return false, err
		}
		switch {
		case d.Status.ReadyReplicas < int32(backends):
			last = fmt.Sprintf("%d of %d backends ready", d.Status.ReadyReplicas, backends)
		case ds.Status.DesiredNumberScheduled == 0:
			last = "no node matches the client node selector"
		case ds.Status.NumberReady < ds.Status.DesiredNumberScheduled:
			last = fmt.Sprintf("%d of %d agents ready", ds.Status.NumberReady, ds.Status.DesiredNumberScheduled)
		default:
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for kpbench's pods (%s): %w", last, err)
	}
	return nil
}

// ErrPodsStuck is returned when kpbench's pods cannot start (the image
// cannot be pulled, the container crashes): waiting longer will not help.
var ErrPodsStuck = errors.New("kpbench's pods cannot start")

// stuckReasons are container waiting reasons that do not resolve alone.
var stuckReasons = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true,
	"CrashLoopBackOff": true, "CreateContainerConfigError": true, "CreateContainerError": true,
	"ErrImageNeverPull": true,
}

// stuckPods reports kpbench pods whose containers wait for a reason that
// does not go away by itself.
func stuckPods(ctx context.Context, cs kubernetes.Interface) error {
	pods, err := cs.CoreV1().Pods(manifests.Namespace).List(ctx, metav1.ListOptions{LabelSelector: manifests.ManagedSelector()})
	if err != nil {
		return fmt.Errorf("listing kpbench's pods: %w", err)
	}
	var problems []string
	for _, p := range pods.Items {
		for _, c := range p.Status.ContainerStatuses {
			if w := c.State.Waiting; w != nil && stuckReasons[w.Reason] {
				problems = append(problems, fmt.Sprintf("pod %s on node %s: %s: %s", p.Name, p.Spec.NodeName, w.Reason, w.Message))
			}
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	hint := ""
	for _, pr := range problems {
		if strings.Contains(pr, "Image") || strings.Contains(pr, "image") {
			hint = " (push the image with `kpbench image build --push REF` and pass --image REF)"
			break
		}
	}
	return fmt.Errorf("%w%s: %s", ErrPodsStuck, hint, strings.Join(problems, "; "))
}

// ReadyBackends returns the addresses of the ready backend pods, sorted.
func ReadyBackends(ctx context.Context, cs kubernetes.Interface) ([]clusters.Endpoint, error) {
	pods, err := cs.CoreV1().Pods(manifests.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: manifests.ComponentSelector(manifests.ComponentBackend),
	})
	if err != nil {
		return nil, fmt.Errorf("listing backend pods: %w", err)
	}
	var eps []clusters.Endpoint
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || !podReady(&p) || p.Status.PodIP == "" {
			continue
		}
		addr, err := parseAddr(p.Status.PodIP)
		if err != nil {
			return nil, fmt.Errorf("backend pod %s: %w", p.Name, err)
		}
		eps = append(eps, clusters.Endpoint{Addr: addr, Port: manifests.BackendPort})
	}
	sort.Slice(eps, func(i, j int) bool { return eps[i].Addr.Less(eps[j].Addr) })
	return eps, nil
}

// DeleteNamespace deletes the kpbench namespace (everything kpbench made
// lives in it) and waits up to timeout for it to go. A namespace kpbench
// does not manage is left alone.
func DeleteNamespace(ctx context.Context, cs kubernetes.Interface, interval, timeout time.Duration) error {
	ns, err := cs.CoreV1().Namespaces().Get(ctx, manifests.Namespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading namespace %s: %w", manifests.Namespace, err)
	}
	if ns.Labels[manifests.LabelManagedBy] != manifests.ManagedBy {
		return fmt.Errorf("namespace %s: %w", manifests.Namespace, ErrNamespaceTaken)
	}
	if ns.DeletionTimestamp == nil {
		// Background: the namespace controller removes the contents; a
		// foreground deletion would also wait on the garbage collector.
		policy := metav1.DeletePropagationBackground
		err := cs.CoreV1().Namespaces().Delete(ctx, manifests.Namespace, metav1.DeleteOptions{PropagationPolicy: &policy})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting namespace %s: %w", manifests.Namespace, err)
		}
	}
	err = wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, manifests.Namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("waiting for namespace %s to go: %w", manifests.Namespace, err)
	}
	return nil
}

// jobPodLabel is set by the Job controller on its pods.
const jobPodLabel = "batch.kubernetes.io/job-name"

// jobFinished says whether a Job completed or failed.
func jobFinished(j *batchv1.Job) (done, failed bool, reason string) {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return true, false, ""
		case batchv1.JobFailed:
			return true, true, strings.TrimSpace(c.Reason + " " + c.Message)
		}
	}
	if j.Status.Succeeded > 0 {
		return true, false, ""
	}
	if j.Status.Failed > 0 {
		return true, true, "pod failed"
	}
	return false, false, ""
}

// jobPod returns the (last) pod of a Job.
func jobPod(ctx context.Context, cs kubernetes.Interface, job string) (*corev1.Pod, error) {
	pods, err := cs.CoreV1().Pods(manifests.Namespace).List(ctx, metav1.ListOptions{LabelSelector: jobPodLabel + "=" + job})
	if err != nil {
		return nil, fmt.Errorf("listing pods of job %s: %w", job, err)
	}
	if len(pods.Items) == 0 {
		return nil, fmt.Errorf("job %s has no pod", job)
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return pods.Items[i].CreationTimestamp.Before(&pods.Items[j].CreationTimestamp)
	})
	return &pods.Items[len(pods.Items)-1], nil
}

// podLogs fetches a pod's kpbench container log.
func podLogs(ctx context.Context, cs kubernetes.Interface, pod string) ([]byte, error) {
	b, err := cs.CoreV1().Pods(manifests.Namespace).GetLogs(pod, &corev1.PodLogOptions{Container: manifests.ContainerName}).DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the log of pod %s: %w", pod, err)
	}
	return b, nil
}

func logTail(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
