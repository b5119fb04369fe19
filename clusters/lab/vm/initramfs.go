package vm

import (
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoBusybox is wrapped when no static busybox is found.
var ErrNoBusybox = errors.New("no static busybox")

// BusyboxPaths are where a static busybox is looked for (Debian's
// busybox-static installs /bin/busybox).
var BusyboxPaths = []string{"/bin/busybox", "/usr/bin/busybox"}

// FindBusybox returns a statically linked busybox: the initramfs has no
// shared libraries.
func FindBusybox() (string, error) {
	var reasons []string
	for _, p := range BusyboxPaths {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := checkStatic(p); err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		return p, nil
	}
	msg := "install busybox-static (apt-get install busybox-static, or run hack/deps.sh)"
	if len(reasons) > 0 {
		msg = strings.Join(reasons, "; ") + "; " + msg
	}
	return "", fmt.Errorf("%w: %s", ErrNoBusybox, msg)
}

func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

// BootModules are the modules the initramfs loads to mount the host's root
// over virtio-9p; their dependencies come along. Modules a kernel has built
// in are skipped.
var BootModules = []string{"virtio_pci", "virtio_net", "9pnet_virtio", "9p"}

// RootTag is the 9p mount tag of this machine's root filesystem.
const RootTag = "hostroot"

// Initramfs describes the initramfs of a guest.
type Initramfs struct {
	Busybox string
	// Modules are the kernel's modules; LoadOrder of BootModules goes in.
	Modules *Modules
	// Init is the program switch_root runs on the host's root (PID 1 of
	// the guest), with its arguments.
	Init []string
}

// Write writes the gzip-compressed newc cpio archive.
func (in Initramfs) Write(w io.Writer) error {
	order, err := in.Modules.LoadOrder(BootModules...)
	if err != nil {
		return err
	}
	var insmods []string
	cw := newCPIO(w)
	for _, d := range []string{"bin", "dev", "proc", "sys", "newroot", "modules"} {
		cw.dir(d)
	}
	if err := cw.file("bin/busybox", in.Busybox, 0o755); err != nil {
		return err
	}
	for _, rel := range order {
		name := filepath.Base(rel)
		if err := cw.file("modules/"+name, filepath.Join(in.Modules.Dir, rel), 0o644); err != nil {
			return err
		}
		insmods = append(insmods, name)
	}
	var quoted []string
	for _, a := range in.Init {
		quoted = append(quoted, shellQuote(a))
	}
	script := `#!/bin/busybox sh
B=/bin/busybox
fail() { echo "kpbench-vm: $*"; $B sleep 1; $B poweroff -f; }
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
echo "kpbench-vm: initramfs: loading modules"
for m in ` + strings.Join(insmods, " ") + `; do
  $B insmod /modules/$m || fail "insmod $m failed"
done
echo "kpbench-vm: mounting the host root over virtio-9p"
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose ` + RootTag + ` /newroot || fail "mounting the host root (9p tag ` + RootTag + `) failed"
$B umount /proc
$B umount /sys
$B mount --move /dev /newroot/dev || fail "moving /dev failed"
exec $B switch_root /newroot ` + strings.Join(quoted, " ") + `
`
	cw.data("init", []byte(script), 0o755)
	return cw.close()
}

// WriteProbe writes an initramfs whose init prints ProbeMarker and powers
// the machine off: the KVM probe's guest.
func WriteProbe(w io.Writer, busybox string) error {
	cw := newCPIO(w)
	cw.dir("bin")
	if err := cw.file("bin/busybox", busybox, 0o755); err != nil {
		return err
	}
	cw.data("init", []byte("#!/bin/busybox sh\necho "+ProbeMarker+"\n/bin/busybox poweroff -f\n"), 0o755)
	return cw.close()
}

// ProbeMarker is what the probe guest prints once its init runs.
const ProbeMarker = "KPBENCH-PROBE-BOOTED"

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// cpioWriter writes a gzip-compressed cpio archive in the "newc" format
// the kernel unpacks into its initial root filesystem.
type cpioWriter struct {
	gz  *gzip.Writer
	ino int
	err error
}

func newCPIO(w io.Writer) *cpioWriter { return &cpioWriter{gz: gzip.NewWriter(w), ino: 1} }

func (c *cpioWriter) entry(name string, mode uint32, data []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	buf := append([]byte(hdr), name...)
	buf = append(buf, 0)
	buf = pad4(buf)
	buf = append(buf, data...)
	buf = pad4(buf)
	_, c.err = c.gz.Write(buf)
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (c *cpioWriter) dir(name string) { c.entry(name, 0o040755, nil) }

func (c *cpioWriter) data(name string, data []byte, perm uint32) {
	c.entry(name, 0o100000|perm, data)
}

func (c *cpioWriter) file(name, src string, perm uint32) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	c.data(name, b, perm)
	return nil
}

func (c *cpioWriter) close() error {
	c.ino = 0
	c.entry("TRAILER!!!", 0, nil)
	if c.err != nil {
		return fmt.Errorf("writing the initramfs: %w", c.err)
	}
	if err := c.gz.Close(); err != nil {
		return fmt.Errorf("writing the initramfs: %w", err)
	}
	return nil
}
