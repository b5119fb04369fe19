package containerimage

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if builtPath != "" {
		os.RemoveAll(filepath.Dir(builtPath))
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	builtPath string
	buildErr  error
)

// staticBinary compiles testdata/hello with CGO_ENABLED=0 once per test
// binary, the way `make build` compiles kpbench.
func staticBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kpbench-image-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtPath = filepath.Join(dir, "hello")
		cmd := exec.Command("go", "build", "-trimpath", "-o", builtPath, "./testdata/hello")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("building static test binary: %v", buildErr)
	}
	return builtPath
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// imageFile returns the content of path inside img's layers.
func imageFile(t *testing.T, img v1.Image, path string) (content []byte, hdr *tar.Header) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if "/"+strings.TrimPrefix(h.Name, "./") == path {
				b, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				rc.Close()
				return b, h
			}
		}
		rc.Close()
	}
	t.Fatalf("%s not found in image", path)
	return nil, nil
}

func TestBuildTarballRoundTrip(t *testing.T) {
	bin := staticBinary(t)
	built, err := Build(Options{Binary: bin, Version: "v1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "kpbench.tar")
	if err := WriteTarball(out, "kpbench:test", built.Image); err != nil {
		t.Fatal(err)
	}

	tag, _ := name.NewTag("kpbench:test")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("reading the tarball back: %v", err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Errorf("layers = %d, want 1", len(layers))
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != "/kpbench" {
		t.Errorf("entrypoint = %q, want [/kpbench]", got)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform = %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	if got := cf.Config.Labels[LabelVersion]; got != "v1.2.3" {
		t.Errorf("version label = %q", got)
	}
	want := fileSHA256(t, bin)
	if got := cf.Config.Labels[LabelBinary]; got != want {
		t.Errorf("binary label = %q, want %q", got, want)
	}
	if built.BinarySHA256 != want {
		t.Errorf("Built.BinarySHA256 = %q, want %q", built.BinarySHA256, want)
	}

	content, hdr := imageFile(t, img, "/kpbench")
	sum := sha256.Sum256(content)
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Errorf("binary in image sha256 = %s, want %s (the one built)", got, want)
	}
	if hdr.Mode&0o111 == 0 || hdr.Uid != 0 || hdr.Gid != 0 {
		t.Errorf("binary header mode=%o uid=%d gid=%d, want executable root-owned", hdr.Mode, hdr.Uid, hdr.Gid)
	}

	// The tarball's manifest carries the tag kind and containerd import by.
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(out) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || len(m[0].RepoTags) != 1 || !strings.HasSuffix(m[0].RepoTags[0], "kpbench:test") {
		t.Errorf("manifest RepoTags = %+v, want kpbench:test", m)
	}
}

func TestBuildIsReproducible(t *testing.T) {
	bin := staticBinary(t)
	a, err := Build(Options{Binary: bin, Version: "x"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(Options{Binary: bin, Version: "x"})
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Image.Digest()
	db, _ := b.Image.Digest()
	if da != db {
		t.Errorf("two builds of one binary differ: %s vs %s", da, db)
	}
}

func TestBuildRejects(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dynamic, err := exec.LookPath("ls")
	if err != nil {
		t.Skip("no ls binary to use as a dynamic ELF")
	}
	tests := []struct {
		name     string
		binary   string
		wantErr  string
		sentinel error
	}{
		{name: "missing file", binary: filepath.Join(dir, "nope"), wantErr: "reading binary"},
		{name: "not ELF", binary: notELF, wantErr: "not an ELF binary"},
		{name: "dynamic", binary: dynamic, wantErr: "CGO_ENABLED=0", sentinel: ErrNotStatic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "dynamic" {
				f, err := os.Open(tt.binary)
				if err != nil {
					t.Skip(err)
				}
				_, serr := CheckStatic(f)
				f.Close()
				if serr == nil {
					t.Skipf("%s is static on this machine", tt.binary)
				}
			}
			_, err := Build(Options{Binary: tt.binary})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.sentinel)
			}
		})
	}
}

func TestWriteTarballBadTag(t *testing.T) {
	bin := staticBinary(t)
	built, err := Build(Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteTarball(filepath.Join(t.TempDir(), "x.tar"), "UPPER:case!", built.Image); err == nil {
		t.Fatal("want an error for an invalid tag")
	}
}

func TestPushToInProcessRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	bin := staticBinary(t)
	built, err := Build(Options{Binary: bin, Version: "v0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/kpbench/kpbench:v0.0.1"
	digest, err := Push(context.Background(), ref, built.Image)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := built.Image.Digest()
	if digest != want {
		t.Errorf("pushed digest %s, want %s", digest, want)
	}

	r, _ := name.ParseReference(ref)
	pulled, err := remote.Image(r)
	if err != nil {
		t.Fatalf("pulling back: %v", err)
	}
	got, _ := pulled.Digest()
	if got != want {
		t.Errorf("pulled digest %s, want %s", got, want)
	}
	content, _ := imageFile(t, pulled, "/kpbench")
	sum := sha256.Sum256(content)
	if hex.EncodeToString(sum[:]) != built.BinarySHA256 {
		t.Error("binary pulled from the registry differs from the one built")
	}
}

func TestPushBadReference(t *testing.T) {
	bin := staticBinary(t)
	built, err := Build(Options{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Push(context.Background(), "not a ref", built.Image); err == nil {
		t.Fatal("want an error for an invalid reference")
	}
}
