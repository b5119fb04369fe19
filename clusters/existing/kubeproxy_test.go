package existing

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kpbench/kpbench/scenarios"
)

func strptr(s string) *string { return &s }

func TestPatchProxyConfig(t *testing.T) {
	kubeadm, err := os.ReadFile("testdata/kubeadm-config.conf")
	if err != nil {
		t.Fatal(err)
	}
	minimal, err := os.ReadFile("testdata/minimal-config.conf")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		conf      []byte
		mode      string
		scheduler *string
		wantMode  string
		wantSched string
		wantErr   string
	}{
		{name: "kubeadm empty mode to nftables", conf: kubeadm, mode: "nftables", wantMode: "nftables"},
		{name: "kubeadm to ipvs with scheduler", conf: kubeadm, mode: "ipvs", scheduler: strptr("lc"), wantMode: "ipvs", wantSched: "lc"},
		{name: "back to unset mode", conf: kubeadm, mode: "", scheduler: strptr(""), wantMode: "", wantSched: ""},
		{name: "minimal without mode or ipvs keys", conf: minimal, mode: "ipvs", scheduler: strptr("rr"), wantMode: "ipvs", wantSched: "rr"},
		{name: "not a mapping", conf: []byte("- a\n- b\n"), mode: "ipvs", wantErr: "not a YAML mapping"},
		{name: "broken YAML", conf: []byte("mode: [\n"), mode: "ipvs", wantErr: "parsing kube-proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := PatchProxyConfig(tt.conf, tt.mode, tt.scheduler)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mode, sched, err := ParseProxyConfig(out)
			if err != nil {
				t.Fatalf("patched config does not parse: %v\n%s", err, out)
			}
			if mode != tt.wantMode || sched != tt.wantSched {
				t.Errorf("mode=%q scheduler=%q, want %q %q", mode, sched, tt.wantMode, tt.wantSched)
			}
			// Everything else survives, comments included.
			for _, line := range strings.Split(string(tt.conf), "\n") {
				key := strings.TrimSpace(line)
				if key == "" || strings.HasPrefix(key, "mode:") || strings.HasPrefix(key, "scheduler:") {
					continue
				}
				if !strings.Contains(string(out), line) {
					t.Errorf("line %q lost by the patch", line)
				}
			}
		})
	}
}

func TestParseProxyConfigRejectsOtherKinds(t *testing.T) {
	_, _, err := ParseProxyConfig([]byte("kind: KubeletConfiguration\nmode: x\n"))
	if err == nil || !strings.Contains(err.Error(), "want a KubeProxyConfiguration") {
		t.Fatalf("err = %v", err)
	}
}

func TestReadKubeProxy(t *testing.T) {
	ctx := context.Background()
	nft := kubeProxyObjects(t, "testdata/kubeadm-config.conf")
	{
		f := newFakeCluster(t, nft...)
		if _, err := WriteMode(ctx, f.cs, "nftables", nil); err != nil {
			t.Fatal(err)
		}
		nft = []runtime.Object{mustGetDS(t, f), mustGetCM(t, f)}
	}
	tests := []struct {
		name        string
		objs        []runtime.Object
		wantPresent bool
		wantMode    scenarios.Mode
		wantMissing bool
		wantVersion string
	}{
		{name: "replaced (no DaemonSet)", objs: nil, wantMode: scenarios.ModeExternal},
		{name: "kubeadm default mode is iptables", objs: kubeProxyObjects(t, "testdata/kubeadm-config.conf"), wantPresent: true, wantMode: scenarios.ModeIPTables, wantVersion: "v1.33.1"},
		{name: "nftables", objs: nft, wantPresent: true, wantMode: scenarios.ModeNFTables, wantVersion: "v1.33.1"},
		{name: "DaemonSet without ConfigMap", objs: kubeProxyObjects(t, "testdata/kubeadm-config.conf")[:1], wantPresent: true, wantMissing: true, wantVersion: "v1.33.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCluster(t, tt.objs...)
			st, err := ReadKubeProxy(ctx, f.cs)
			if err != nil {
				t.Fatal(err)
			}
			if st.Present != tt.wantPresent || st.Mode != tt.wantMode || st.ConfigMapMissing != tt.wantMissing {
				t.Errorf("got %+v", st)
			}
			if got := ImageVersion(st.Image); got != tt.wantVersion {
				t.Errorf("version %q, want %q", got, tt.wantVersion)
			}
		})
	}
}

func mustGetDS(t *testing.T, f *fakeCluster) runtime.Object {
	obj, err := f.cs.Tracker().Get(dsGVR, KubeProxyNamespace, KubeProxyName)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func mustGetCM(t *testing.T, f *fakeCluster) runtime.Object {
	cm, err := f.cs.CoreV1().ConfigMaps(KubeProxyNamespace).Get(context.Background(), KubeProxyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

func TestImageVersion(t *testing.T) {
	tests := map[string]string{
		"registry.k8s.io/kube-proxy:v1.33.1":               "v1.33.1",
		"registry.k8s.io/kube-proxy:v1.33.1@sha256:abcdef": "v1.33.1",
		"localhost:5000/kube-proxy":                        "",
		"kube-proxy":                                       "",
		"gke.gcr.io/kube-proxy-amd64:v1.30.5-gke.1014001":  "v1.30.5-gke.1014001",
	}
	for in, want := range tests {
		if got := ImageVersion(in); got != want {
			t.Errorf("ImageVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRolloutStatus(t *testing.T) {
	tests := []struct {
		name     string
		gen      int64
		status   appsv1.DaemonSetStatus
		wantDone bool
		wantWhy  string
	}{
		{name: "controller has not seen the restart", gen: 3, status: appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberAvailable: 3}, wantWhy: "controller"},
		{name: "pods updating", gen: 3, status: appsv1.DaemonSetStatus{ObservedGeneration: 3, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 1, NumberAvailable: 3}, wantWhy: "1 of 3 pods updated"},
		{name: "updated but not available", gen: 3, status: appsv1.DaemonSetStatus{ObservedGeneration: 3, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberAvailable: 2}, wantWhy: "2 of 3 updated pods available"},
		{name: "done", gen: 3, status: appsv1.DaemonSetStatus{ObservedGeneration: 3, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberAvailable: 3}, wantDone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := &appsv1.DaemonSet{Status: tt.status}
			ds.Generation = tt.gen
			done, why := RolloutStatus(ds, tt.gen)
			if done != tt.wantDone || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("done=%v why=%q, want %v %q", done, why, tt.wantDone, tt.wantWhy)
			}
		})
	}
}

func TestRestartKubeProxyOnDelete(t *testing.T) {
	objs := kubeProxyObjects(t, "testdata/kubeadm-config.conf")
	objs[0].(*appsv1.DaemonSet).Spec.UpdateStrategy.Type = appsv1.OnDeleteDaemonSetStrategyType
	f := newFakeCluster(t, objs...)
	_, err := RestartKubeProxy(context.Background(), f.cs, time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC))
	if err == nil || !strings.Contains(err.Error(), "OnDelete") {
		t.Fatalf("err = %v, want OnDelete explained", err)
	}
}

func TestWaitKubeProxyRolloutTimesOutWithReason(t *testing.T) {
	f := newFakeCluster(t, kubeProxyObjects(t, "testdata/kubeadm-config.conf")...)
	f.staleReads = 1 << 30
	f.dsGeneration = 5
	err := WaitKubeProxyRollout(context.Background(), f.cs, 5, 1e6, 2e7)
	if err == nil || !strings.Contains(err.Error(), "waiting for the DaemonSet controller") {
		t.Fatalf("err = %v", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal("unexpected cancel")
	}
}
