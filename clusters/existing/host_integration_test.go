package existing

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// HostCommand really runs a command inside a chroot, as the agent does
// with the node's root filesystem.
func TestIntegrationHostCommandChroot(t *testing.T) {
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "usr", "sbin", "hello")
	build := exec.Command("go", "build", "-o", bin, "../containerimage/testdata/hello")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building a static test binary: %v\n%s", err, out)
	}
	cmd, err := HostCommand(context.Background(), root, []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running in the chroot: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "hello from kpbench image tests") {
		t.Errorf("output %q", out)
	}
}
