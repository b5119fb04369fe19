package nodeimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// DebianSuite is the Debian release of the node's root filesystem.
// bookworm's systemd (252) boots on this machine's cgroup v1 hierarchy;
// systemd 256 and later refuse cgroup v1 without kernel command-line
// options a container cannot set.
const DebianSuite = "bookworm"

// DebianPackages are what the node needs besides Debian's minimal base,
// as kind's base image lists them: systemd as PID 1 (and dbus for the
// systemd cgroup driver), the Kubernetes node's tools (conntrack,
// iptables, nftables, ipset, iproute2, ethtool, util-linux's mount and
// nsenter, kmod), containerd with runc and the CNI plugins, and what
// kind's scripts run (bash, procps, and jq: mount-product-files.sh, the
// hook containerd runs for every container, reads its state with jq).
var DebianPackages = []string{
	"systemd", "systemd-sysv", "dbus",
	"conntrack", "iptables", "nftables", "ipset", "iproute2", "ethtool", "util-linux", "mount", "kmod",
	"libseccomp2", "containerd", "runc", "containernetworking-plugins",
	"bash", "ca-certificates", "procps", "jq",
}

// RootfsHooks are mmdebstrap's customize hooks ("$1" is the root
// filesystem), the Debian half of kind's base Dockerfile: the default OCI
// spec saved for cri-base.json, systemd's units that have no business in
// a node container removed, and journald kept off the kernel's log.
var RootfsHooks = []string{
	`chroot "$1" ctr oci spec > "$1` + DefaultSpecPath + `"`,
	`find "$1/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete`,
	`rm -f "$1"/lib/systemd/system/multi-user.target.wants/* "$1"/etc/systemd/system/*.wants/* "$1"/lib/systemd/system/local-fs.target.wants/* "$1"/lib/systemd/system/sockets.target.wants/*udev* "$1"/lib/systemd/system/sockets.target.wants/*initctl* "$1"/lib/systemd/system/basic.target.wants/*`,
	`echo ReadKMsg=no >> "$1/etc/systemd/journald.conf"`,
	`rm -f "$1/etc/containerd/config.toml"`,
}

// RootfsSpec is what a root filesystem is built from.
type RootfsSpec struct {
	Suite    string
	Packages []string
	Hooks    []string
	// Mirror is the Debian mirror ("" = mmdebstrap's default, the
	// machine's apt sources).
	Mirror string
}

// DefaultRootfs is the node's root filesystem.
func DefaultRootfs() RootfsSpec {
	return RootfsSpec{Suite: DebianSuite, Packages: DebianPackages, Hooks: RootfsHooks}
}

// Key is the spec's cache key.
func (s RootfsSpec) Key() string {
	h := sha256.New()
	fmt.Fprintf(h, "suite %s\nmirror %s\n", s.Suite, s.Mirror)
	for _, p := range s.Packages {
		fmt.Fprintf(h, "package %s\n", p)
	}
	for _, k := range s.Hooks {
		fmt.Fprintf(h, "hook %s\n", k)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Args are mmdebstrap's arguments writing the root filesystem to out (a
// tarball).
func (s RootfsSpec) Args(out string) []string {
	args := []string{
		"--mode=root",
		"--variant=minbase",
		"--format=tar",
		"--aptopt=Acquire::Retries \"3\"",
		"--include=" + strings.Join(s.Packages, ","),
	}
	for _, h := range s.Hooks {
		args = append(args, "--customize-hook="+h)
	}
	args = append(args, s.Suite, out)
	if s.Mirror != "" {
		args = append(args, s.Mirror)
	}
	return args
}

// EnsureRootfs returns the root filesystem tarball of spec, running
// mmdebstrap (as root) unless dir holds it.
func EnsureRootfs(ctx context.Context, spec RootfsSpec, dir, mmdebstrap string) (string, bool, error) {
	out := filepath.Join(dir, "rootfs-"+spec.Suite+"-"+spec.Key()+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, true, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, err
	}
	if mmdebstrap == "" {
		mmdebstrap = "mmdebstrap"
	}
	if _, err := exec.LookPath(mmdebstrap); err != nil {
		return "", false, fmt.Errorf("the node's root filesystem needs mmdebstrap (Debian: apt-get install mmdebstrap; make deps-test installs it): %w", err)
	}
	tmp := out + ".tmp.tar"
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, mmdebstrap, spec.Args(tmp)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		tail := stderr.String()
		if len(tail) > 4000 {
			tail = "..." + tail[len(tail)-4000:]
		}
		return "", false, fmt.Errorf("mmdebstrap %s: %w\n%s", strings.Join(spec.Args(tmp), " "), err, tail)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", false, err
	}
	return out, false, nil
}
