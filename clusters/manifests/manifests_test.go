package manifests

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestWorkloadsAreLabelledAndNamespaced(t *testing.T) {
	objs, err := Workloads(Config{Backends: 3})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := LoadJobs(Config{Backends: 3}, LoadSpec{RunID: "r1", Clients: 2, Deadline: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		objs = append(objs, j)
	}
	if len(objs) != 5 {
		t.Fatalf("got %d objects, want namespace, deployment, daemonset and 2 jobs", len(objs))
	}
	for _, o := range objs {
		m, err := metaOf(o)
		if err != nil {
			t.Fatal(err)
		}
		if m.GetLabels()[LabelManagedBy] != ManagedBy {
			t.Errorf("%T %s lacks %s=%s", o, m.GetName(), LabelManagedBy, ManagedBy)
		}
		if _, ns := o.(*corev1.Namespace); ns {
			if m.GetName() != Namespace {
				t.Errorf("namespace is %q", m.GetName())
			}
			if m.GetLabels()[PodSecurityLabel] != "privileged" {
				t.Errorf("namespace pod security level %q; the agent needs privileged", m.GetLabels()[PodSecurityLabel])
			}
			continue
		}
		if m.GetNamespace() != Namespace {
			t.Errorf("%T %s is in namespace %q, want %q", o, m.GetName(), m.GetNamespace(), Namespace)
		}
		if o.GetObjectKind().GroupVersionKind().Kind == "" {
			t.Errorf("%T %s has no kind set (needed to print and apply it)", o, m.GetName())
		}
	}
}

func metaOf(o runtime.Object) (metav1.Object, error) {
	return o.(metav1.ObjectMetaAccessor).GetObjectMeta(), nil
}

func TestBackend(t *testing.T) {
	tests := []struct {
		name         string
		cfg          Config
		wantSelector map[string]string
		wantAvoid    []string
	}{
		{
			name:         "kind defaults",
			cfg:          Config{Backends: 10},
			wantSelector: map[string]string{LabelRole: RoleServer},
		},
		{
			name:         "existing cluster without role labels",
			cfg:          Config{Backends: 4, ServerSelector: map[string]string{}, AvoidNodes: []string{"node-b", "node-a"}},
			wantSelector: map[string]string{},
			wantAvoid:    []string{"node-a", "node-b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Backend(tt.cfg)
			if *d.Spec.Replicas != int32(tt.cfg.Backends) {
				t.Errorf("replicas = %d, want %d", *d.Spec.Replicas, tt.cfg.Backends)
			}
			pod := d.Spec.Template.Spec
			if !reflect.DeepEqual(pod.NodeSelector, tt.wantSelector) {
				t.Errorf("nodeSelector = %v, want %v", pod.NodeSelector, tt.wantSelector)
			}
			c := pod.Containers[0]
			if got := strings.Join(c.Command, " "); got != "/kpbench serve --listen :80" {
				t.Errorf("command = %q", got)
			}
			if c.Image != DefaultImage || c.ImagePullPolicy != corev1.PullIfNotPresent {
				t.Errorf("image %s pull %s", c.Image, c.ImagePullPolicy)
			}
			if c.ReadinessProbe == nil || c.ReadinessProbe.TCPSocket == nil || c.ReadinessProbe.TCPSocket.Port.IntValue() != BackendPort {
				t.Errorf("readiness probe = %+v, want TCP on %d", c.ReadinessProbe, BackendPort)
			}
			sel := d.Spec.Selector.MatchLabels
			for k, v := range sel {
				if d.Spec.Template.Labels[k] != v {
					t.Errorf("selector %s=%s does not match the template", k, v)
				}
			}
			var avoid []string
			if a := pod.Affinity; a != nil && a.NodeAffinity != nil {
				req := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0]
				if req.Key != corev1.LabelHostname || req.Operator != corev1.NodeSelectorOpNotIn {
					t.Errorf("node affinity %+v", req)
				}
				avoid = req.Values
			}
			if !reflect.DeepEqual(avoid, tt.wantAvoid) {
				t.Errorf("avoided nodes = %v, want %v", avoid, tt.wantAvoid)
			}
		})
	}
}

func TestAgent(t *testing.T) {
	ds := Agent(Config{Backends: 1, Image: "registry.example/kpbench:v1", PullPolicy: corev1.PullAlways})
	pod := ds.Spec.Template.Spec
	if !pod.HostPID || !pod.HostNetwork {
		t.Errorf("hostPID=%v hostNetwork=%v, want both", pod.HostPID, pod.HostNetwork)
	}
	if pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy = %s", pod.DNSPolicy)
	}
	if !reflect.DeepEqual(pod.NodeSelector, map[string]string{LabelRole: RoleClient}) {
		t.Errorf("nodeSelector = %v", pod.NodeSelector)
	}
	c := pod.Containers[0]
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Error("agent is not privileged")
	}
	if got := strings.Join(c.Command, " "); got != "/kpbench cluster agent" {
		t.Errorf("command = %q", got)
	}
	if c.Image != "registry.example/kpbench:v1" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %s pull %s", c.Image, c.ImagePullPolicy)
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	hostPaths := map[string]string{}
	for _, v := range pod.Volumes {
		hostPaths[v.Name] = v.HostPath.Path
	}
	for path, hostPath := range map[string]string{HostProcPath: "/proc", HostRootPath: "/"} {
		m, ok := mounts[path]
		if !ok {
			t.Errorf("no mount at %s", path)
			continue
		}
		if !m.ReadOnly {
			t.Errorf("%s is mounted read-write", path)
		}
		if hostPaths[m.Name] != hostPath {
			t.Errorf("%s mounts host %q, want %q", path, hostPaths[m.Name], hostPath)
		}
	}
}

func TestLoadJobs(t *testing.T) {
	tests := []struct {
		name       string
		spec       LoadSpec
		wantJobs   int
		wantSpread bool
		wantErr    string
	}{
		{name: "one client", spec: LoadSpec{RunID: "iptables-s01000-rpc1-r0", Clients: 1, Deadline: 23 * time.Second, Args: []string{"--rate", "1000"}}, wantJobs: 1},
		{name: "three clients spread", spec: LoadSpec{RunID: "x", Clients: 3, Deadline: time.Minute}, wantJobs: 3, wantSpread: true},
		{name: "zero clients", spec: LoadSpec{RunID: "x", Clients: 0, Deadline: time.Minute}, wantErr: "clients must be at least 1"},
		{name: "bad run id", spec: LoadSpec{RunID: "Bad_ID", Clients: 1, Deadline: time.Minute}, wantErr: "DNS label"},
		{name: "no deadline", spec: LoadSpec{RunID: "x", Clients: 1}, wantErr: "deadline must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs, err := LoadJobs(Config{Backends: 1}, tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(jobs) != tt.wantJobs {
				t.Fatalf("jobs = %d, want %d", len(jobs), tt.wantJobs)
			}
			names := map[string]bool{}
			for i, j := range jobs {
				names[j.Name] = true
				if j.Name != LoadJobName(tt.spec.RunID, i) {
					t.Errorf("job %d name %s", i, j.Name)
				}
				if *j.Spec.BackoffLimit != 0 {
					t.Error("a failed client must not be retried (it would double the load)")
				}
				wantDeadline := int64((tt.spec.Deadline + deadlineMargin) / time.Second)
				if *j.Spec.ActiveDeadlineSeconds != wantDeadline {
					t.Errorf("deadline = %d, want %d", *j.Spec.ActiveDeadlineSeconds, wantDeadline)
				}
				pod := j.Spec.Template.Spec
				if pod.RestartPolicy != corev1.RestartPolicyNever {
					t.Errorf("restartPolicy = %s", pod.RestartPolicy)
				}
				if pod.NodeSelector[LabelRole] != RoleClient {
					t.Errorf("job not pinned to the client node: %v", pod.NodeSelector)
				}
				cmd := pod.Containers[0].Command
				// Always embedded: the orchestrator merges several clients'
				// summaries from their histograms, and keeps one client's.
				want := append([]string{"/kpbench", "load", "--json", "-", "--embed-histograms"}, tt.spec.Args...)
				if !reflect.DeepEqual(cmd, want) {
					t.Errorf("command = %q, want %q", cmd, want)
				}
				if j.Spec.Template.Labels[LabelRun] != tt.spec.RunID {
					t.Errorf("pod lacks run label")
				}
				spread := pod.Affinity != nil && pod.Affinity.PodAntiAffinity != nil && len(pod.TopologySpreadConstraints) == 1
				if spread != tt.wantSpread {
					t.Errorf("spread = %v, want %v", spread, tt.wantSpread)
				}
				if spread {
					sel := pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchLabels
					if sel[LabelRun] != tt.spec.RunID || sel[LabelClientIndex] != "" {
						t.Errorf("anti-affinity selector %v must select every client of the run", sel)
					}
				}
			}
			if len(names) != len(jobs) {
				t.Error("job names collide")
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{Backends: 0, ClientSelector: map[string]string{}}.Validate()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"backends must be at least 1", "client node selector must not be empty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := Workloads(Config{}); err == nil {
		t.Error("Workloads accepted zero backends")
	}
}

func TestParseSummary(t *testing.T) {
	fixture, err := os.ReadFile("testdata/load-pod.log")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		log     string
		want    string
		wantErr error
	}{
		{name: "indented summary amid text and JSON log records", log: string(fixture), want: `"requests": 20000`},
		{name: "compact summary line", log: "level=INFO msg=x\n{\"requests\":5}\n", want: `{"requests":5}`},
		{name: "last summary wins", log: "{\"requests\":1}\n{\"requests\":2}\n", want: `{"requests":2}`},
		{name: "only log records", log: "{\"level\":\"INFO\",\"msg\":\"starting\"}\ntime=x level=ERROR msg=boom\n", wantErr: ErrNoSummary},
		{name: "truncated summary", log: "{\"requests\": 1,\n\"latency\": {", wantErr: ErrNoSummary},
		{name: "empty", log: "", wantErr: ErrNoSummary},
		{name: "a text warning between two lines of the summary", log: "{\n  \"requests\": 600,\ntime=2026-12-06T10:18:42Z level=WARN msg=\"the schedule fell behind\" lagP99Us=9000\n  \"latency\": {\"p50Us\": 400}\n}\n", want: `"p50Us": 400`},
		{name: "a JSON warning between two lines of the summary", log: "{\n  \"requests\": 600,\n{\"time\":\"x\",\"level\":\"WARN\",\"msg\":\"run is invalid\"}\n  \"latency\": {\"p50Us\": 400}\n}\n", want: `"p50Us": 400`},
		{name: "brace inside text line ignored", log: "msg=\"got {weird}\"\n  {\"ok\":true}\n", want: `{"ok":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSummary([]byte(tt.log))
			if tt.wantErr != nil {
				if err != tt.wantErr {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(got), tt.want) {
				t.Errorf("summary = %s, want it to contain %s", got, tt.want)
			}
		})
	}
}
