package kind_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kpbench/kpbench/clusters/containerimage"
	"github.com/kpbench/kpbench/clusters/manifests"
	"github.com/kpbench/kpbench/scenarios"
)

// The existing provider against a kind cluster kpbench did not make for
// the run (as a user's own cluster): `kpbench run --provider existing
// --kubeconfig … --yes` with the kpbench image already on the nodes runs
// the two-mode scenario through the in-cluster path, switching kube-proxy
// through its ConfigMap to nftables and restoring it to iptables at the
// end, and deletes its namespace. Every point is valid or invalid with a
// reason.
func TestIntegrationExistingOnKindOffline(t *testing.T) {
	needKind(t)
	archive, bin := kpbenchImage(t)
	dir := t.TempDir()
	scenario := filepath.Join(dir, "tiny.yaml")
	if err := os.WriteFile(scenario, []byte(tinyScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	before := leftovers(t)
	p, down := offlineCluster(t, "kpb-ex-it", archive, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err := p.Create(ctx, scenarios.ModeIPTables); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", p.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	waitReady(ctx, t, cs)
	if m := proxyMode(ctx, t, cs); m != "iptables" {
		t.Fatalf("kube-proxy's ConfigMap says mode %q before the run, want iptables", m)
	}

	run := runTiny(ctx, t, "kpbench run --provider existing on a kind cluster", bin, filepath.Join(dir, "results"),
		"--provider", "existing", "--kubeconfig", p.KubeconfigPath(), "--yes",
		"--image", containerimage.DefaultTag, "--pull-policy", "Never", "-f", scenario)
	checkPoints(t, run)

	// The mode the run found is back, and kpbench's namespace is gone.
	if m := proxyMode(ctx, t, cs); m != "iptables" {
		t.Errorf("kube-proxy's ConfigMap says mode %q after the run, want iptables restored", m)
	}
	if err := waitGone(ctx, cs, manifests.Namespace); err != nil {
		t.Errorf("namespace %s: %v", manifests.Namespace, err)
	}

	if err := down(ctx); err != nil {
		t.Fatalf("cluster delete: %v", err)
	}
	after := leftovers(t)
	for what, b := range before {
		if !slices.Equal(b, after[what]) {
			t.Errorf("%s before the create: %q; after the delete: %q", what, b, after[what])
		}
	}
}

// proxyMode reads the mode from kube-proxy's ConfigMap (kube-system/
// kube-proxy, config.conf).
func proxyMode(ctx context.Context, t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("kube-proxy's ConfigMap: %v", err)
	}
	for _, line := range strings.Split(cm.Data["config.conf"], "\n") {
		if v, ok := strings.CutPrefix(line, "mode:"); ok {
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	return ""
}

// waitGone waits up to 2 minutes for a namespace to be deleted.
func waitGone(ctx context.Context, cs kubernetes.Interface, ns string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				return context.DeadlineExceeded
			}
			return err
		}
		time.Sleep(2 * time.Second)
	}
}
