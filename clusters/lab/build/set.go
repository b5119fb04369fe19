package build

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Set is a set of binaries built, and cached, together: Kubernetes
// commands (main packages under k8s.io/kubernetes/cmd/) and etcd's server
// at the version Kubernetes pins. The zero Set is the lab's, LabSet.
type Set struct {
	// Name tells the set's cache directory from the lab's:
	// k8s/<version>-<name>; "" is the lab's k8s/<version>.
	Name string
	// Commands are the Kubernetes commands, e.g. kube-apiserver.
	Commands []string
	// Etcd adds etcd's server.
	Etcd bool
}

// LabSet is what the lab runs: etcd, kube-apiserver and kube-proxy.
var LabSet = Set{Commands: []string{KubeAPIServer, KubeProxy}, Etcd: true}

// NodeSet is what a kind node image holds: every control-plane component,
// the node's kubelet, and kubeadm and kubectl, which kind runs on the
// nodes.
var NodeSet = Set{
	Name:     "node",
	Commands: []string{KubeAPIServer, "kube-controller-manager", "kube-scheduler", KubeProxy, "kubelet", "kubeadm", "kubectl"},
	Etcd:     true,
}

// withDefault is s, or LabSet for the zero Set.
func (s Set) withDefault() Set {
	if s.Name == "" && len(s.Commands) == 0 && !s.Etcd {
		return LabSet
	}
	return s
}

// names are the file names of the set's binaries.
func (s Set) names() []string {
	s = s.withDefault()
	names := []string{}
	if s.Etcd {
		names = append(names, Etcd)
	}
	return append(names, s.Commands...)
}

// packages are the main packages the set's build compiles, in the build
// module's terms.
func (s Set) packages() []string {
	s = s.withDefault()
	var pkgs []string
	for _, c := range s.Commands {
		pkgs = append(pkgs, "k8s.io/kubernetes/cmd/"+c)
	}
	if s.Etcd {
		pkgs = append(pkgs, "./etcd")
	}
	return pkgs
}

// toolsGo makes go mod tidy keep the commands' dependencies.
func (s Set) toolsGo() string {
	s = s.withDefault()
	var b strings.Builder
	b.WriteString("//go:build tools\n\n// Package tools makes go mod tidy keep the Kubernetes commands' dependencies.\npackage tools\n\nimport (\n")
	for _, c := range s.Commands {
		b.WriteString("\t_ \"k8s.io/kubernetes/cmd/" + c + "\"\n")
	}
	b.WriteString(")\n")
	return b.String()
}

// dirName is the set's cache directory name under k8s/ for version.
func (s Set) dirName(version string) string {
	if s.Name == "" {
		return version
	}
	return version + "-" + s.Name
}

// SetBinaries are the built binaries of a Set.
type SetBinaries struct {
	Dir string
	// Paths maps each binary's name (kubelet, etcd, ...) to its path.
	Paths map[string]string
	// Version is the Kubernetes version, EtcdVersion etcd's.
	Version, EtcdVersion string
	// Cached is true when the binaries came from the cache.
	Cached bool
}

// EnsureSet returns the binaries of opts.Set at opts.Version, building
// them unless cached (see Ensure). The lab's cache is not touched by
// another set: each has a directory of its own, and Go's build cache
// shares what their builds have in common.
func EnsureSet(ctx context.Context, opts Options) (SetBinaries, error) {
	if opts.Set.Name == "" {
		return SetBinaries{}, fmt.Errorf("EnsureSet needs a named set (the lab's binaries: Ensure)")
	}
	dir, cached, err := ensure(ctx, opts)
	if err != nil {
		return SetBinaries{}, err
	}
	sb := SetBinaries{Dir: dir, Paths: map[string]string{}, Cached: cached}
	for _, n := range opts.Set.names() {
		sb.Paths[n] = filepath.Join(dir, n)
	}
	if data, err := os.ReadFile(filepath.Join(dir, stampFile)); err == nil {
		var stamp Binaries
		if json.Unmarshal(data, &stamp) == nil {
			sb.Version, sb.EtcdVersion = stamp.Version, stamp.EtcdVersion
		}
	}
	return sb, nil
}
