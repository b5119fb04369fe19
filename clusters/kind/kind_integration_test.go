package kind_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kpbench/kpbench/clusters/containerimage"
	"github.com/kpbench/kpbench/clusters/kind"
	"github.com/kpbench/kpbench/clusters/manifests"
	"github.com/kpbench/kpbench/scenarios"
)

// A kind cluster from kpbench's offline node image, with podman, as
// `kpbench cluster create --provider kind --k8s-image offline` makes it:
// one control plane, a client and a server worker all Ready, CoreDNS and
// kube-proxy running, pods addressed on the nodes' ptp networks, and a
// pod on the client worker reaching, by its DNS name, a ClusterIP Service
// whose pod runs on the server worker. The delete leaves no container,
// volume, podman network or firewall table that was not there before.
// The node image is built first unless cached (the first build compiles
// Kubernetes: many minutes).
func TestIntegrationKindClusterOffline(t *testing.T) {
	needKind(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))

	archive, _ := kpbenchImage(t)
	before := leftovers(t)
	name := fmt.Sprintf("kpb-it-%d", os.Getpid()%100000)
	p, down := offlineCluster(t, name, archive, logger)
	start := time.Now()
	if err := p.Create(ctx, scenarios.ModeIPTables); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster create (image cached and loaded, kpbench image loaded): %v", time.Since(start).Round(time.Second))

	cfg, err := clientcmd.BuildConfigFromFlags("", p.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	start = time.Now()
	roles := waitReady(ctx, t, cs)
	t.Logf("nodes Ready, CoreDNS and kube-proxy running: %v more", time.Since(start).Round(time.Second))
	for _, r := range []string{"control-plane", manifests.RoleClient, manifests.RoleServer} {
		if roles[r] == "" {
			t.Fatalf("no %s node: %v", r, roles)
		}
	}

	start = time.Now()
	crossNode(ctx, t, cs, roles[manifests.RoleClient], roles[manifests.RoleServer])
	t.Logf("cross-node Service check: %v", time.Since(start).Round(time.Second))

	start = time.Now()
	if err := down(ctx); err != nil {
		t.Fatalf("cluster delete: %v", err)
	}
	t.Logf("cluster delete: %v", time.Since(start).Round(time.Second))
	after := leftovers(t)
	for what, b := range before {
		if !slices.Equal(b, after[what]) {
			t.Errorf("%s before the create: %q; after the delete: %q", what, b, after[what])
		}
	}
}

// offlineCluster is the kind provider for a cluster named name from the
// offline node image, deleted when the test ends unless down deleted it.
func offlineCluster(t *testing.T, name, archive string, logger *slog.Logger) (p *kind.Provider, down func(context.Context) error) {
	t.Helper()
	p, err := kind.New(kind.Options{
		Name:         name,
		Topology:     kind.Topology{NodeImage: kind.NodeImageOffline},
		ImageArchive: archive,
		StateDir:     t.TempDir(),
		Logger:       logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			if err := p.Down(context.Background()); err != nil {
				t.Errorf("deleting the cluster: %v", err)
			}
		}
	})
	return p, func(ctx context.Context) error {
		deleted = true
		return p.Down(ctx)
	}
}

// runTiny runs `kpbench run` with args (the tiny scenario's) under what,
// failing the test unless it wrote exactly one run directory, which it
// returns.
func runTiny(ctx context.Context, t *testing.T, what, bin, out string, args ...string) string {
	t.Helper()
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, append([]string{"run"}, append(args, "--out", out, "--log-format", "text")...)...)
	log, err := cmd.CombinedOutput()
	t.Logf("%s: %v", what, time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("kpbench run: %v\n%s", err, log)
	}
	runs, _ := filepath.Glob(filepath.Join(out, "*_kind-tiny"))
	if len(runs) != 1 {
		t.Fatalf("run directories %v\n%s", runs, log)
	}
	return runs[0]
}

// needKind skips unless this machine can run kind's nodes with podman
// and build the offline node image, and makes kind use podman.
func needKind(t *testing.T) {
	t.Helper()
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	if os.Geteuid() != 0 {
		t.Skip("privileged podman and mmdebstrap need root")
	}
	for _, c := range []string{"podman", "mmdebstrap", "go"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("no %s (make deps-kind installs podman and mmdebstrap)", c)
		}
	}
	t.Setenv(kind.EnvKindProvider, "podman")
	// The provider points CONTAINERS_CONF at its state directory, a
	// test's temporary one: restored after each test.
	t.Setenv(kind.EnvContainersConf, os.Getenv(kind.EnvContainersConf))
}

// kpbenchImage builds the kpbench binary (static; $KPBENCH_BIN if set)
// and its image archive.
func kpbenchImage(t *testing.T) (archive, bin string) {
	t.Helper()
	dir := t.TempDir()
	bin = os.Getenv("KPBENCH_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "kpbench")
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "../../cmd/kpbench")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	built, err := containerimage.Build(containerimage.Options{Binary: bin, Version: "integration"})
	if err != nil {
		t.Fatal(err)
	}
	archive = filepath.Join(dir, "kpbench.tar")
	if err := containerimage.WriteTarball(archive, containerimage.DefaultTag, built.Image); err != nil {
		t.Fatal(err)
	}
	return archive, bin
}

// leftovers lists what a cluster could leave on this machine.
func leftovers(t *testing.T) map[string][]string {
	t.Helper()
	lists := map[string][]string{}
	for what, args := range map[string][]string{
		"podman containers": {"podman", "ps", "--all", "--format", "{{.Names}}"},
		"podman volumes":    {"podman", "volume", "ls", "--format", "{{.Name}}"},
		"podman networks":   {"podman", "network", "ls", "--format", "{{.Name}}"},
		"nftables tables":   {"nft", "list", "tables"},
	} {
		if _, err := exec.LookPath(args[0]); err != nil {
			continue
		}
		var stderr bytes.Buffer
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, stderr.String())
		}
		l := strings.Fields(strings.ReplaceAll(string(out), "table ", "table_"))
		slices.Sort(l)
		lists[what] = l
	}
	return lists
}

// waitReady waits for every node to be Ready, CoreDNS's Deployment and
// kube-proxy's DaemonSet to be fully available, and returns the node of
// each role.
func waitReady(ctx context.Context, t *testing.T, cs kubernetes.Interface) map[string]string {
	t.Helper()
	roles := map[string]string{}
	var last string
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
			if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; cp {
				roles["control-plane"] = n.Name
			} else if r := n.Labels[manifests.LabelRole]; r != "" {
				roles[r] = n.Name
			}
		}
		if len(nodes.Items) != 3 || ready != 3 {
			last = fmt.Sprintf("%d of %d nodes Ready (want 3)", ready, len(nodes.Items))
			return false, nil
		}
		dns, err := cs.AppsV1().Deployments("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil || dns.Status.AvailableReplicas == 0 || dns.Status.AvailableReplicas != dns.Status.Replicas {
			last = fmt.Sprintf("CoreDNS not available (%v)", err)
			return false, nil
		}
		kp, err := cs.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
		if err != nil || kp.Status.NumberAvailable != 3 {
			last = fmt.Sprintf("kube-proxy not on every node (%v)", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("waiting for the cluster: %s: %v", last, err)
	}
	return roles
}

// crossNode runs kpbench's backend on the server node behind a ClusterIP
// Service and a load client on the client node that reaches it by name,
// and checks both pods' addresses and that every request was answered.
func crossNode(ctx context.Context, t *testing.T, cs kubernetes.Interface, client, server string) {
	t.Helper()
	const ns = "default"
	labels := map[string]string{"app": "kpb-it-srv"}
	pod := func(name, node string, cmd []string, l map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
			Spec: corev1.PodSpec{
				NodeName:      node,
				RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{
					Name: "kpbench", Image: containerimage.DefaultTag, ImagePullPolicy: corev1.PullNever, Command: cmd,
				}},
			},
		}
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod("srv", server, []string{manifests.ImageBinary, "serve", "--listen", ":8080"}, labels), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kpb-it"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var srv *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		srv, err = cs.CoreV1().Pods(ns).Get(ctx, "srv", metav1.GetOptions{})
		return err == nil && srv.Status.Phase == corev1.PodRunning && srv.Status.PodIP != "", nil
	})
	if err != nil {
		t.Fatalf("the backend pod did not run: %v", err)
	}
	url := "http://kpb-it." + ns + ".svc.cluster.local/"
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod("cli", client, []string{manifests.ImageBinary, "load", "--rate", "50", "--warmup", "0s", "--duration", "2s", "--requests-per-conn", "1", "--json", "-", url}, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var cli *corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		cli, err = cs.CoreV1().Pods(ns).Get(ctx, "cli", metav1.GetOptions{})
		return err == nil && (cli.Status.Phase == corev1.PodSucceeded || cli.Status.Phase == corev1.PodFailed), nil
	})
	log, lerr := cs.CoreV1().Pods(ns).GetLogs("cli", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || cli.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("the load client: %v, phase %s; log:\n%s %v", err, cli.Status.Phase, log, lerr)
	}
	_, podNet, _ := net.ParseCIDR("10.244.0.0/16")
	for _, p := range []*corev1.Pod{srv, cli} {
		if ip := net.ParseIP(p.Status.PodIP); ip == nil || !podNet.Contains(ip) {
			t.Errorf("pod %s on %s has address %q, outside the pod network %s", p.Name, p.Spec.NodeName, p.Status.PodIP, podNet)
		}
	}
	if a, b := srv.Status.PodIP, cli.Status.PodIP; a != "" && b != "" && a[:strings.LastIndex(a, ".")] == b[:strings.LastIndex(b, ".")] {
		t.Errorf("the two nodes' pods share a /24 (%s, %s): each node should have its own", a, b)
	}
	sum, err := manifests.ParseSummary(log)
	if err != nil {
		t.Fatalf("the load client's summary: %v\n%s", err, log)
	}
	var s struct {
		Requests int `json:"requests"`
		Answered int `json:"answered"`
		Errors   struct {
			Total int `json:"total"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(sum, &s); err != nil {
		t.Fatal(err)
	}
	if s.Requests == 0 || s.Answered != s.Requests || s.Errors.Total != 0 {
		t.Errorf("the client on %s reached the Service on %s: %d requests, %d answered, %d errors", client, server, s.Requests, s.Answered, s.Errors.Total)
	}
	t.Logf("client pod %s (%s) → Service %s → backend pod %s (%s): %d of %d answered",
		cli.Status.PodIP, client, url, srv.Status.PodIP, server, s.Answered, s.Requests)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
