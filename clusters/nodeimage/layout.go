package nodeimage

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Entry is one file, directory or symlink of a layer kpbench writes.
type Entry struct {
	// Path is the absolute path in the image.
	Path string
	// Type is tar.TypeReg, tar.TypeDir or tar.TypeSymlink.
	Type byte
	// Mode holds the permission bits.
	Mode int64
	// Data is a regular file's content, unless Source names a file on
	// this machine to copy (large binaries and image archives).
	Data   []byte
	Source string
	// Target is a symlink's target.
	Target string
}

func file(p string, mode int64, data string) Entry {
	return Entry{Path: p, Type: tar.TypeReg, Mode: mode, Data: []byte(data)}
}

func symlink(p, target string) Entry {
	return Entry{Path: p, Type: tar.TypeSymlink, Mode: 0o777, Target: target}
}

func dir(p string) Entry { return Entry{Path: p, Type: tar.TypeDir, Mode: 0o755} }

// kindFilesSkipped are the files of kind's images/base/files the node
// image leaves out: the Dockerfile's package helper, the license texts of
// binaries kind builds and kpbench does not ship, and the rootless
// snapshotter's unit, whose binary is not in the image.
var kindFilesSkipped = []string{
	"usr/local/bin/clean-install",
	"LICENSES",
	"etc/systemd/system/containerd-fuse-overlayfs.service",
}

// kindFilesRequired must be among kind's files: the node cannot boot the
// way kind expects without them.
var kindFilesRequired = []string{
	"usr/local/bin/entrypoint",
	"etc/containerd/config.toml",
	"etc/systemd/system/containerd.service",
	"etc/systemd/system/kubelet.service",
	"etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
	"etc/systemd/system/undo-mount-hacks.service",
	"kind/bin/undo-mount-hacks.sh",
	"kind/bin/mount-product-files.sh",
}

// KindFiles reads kind's node files (images/base/files of the kind module)
// as the base image's Dockerfile copies them: scripts under
// usr/local/bin and kind/bin executable (0755), everything else 0644.
func KindFiles(root string) ([]Entry, error) {
	var entries []Entry
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		for _, skip := range kindFilesSkipped {
			if rel == skip {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if d.IsDir() {
			entries = append(entries, dir("/"+rel))
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if strings.HasPrefix(rel, "usr/local/bin/") || strings.HasPrefix(rel, "kind/bin/") {
			mode = 0o755
		}
		entries = append(entries, Entry{Path: "/" + rel, Type: tar.TypeReg, Mode: mode, Data: data})
		seen[rel] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading kind's node files in %s: %w", root, err)
	}
	var missing []string
	for _, r := range kindFilesRequired {
		if !seen[r] {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("kind's node files in %s lack %s", root, strings.Join(missing, ", "))
	}
	return entries, nil
}

var (
	sandboxRE = regexp.MustCompile(`(?m)^(\s*sandbox_image\s*=\s*)"[^"]*"`)
	oomRE     = regexp.MustCompile(`(?m)^(\s*restrict_oom_score_adj\s*=\s*)(true|false)\b`)
)

// ContainerdConfig changes two settings of kind's containerd config:
//   - sandbox_image names the pause image the node holds (kubeadm's,
//     which kind's build would pull instead);
//   - restrict_oom_score_adj is true: containerd then never gives a
//     container an oom_score_adj below its own. The kubelet asks for
//     -998 for every pod sandbox and -997 for critical pods, and lowering
//     oom_score_adj needs CAP_SYS_RESOURCE, which a node container on a
//     machine whose bounding set lacks it does not have: runc's init fails
//     ("can't get final child's PID from pipe: EOF") and no pod starts.
//     Where containerd runs at kind's -999 the clamp changes nothing.
func ContainerdConfig(kindConfig []byte, pause string) ([]byte, error) {
	var errs []error
	if !sandboxRE.Match(kindConfig) {
		errs = append(errs, errors.New(`kind's containerd config has no sandbox_image = "..." line to point at the node's pause image`))
	}
	if !oomRE.Match(kindConfig) {
		errs = append(errs, errors.New(`kind's containerd config has no restrict_oom_score_adj = true|false line to turn on`))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := sandboxRE.ReplaceAll(kindConfig, []byte(`${1}"`+pause+`"`))
	return oomRE.ReplaceAll(out, []byte(`${1}true`)), nil
}

// MountProductFilesHook is the OCI hook kind adds to every container's spec:
// it bind-mounts the node's fake product_uuid and product_name.
const MountProductFilesHook = "/kind/bin/mount-product-files.sh"

// CRIBaseSpec turns the default OCI spec (`ctr oci spec`) into kind's
// /etc/containerd/cri-base.json: kind's createContainer hook added, and
// no process rlimits (a container then inherits containerd's, and raising
// RLIMIT_NOFILE would need CAP_SYS_RESOURCE, which a node container may
// lack).
func CRIBaseSpec(spec []byte) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(spec, &m); err != nil {
		return nil, fmt.Errorf("the default OCI spec is not JSON: %w", err)
	}
	if proc, ok := m["process"].(map[string]any); ok {
		delete(proc, "rlimits")
	} else {
		return nil, errors.New("the default OCI spec has no process")
	}
	hooks, _ := m["hooks"].(map[string]any)
	if hooks == nil {
		hooks = map[string]any{}
	}
	cc, _ := hooks["createContainer"].([]any)
	hooks["createContainer"] = append(cc, map[string]any{"path": MountProductFilesHook})
	m["hooks"] = hooks
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Units kpbench adds to kind's: the image import and the pod network.
const (
	ImportUnit = "kpbench-images.service"
	CNIUnit    = "kpbench-cni.service"
	// ImagesDir holds the image archives the node imports at boot.
	ImagesDir = "/kind/images"
)

const importUnit = `[Unit]
Description=Import the images kpbench preloads (/kind/images) into containerd
After=containerd.service
Requires=containerd.service
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/kind/bin/kpbench-import-images.sh

[Install]
WantedBy=multi-user.target
`

// importScript waits for containerd, then imports every archive under
// /kind/images into the namespace the kubelet uses (k8s.io). kubeadm and
// kubelet then find every image they would pull, by the same name.
// KPBENCH_IMAGES_DIR overrides the directory (tests).
const importScript = `#!/bin/sh
# kpbench: import the node's preloaded images into containerd (k8s.io).
set -eu
dir=${KPBENCH_IMAGES_DIR:-/kind/images}
i=0
until ctr version >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -gt 120 ]; then
    echo "kpbench-import-images: containerd did not answer in 120 s" >&2
    exit 1
  fi
  sleep 1
done
for f in "$dir"/*.tar; do
  [ -e "$f" ] || continue
  ctr --namespace=k8s.io images import "$f"
done
`

const cniUnit = `[Unit]
Description=kpbench's pod network: a ptp CNI config and routes to the other nodes' pods
After=network.target
Before=kubelet.service containerd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/kind/bin/kpbench-cni.sh

[Install]
WantedBy=multi-user.target
`

// PodNetwork is the /16 kind's default podSubnet is, out of which each
// node takes a /24 numbered after the last octet of its IPv4 address.
const PodNetwork = "10.244"

// cniScript sets up the pod network that kindnetd would: node N (its
// IPv4 address's last octet) gives its pods PodNetwork.N.0/24 through the
// ptp and host-local plugins, routes every other possible node's /24 to
// that node's address on the same network, and masquerades pod traffic
// that leaves the pod network (the host does not route it back). No
// controller is needed: the plan is static. The node network must be a
// /24 or wider, nodes must share its first three octets (kind's podman and
// docker networks hand out addresses in order), and kind's podSubnet must
// stay 10.244.0.0/16. KPBENCH_CNI_* override the device and directories
// (tests).
const cniScript = `#!/bin/sh
# kpbench: a static pod network for kind nodes without kindnetd.
set -eu
dev=${KPBENCH_CNI_DEV:-eth0}
confdir=${KPBENCH_CNI_CONF_DIR:-/etc/cni/net.d}
podnet=${KPBENCH_POD_NET:-` + PodNetwork + `}
set -- $(ip -4 -o addr show dev "$dev" scope global)
while [ $# -gt 0 ] && [ "$1" != inet ]; do shift; done
if [ $# -lt 2 ]; then
  echo "kpbench-cni: no IPv4 address on $dev" >&2
  exit 1
fi
cidr=$2
addr=${cidr%/*}
prefix=${cidr#*/}
if [ "$prefix" -gt 24 ]; then
  echo "kpbench-cni: $cidr: the node network must be a /24 or wider" >&2
  exit 1
fi
net3=${addr%.*}
self=${addr##*.}
subnet=$podnet.$self.0/24
mkdir -p "$confdir"
cat >"$confdir/.10-kpbench.conflist.tmp" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "kpbench",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$subnet"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
mv "$confdir/.10-kpbench.conflist.tmp" "$confdir/10-kpbench.conflist"
n=1
while [ "$n" -le 254 ]; do
  if [ "$n" != "$self" ]; then
    echo "route replace $podnet.$n.0/24 via $net3.$n dev $dev"
  fi
  n=$((n + 1))
done | ip -force -batch -
rule="-s $podnet.0.0/16 ! -d $podnet.0.0/16 -j MASQUERADE"
if ! iptables -w -t nat -C POSTROUTING $rule 2>/dev/null; then
  iptables -w -t nat -A POSTROUTING $rule || echo "kpbench-cni: pods cannot reach beyond the cluster (no masquerade rule)" >&2
fi
echo "kpbench-cni: pods on $subnet, routes to the other nodes' /24s via $net3.N"
`

// LayoutInput is what the layer kpbench adds to the Debian root
// filesystem is made of.
type LayoutInput struct {
	// KindFiles are kind's node files (KindFiles).
	KindFiles []Entry
	// K8sVersion goes into /kind/version, which kind reads.
	K8sVersion string
	// Kubelet, Kubeadm and Kubectl are the binaries' paths here.
	Kubelet, Kubeadm, Kubectl string
	// Images are the image archives to preload: file name under
	// /kind/images → path here.
	Images map[string]string
	// Pause is the pod sandbox image containerd uses.
	Pause string
	// DefaultSpec is the default OCI spec (`ctr oci spec` in the root
	// filesystem).
	DefaultSpec []byte
}

// Layout is the layer kpbench adds to the Debian root filesystem, in the
// order the base image's Dockerfile and kind's node image build would
// produce it: kind's files, containerd's spec and config, the Kubernetes
// binaries, the preloaded images, and the systemd units enabled.
func Layout(in LayoutInput) ([]Entry, error) {
	var errs []error
	if in.K8sVersion == "" {
		errs = append(errs, errors.New("no Kubernetes version"))
	}
	for n, p := range map[string]string{"kubelet": in.Kubelet, "kubeadm": in.Kubeadm, "kubectl": in.Kubectl} {
		if p == "" {
			errs = append(errs, fmt.Errorf("no %s binary", n))
		}
	}
	if in.Pause == "" {
		errs = append(errs, errors.New("no pause image"))
	}
	if len(in.Images) == 0 {
		errs = append(errs, errors.New("no images to preload"))
	}
	var out []Entry
	for _, e := range in.KindFiles {
		if e.Path == "/etc/containerd/config.toml" {
			cfg, err := ContainerdConfig(e.Data, in.Pause)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			e.Data = cfg
		}
		out = append(out, e)
	}
	spec, err := CRIBaseSpec(in.DefaultSpec)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("node image layout: %w", err)
	}
	out = append(out,
		file("/etc/containerd/cri-base.json", 0o644, string(spec)),
		file("/kind/version", 0o644, in.K8sVersion+"\n"),
		Entry{Path: "/usr/bin/kubelet", Type: tar.TypeReg, Mode: 0o755, Source: in.Kubelet},
		Entry{Path: "/usr/bin/kubeadm", Type: tar.TypeReg, Mode: 0o755, Source: in.Kubeadm},
		Entry{Path: "/usr/bin/kubectl", Type: tar.TypeReg, Mode: 0o755, Source: in.Kubectl},
		// kind's containerd unit runs /usr/local/bin/containerd; Debian's
		// package installs it in /usr/bin.
		symlink("/usr/local/bin/containerd", "/usr/bin/containerd"),
		symlink("/usr/local/bin/containerd-shim-runc-v2", "/usr/bin/containerd-shim-runc-v2"),
		symlink("/usr/local/bin/ctr", "/usr/bin/ctr"),
		// containerd looks for CNI plugins in /opt/cni/bin; Debian's are in
		// /usr/lib/cni.
		dir("/opt"),
		dir("/opt/cni"),
		symlink("/opt/cni/bin", "/usr/lib/cni"),
		dir("/etc/cni"),
		dir("/etc/cni/net.d"),
		dir("/etc/kubernetes"),
		dir("/etc/kubernetes/manifests"),
		file("/kind/bin/kpbench-import-images.sh", 0o755, importScript),
		file("/kind/bin/kpbench-cni.sh", 0o755, cniScript),
		file("/etc/systemd/system/"+ImportUnit, 0o644, importUnit),
		file("/etc/systemd/system/"+CNIUnit, 0o644, cniUnit),
		dir(ImagesDir),
	)
	names := make([]string, 0, len(in.Images))
	for n := range in.Images {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		out = append(out, Entry{Path: path.Join(ImagesDir, n), Type: tar.TypeReg, Mode: 0o644, Source: in.Images[n]})
	}
	// systemctl enable / mask, as the base image's Dockerfile runs them.
	out = append(out, dir("/etc/systemd/system/multi-user.target.wants"))
	for _, u := range []string{"containerd.service", "kubelet.service", "undo-mount-hacks.service", ImportUnit, CNIUnit} {
		out = append(out, symlink("/etc/systemd/system/multi-user.target.wants/"+u, "/etc/systemd/system/"+u))
	}
	out = append(out, symlink("/etc/systemd/system/systemd-binfmt.service", "/dev/null"))
	return out, nil
}

// WriteLayer writes entries as a tar stream, each directory on the way
// to an entry first (mode 0755), all owned by root and stamped with mtime.
// A later entry with the same path replaces an earlier one.
func WriteLayer(w io.Writer, entries []Entry, mtime time.Time) error {
	tw := tar.NewWriter(w)
	last := map[string]int{}
	for i, e := range entries {
		last[path.Clean(e.Path)] = i
	}
	written := map[string]bool{}
	var writeDirs func(p string) error
	writeDirs = func(p string) error {
		if p == "/" || p == "." || written[p] {
			return nil
		}
		if err := writeDirs(path.Dir(p)); err != nil {
			return err
		}
		mode := int64(0o755)
		if i, ok := last[p]; ok {
			if entries[i].Type != tar.TypeDir {
				return fmt.Errorf("%s is both a directory and a %s", p, typeName(entries[i].Type))
			}
			mode = entries[i].Mode
		}
		written[p] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(p, "/") + "/", Mode: mode, ModTime: mtime, Format: tar.FormatPAX})
	}
	for i, e := range entries {
		p := path.Clean(e.Path)
		if !path.IsAbs(p) || p == "/" {
			return fmt.Errorf("layer entry %q: want an absolute path below /", e.Path)
		}
		if last[p] != i {
			continue
		}
		if err := writeDirs(path.Dir(p)); err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "/")
		hdr := &tar.Header{Typeflag: e.Type, Name: name, Mode: e.Mode, ModTime: mtime, Format: tar.FormatPAX}
		switch e.Type {
		case tar.TypeDir:
			if written[p] {
				continue
			}
			written[p] = true
			hdr.Name += "/"
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		case tar.TypeSymlink:
			hdr.Linkname = e.Target
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeFile(tw, hdr, e); err != nil {
				return err
			}
		default:
			return fmt.Errorf("layer entry %s: unsupported type %q", e.Path, e.Type)
		}
	}
	return tw.Close()
}

func writeFile(tw *tar.Writer, hdr *tar.Header, e Entry) error {
	if e.Source == "" {
		hdr.Size = int64(len(e.Data))
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(e.Data)
		return err
	}
	f, err := os.Open(e.Source)
	if err != nil {
		return fmt.Errorf("layer entry %s: %w", e.Path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr.Size = st.Size()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("layer entry %s: copying %s: %w", e.Path, e.Source, err)
	}
	return nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeReg:
		return "file"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeDir:
		return "directory"
	}
	return fmt.Sprintf("type %q", t)
}
