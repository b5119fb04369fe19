package app

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/clusters/containerimage"
)

func newImageCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build the kpbench container image, or a kind node image",
		Long: `image builds kpbench's container image in Go, without Docker: a scratch image
whose only file is the static kpbench binary at /kpbench (its entrypoint).
In-cluster providers (kind, existing) run the backends, the CPU agent and the
load clients from it. 'image node' builds a kind node image offline.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newImageBuildCmd(g), newImageNodeCmd(g))
	return cmd
}

func newImageBuildCmd(g *globals) *cobra.Command {
	var (
		out, binary, tag, push string
	)
	cmd := &cobra.Command{
		Use:   "build [--out kpbench.tar] [--binary PATH] [--tag kpbench:dev] [--push REF]",
		Short: "Build the image as a Docker-style tarball and/or push it to a registry",
		Long: `build puts a static kpbench binary (default: this one) into a scratch image.

--out writes a Docker-style tarball tagged --tag, which 'kind load
image-archive', 'kpbench cluster create --image-archive', 'docker load' and
'ctr images import' accept. --push REF uploads the image to a registry with
the credentials of ~/.docker/config.json (registries on loopback or private
addresses are spoken to over plain HTTP). The binary must be statically
linked: build it with 'make build' (CGO_ENABLED=0).`,
		Example: `  make build && bin/kpbench image build --out kpbench.tar
  kpbench image build --binary bin/kpbench --push registry.example.com/kpbench:v0.1.0`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" && push == "" {
				return &ExitError{Code: 2, Err: errors.New("nothing to do: give --out FILE and/or --push REF")}
			}
			if binary == "" {
				self, err := os.Executable()
				if err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("finding this binary (give --binary): %w", err)}
				}
				binary = self
			}
			built, err := containerimage.Build(containerimage.Options{Binary: binary, Version: Version})
			if err != nil {
				if errors.Is(err, containerimage.ErrNotStatic) {
					return &ExitError{Code: 2, Err: err}
				}
				return err
			}
			digest, err := built.Image.Digest()
			if err != nil {
				return fmt.Errorf("image digest: %w", err)
			}
			if out != "" {
				if err := containerimage.WriteTarball(out, tag, built.Image); err != nil {
					return err
				}
				g.logger.Info("wrote image tarball", "file", out, "tag", tag, "digest", digest.String(), "arch", built.Arch, "binarySHA256", built.BinarySHA256)
				fmt.Fprintf(g.stdout, "%s %s %s\n", out, tag, digest)
			}
			if push != "" {
				pushed, err := containerimage.Push(cmd.Context(), push, built.Image)
				if err != nil {
					return err
				}
				g.logger.Info("pushed image", "ref", push, "digest", pushed.String())
				fmt.Fprintf(g.stdout, "%s@%s\n", push, pushed)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "write a Docker-style image tarball to this file")
	cmd.Flags().StringVar(&binary, "binary", "", "static kpbench binary to put in the image (default: the running one)")
	cmd.Flags().StringVar(&tag, "tag", containerimage.DefaultTag, "name:tag recorded in the tarball")
	cmd.Flags().StringVar(&push, "push", "", "push the image to this registry reference")
	return cmd
}
