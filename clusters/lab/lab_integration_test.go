package lab_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/labtest"
	"github.com/kpbench/kpbench/clusters/lab/netns"
	"github.com/kpbench/kpbench/internal/cpuset"
	"github.com/kpbench/kpbench/scenarios"
)

const managedBy = "app.kubernetes.io/managed-by"

// createService makes a selector-less ClusterIP Service on port 80 and an
// EndpointSlice pointing at eps, and returns the ClusterIP.
func createService(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, eps []clusters.Endpoint) string {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{managedBy: "kpbench"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{managedBy: "kpbench"}},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(int32(eps[0].Port))}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating service: %v", err)
	}
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name + "-1",
			Labels: map[string]string{managedBy: "kpbench", discoveryv1.LabelServiceName: name},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(eps[0].Port)), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	for _, ep := range eps {
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{ep.Addr.String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating endpoint slice: %v", err)
	}
	return svc.Spec.ClusterIP
}

func ptr[T any](v T) *T { return &v }

// getFromNode GETs url from inside the client-node namespace until it
// answers 200 or the deadline passes; it returns the last status and error.
func getFromNode(ctx context.Context, labName, url string, within time.Duration) (int, error) {
	c := netns.HTTPClient(netns.Path("kpb-"+labName+"-node"), nil, 2*time.Second)
	deadline := time.Now().Add(within)
	var (
		code int
		err  error
	)
	for time.Now().Before(deadline) {
		var resp *http.Response
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err = c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
			if code == http.StatusOK {
				return code, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return code, err
}

func rootNetworkState(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	for _, args := range [][]string{{"-o", "link", "show"}, {"-o", "addr", "show"}, {"route", "show", "table", "all"}, {"rule", "show"}} {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
		b.Write(out)
	}
	return b.String()
}

// TestLabIptablesThenNftables is the lab's end-to-end check: up in
// iptables mode, a Service with an EndpointSlice answers through its
// ClusterIP from the client node, switch to nftables, verify the mode and
// the answer again, and down leaves nothing behind.
func TestLabIptablesThenNftables(t *testing.T) {
	labtest.SkipUnlessIntegration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	rootBefore := rootNetworkState(t)

	l := labtest.Start(t, lab.Config{Backends: 3}, scenarios.ModeIPTables)
	name := l.LabName()

	if got := rootNetworkState(t); got != rootBefore {
		t.Errorf("the root network namespace changed while the lab is up:\nbefore:\n%s\nafter:\n%s", rootBefore, got)
	}
	if err := l.VerifyMode(ctx, scenarios.ModeIPTables); err != nil {
		t.Fatalf("verify iptables: %v", err)
	}
	if err := l.VerifyMode(ctx, scenarios.ModeNFTables); !errors.Is(err, lab.ErrModeMismatch) {
		t.Errorf("VerifyMode(nftables) in iptables mode = %v, want ErrModeMismatch", err)
	}

	// kubectl-style access from the root namespace through the forwarder.
	cfg, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	node, err := cs.CoreV1().Nodes().Get(ctx, lab.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting the Node: %v", err)
	}
	if len(node.Status.Addresses) == 0 || node.Status.Addresses[0].Address != lab.NodeIP.String() {
		t.Errorf("node addresses = %v, want InternalIP %s", node.Status.Addresses, lab.NodeIP)
	}

	eps, err := l.Backends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 3 {
		t.Fatalf("backends = %v, want 3", eps)
	}
	// The backends keep no TIME_WAIT (a port reused through another
	// Service must not meet an old tuple); the client node keeps its
	// kernel's default.
	for ns, want := range map[string]string{"b0": "0", "b2": "0"} {
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", "kpb-"+name+"-"+ns, "sysctl", "-n", "net.ipv4.tcp_max_tw_buckets").Output()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%s: tcp_max_tw_buckets = %q (%v), want %s", ns, out, err, want)
		}
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", "kpb-"+name+"-node", "sysctl", "-n", "net.ipv4.tcp_max_tw_buckets").Output(); err != nil || strings.TrimSpace(string(out)) == "0" {
		t.Errorf("the client node's tcp_max_tw_buckets = %q (%v): the node's TCP must stay the kernel's", out, err)
	}
	clusterIP := createService(ctx, t, cs, "kpbench-it", "echo", eps)
	if !lab.ServiceCIDR.Contains(mustAddr(t, clusterIP)) {
		t.Errorf("ClusterIP %s is outside %s", clusterIP, lab.ServiceCIDR)
	}
	url := "http://" + net.JoinHostPort(clusterIP, "80") + "/"
	if code, err := getFromNode(ctx, name, url, 30*time.Second); code != http.StatusOK {
		t.Fatalf("GET %s from the client node in iptables mode: status %d, err %v", url, code, err)
	}

	// The node's view: rules for the Service, kube-proxy pinned and in the
	// node namespace.
	nodeH := l.ClientNode()
	var nat bytes.Buffer
	if err := nodeH.Run(ctx, nil, &nat, nil, "iptables-save", "-t", "nat"); err != nil {
		t.Fatalf("iptables-save on the node: %v", err)
	}
	if !strings.Contains(nat.String(), `"kpbench-it/echo:http cluster IP"`) {
		t.Errorf("no iptables rule for kpbench-it/echo in the node's nat table:\n%s", nat.String())
	}
	pid, err := nodeH.KubeProxyPID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkProcessPlacement(t, pid, "kpb-"+name+"-node", nodeH.CPUs())
	metrics, err := nodeH.KubeProxyGet(ctx, "/metrics")
	if err != nil || !bytes.Contains(metrics, []byte("kubeproxy_sync_proxy_rules_duration_seconds")) {
		t.Errorf("kube-proxy /metrics lacks the sync duration histogram (err %v)", err)
	}
	var cpus bytes.Buffer
	if err := nodeH.Run(ctx, nil, &cpus, nil, "grep", "Cpus_allowed_list", "/proc/self/status"); err != nil {
		t.Fatal(err)
	}
	if want := cpuset.Format(nodeH.CPUs()); want != "" && !strings.HasSuffix(strings.TrimSpace(cpus.String()), "\t"+want) {
		t.Errorf("a command run on the node has %q, want CPUs %s", strings.TrimSpace(cpus.String()), want)
	}

	// Switch to nftables in place.
	if err := l.SetMode(ctx, scenarios.ModeNFTables); err != nil {
		t.Fatalf("switching to nftables: %v", err)
	}
	if err := l.VerifyMode(ctx, scenarios.ModeNFTables); err != nil {
		t.Fatalf("verify nftables: %v", err)
	}
	nat.Reset()
	if err := nodeH.Run(ctx, nil, &nat, nil, "iptables-save", "-t", "nat"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(nat.String(), "KUBE-SERVICES") {
		t.Errorf("iptables rules survived the switch to nftables:\n%s", nat.String())
	}
	if code, err := getFromNode(ctx, name, url, 30*time.Second); code != http.StatusOK {
		t.Fatalf("GET %s from the client node in nftables mode: status %d, err %v", url, code, err)
	}
	newPID, err := nodeH.KubeProxyPID(ctx)
	if err != nil || newPID == pid {
		t.Errorf("kube-proxy PID after the switch = %d (%v), want a new process", newPID, err)
	}

	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Healthy || st.Mode != scenarios.ModeNFTables || st.KubeProxyVer == "" || st.IPTablesBackend == "" {
		t.Errorf("status = healthy %v mode %s kube-proxy %q iptables %q", st.Healthy, st.Mode, st.KubeProxyVer, st.IPTablesBackend)
	}

	// Down removes every namespace and process, and is safe twice.
	if err := l.Down(ctx); err != nil {
		t.Fatalf("down: %v", err)
	}
	if err := l.Down(ctx); err != nil {
		t.Fatalf("second down: %v", err)
	}
	if left, _ := netns.List("kpb-" + name + "-"); len(left) > 0 {
		t.Errorf("namespaces left after down: %v", left)
	}
	for _, c := range st.Components {
		if alive(c.PID, c.Name) {
			t.Errorf("%s (pid %d) still runs after down", c.Name, c.PID)
		}
	}
	if _, err := os.Stat(l.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory %s survived down (err %v)", l.Dir(), err)
	}
}

// alive reports whether pid runs a process other than a zombie (a recycled
// PID would need the same name to fool it, which is good enough here).
func alive(pid int, _ string) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i > 0 && len(data) > i+2 && data[i+2] != 'Z'
}

func mustAddr(t *testing.T, s string) netipAddr {
	t.Helper()
	a, err := parseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func checkProcessPlacement(t *testing.T, pid int, nsName string, cpus []int) {
	t.Helper()
	want, err := netns.InodeOf(netns.Path(nsName))
	if err != nil {
		t.Fatal(err)
	}
	got, err := netns.InodeOf(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("pid %d is not in namespace %s", pid, nsName)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) == 0 {
		return
	}
	line := "Cpus_allowed_list:\t" + cpuset.Format(cpus) + "\n"
	if !bytes.Contains(status, []byte(line)) {
		t.Errorf("pid %d is not pinned to CPUs %s:\n%s", pid, cpuset.Format(cpus), status)
	}
}

// TestLabIPVSRefused: on a kernel without IP_VS, ipvs is refused with a
// clear reason before anything is made.
func TestLabIPVSRefused(t *testing.T) {
	if _, err := os.Stat("/proc/net/ip_vs"); err == nil {
		t.Skip("this kernel has IP_VS; nothing to refuse")
	}
	cfg := lab.Config{Name: labtest.UniqueName(), StateDir: t.TempDir(), KpbenchBin: "/bin/true"}
	l, err := lab.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	caps, err := l.Capabilities(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ok, reason := caps.Runnable(scenarios.ModeIPVS)
	if ok || !strings.Contains(reason, "IP_VS") {
		t.Errorf("Runnable(ipvs) = %v, %q; want false with a reason naming IP_VS", ok, reason)
	}
	err = l.Up(context.Background(), scenarios.ModeIPVS)
	if !errors.Is(err, clusters.ErrModeUnavailable) || !strings.Contains(err.Error(), "IP_VS") {
		t.Fatalf("Up(ipvs) = %v, want ErrModeUnavailable naming IP_VS", err)
	}
	if left, _ := netns.List("kpb-" + cfg.Name + "-"); len(left) > 0 {
		t.Errorf("a refused Up made namespaces: %v", left)
	}
	if entries, _ := os.ReadDir(cfg.StateDir); len(entries) > 0 {
		t.Errorf("a refused Up wrote state: %v", entries)
	}
}
