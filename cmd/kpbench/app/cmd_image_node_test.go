package app

import (
	"strings"
	"testing"

	"github.com/kpbench/kpbench/clusters/nodeimage"
)

func TestImageNodeRef(t *testing.T) {
	code, out, errs := runKpbench(t, "image", "node", "--ref")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want, err := nodeimage.ExpectedRef("")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != want || !strings.HasPrefix(want, nodeimage.Repository+":v1.36.3-") {
		t.Errorf("--ref printed %q, want %q", out, want)
	}
	code, out, _ = runKpbench(t, "image", "node", "--ref", "--k8s-version", "v1.35.0")
	if code != 0 || !strings.HasPrefix(out, nodeimage.Repository+":v1.35.0-") {
		t.Errorf("--ref for v1.35.0: exit %d, %q", code, out)
	}
}

func TestImageNodeRejects(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--load", "lxc"}, "--load takes podman or docker"},
		{[]string{"--ref", "--k8s-version", "1.36"}, "bad Kubernetes version"},
		{[]string{"--k8s-version", "v2.0.0", "--cache-dir", "/nonexistent/kpbench"}, "bad Kubernetes version"},
	} {
		code, _, errs := runKpbench(t, append([]string{"image", "node"}, tt.args...)...)
		if code != 2 || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, errs, tt.want)
		}
	}
}
