package vm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// GuestConfig is what the guest's init reads (the lab writes it as
// LabDir/vm/guest.json before the boot).
type GuestConfig struct {
	// LabDir is the lab's state directory; the guest mounts it writable
	// (9p tag LabTag) at the same path, so paths in it mean the same on
	// both sides (kube-proxy's configuration, logs).
	LabDir string `json:"labDir"`
	// ModulesTag, when set, is a 9p tag holding the kernel's modules, to
	// mount at /lib/modules/Release (a kernel whose modules are not
	// installed under /lib/modules on this machine).
	ModulesTag string `json:"modulesTag,omitempty"`
	Release    string `json:"release"`
	Hostname   string `json:"hostname"`
	// Address is the node's lab address with its prefix, Gateway the
	// lab bridge's address.
	Address string `json:"address"`
	Gateway string `json:"gateway"`
	// Modules are loaded with modprobe at boot.
	Modules []string `json:"modules"`
	// Sysctls are written at boot (after the modules), e.g.
	// net.netfilter.nf_conntrack_max.
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// Token is the agent's shared secret.
	Token string `json:"token"`
	// AgentLog is the agent's log file (in LabDir).
	AgentLog string `json:"agentLog"`
}

// Guest-side 9p tags.
const (
	LabTag     = "lab"
	ModulesTag = "modules"
)

// ReadGuestConfig reads a guest configuration file.
func ReadGuestConfig(path string) (GuestConfig, error) {
	var c GuestConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("reading the guest configuration: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decoding %s: %w", path, err)
	}
	return c, nil
}

// BootedMarker is what the guest's init prints on its console once the
// agent listens.
const BootedMarker = "kpbench-vm: agent listening"

// Init is PID 1 of the guest, run by the initramfs's switch_root on the
// host's root filesystem: it mounts what the guest needs, loads modules,
// configures the network, starts the agent (`self lab vm-agent --config
// path`, self being this executable) as its child and reaps orphans until the agent exits, then powers
// the guest off (qemu, run with -no-reboot, exits). It returns only on a
// failure before the agent starts, after which the caller powers off too.
func Init(configPath string, console io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(console, "kpbench-vm: "+format+"\n", args...) }
	_ = os.Setenv("PATH", hostPATH)
	// The host's root is read-only: the guest's writable places are
	// tmpfs (/run: xtables.lock and friends) and the lab directory.
	mounts := []struct{ src, dst, fstype, data string }{
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
		{"tmpfs", "/dev/shm", "tmpfs", "mode=1777"},
		{"devpts", "/dev/pts", "devpts", ""},
	}
	for _, m := range mounts {
		_ = os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			say("mount %s: %v", m.dst, err)
		}
	}
	// Only now: before /proc is mounted, /proc is the host's, seen
	// through the 9p share.
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding kpbench: %w", err)
	}
	cfg, err := ReadGuestConfig(configPath)
	if err != nil {
		return err
	}
	opts := "trans=virtio,version=9p2000.L,msize=524288,cache=none"
	if err := unix.Mount(LabTag, cfg.LabDir, "9p", 0, opts); err != nil {
		return fmt.Errorf("mounting the lab directory (9p tag %s) at %s: %w", LabTag, cfg.LabDir, err)
	}
	if cfg.ModulesTag != "" {
		dir := filepath.Join("/lib/modules", cfg.Release)
		if err := unix.Mount("tmpfs", "/lib/modules", "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("mounting /lib/modules: %w", err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(cfg.ModulesTag, dir, "9p", unix.MS_RDONLY, "trans=virtio,version=9p2000.L,msize=524288,cache=loose"); err != nil {
			return fmt.Errorf("mounting the kernel's modules at %s: %w", dir, err)
		}
	}
	if cfg.Hostname != "" {
		_ = unix.Sethostname([]byte(cfg.Hostname))
	}
	run := func(args ...string) error {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	for _, m := range cfg.Modules {
		if err := run("modprobe", m); err != nil {
			say("%v", err)
		}
	}
	for k, v := range cfg.Sysctls {
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			say("sysctl %s=%s: %v", k, v, err)
		}
	}
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", cfg.Address, "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "route", "add", "default", "via", cfg.Gateway},
	} {
		if err := run(args...); err != nil {
			return err
		}
	}
	logf, err := os.OpenFile(cfg.AgentLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the agent log: %w", err)
	}
	agent := exec.Command(self, "lab", "vm-agent", "--config", configPath)
	agent.Env = []string{"PATH=" + hostPATH, "HOME=/root"}
	agent.Stdout, agent.Stderr = logf, logf
	if err := agent.Start(); err != nil {
		return fmt.Errorf("starting the agent: %w", err)
	}
	logf.Close()
	// PID 1 adopts every orphan; reap them all. The agent's own exit ends
	// the guest.
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err != nil && !errors.Is(err, unix.EINTR) {
			if errors.Is(err, unix.ECHILD) {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return fmt.Errorf("waiting for children: %w", err)
		}
		if pid == agent.Process.Pid {
			return fmt.Errorf("the agent exited (%s); see %s", waitString(ws), cfg.AgentLog)
		}
	}
}

func waitString(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "signal " + ws.Signal().String()
	}
	return "status " + strconv.Itoa(ws.ExitStatus())
}

// PowerOff ends the guest.
func PowerOff() {
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// RunAgent serves the agent protocol on the node's lab address.
func RunAgent(configPath string, console io.Writer, log *slog.Logger) error {
	cfg, err := ReadGuestConfig(configPath)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ip, _, _ := strings.Cut(cfg.Address, "/")
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(AgentPort)))
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	log.Info("agent listening", "addr", ln.Addr().String())
	if console != nil {
		fmt.Fprintln(console, BootedMarker)
	}
	return (&Server{Token: cfg.Token, Self: self, Log: log}).Serve(ln)
}

// ConsoleDevice is the guest's console, for init's messages.
func ConsoleDevice() io.Writer {
	f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0)
	if err != nil {
		return os.Stderr
	}
	return f
}
