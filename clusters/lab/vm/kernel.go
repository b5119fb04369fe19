// Package vm runs the lab's client node as a qemu virtual machine: a guest
// kernel of the user's choice (by default the distribution's kernel package)
// that boots from a small generated initramfs, mounts this machine's root
// filesystem read-only over virtio-9p and runs kpbench's guest agent, so that
// kube-proxy, the load client and the CPU sampling run on the guest's kernel
// with this machine's own binaries. The lab's -net namespace holds the
// guest's tap device on the lab bridge; nothing touches the root namespace.
//
// The pieces: kernel.go finds a kernel and its modules; initramfs.go writes
// the initramfs; qemu.go builds qemu's command line and probes KVM;
// agent.go is the host<->guest control protocol; guest.go is what runs
// inside the guest (PID 1 and the agent).
package vm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNoKernel is wrapped when no usable guest kernel is found.
var ErrNoKernel = errors.New("no guest kernel")

// Kernel is a guest kernel: its bzImage, its release and its modules.
type Kernel struct {
	Path    string `json:"path"`
	Release string `json:"release"`
	// Modules is the kernel's modules directory (what /lib/modules/RELEASE
	// holds for an installed kernel).
	Modules string `json:"modules"`
}

// BootDir is where distributions install kernels.
var BootDir = "/boot"

// ModulesRoot is where distributions install kernel modules.
var ModulesRoot = "/lib/modules"

// DefaultKernel returns the newest kernel under BootDir (vmlinuz-RELEASE)
// whose modules are installed under ModulesRoot: on Debian, what the
// linux-image-amd64 package installs (hack/deps.sh installs it).
func DefaultKernel() (Kernel, error) {
	matches, _ := filepath.Glob(filepath.Join(BootDir, "vmlinuz-*"))
	var found []Kernel
	for _, m := range matches {
		rel := strings.TrimPrefix(filepath.Base(m), "vmlinuz-")
		mods := filepath.Join(ModulesRoot, rel)
		if _, err := os.Stat(filepath.Join(mods, "modules.dep")); err != nil {
			continue
		}
		found = append(found, Kernel{Path: m, Release: rel, Modules: mods})
	}
	if len(found) == 0 {
		return Kernel{}, fmt.Errorf("%w: no %s/vmlinuz-* with modules under %s (install one: apt-get install linux-image-amd64, or run hack/deps.sh; or give --kernel)", ErrNoKernel, BootDir, ModulesRoot)
	}
	sort.Slice(found, func(i, j int) bool { return versionLess(found[i].Release, found[j].Release) })
	return found[len(found)-1], nil
}

// OpenKernel describes the bzImage at path; modules is its modules
// directory (default ModulesRoot/RELEASE, RELEASE read from the image).
func OpenKernel(path, modules string) (Kernel, error) {
	rel, err := BzImageRelease(path)
	if err != nil {
		return Kernel{}, err
	}
	if modules == "" {
		modules = filepath.Join(ModulesRoot, rel)
	}
	if _, err := os.Stat(filepath.Join(modules, "modules.dep")); err != nil {
		return Kernel{}, fmt.Errorf("%w: kernel %s (release %s) has no modules at %s (no modules.dep; give its modules directory, after `make modules_install INSTALL_MOD_PATH=...`)", ErrNoKernel, path, rel, modules)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Kernel{}, err
	}
	mods, err := filepath.Abs(modules)
	if err != nil {
		return Kernel{}, err
	}
	return Kernel{Path: abs, Release: rel, Modules: mods}, nil
}

// BzImageRelease reads a bzImage's release (e.g. "6.1.0-57-amd64") from its
// setup header: the kernel_version field (offset 0x20E) points at the
// version string, 0x200 bytes before the pointer's base.
func BzImageRelease(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoKernel, err)
	}
	defer f.Close()
	hdr := make([]byte, 0x210)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return "", fmt.Errorf("%w: %s is not a bzImage: %w", ErrNoKernel, path, err)
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("%w: %s is not a bzImage (no HdrS setup header)", ErrNoKernel, path)
	}
	off := int64(hdr[0x20E]) | int64(hdr[0x20F])<<8
	if off == 0 {
		return "", fmt.Errorf("%w: %s carries no version string", ErrNoKernel, path)
	}
	buf := make([]byte, 256)
	n, err := f.ReadAt(buf, off+0x200)
	if n == 0 {
		return "", fmt.Errorf("%w: reading the version of %s: %w", ErrNoKernel, path, err)
	}
	buf = buf[:n]
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	f0 := strings.Fields(string(buf))
	if len(f0) == 0 {
		return "", fmt.Errorf("%w: %s has an empty version string", ErrNoKernel, path)
	}
	return f0[0], nil
}

// versionLess orders releases like "6.1.0-57-amd64" numerically.
func versionLess(a, b string) bool {
	na, nb := versionNums(a), versionNums(b)
	for i := 0; i < len(na) && i < len(nb); i++ {
		if na[i] != nb[i] {
			return na[i] < nb[i]
		}
	}
	if len(na) != len(nb) {
		return len(na) < len(nb)
	}
	return a < b
}

func versionNums(s string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

// Modules is a kernel's module index: modules.dep and modules.builtin.
type Modules struct {
	Dir     string
	deps    map[string][]string // module name -> dependency names
	paths   map[string]string   // module name -> path relative to Dir
	builtin map[string]bool
}

// modName turns "kernel/net/9p/9pnet_virtio.ko" (or .ko.xz) into
// "9pnet_virtio"; modprobe treats - and _ alike, so names use _.
func modName(path string) string {
	b := filepath.Base(path)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// ReadModules reads the module index of dir.
func ReadModules(dir string) (*Modules, error) {
	m := &Modules{Dir: dir, deps: map[string][]string{}, paths: map[string]string{}, builtin: map[string]bool{}}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("reading the module index: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mod, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := modName(mod)
		m.paths[name] = mod
		for _, d := range strings.Fields(deps) {
			m.deps[name] = append(m.deps[name], modName(d))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, "modules.dep"), err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, line := range strings.Fields(string(b)) {
			m.builtin[modName(line)] = true
		}
	}
	return m, nil
}

// Has reports whether the kernel has module name, as a module file or
// built in.
func (m *Modules) Has(name string) bool {
	name = strings.ReplaceAll(name, "-", "_")
	_, ok := m.paths[name]
	return ok || m.builtin[name]
}

// LoadOrder returns the module files (relative to Dir) to insmod, in an
// order where every module comes after its dependencies, for names and
// everything they depend on; built-in modules are left out. A name the
// kernel has neither as a file nor built in is an error.
func (m *Modules) LoadOrder(names ...string) ([]string, error) {
	var (
		order []string
		seen  = map[string]bool{}
		visit func(string) error
	)
	visit = func(n string) error {
		n = strings.ReplaceAll(n, "-", "_")
		if seen[n] {
			return nil
		}
		seen[n] = true
		if m.builtin[n] {
			return nil
		}
		p, ok := m.paths[n]
		if !ok {
			return fmt.Errorf("kernel modules %s: no module %s (neither a module file nor built in)", m.Dir, n)
		}
		for _, d := range m.deps[n] {
			if err := visit(d); err != nil {
				return err
			}
		}
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return order, nil
}
