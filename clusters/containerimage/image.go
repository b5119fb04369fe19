// Package containerimage builds kpbench's container image in Go: a scratch
// image holding only the static kpbench binary at /kpbench, written as a
// Docker-style tarball that kind loads into its nodes, or pushed to a
// registry. No Docker engine, Dockerfile or base image is involved.
package containerimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BinaryPath is where the kpbench binary lives inside the image; it is also
// the image's entrypoint.
const BinaryPath = "/kpbench"

// DefaultTag is the reference the tarball carries when none is given; the
// in-cluster manifests use it with imagePullPolicy IfNotPresent, which is
// what a kind-loaded image needs.
const DefaultTag = "kpbench:dev"

// Label keys written into the image config.
const (
	LabelVersion = "org.opencontainers.image.version"
	LabelTitle   = "org.opencontainers.image.title"
	LabelSource  = "org.opencontainers.image.source"
	LabelBinary  = "io.kpbench.binary.sha256"
)

// ErrNotStatic is returned for a binary that needs a dynamic loader: a
// scratch image has no libc, so such a binary cannot start.
var ErrNotStatic = errors.New("binary is not statically linked")

// Options describe the image to build.
type Options struct {
	// Binary is the path of a static kpbench binary (CGO_ENABLED=0).
	Binary string
	// Version goes into the image's version label.
	Version string
	// Created is the image creation time; zero means the Unix epoch, which
	// keeps builds of the same binary byte-identical.
	Created time.Time
}

// Built is a built image and facts about it.
type Built struct {
	Image v1.Image
	// BinarySHA256 is the hex sha256 of the binary inside the image.
	BinarySHA256 string
	// Arch is the binary's architecture in Go/OCI spelling (amd64, arm64).
	Arch string
}

// Build makes the image from opts.Binary. It refuses a dynamically linked
// binary (ErrNotStatic) and reads the architecture from its ELF header.
func Build(opts Options) (*Built, error) {
	bin, err := os.ReadFile(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("reading binary: %w", err)
	}
	arch, err := CheckStatic(bytes.NewReader(bin))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Binary, err)
	}
	created := opts.Created
	if created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])

	layerTar, err := binaryLayer(bin, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("making layer: %w", err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Author:    "kpbench",
			Created:   v1.Time{Time: created},
			CreatedBy: "kpbench image build",
			Comment:   "static kpbench binary at " + BinaryPath,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("appending layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = arch
	cf.Created = v1.Time{Time: created}
	cf.Config.Entrypoint = []string{BinaryPath}
	cf.Config.Cmd = nil
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/"}
	version := opts.Version
	if version == "" {
		version = "dev"
	}
	cf.Config.Labels = map[string]string{
		LabelTitle:   "kpbench",
		LabelVersion: version,
		LabelSource:  "https://github.com/kpbench/kpbench",
		LabelBinary:  digest,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("writing config: %w", err)
	}
	return &Built{Image: img, BinarySHA256: digest, Arch: arch}, nil
}

// binaryLayer is a tar stream with the single file /kpbench, owned by root
// and executable, stamped with a fixed time so the layer digest depends on
// the binary only.
func binaryLayer(bin []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     BinaryPath[1:],
		Mode:     0o755,
		Size:     int64(len(bin)),
		ModTime:  mtime,
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("writing layer header: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing layer: %w", err)
	}
	return buf.Bytes(), nil
}

// CheckStatic reads an ELF binary and returns its architecture (amd64,
// arm64, ...). It wraps ErrNotStatic when the binary asks for a dynamic
// loader (a PT_INTERP program header).
func CheckStatic(r io.ReaderAt) (arch string, err error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return "", fmt.Errorf("not an ELF binary: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%w (it needs a dynamic loader; build it with CGO_ENABLED=0)", ErrNotStatic)
		}
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	case elf.EM_386:
		return "386", nil
	case elf.EM_ARM:
		return "arm", nil
	case elf.EM_PPC64:
		return "ppc64le", nil
	case elf.EM_S390:
		return "s390x", nil
	case elf.EM_RISCV:
		return "riscv64", nil
	default:
		return "", fmt.Errorf("unsupported ELF machine %s", f.Machine)
	}
}

// WriteTarball writes img as a Docker-style tarball (manifest.json with
// RepoTags) tagged tag, which `kind load image-archive`, `docker load` and
// `ctr images import` all accept.
func WriteTarball(path, tag string, img v1.Image) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("invalid tag %q: %w", tag, err)
	}
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Push uploads img to ref (e.g. registry.example.com/kpbench:v1) with the
// credentials of the default keychain (~/.docker/config.json and the
// like). Registries on loopback or private addresses are spoken to over
// plain HTTP, as go-containerregistry does.
func Push(ctx context.Context, ref string, img v1.Image) (v1.Hash, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("invalid reference %q: %w", ref, err)
	}
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", r, err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image digest: %w", err)
	}
	return d, nil
}
