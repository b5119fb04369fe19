// Package manifests generates, in Go, the Kubernetes objects kpbench runs
// in a cluster (kind or existing): the backend Deployment, the CPU agent
// DaemonSet on the client node, and the load client Jobs. Every object
// lives in the kpbench namespace and carries
// app.kubernetes.io/managed-by=kpbench, so cleanup is exact. It also reads
// a load client's JSON summary from its pod log and merges the summaries of
// several clients.
package manifests

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Names, labels and paths shared by the manifests and the code that
// drives them.
const (
	Namespace = "kpbench"

	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "kpbench"
	LabelName      = "app.kubernetes.io/name"
	LabelComponent = "app.kubernetes.io/component"
	// LabelRun ties load client pods to one load window.
	LabelRun = "kpbench.io/run"
	// LabelClientIndex numbers the load clients of one window.
	LabelClientIndex = "kpbench.io/client-index"

	// LabelRole marks nodes: RoleClient runs kube-proxy under test, the
	// agent and the load clients; RoleServer runs the backends.
	LabelRole  = "kpbench.io/role"
	RoleClient = "client"
	RoleServer = "server"

	ComponentBackend = "backend"
	ComponentAgent   = "agent"
	ComponentLoad    = "load"

	BackendName    = "kpbench-backend"
	AgentName      = "kpbench-agent"
	LoadJobPrefix  = "kpbench-load"
	ContainerName  = "kpbench"
	BackendPort    = 80
	HostProcPath   = "/host/proc"
	HostRootPath   = "/host/root"
	ImageBinary    = "/kpbench"
	DefaultImage   = "kpbench:dev"
	loadJobTTL     = int32(600)
	deadlineMargin = 2 * time.Minute
)

// Config says where and how the workloads run.
type Config struct {
	// Image is the kpbench image (see `kpbench image build`).
	Image string
	// PullPolicy defaults to IfNotPresent, which a kind-loaded image needs.
	PullPolicy corev1.PullPolicy
	// Backends is the number of backend pods.
	Backends int
	// ClientSelector picks the client node(s); default kpbench.io/role=client.
	ClientSelector map[string]string
	// ServerSelector picks the backend nodes; default kpbench.io/role=server.
	// Set it to an empty, non-nil map to allow any node.
	ServerSelector map[string]string
	// AvoidNodes are node names backends must not run on (the client
	// nodes, where an existing cluster has no role labels).
	AvoidNodes []string
}

// Defaulted returns c with defaults filled in.
func (c Config) Defaulted() Config {
	if c.Image == "" {
		c.Image = DefaultImage
	}
	if c.PullPolicy == "" {
		c.PullPolicy = corev1.PullIfNotPresent
	}
	if c.ClientSelector == nil {
		c.ClientSelector = map[string]string{LabelRole: RoleClient}
	}
	if c.ServerSelector == nil {
		c.ServerSelector = map[string]string{LabelRole: RoleServer}
	}
	return c
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Backends < 1 {
		errs = append(errs, fmt.Errorf("backends must be at least 1, got %d", c.Backends))
	}
	if len(c.ClientSelector) == 0 {
		errs = append(errs, errors.New("client node selector must not be empty: the agent and load clients must be pinned"))
	}
	return errors.Join(errs...)
}

// Labels are the labels of every object of component.
func Labels(component string) map[string]string {
	return map[string]string{
		LabelManagedBy: ManagedBy,
		LabelName:      "kpbench",
		LabelComponent: component,
	}
}

// ManagedSelector selects everything kpbench made.
func ManagedSelector() string { return LabelManagedBy + "=" + ManagedBy }

// ComponentSelector selects one component's objects.
func ComponentSelector(component string) string {
	return ManagedSelector() + "," + LabelComponent + "=" + component
}

func objectMeta(name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: Labels(component)}
}

// PodSecurityLabel is the Pod Security admission level of the kpbench
// namespace: the CPU agent needs hostPID, hostNetwork, host paths and
// privilege, which "baseline" and "restricted" forbid.
const PodSecurityLabel = "pod-security.kubernetes.io/enforce"

// NamespaceObject is the kpbench namespace.
func NamespaceObject() *corev1.Namespace {
	labels := Labels("namespace")
	labels[PodSecurityLabel] = "privileged"
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: Namespace, Labels: labels},
	}
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Backend is the Deployment of `kpbench serve` pods on the server nodes
// that every synthetic Service's endpoints point at.
func Backend(cfg Config) *appsv1.Deployment {
	cfg = cfg.Defaulted()
	replicas := int32(cfg.Backends)
	labels := Labels(ComponentBackend)
	pod := corev1.PodSpec{
		NodeSelector:                  copyMap(cfg.ServerSelector),
		TerminationGracePeriodSeconds: ptr(int64(5)),
		EnableServiceLinks:            ptr(false),
		Containers: []corev1.Container{{
			Name:            ContainerName,
			Image:           cfg.Image,
			ImagePullPolicy: cfg.PullPolicy,
			Command:         []string{ImageBinary, "serve", "--listen", ":" + strconv.Itoa(BackendPort)},
			Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: BackendPort, Protocol: corev1.ProtocolTCP}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler: corev1.ProbeHandler{
					TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(BackendPort)},
				},
				PeriodSeconds: 2,
			},
		}},
		TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
			MaxSkew:           1,
			TopologyKey:       corev1.LabelHostname,
			WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector:     &metav1.LabelSelector{MatchLabels: copyMap(labels)},
		}},
	}
	if len(cfg.AvoidNodes) > 0 {
		avoid := append([]string(nil), cfg.AvoidNodes...)
		sort.Strings(avoid)
		pod.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpNotIn, Values: avoid,
					}},
				}},
			},
		}}
	}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: objectMeta(BackendName, ComponentBackend),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: copyMap(labels)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: copyMap(labels)},
				Spec:       pod,
			},
		},
	}
}

// Agent is the CPU agent DaemonSet on the client node(s). It shares the
// node's PID and network namespaces (so 127.0.0.1:10249 is kube-proxy's
// metrics port and kube-proxy's PID is visible), mounts the node's /proc
// read-only at /host/proc and its root read-only at /host/root (where
// iptables-save, nft and ipvsadm are run from), and is privileged so those
// tools can read the kernel's rules. It idles in `kpbench cluster agent`;
// kpbench execs its samplers and probes into it.
func Agent(cfg Config) *appsv1.DaemonSet {
	cfg = cfg.Defaulted()
	labels := Labels(ComponentAgent)
	hostPathDir := corev1.HostPathDirectory
	propagation := corev1.MountPropagationHostToContainer
	return &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: objectMeta(AgentName, ComponentAgent),
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: copyMap(labels)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: copyMap(labels)},
				Spec: corev1.PodSpec{
					NodeSelector:                  copyMap(cfg.ClientSelector),
					HostPID:                       true,
					HostNetwork:                   true,
					DNSPolicy:                     corev1.DNSClusterFirstWithHostNet,
					TerminationGracePeriodSeconds: ptr(int64(2)),
					EnableServiceLinks:            ptr(false),
					// The client node may carry taints (e.g. a dedicated
					// node pool); the selector alone decides placement.
					Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{
						Name:            ContainerName,
						Image:           cfg.Image,
						ImagePullPolicy: cfg.PullPolicy,
						Command:         []string{ImageBinary, "cluster", "agent"},
						SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "proc", MountPath: HostProcPath, ReadOnly: true},
							{Name: "root", MountPath: HostRootPath, ReadOnly: true, MountPropagation: &propagation},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "proc", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/proc", Type: &hostPathDir}}},
						{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/", Type: &hostPathDir}}},
					},
				},
			},
		},
	}
}

// LoadSpec describes one load window run by in-cluster clients.
type LoadSpec struct {
	// RunID names the window; it goes into Job names and labels, so it
	// must be a DNS label (lowercase alphanumerics and '-', <= 40 chars).
	RunID string
	// Args are `kpbench load` arguments after `--json - --embed-histograms`.
	Args []string
	// Clients is the number of client Jobs (>= 1). Their pods prefer
	// distinct client nodes.
	Clients int
	// Deadline bounds each Job (warmup + duration); a margin is added.
	Deadline time.Duration
}

// LoadJobName is the name of client index i of run.
func LoadJobName(runID string, i int) string {
	return fmt.Sprintf("%s-%s-%d", LoadJobPrefix, runID, i)
}

// LoadJobs are the client Jobs of one window: each runs
// `kpbench load --json - --embed-histograms ARGS` once on a client node and
// prints its JSON summary, which ParseSummary reads back from the pod's
// log. The summary embeds the client's HDR histograms, so the summaries of
// several clients merge exactly (loadgen.MergeSummaries); with one client
// they are kept all the same.
func LoadJobs(cfg Config, spec LoadSpec) ([]*batchv1.Job, error) {
	cfg = cfg.Defaulted()
	var errs []error
	if spec.Clients < 1 {
		errs = append(errs, fmt.Errorf("clients must be at least 1, got %d", spec.Clients))
	}
	if !isDNSLabel(spec.RunID) || len(spec.RunID) > 40 {
		errs = append(errs, fmt.Errorf("run id %q must be a DNS label of at most 40 characters", spec.RunID))
	}
	if spec.Deadline <= 0 {
		errs = append(errs, fmt.Errorf("deadline must be positive, got %s", spec.Deadline))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("load jobs: %w", err)
	}
	runLabels := Labels(ComponentLoad)
	runLabels[LabelRun] = spec.RunID
	deadline := int64((spec.Deadline + deadlineMargin + time.Second - 1) / time.Second)
	jobs := make([]*batchv1.Job, 0, spec.Clients)
	for i := 0; i < spec.Clients; i++ {
		labels := copyMap(runLabels)
		labels[LabelClientIndex] = strconv.Itoa(i)
		cmd := append([]string{ImageBinary, "load", "--json", "-", "--embed-histograms"}, spec.Args...)
		pod := corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			NodeSelector:                  copyMap(cfg.ClientSelector),
			TerminationGracePeriodSeconds: ptr(int64(2)),
			EnableServiceLinks:            ptr(false),
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:            ContainerName,
				Image:           cfg.Image,
				ImagePullPolicy: cfg.PullPolicy,
				Command:         cmd,
			}},
		}
		if spec.Clients > 1 {
			// Spread clients over the client nodes: one machine's rate is
			// what multi-client load gets past. Preferred, not required,
			// so N clients still run on fewer nodes.
			pod.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
					Weight: 100,
					PodAffinityTerm: corev1.PodAffinityTerm{
						LabelSelector: &metav1.LabelSelector{MatchLabels: copyMap(runLabels)},
						TopologyKey:   corev1.LabelHostname,
					},
				}},
			}}
			pod.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
				MaxSkew:           1,
				TopologyKey:       corev1.LabelHostname,
				WhenUnsatisfiable: corev1.ScheduleAnyway,
				LabelSelector:     &metav1.LabelSelector{MatchLabels: copyMap(runLabels)},
			}}
		}
		jobs = append(jobs, &batchv1.Job{
			TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
			ObjectMeta: metav1.ObjectMeta{
				Name:      LoadJobName(spec.RunID, i),
				Namespace: Namespace,
				Labels:    labels,
			},
			Spec: batchv1.JobSpec{
				BackoffLimit:            ptr(int32(0)),
				Completions:             ptr(int32(1)),
				Parallelism:             ptr(int32(1)),
				ActiveDeadlineSeconds:   &deadline,
				TTLSecondsAfterFinished: ptr(loadJobTTL),
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: copyMap(labels)},
					Spec:       pod,
				},
			},
		})
	}
	return jobs, nil
}

// Workloads are the long-lived objects of a cluster run, in creation
// order: the namespace, the backends and the agent.
func Workloads(cfg Config) ([]runtime.Object, error) {
	if err := cfg.Defaulted().Validate(); err != nil {
		return nil, fmt.Errorf("workloads: %w", err)
	}
	return []runtime.Object{NamespaceObject(), Backend(cfg), Agent(cfg)}, nil
}

func isDNSLabel(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case r == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

func ptr[T any](v T) *T { return &v }
