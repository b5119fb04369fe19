package app

import (
	"errors"
	"fmt"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/clusters/nodeimage"
)

func newImageNodeCmd(g *globals) *cobra.Command {
	var (
		opts    nodeimage.Options
		load    string
		refOnly bool
	)
	cmd := &cobra.Command{
		Use:   "node [--k8s-version v1.36.3] [--load podman|docker] [--force]",
		Short: "Build a kind node image offline (no registry, no Docker)",
		Long: `node builds a kind node image from a Debian root filesystem (mmdebstrap, as
root) with systemd, containerd, runc and the CNI plugins; kind's node files
(entrypoint, containerd config, systemd units) from the kind module kpbench is
built with; kubelet, kubeadm and kubectl built from source through the Go
module proxy at --k8s-version (the lab's binaries' builder and cache); and
the images kubeadm runs (kube-apiserver, kube-controller-manager,
kube-scheduler, kube-proxy, etcd, CoreDNS, pause) as static binaries packed
with go-containerregistry, which the node imports into containerd at boot.
There is no kindnetd: clusters from this image disable kind's default CNI
and each node sets up a ptp pod network of its own.

The image is a Docker-style tarball cached under the cache directory per
version and layout; a second run prints the cached one at once. --load puts
it into podman's or docker's image store (kpbench cluster create --provider
kind does this itself). It prints the image's reference and tarball.
docs/kind-offline.md has the details.`,
		Example: `  sudo kpbench image node --load podman
  kpbench cluster create --provider kind --k8s-image offline`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if refOnly {
				ref, err := nodeimage.ExpectedRef(opts.K8sVersion)
				if err != nil {
					return &ExitError{Code: 2, Err: err}
				}
				_, err = fmt.Fprintln(g.stdout, ref)
				return err
			}
			if load != "" && load != "podman" && load != "docker" {
				return &ExitError{Code: 2, Err: fmt.Errorf("--load takes podman or docker, got %q", load)}
			}
			if load != "" {
				if _, err := exec.LookPath(load); err != nil {
					return &ExitError{Code: 2, Err: fmt.Errorf("--load %s: %w", load, err)}
				}
			}
			report, done := buildProgress(g)
			opts.Logger, opts.Progress = g.logger, report
			res, err := nodeimage.Ensure(cmd.Context(), opts)
			done()
			if err != nil {
				if errors.Is(err, build.ErrBadVersion) {
					return &ExitError{Code: 2, Err: err}
				}
				return err
			}
			for _, s := range res.Steps {
				g.logger.Info("node image step", "step", s.Name, "took", s.Took, "cached", s.Cached)
			}
			if load != "" {
				loaded, err := nodeimage.Load(cmd.Context(), load, res)
				if err != nil {
					return err
				}
				g.logger.Info("node image in "+load, "ref", res.Ref, "loaded", loaded)
			}
			_, err = fmt.Fprintf(g.stdout, "%s %s\n", res.Ref, res.Archive)
			return err
		},
	}
	cmd.Flags().StringVar(&opts.K8sVersion, "k8s-version", build.DefaultVersion, "Kubernetes version")
	cmd.Flags().StringVar(&opts.CacheDir, "cache-dir", "", "cache root (default the user cache dir + /kpbench)")
	cmd.Flags().StringVar(&opts.KindFilesDir, "kind-files", "", "kind's images/base/files directory (default: from the kind module)")
	cmd.Flags().BoolVar(&opts.Force, "force", false, "rebuild the image even if it is cached (its cached parts are reused)")
	cmd.Flags().StringVar(&load, "load", "", "load the image into podman or docker")
	cmd.Flags().BoolVar(&refOnly, "ref", false, "print the reference the image has (or would have) and build nothing")
	return cmd
}
