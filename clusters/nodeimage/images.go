package nodeimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kpbench/kpbench/clusters/containerimage"
)

// epoch stamps every file and image kpbench builds, so that the same
// inputs give the same digests.
var epoch = time.Unix(0, 0).UTC()

// The components kubeadm runs from images, by the last element of their
// repository.
const (
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
	KubeProxy         = "kube-proxy"
	Etcd              = "etcd"
	CoreDNS           = "coredns"
	Pause             = "pause"
)

// Components are the images a kubeadm cluster needs, in the order
// `kubeadm config images list` prints them.
var Components = []string{APIServer, ControllerManager, Scheduler, KubeProxy, CoreDNS, Pause, Etcd}

// ImagePlan maps each component to the reference kubeadm expects it at.
type ImagePlan map[string]name.Tag

// Tag is the component's image tag (the version kubeadm asks for).
func (p ImagePlan) Tag(component string) string { return p[component].TagStr() }

// ParseImageList reads `kubeadm config images list`: one reference per
// line, each component exactly once. It names every problem at once.
func ParseImageList(out []byte) (ImagePlan, error) {
	plan := ImagePlan{}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		tag, err := name.NewTag(line, name.StrictValidation)
		if err != nil {
			errs = append(errs, fmt.Errorf("%q: %w", line, err))
			continue
		}
		repo := tag.RepositoryStr()
		comp := repo[strings.LastIndex(repo, "/")+1:]
		_, dup := plan[comp]
		switch {
		case !slices.Contains(Components, comp):
			errs = append(errs, fmt.Errorf("%s: not an image kpbench can build", line))
		case dup:
			errs = append(errs, fmt.Errorf("%s: %s is listed twice", line, comp))
		default:
			plan[comp] = tag
		}
	}
	for _, c := range Components {
		if _, ok := plan[c]; !ok {
			errs = append(errs, fmt.Errorf("no %s image listed", c))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("kubeadm's image list: %w", err)
	}
	return plan, nil
}

// BinDir is where the images keep their binaries (the release images'
// place: kubeadm's manifests run "kube-apiserver", "etcd", ... from PATH,
// and kube-proxy's DaemonSet runs /usr/local/bin/kube-proxy).
const BinDir = "/usr/local/bin"

// imagePATH is every image's PATH.
const imagePATH = "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"

// ImageSpec is one image of static binaries.
type ImageSpec struct {
	Ref name.Tag
	// Files are the image's files, binaries by Source.
	Files []Entry
	// Base is an extra tar layer under Files (kube-proxy's tools), or nil.
	Base []byte
	// Entrypoint is the image's entrypoint.
	Entrypoint []string
	// Binary is the main binary (checked to be static: the images have no
	// libc unless Base brings one).
	Binary string
	// Version is the component's version label.
	Version string
}

// ComponentSpecs are the image specs of the plan's components from the
// binaries at hand (component → path; coredns's and pause's included);
// kubeProxyBase is kube-proxy's tools layer (KubeProxyBase).
func ComponentSpecs(plan ImagePlan, bins map[string]string, kubeProxyBase []byte) ([]ImageSpec, error) {
	var specs []ImageSpec
	var missing []string
	for _, c := range Components {
		bin := bins[c]
		if bin == "" {
			missing = append(missing, c)
			continue
		}
		s := ImageSpec{Ref: plan[c], Binary: bin, Version: plan.Tag(c)}
		switch c {
		case CoreDNS:
			// kubeadm's CoreDNS Deployment passes only arguments
			// (-conf /etc/coredns/Corefile): the entrypoint is /coredns.
			s.Files = []Entry{{Path: "/coredns", Type: tar.TypeReg, Mode: 0o755, Source: bin}}
			s.Entrypoint = []string{"/coredns"}
		case Pause:
			s.Files = []Entry{{Path: "/pause", Type: tar.TypeReg, Mode: 0o755, Source: bin}}
			s.Entrypoint = []string{"/pause"}
		default:
			p := BinDir + "/" + c
			s.Files = []Entry{{Path: p, Type: tar.TypeReg, Mode: 0o755, Source: bin}}
			s.Entrypoint = []string{p}
		}
		if c == KubeProxy {
			if len(kubeProxyBase) == 0 {
				return nil, errors.New("kube-proxy's image needs its tools layer (iptables, nft, ipset)")
			}
			s.Base = kubeProxyBase
			// kube-proxy needs a lock file's directory and a /tmp.
			s.Files = append(s.Files, dir("/run"), Entry{Path: "/tmp", Type: tar.TypeDir, Mode: 0o1777})
		}
		specs = append(specs, s)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no binary for the %s image(s)", strings.Join(missing, ", "))
	}
	return specs, nil
}

// BuildImage makes spec's image: its layers, the entrypoint, PATH, and
// labels naming the component's version and kpbench.
func BuildImage(spec ImageSpec) (v1.Image, error) {
	f, err := os.Open(spec.Binary)
	if err != nil {
		return nil, err
	}
	arch, err := containerimage.CheckStatic(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s (for %s): %w", spec.Binary, spec.Ref, err)
	}
	var adds []mutate.Addendum
	if len(spec.Base) > 0 {
		l, err := layerFromBytes(spec.Base)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "kpbench image node", Comment: "Debian tools"}})
	}
	var buf bytes.Buffer
	if err := WriteLayer(&buf, spec.Files, epoch); err != nil {
		return nil, err
	}
	l, err := layerFromBytes(buf.Bytes())
	if err != nil {
		return nil, err
	}
	adds = append(adds, mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "kpbench image node", Comment: "static binaries"}})
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		return nil, err
	}
	return withConfig(img, arch, spec.Entrypoint, []string{imagePATH}, map[string]string{
		containerimage.LabelTitle:   spec.Ref.RepositoryStr(),
		containerimage.LabelVersion: spec.Version,
		LabelBuiltBy:                "kpbench image node",
	}, "")
}

// LabelBuiltBy marks the images kpbench builds for a node.
const LabelBuiltBy = "io.kpbench.built-by"

func layerFromBytes(b []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

func withConfig(img v1.Image, arch string, entrypoint, env []string, labels map[string]string, stopSignal string) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = entrypoint
	cf.Config.Cmd = nil
	cf.Config.Env = env
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = labels
	cf.Config.StopSignal = stopSignal
	return mutate.ConfigFile(img, cf)
}

// KubeProxyPackages are the Debian packages whose tools kube-proxy runs:
// iptables (both backends), nft for the nftables mode, ipset for ipvs,
// and conntrack.
var KubeProxyPackages = []string{"iptables", "nftables", "ipset", "conntrack"}

// IPTablesBackend is the iptables backend of kube-proxy's image. kind's
// entrypoint sets the node's own iptables to the backend with more rules,
// legacy on a tie, and a node's fresh network namespace has none: the
// node's tools (and kpbench's agent, which reads the node's rules with
// them) use legacy, and so must kube-proxy, or it would program tables the
// node's iptables-save does not show.
const IPTablesBackend = "legacy"

// iptablesCommands are the names the Debian iptables package manages with
// update-alternatives.
var iptablesCommands = []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"}

// KubeProxyBase is kube-proxy's tools layer: the files of
// KubeProxyPackages and their dependencies from the node's root
// filesystem, and the iptables commands pointed at IPTablesBackend.
func KubeProxyBase(r *Rootfs) ([]byte, []string, error) {
	pkgs, err := Closure(ParseStatus(r.Files[dpkgStatus]), KubeProxyPackages)
	if err != nil {
		return nil, nil, fmt.Errorf("kube-proxy's tools: %w", err)
	}
	files, err := r.PackageFiles(pkgs)
	if err != nil {
		return nil, nil, fmt.Errorf("kube-proxy's tools: %w", err)
	}
	// The loader's cache and the name service switch are written by
	// maintainer scripts, not listed by any package.
	for _, extra := range []string{"/etc/ld.so.cache", "/etc/nsswitch.conf"} {
		if _, ok := r.Headers[extra]; ok && !slices.Contains(files, extra) {
			files = append(files, extra)
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := r.CopyFiles(tw, files); err != nil {
		return nil, nil, fmt.Errorf("kube-proxy's tools: %w", err)
	}
	sbin, _ := r.resolve("/usr/sbin")
	for _, c := range iptablesCommands {
		base, rest, _ := strings.Cut(c, "-")
		target := base + "-" + IPTablesBackend
		if rest != "" {
			target += "-" + rest
		}
		if _, ok := r.Headers[sbin+"/"+target]; !ok {
			return nil, nil, fmt.Errorf("kube-proxy's tools: the root filesystem has no %s/%s", sbin, target)
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(sbin, "/") + "/" + c, Linkname: target, Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), pkgs, nil
}

// WriteImages writes each image as a Docker-style archive named after its
// component into dir and returns file name → path.
func WriteImages(dir string, specs []ImageSpec) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range specs {
		img, err := BuildImage(s)
		if err != nil {
			return nil, fmt.Errorf("building %s: %w", s.Ref, err)
		}
		repo := s.Ref.RepositoryStr()
		fname := repo[strings.LastIndex(repo, "/")+1:] + ".tar"
		p := dir + "/" + fname
		if err := tarball.WriteToFile(p, s.Ref, img); err != nil {
			return nil, fmt.Errorf("writing %s: %w", s.Ref, err)
		}
		out[fname] = p
	}
	return out, nil
}
