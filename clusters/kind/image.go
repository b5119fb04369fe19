package kind

import (
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kpbench/kpbench/clusters/containerimage"
)

// BuildImageArchive writes the kpbench image of the running binary to
// path, tagged kpbench:dev.
func BuildImageArchive(path, version string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary: %w", err)
	}
	built, err := containerimage.Build(containerimage.Options{Binary: self, Version: version})
	if err != nil {
		return fmt.Errorf("building the kpbench image (or pass an image archive): %w", err)
	}
	return containerimage.WriteTarball(path, containerimage.DefaultTag, built.Image)
}

// ArchiveTag returns the first tag in an image tarball's manifest.
func ArchiveTag(path string) (string, error) {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return "", fmt.Errorf("reading image archive %s: %w", path, err)
	}
	for _, d := range m {
		if len(d.RepoTags) > 0 {
			return d.RepoTags[0], nil
		}
	}
	return "", fmt.Errorf("image archive %s has no tag; build it with `kpbench image build --tag NAME:TAG`", path)
}
