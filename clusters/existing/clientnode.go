package existing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/manifests"
)

// KubeProxyMetricsURL is kube-proxy's metrics endpoint as the agent sees
// it: the agent shares the node's network namespace.
const KubeProxyMetricsURL = "http://127.0.0.1:10249"

// ErrNoAgent means no running CPU agent pod was found on a client node.
var ErrNoAgent = errors.New("no running kpbench agent pod on a client node")

// AgentNode is the client node seen through the CPU agent pod: commands run
// by exec in that pod, which shares the node's PID and network namespaces.
// `kpbench ...` runs the image's binary; any other command runs from the
// node's root filesystem (chroot /host/root), where iptables-save, nft and
// ipvsadm live.
type AgentNode struct {
	cs     kubernetes.Interface
	execer Execer

	mu   sync.Mutex
	pod  string
	node string
}

var _ clusters.ClientNode = (*AgentNode)(nil)

// NewAgentNode returns the client node reached through the agent pods
// that the manifests' Agent DaemonSet runs.
func NewAgentNode(cs kubernetes.Interface, execer Execer) *AgentNode {
	return &AgentNode{cs: cs, execer: execer}
}

// AgentCommand maps a client-node command to what runs in the agent
// container.
func AgentCommand(args []string) []string {
	if len(args) > 0 && (args[0] == "kpbench" || args[0] == manifests.ImageBinary) {
		return append([]string{manifests.ImageBinary}, args[1:]...)
	}
	return append([]string{manifests.ImageBinary, "cluster", "agent", "host", "--"}, args...)
}

// Pod returns the agent pod and its node, looking them up once.
func (a *AgentNode) Pod(ctx context.Context) (pod, node string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pod != "" {
		return a.pod, a.node, nil
	}
	ready, err := readyAgents(ctx, a.cs)
	if err != nil {
		return "", "", err
	}
	a.pod, a.node = ready[0].Name, ready[0].Spec.NodeName
	return a.pod, a.node, nil
}

// readyAgents lists the ready agent pods, one per client node, by node
// name: the first client node by name is the measured one, stable across
// calls and runs.
func readyAgents(ctx context.Context, cs kubernetes.Interface) ([]corev1.Pod, error) {
	pods, err := cs.CoreV1().Pods(manifests.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: manifests.ComponentSelector(manifests.ComponentAgent),
	})
	if err != nil {
		return nil, fmt.Errorf("listing agent pods: %w", err)
	}
	var ready []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && podReady(&p) {
			ready = append(ready, p)
		}
	}
	if len(ready) == 0 {
		return nil, ErrNoAgent
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].Spec.NodeName < ready[j].Spec.NodeName })
	return ready, nil
}

// ClientNodes returns every client node that runs an agent pod, the
// measured one (a's) first.
func (a *AgentNode) ClientNodes(ctx context.Context) ([]clusters.NamedNode, error) {
	pod, node, err := a.Pod(ctx)
	if err != nil {
		return nil, err
	}
	ready, err := readyAgents(ctx, a.cs)
	if err != nil {
		return nil, err
	}
	out := []clusters.NamedNode{{Name: node, Node: a}}
	for _, p := range ready {
		if p.Name != pod {
			out = append(out, clusters.NamedNode{Name: p.Spec.NodeName, Node: &AgentNode{cs: a.cs, execer: a.execer, pod: p.Name, node: p.Spec.NodeName}})
		}
	}
	return out, nil
}

// NodeName is the measured client node's name ("" before the agent runs).
func (a *AgentNode) NodeName(ctx context.Context) string {
	_, node, _ := a.Pod(ctx)
	return node
}

func (a *AgentNode) forget() {
	a.mu.Lock()
	a.pod, a.node = "", ""
	a.mu.Unlock()
}

// Run runs args on the client node through the agent pod.
func (a *AgentNode) Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	if len(args) == 0 {
		return errors.New("run on client node: no command")
	}
	pod, _, err := a.Pod(ctx)
	if err != nil {
		return err
	}
	tail := &tailBuffer{max: 2048}
	var errw io.Writer = tail
	if stderr != nil {
		errw = io.MultiWriter(stderr, tail)
	}
	cmd := AgentCommand(args)
	err = a.execer.Exec(ctx, manifests.Namespace, pod, manifests.ContainerName, cmd, stdin, stdout, errw)
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Stderr == "" {
			exit.Stderr = tail.String()
		}
		return exit
	}
	if err != nil {
		// The pod may have been replaced; look it up again next time.
		a.forget()
		return fmt.Errorf("running %s on the client node: %w", strings.Join(args, " "), err)
	}
	return nil
}

// output runs args and returns stdout.
func (a *AgentNode) output(ctx context.Context, args ...string) ([]byte, error) {
	var out bytes.Buffer
	if err := a.Run(ctx, nil, &out, nil, args...); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// CPUs is empty: the client node is a whole machine.
func (a *AgentNode) CPUs() []int { return nil }

// ProcRoot is the node's /proc as mounted in the agent pod, where the
// samplers kpbench execs there read it.
func (a *AgentNode) ProcRoot() string { return manifests.HostProcPath }

// KubeProxyPID finds kube-proxy among the node's processes.
func (a *AgentNode) KubeProxyPID(ctx context.Context) (int, error) {
	out, err := a.output(ctx, "kpbench", "cluster", "agent", "pid", "--proc", manifests.HostProcPath, "kube-proxy")
	if err != nil {
		return 0, fmt.Errorf("finding kube-proxy's PID: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("finding kube-proxy's PID: agent answered %q", out)
	}
	return pid, nil
}

// KubeProxyGet fetches path from kube-proxy's metrics port on the node.
func (a *AgentNode) KubeProxyGet(ctx context.Context, path string) ([]byte, error) {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	out, err := a.output(ctx, "kpbench", "cluster", "agent", "get", KubeProxyMetricsURL+path)
	if err != nil {
		return nil, fmt.Errorf("GET kube-proxy %s: %w", path, err)
	}
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
