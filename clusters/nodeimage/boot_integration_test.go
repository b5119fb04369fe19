package nodeimage_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters/kind"
	"github.com/kpbench/kpbench/clusters/nodeimage"
)

// The offline node image boots as kind boots it: podman with kpbench's
// containers.conf, privileged, /tmp and /run on tmpfs, /var on a volume.
// systemd comes up, containerd runs with every preloaded image in its
// k8s.io namespace, the pod network's config is written, and the node's
// iptables is the backend kube-proxy's image uses. The image is built
// first unless cached (the first build compiles Kubernetes: minutes).
func TestIntegrationNodeImageBoots(t *testing.T) {
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	if os.Geteuid() != 0 {
		t.Skip("mmdebstrap and privileged podman need root")
	}
	for _, c := range []string{"podman", "mmdebstrap"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("no %s (make deps-kind installs it)", c)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	res, err := nodeimage.Ensure(ctx, nodeimage.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Steps {
		t.Logf("step %-45s %8s cached=%v", s.Name, s.Took.Round(time.Second), s.Cached)
	}
	conf := filepath.Join(t.TempDir(), "containers.conf")
	if err := os.WriteFile(conf, []byte(kind.PodmanConf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONTAINERS_CONF", conf)
	start := time.Now()
	loaded, err := nodeimage.Load(ctx, "podman", res)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("podman load: %v (loaded %v)", time.Since(start).Round(time.Second), loaded)

	name := fmt.Sprintf("kpbench-node-test-%d", os.Getpid())
	podman := func(args ...string) (string, error) {
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "podman", args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return strings.TrimSpace(out.String()), err
	}
	if out, err := podman("volume", "create", name); err != nil {
		t.Fatalf("podman volume create: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("podman", "rm", "-f", "-v", name).CombinedOutput(); err != nil {
			t.Logf("podman rm %s: %v: %s", name, err, out)
		}
		if out, err := exec.Command("podman", "volume", "rm", "-f", name).CombinedOutput(); err != nil {
			t.Logf("podman volume rm %s: %v: %s", name, err, out)
		}
	})
	start = time.Now()
	if out, err := podman("run", "--detach", "--tty", "--name", name, "--hostname", name,
		"--privileged", "--tmpfs", "/tmp", "--tmpfs", "/run",
		"--volume", name+":/var:suid,exec,dev", "--volume", "/lib/modules:/lib/modules:ro",
		"--cgroupns=private", "-e", "container=podman", res.Ref); err != nil {
		t.Fatalf("podman run: %v: %s", err, out)
	}
	exec1 := func(args ...string) (string, error) {
		return podman(append([]string{"exec", name}, args...)...)
	}
	var state string
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		state, _ = exec1("systemctl", "is-system-running")
		if state == "running" || state == "degraded" {
			break
		}
	}
	t.Logf("systemd %s after %v", state, time.Since(start).Round(time.Second))
	if state != "running" && state != "degraded" {
		logs, _ := podman("logs", name)
		t.Fatalf("systemd is %q; node log:\n%s", state, logs)
	}
	if state == "degraded" {
		failed, _ := exec1("systemctl", "--failed", "--no-legend")
		t.Logf("failed units:\n%s", failed)
	}
	for _, unit := range []string{"containerd.service", nodeimage.ImportUnit, nodeimage.CNIUnit} {
		if out, err := exec1("systemctl", "is-active", unit); err != nil || out != "active" {
			status, _ := exec1("systemctl", "status", "--no-pager", unit)
			t.Errorf("%s is %q:\n%s", unit, out, status)
		}
	}
	if out, _ := exec1("cat", "/kind/version"); out != res.K8sVersion {
		t.Errorf("/kind/version = %q", out)
	}
	images, err := exec1("ctr", "--namespace=k8s.io", "images", "list", "--quiet")
	if err != nil {
		t.Fatalf("ctr images list: %v: %s", err, images)
	}
	for _, img := range res.Images {
		if !strings.Contains("\n"+images+"\n", "\n"+img+"\n") {
			t.Errorf("containerd lacks %s; it has:\n%s", img, images)
		}
	}
	if out, err := exec1("cat", "/etc/cni/net.d/10-kpbench.conflist"); err != nil || !strings.Contains(out, `"subnet": "10.244.`) {
		t.Errorf("pod network config: %v %s", err, out)
	}
	if out, _ := exec1("iptables", "--version"); !strings.Contains(out, "("+nodeimage.IPTablesBackend+")") {
		t.Errorf("the node's iptables is %q, kube-proxy's image uses %s", out, nodeimage.IPTablesBackend)
	}
	for _, v := range [][]string{{"kubelet", "--version"}, {"kubeadm", "version", "-o", "short"}, {"kubectl", "version", "--client"}} {
		if out, err := exec1(v...); err != nil || !strings.Contains(out, res.K8sVersion) {
			t.Errorf("%s: %v %q", strings.Join(v, " "), err, out)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
