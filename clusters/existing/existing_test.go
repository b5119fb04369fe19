package existing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/manifests"
	"github.com/kpbench/kpbench/scenarios"
)

func labelledNodes() []runtime.Object {
	return []runtime.Object{
		node("cp", nil),
		node("client-1", map[string]string{manifests.LabelRole: manifests.RoleClient}),
		node("server-1", map[string]string{manifests.LabelRole: manifests.RoleServer}),
	}
}

func TestSwitchModeAndRestore(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(t, append(kubeProxyObjects(t, "testdata/kubeadm-config.conf"), labelledNodes()...)...)
	f.addAgentPod("kpbench-agent-abcde", "client-1")
	p := f.provider(t, Options{Confirm: true, Backends: 2})

	if err := p.Up(ctx, scenarios.ModeNFTables); err != nil {
		t.Fatal(err)
	}
	mode, _, err := ParseProxyConfig([]byte(f.configConf(ctx)))
	if err != nil {
		t.Fatal(err)
	}
	if mode != "nftables" {
		t.Errorf("ConfigMap mode = %q after the switch, want nftables", mode)
	}
	if got := f.restartedAt(ctx); got != "2026-11-22T03:00:00Z" {
		t.Errorf("restartedAt annotation = %q", got)
	}
	if f.dsReads <= f.staleReads {
		t.Errorf("rollout not waited for: %d reads of kube-proxy", f.dsReads)
	}
	if !f.ran("nft list table ip kube-proxy") {
		t.Error("the nftables rules were not checked on the client node")
	}
	st, err := loadState(p.statePath)
	if err != nil || st == nil || !st.Switched || st.OriginalMode != "" {
		t.Fatalf("state = %+v, %v; want switched from the unset mode", st, err)
	}
	if _, err := f.cs.AppsV1().Deployments(manifests.Namespace).Get(ctx, manifests.BackendName, metav1.GetOptions{}); err != nil {
		t.Errorf("backend Deployment: %v", err)
	}

	// A second switch keeps the first original.
	if err := p.SetMode(ctx, scenarios.ModeIPVS); err != nil {
		t.Fatal(err)
	}
	if st, _ := loadState(p.statePath); st.OriginalMode != "" {
		t.Errorf("original mode overwritten with %q", st.OriginalMode)
	}

	// Down after a crash: a new provider, the same state directory.
	p2 := f.provider(t, Options{StateDir: p.opts.StateDir})
	if err := p2.Down(ctx); err != nil {
		t.Fatal(err)
	}
	mode, _, _ = ParseProxyConfig([]byte(f.configConf(ctx)))
	if mode != "" {
		t.Errorf("mode after Down = %q, want the original (unset)", mode)
	}
	if _, err := f.cs.CoreV1().Namespaces().Get(ctx, manifests.Namespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace still there after Down: %v", err)
	}
	if _, err := os.Stat(p.statePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left: %v", err)
	}
	if err := p2.Down(ctx); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

func (f *fakeCluster) ran(sub string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.execs {
		if strings.Contains(strings.Join(c, " "), sub) {
			return true
		}
	}
	return false
}

func TestKeepLeavesModeAndWorkloads(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(t, append(kubeProxyObjects(t, "testdata/kubeadm-config.conf"), labelledNodes()...)...)
	f.addAgentPod("agent", "client-1")
	p := f.provider(t, Options{Confirm: true, Keep: true, Backends: 1})
	if err := p.Up(ctx, scenarios.ModeIPVS); err != nil {
		t.Fatal(err)
	}
	if err := p.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if mode, _, _ := ParseProxyConfig([]byte(f.configConf(ctx))); mode != "ipvs" {
		t.Errorf("mode = %q, want ipvs kept", mode)
	}
	if _, err := f.cs.CoreV1().Namespaces().Get(ctx, manifests.Namespace, metav1.GetOptions{}); err != nil {
		t.Errorf("namespace deleted despite Keep: %v", err)
	}
}

func TestSwitchNeedsConfirmation(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(t, append(kubeProxyObjects(t, "testdata/kubeadm-config.conf"), labelledNodes()...)...)
	f.addAgentPod("agent", "client-1")
	before := f.configConf(ctx)
	p := f.provider(t, Options{Backends: 1})

	err := p.Up(ctx, scenarios.ModeNFTables)
	if !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("Up err = %v, want ErrNotConfirmed", err)
	}
	if _, err := f.cs.CoreV1().Namespaces().Get(ctx, manifests.Namespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Error("an unconfirmed Up deployed workloads")
	}
	if err := p.SetMode(ctx, scenarios.ModeNFTables); !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("SetMode err = %v, want ErrNotConfirmed", err)
	}
	if f.configConf(ctx) != before || f.restartedAt(ctx) != "" {
		t.Error("kube-proxy was changed without confirmation")
	}
	// The mode already in effect needs no confirmation.
	if err := p.Up(ctx, scenarios.ModeIPTables); err != nil {
		t.Fatalf("Up in the current mode: %v", err)
	}
	if f.restartedAt(ctx) != "" {
		t.Error("kube-proxy restarted although its mode was right")
	}
	if !f.ran("iptables-save -t nat") {
		t.Error("iptables rules not verified")
	}
	if err := p.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if f.configConf(ctx) != before {
		t.Error("Down rewrote a ConfigMap kpbench never changed")
	}
}

func TestExternalMode(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(t, labelledNodes()...)
	f.addAgentPod("agent", "client-1")
	p := f.provider(t, Options{Confirm: true, Backends: 1})

	caps, err := p.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := caps.Runnable(scenarios.ModeExternal); !ok || p.Features(ctx).SwitchModes {
		t.Errorf("caps = %+v, want external runnable and no switching", caps)
	}
	for _, m := range scenarios.Modes {
		if ok, why := caps.Runnable(m); ok || !strings.Contains(why, "replaced") {
			t.Errorf("mode %s runnable=%v reason=%q", m, ok, why)
		}
	}
	if err := p.Up(ctx, scenarios.ModeIPTables); !errors.Is(err, clusters.ErrModeUnavailable) || !errors.Is(err, ErrNoKubeProxy) {
		t.Errorf("Up(iptables) err = %v, want ErrModeUnavailable and ErrNoKubeProxy", err)
	}
	if err := p.Up(ctx, scenarios.ModeExternal); err != nil {
		t.Fatal(err)
	}
	if err := p.VerifyMode(ctx, scenarios.ModeExternal); err != nil {
		t.Error(err)
	}
	if err := p.SetMode(ctx, scenarios.ModeExternal); err != nil {
		t.Error(err)
	}
	if f.ran("proxyMode") {
		t.Error("external mode queried kube-proxy")
	}
	if err := p.Down(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestExternalRefusedWhenKubeProxyRuns(t *testing.T) {
	f := newFakeCluster(t, append(kubeProxyObjects(t, "testdata/kubeadm-config.conf"), labelledNodes()...)...)
	p := f.provider(t, Options{Confirm: true})
	err := p.Up(context.Background(), scenarios.ModeExternal)
	if !errors.Is(err, clusters.ErrModeUnavailable) {
		t.Fatalf("err = %v", err)
	}
}

func TestVerifyModeMismatchAndMissingRules(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		override string
		rules    map[string]string
		mode     scenarios.Mode
		want     string
	}{
		{name: "kube-proxy in another mode", override: "iptables", mode: scenarios.ModeNFTables, want: `reports "iptables", want "nftables"`},
		{name: "no nftables table", mode: scenarios.ModeNFTables, override: "nftables", rules: map[string]string{"nft": ""}, want: "No such file"},
		{name: "no iptables chain", mode: scenarios.ModeIPTables, override: "iptables", rules: map[string]string{"iptables-save": "*nat\nCOMMIT\n"}, want: `shows no ":KUBE-SERVICES "`},
		{name: "ipvs without kube-ipvs0", mode: scenarios.ModeIPVS, override: "ipvs", rules: map[string]string{"ip": ""}, want: "no kube-ipvs0 device with a Service address"},
		{name: "ok", mode: scenarios.ModeIPVS, override: "ipvs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCluster(t, append(kubeProxyObjects(t, "testdata/kubeadm-config.conf"), labelledNodes()...)...)
			f.addAgentPod("agent", "client-1")
			f.proxyModeOverride = tt.override
			for k, v := range tt.rules {
				f.rules[k] = v
			}
			p := f.provider(t, Options{})
			err := p.VerifyMode(ctx, tt.mode)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "client-1") {
				t.Fatalf("err = %v, want %q naming the node", err, tt.want)
			}
		})
	}
}

func TestUpFailureCleansUpUnlessRetain(t *testing.T) {
	for _, retain := range []bool{false, true} {
		t.Run(fmt.Sprintf("retain=%v", retain), func(t *testing.T) {
			ctx := context.Background()
			f := newFakeCluster(t, append(kubeProxyObjects(t, "testdata/kubeadm-config.conf"), labelledNodes()...)...)
			f.workloadsReady = false
			p := f.provider(t, Options{Confirm: true, Retain: retain, ReadyTimeout: 50 * time.Millisecond, Backends: 3})
			err := p.Up(ctx, scenarios.ModeIPTables)
			if err == nil || !strings.Contains(err.Error(), "0 of 3 backends ready") {
				t.Fatalf("err = %v, want the readiness wait to explain itself", err)
			}
			_, gerr := f.cs.CoreV1().Namespaces().Get(ctx, manifests.Namespace, metav1.GetOptions{})
			if retain && gerr != nil {
				t.Errorf("namespace removed despite Retain: %v", gerr)
			}
			if !retain && !apierrors.IsNotFound(gerr) {
				t.Errorf("namespace left after a failed Up: %v", gerr)
			}
		})
	}
}

func TestNamespaceNotOurs(t *testing.T) {
	ctx := context.Background()
	objs := append(kubeProxyObjects(t, "testdata/kubeadm-config.conf"), labelledNodes()...)
	objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: manifests.Namespace}})
	f := newFakeCluster(t, objs...)
	p := f.provider(t, Options{Confirm: true, Retain: true})
	if err := p.Up(ctx, scenarios.ModeIPTables); !errors.Is(err, ErrNamespaceTaken) {
		t.Fatalf("Up err = %v, want ErrNamespaceTaken", err)
	}
	if err := DeleteNamespace(ctx, f.cs, time.Millisecond, time.Second); !errors.Is(err, ErrNamespaceTaken) {
		t.Fatalf("DeleteNamespace err = %v, want ErrNamespaceTaken", err)
	}
}

func TestPlacement(t *testing.T) {
	tests := []struct {
		name       string
		nodes      []runtime.Object
		clientNode string
		wantClient map[string]string
		wantServer map[string]string
		wantAvoid  []string
		wantErr    string
	}{
		{name: "role labels", nodes: labelledNodes(),
			wantClient: map[string]string{manifests.LabelRole: manifests.RoleClient},
			wantServer: map[string]string{manifests.LabelRole: manifests.RoleServer},
			wantAvoid:  []string{"client-1"}},
		{name: "unlabelled with --client-node", nodes: []runtime.Object{node("a", nil), node("b", nil)}, clientNode: "b",
			wantClient: map[string]string{corev1.LabelHostname: "b"}, wantServer: map[string]string{}, wantAvoid: []string{"b"}},
		{name: "single node", nodes: []runtime.Object{node("solo", nil)}, clientNode: "solo",
			wantClient: map[string]string{corev1.LabelHostname: "solo"}, wantServer: map[string]string{}},
		{name: "no client node", nodes: []runtime.Object{node("a", nil)}, wantErr: "kubectl label node"},
		{name: "unknown client node", nodes: []runtime.Object{node("a", nil)}, clientNode: "zz", wantErr: `client node "zz" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCluster(t, tt.nodes...)
			p := f.provider(t, Options{ClientNode: tt.clientNode})
			cfg, err := p.placementFor(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(cfg.ClientSelector) != fmt.Sprint(tt.wantClient) || fmt.Sprint(cfg.ServerSelector) != fmt.Sprint(tt.wantServer) || fmt.Sprint(cfg.AvoidNodes) != fmt.Sprint(tt.wantAvoid) {
				t.Errorf("placement client=%v server=%v avoid=%v", cfg.ClientSelector, cfg.ServerSelector, cfg.AvoidNodes)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name       string
		confirm    bool
		image      string
		want       map[scenarios.Mode]string
		wantSwitch bool
	}{
		{name: "confirmed", confirm: true, image: "registry.k8s.io/kube-proxy:v1.33.1",
			want: map[scenarios.Mode]string{scenarios.ModeIPTables: "", scenarios.ModeIPVS: "", scenarios.ModeNFTables: "", scenarios.ModeExternal: "kube-proxy runs here"}, wantSwitch: true},
		{name: "not confirmed", image: "registry.k8s.io/kube-proxy:v1.33.1",
			want: map[scenarios.Mode]string{scenarios.ModeIPTables: "", scenarios.ModeIPVS: "needs --yes", scenarios.ModeNFTables: "needs --yes"}},
		{name: "old kube-proxy", confirm: true, image: "registry.k8s.io/kube-proxy:v1.28.4",
			want: map[scenarios.Mode]string{scenarios.ModeNFTables: "needs kube-proxy v1.31"}, wantSwitch: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := append(kubeProxyObjects(t, "testdata/kubeadm-config.conf"), labelledNodes()...)
			objs[0].(*appsv1.DaemonSet).Spec.Template.Spec.Containers[0].Image = tt.image
			f := newFakeCluster(t, objs...)
			p := f.provider(t, Options{Confirm: tt.confirm})
			caps, err := p.Capabilities(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Features(context.Background()).SwitchModes; got != tt.wantSwitch {
				t.Errorf("Features().SwitchModes = %v", got)
			}
			for m, want := range tt.want {
				got, ok := caps.Modes[m]
				if !ok || (want == "" && got != "") || !strings.Contains(got, want) {
					t.Errorf("mode %s reason %q, want %q", m, got, want)
				}
			}
		})
	}
}

func TestBackendsAndVersions(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(t, kubeProxyObjects(t, "testdata/kubeadm-config.conf")...)
	for i, ip := range []string{"10.244.2.7", "10.244.1.5", ""} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("backend-%d", i), Namespace: manifests.Namespace, Labels: manifests.Labels(manifests.ComponentBackend)},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, Conditions: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			}},
		}
		if err := f.cs.Tracker().Add(pod); err != nil {
			t.Fatal(err)
		}
	}
	p := f.provider(t, Options{})
	eps, err := p.Backends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 || eps[0].Addr.String() != "10.244.1.5" || eps[1].Addr.String() != "10.244.2.7" || eps[0].Port != 80 {
		t.Errorf("backends = %v", eps)
	}
	v, err := p.Versions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.KubeProxy != "v1.33.1" {
		t.Errorf("versions = %+v", v)
	}
	f.addAgentPod("agent", "client-1")
	cluster, d := p.Describe(ctx)
	if cluster != "" {
		t.Errorf("cluster = %q: an existing cluster has no name of kpbench's", cluster)
	}
	if d["clientNode"] != "client-1" || d["image"] != manifests.DefaultImage || d["kubeProxyImage"] != "registry.k8s.io/kube-proxy:v1.33.1" {
		t.Errorf("details = %v", d)
	}
	for k, v := range d {
		if strings.Contains(k+v, "kubeconfig") {
			t.Errorf("details mention the kubeconfig: %s=%s", k, v)
		}
	}
}

func TestRunLoad(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(t, labelledNodes()...)
	logs := map[string]string{}
	created := 0
	// Play the Job controller and kubelet: each Job gets a pod on a
	// client node and succeeds (or fails, for client index 2).
	f.cs.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		j := a.(k8stesting.CreateAction).GetObject().(*batchv1.Job)
		idx := j.Labels[manifests.LabelClientIndex]
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-xyz", Namespace: j.Namespace, Labels: map[string]string{jobPodLabel: j.Name}},
			Spec:       corev1.PodSpec{NodeName: "client-" + idx},
		}
		if err := f.cs.Tracker().Add(pod); err != nil {
			return true, nil, err
		}
		if idx == "2" {
			j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"}}
			logs[pod.Name] = "time=x level=ERROR msg=\"dial tcp: connection refused\"\n"
		} else {
			j.Status.Succeeded = 1
			n, _ := strconv.Atoi(idx)
			logs[pod.Name] = fmt.Sprintf("time=x level=INFO msg=start\n{\"requests\": %d}\n", (n+1)*1000)
		}
		created++
		return false, nil, nil
	})
	p := f.provider(t, Options{})
	p.logs = func(_ context.Context, pod string) ([]byte, error) { return []byte(logs[pod]), nil }

	res, err := p.RunLoad(ctx, clusters.LoadRequest{ID: "nft-s01000-rpc1-r0", Args: []string{"--rate", "500"}, Clients: 2, Deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[1].Node != "client-1" || !bytes.Contains(res[1].Summary, []byte("2000")) {
		t.Fatalf("results = %+v", res)
	}
	jobs, _ := f.cs.BatchV1().Jobs(manifests.Namespace).List(ctx, metav1.ListOptions{})
	if len(jobs.Items) != 0 {
		t.Errorf("%d load jobs left behind", len(jobs.Items))
	}

	_, err = p.RunLoad(ctx, clusters.LoadRequest{ID: "again", Clients: 3, Deadline: time.Second})
	if err == nil || !strings.Contains(err.Error(), "BackoffLimitExceeded") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want the failed client's reason and log", err)
	}
}

func TestRunLoadReplacesStaleJob(t *testing.T) {
	ctx := context.Background()
	stale := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: manifests.LoadJobName("r1", 0), Namespace: manifests.Namespace}}
	f := newFakeCluster(t, append(labelledNodes(), stale)...)
	f.cs.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		j := a.(k8stesting.CreateAction).GetObject().(*batchv1.Job)
		if j.Spec.Template.Spec.Containers == nil {
			return false, nil, nil
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-p", Namespace: j.Namespace, Labels: map[string]string{jobPodLabel: j.Name}}}
		_ = f.cs.Tracker().Add(pod)
		j.Status.Succeeded = 1
		return false, nil, nil
	})
	p := f.provider(t, Options{})
	p.logs = func(context.Context, string) ([]byte, error) { return []byte(`{"requests":7}`), nil }
	res, err := p.RunLoad(ctx, clusters.LoadRequest{ID: "r1", Clients: 1, Deadline: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if string(res[0].Summary) != `{"requests":7}` {
		t.Errorf("summary %s", res[0].Summary)
	}
}

func TestFailedUpCleansUpEvenWithKeep(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(t, append(kubeProxyObjects(t, "testdata/kubeadm-config.conf"), labelledNodes()...)...)
	f.addAgentPod("agent", "client-1")
	f.proxyModeOverride = "iptables" // kube-proxy never comes up in the new mode
	p := f.provider(t, Options{Confirm: true, Keep: true, Backends: 1, RolloutTimeout: time.Second})
	err := p.Up(ctx, scenarios.ModeNFTables)
	if err == nil || !strings.Contains(err.Error(), `reports "iptables", want "nftables"`) {
		t.Fatalf("err = %v", err)
	}
	if mode, _, _ := ParseProxyConfig([]byte(f.configConf(ctx))); mode != "" {
		t.Errorf("mode left at %q after a failed Up, want the original restored", mode)
	}
	if _, err := f.cs.CoreV1().Namespaces().Get(ctx, manifests.Namespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace left after a failed Up: %v", err)
	}
}

func TestUpFailsFastOnStuckPods(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(t, append(kubeProxyObjects(t, "testdata/kubeadm-config.conf"), labelledNodes()...)...)
	f.workloadsReady = false
	stuck := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "kpbench-backend-x", Namespace: manifests.Namespace, Labels: manifests.Labels(manifests.ComponentBackend)},
		Spec:       corev1.PodSpec{NodeName: "server-1"},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name:  manifests.ContainerName,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "kpbench:dev"`}},
		}}},
	}
	if err := f.cs.Tracker().Add(stuck); err != nil {
		t.Fatal(err)
	}
	p := f.provider(t, Options{Backends: 1, ReadyTimeout: time.Minute})
	start := time.Now()
	err := p.Up(ctx, scenarios.ModeIPTables)
	if !errors.Is(err, ErrPodsStuck) || !strings.Contains(err.Error(), "--image REF") || !strings.Contains(err.Error(), "server-1") {
		t.Fatalf("err = %v, want ErrPodsStuck naming the pod's node and the fix", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("waited %s for pods that cannot start", time.Since(start))
	}
}

// A run that switches modes several times keeps its own record of the
// original quietly; only a record an earlier run left (switched, never
// restored) is worth a warning.
func TestEarlierRunWarningOnlyForAnotherRunsRecord(t *testing.T) {
	ctx := context.Background()
	f := newFakeCluster(t, append(kubeProxyObjects(t, "testdata/kubeadm-config.conf"), labelledNodes()...)...)
	f.addAgentPod("kpbench-agent-abcde", "client-1")
	var logs bytes.Buffer
	stateDir := t.TempDir()
	p := f.provider(t, Options{Confirm: true, Backends: 2, StateDir: stateDir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := p.Up(ctx, scenarios.ModeNFTables); err != nil {
		t.Fatal(err)
	}
	for _, m := range []scenarios.Mode{scenarios.ModeIPTables, scenarios.ModeNFTables} {
		if err := p.SetMode(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(logs.String(), "earlier run") {
		t.Errorf("the run's own switches were taken for an earlier run's:\n%s", logs.String())
	}
	// The next run finds the record (this one never restored).
	logs.Reset()
	next := f.provider(t, Options{Confirm: true, Backends: 2, StateDir: stateDir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := next.SetMode(ctx, scenarios.ModeIPTables); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "earlier run did not restore") {
		t.Errorf("no warning about the earlier run's record:\n%s", logs.String())
	}
}
