package containerimage

import (
	"archive/tar"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The image's entrypoint starts in the image's own (scratch) filesystem:
// unpack the tarball's rootfs and run the entrypoint chrooted into it, as
// a container runtime would.
func TestIntegrationEntrypointRunsInScratchRootfs(t *testing.T) {
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") == "1" {
		t.Skip("KPBENCH_SKIP_INTEGRATION=1")
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	built, err := Build(Options{Binary: staticBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "image.tar")
	if err := WriteTarball(archive, "kpbench:test", built.Image); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("kpbench:test")
	img, err := tarball.ImageFromPath(archive, &tag)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var files []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, h.Name)
		dst := filepath.Join(rootfs, filepath.Clean("/"+h.Name))
		f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(f, tr); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if strings.Join(files, ",") != "kpbench" {
		t.Errorf("rootfs holds %v, want only kpbench", files)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cf.Config.Entrypoint[0])
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: rootfs}
	cmd.Dir = "/"
	cmd.Env = cf.Config.Env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("entrypoint in the scratch rootfs: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "hello from kpbench image tests") {
		t.Errorf("output %q", out)
	}
}
