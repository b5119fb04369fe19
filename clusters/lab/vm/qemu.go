package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
	// AccelAuto probes KVM and falls back to TCG.
	AccelAuto = "auto"
)

// QEMUBinary is qemu's x86-64 system emulator (Debian: qemu-system-x86).
const QEMUBinary = "qemu-system-x86_64"

// ErrNoQEMU is wrapped when qemu is not installed.
var ErrNoQEMU = errors.New("qemu not found")

// FindQEMU returns the path of QEMUBinary.
func FindQEMU() (string, error) {
	p, err := exec.LookPath(QEMUBinary)
	if err != nil {
		return "", fmt.Errorf("%w: %s is not installed (apt-get install qemu-system-x86, or run hack/deps.sh)", ErrNoQEMU, QEMUBinary)
	}
	return p, nil
}

// QEMUVersion is the first line of `qemu --version`.
func QEMUVersion(ctx context.Context, qemu string) string {
	out, err := exec.CommandContext(ctx, qemu, "--version").Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// Share is a directory of this machine the guest mounts over virtio-9p.
type Share struct {
	Tag      string
	Path     string
	ReadOnly bool
}

// Machine is one guest's qemu configuration.
type Machine struct {
	QEMU      string
	Accel     string // AccelKVM or AccelTCG
	CPUs      int
	MemoryMiB int
	Kernel    string
	Initrd    string
	Append    string
	// Tap is the tap device (in qemu's network namespace) of the guest's
	// NIC; MAC its address.
	Tap, MAC string
	Shares   []Share
	// Console receives the guest's serial console.
	Console string
}

// Args is qemu's command line for m.
func (m Machine) Args() []string {
	args := []string{m.QEMU, "-name", "kpbench-node", "-nodefaults", "-no-user-config",
		"-display", "none", "-no-reboot", "-monitor", "none"}
	switch m.Accel {
	case AccelKVM:
		args = append(args, "-accel", "kvm", "-cpu", "host")
	default:
		// One host thread per vCPU.
		args = append(args, "-accel", "tcg,thread=multi")
	}
	args = append(args,
		"-smp", strconv.Itoa(max(m.CPUs, 1)),
		"-m", strconv.Itoa(m.MemoryMiB),
		"-kernel", m.Kernel,
		"-initrd", m.Initrd,
		"-append", m.Append,
		"-serial", "file:"+m.Console,
	)
	for i, s := range m.Shares {
		id := "fs" + strconv.Itoa(i)
		fsdev := "local,id=" + id + ",path=" + s.Path + ",security_model=none"
		if s.ReadOnly {
			fsdev += ",readonly=on"
		}
		// The root share spans several filesystems: remap inode numbers
		// so that files of different ones never collide in the guest.
		fsdev += ",multidevs=remap"
		args = append(args, "-fsdev", fsdev, "-device", "virtio-9p-pci,fsdev="+id+",mount_tag="+s.Tag)
	}
	if m.Tap != "" {
		args = append(args,
			"-netdev", "tap,id=n0,ifname="+m.Tap+",script=no,downscript=no",
			"-device", "virtio-net-pci,netdev=n0,mac="+m.MAC)
	}
	return args
}

// KVMDevice is the KVM device node.
var KVMDevice = "/dev/kvm"

// ProbeTimeout bounds the KVM probe's boot. A standard kernel reaches its
// init in a second or two under KVM; where KVM only runs paravirtualised
// guests it hangs instead.
const ProbeTimeout = 25 * time.Second

// Probe is the outcome of a KVM probe.
type Probe struct {
	Key     string    `json:"key"`
	KVM     bool      `json:"kvm"`
	Reason  string    `json:"reason,omitempty"`
	Elapsed string    `json:"elapsed,omitempty"`
	At      time.Time `json:"at"`
}

// ChooseAccel returns the accelerator for kernel: what want says (kvm or
// tcg), or for auto KVM when a short probe boot of kernel under KVM reaches
// its init within ProbeTimeout, TCG otherwise. The probe's outcome is
// cached in cacheDir, keyed by the kernel, qemu and this machine's kernel,
// so only the first lab on a machine pays for it. reason says why TCG was
// chosen.
func ChooseAccel(ctx context.Context, want, qemu, busybox string, k Kernel, cacheDir string) (accel, reason string, err error) {
	switch want {
	case AccelKVM, AccelTCG:
		return want, "asked for", nil
	case "", AccelAuto:
	default:
		return "", "", fmt.Errorf("unknown accelerator %q (want auto, kvm or tcg)", want)
	}
	if err := unix.Access(KVMDevice, unix.R_OK|unix.W_OK); err != nil {
		return AccelTCG, fmt.Sprintf("%s is not usable (%v)", KVMDevice, err), nil
	}
	key := probeKey(qemu, k)
	path := filepath.Join(cacheDir, "kvm-probe-"+key+".json")
	if b, err := os.ReadFile(path); err == nil {
		var p Probe
		if json.Unmarshal(b, &p) == nil && p.Key == key {
			if p.KVM {
				return AccelKVM, "", nil
			}
			return AccelTCG, p.Reason + " (cached probe from " + p.At.Format(time.RFC3339) + ")", nil
		}
	}
	p, err := ProbeKVM(ctx, qemu, busybox, k.Path, cacheDir)
	if err != nil {
		return "", "", err
	}
	p.Key = key
	if b, err := json.MarshalIndent(p, "", "  "); err == nil {
		_ = os.MkdirAll(cacheDir, 0o755)
		_ = os.WriteFile(path, b, 0o644)
	}
	if p.KVM {
		return AccelKVM, "", nil
	}
	return AccelTCG, p.Reason, nil
}

func probeKey(qemu string, k Kernel) string {
	h := sha256.New()
	var u unix.Utsname
	_ = unix.Uname(&u)
	fmt.Fprintln(h, unix.ByteSliceToString(u.Release[:]), qemu, k.Path)
	for _, p := range []string{qemu, k.Path, KVMDevice} {
		if st, err := os.Stat(p); err == nil {
			fmt.Fprintln(h, st.Size(), st.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// ProbeKVM boots kernel under KVM with an initramfs whose init prints
// ProbeMarker and powers off, and reports whether the marker came within
// ProbeTimeout. It never leaves qemu running: the probe dies with its
// context and with this process.
func ProbeKVM(ctx context.Context, qemu, busybox, kernel, tmpDir string) (Probe, error) {
	start := time.Now()
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		return Probe{}, err
	}
	f, err := os.CreateTemp(tmpDir, "kvm-probe-*.img")
	if err != nil {
		return Probe{}, fmt.Errorf("KVM probe: %w", err)
	}
	defer os.Remove(f.Name())
	if err := WriteProbe(f, busybox); err != nil {
		f.Close()
		return Probe{}, err
	}
	if err := f.Close(); err != nil {
		return Probe{}, err
	}
	pctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	cmd := exec.CommandContext(pctx, qemu, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-monitor", "none", "-accel", "kvm", "-cpu", "host", "-smp", "1", "-m", "256",
		"-kernel", kernel, "-initrd", f.Name(), "-append", "console=ttyS0 panic=-1 quiet", "-serial", "stdio")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	p := Probe{At: time.Now().UTC(), Elapsed: time.Since(start).Round(time.Millisecond).String()}
	if ctx.Err() != nil {
		return p, fmt.Errorf("KVM probe: %w", ctx.Err())
	}
	if bytes.Contains(out.Bytes(), []byte(ProbeMarker)) {
		p.KVM = true
		return p, nil
	}
	switch {
	case pctx.Err() != nil:
		p.Reason = fmt.Sprintf("a probe boot of %s under KVM did not reach its init within %s", filepath.Base(kernel), ProbeTimeout)
	case runErr != nil:
		p.Reason = fmt.Sprintf("a probe boot under KVM failed: %v: %s", runErr, lastLine(out.String()))
	default:
		p.Reason = "a probe boot under KVM ended without reaching its init: " + lastLine(out.String())
	}
	return p, nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[len(s)-300:]
	}
	return s
}
