package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/clusters/lab/netns"
	"github.com/kpbench/kpbench/clusters/lab/vm"
	"github.com/kpbench/kpbench/internal/httpget"
	"github.com/kpbench/kpbench/scenarios"
)

// This file is the lab's client node as a qemu virtual machine (Config.Node
// = NodeVM): kube-proxy, the load client and the CPU sampling run on a
// guest kernel of the user's choice, so that kernel features this
// machine's kernel lacks (IP_VS) are measured for real. The guest's NIC is
// a tap device on the lab bridge inside the -net namespace and has the
// node's lab address; the host runs commands in it through the guest agent
// (package vm) over the lab network.

// Client node kinds.
const (
	NodeNetns = "netns"
	NodeVM    = "vm"
)

// CompVM is the qemu process of a VM client node.
const CompVM = "node-vm"

// vmTap is the guest NIC's tap device in the -net namespace.
const vmTap = "node"

// vmMAC is the guest NIC's address (a locally administered qemu address).
const vmMAC = "52:54:00:c6:12:03"

// DefaultVMMemoryMiB is the guest's memory: kube-proxy at 10,000 Services
// holds about 175 MB, the load client and iptables-restore the rest.
const DefaultVMMemoryMiB = 2048

// vmConntrackMax is the guest's conntrack table size. A 2 GiB guest
// defaults to 65,536 entries, less than a minute of new connections at
// 1,000/s kept for TIME_WAIT's 120 s; the netns node shares this machine's
// larger table.
const vmConntrackMax = "262144"

// VMConfig configures a VM client node.
type VMConfig struct {
	// Kernel is the guest's bzImage (default vm.DefaultKernel: the newest
	// /boot/vmlinuz-* with modules installed).
	Kernel string
	// Modules is the kernel's modules directory (default
	// /lib/modules/RELEASE).
	Modules string
	// Initrd replaces the generated initramfs: it must mount the 9p tag
	// "hostroot" read-only and switch_root into it running the command of
	// kpbench's generated /init (see docs/lab.md).
	Initrd string
	// Accel is auto (default: KVM when a probe boot works, else TCG), kvm
	// or tcg.
	Accel string
	// MemoryMiB is the guest's memory (default DefaultVMMemoryMiB).
	MemoryMiB int
}

// validate reports the VM options' problems.
func (c VMConfig) validate(node string) []error {
	var errs []error
	if node != "" && node != NodeNetns && node != NodeVM {
		errs = append(errs, fmt.Errorf("node %q: want netns or vm", node))
	}
	set := c.Kernel != "" || c.Modules != "" || c.Initrd != "" || (c.Accel != "" && c.Accel != vm.AccelAuto) || c.MemoryMiB != 0
	if node != NodeVM && set {
		errs = append(errs, errors.New("kernel, modules, initrd, accel and memory options need the VM client node (--node vm)"))
	}
	switch c.Accel {
	case "", vm.AccelAuto, vm.AccelKVM, vm.AccelTCG:
	default:
		errs = append(errs, fmt.Errorf("accel %q: want auto, kvm or tcg", c.Accel))
	}
	if c.MemoryMiB < 0 || (c.MemoryMiB > 0 && c.MemoryMiB < 256) {
		errs = append(errs, fmt.Errorf("VM memory %d MiB: give at least 256", c.MemoryMiB))
	}
	for _, p := range []struct{ what, path string }{{"kernel", c.Kernel}, {"initrd", c.Initrd}} {
		if p.path == "" {
			continue
		}
		if st, err := os.Stat(p.path); err != nil || st.IsDir() {
			errs = append(errs, fmt.Errorf("%s %s is not a file", p.what, p.path))
		}
	}
	if c.Modules != "" {
		if st, err := os.Stat(c.Modules); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("kernel modules %s is not a directory", c.Modules))
		}
	}
	return errs
}

// VMState is what the lab records about a VM client node.
type VMState struct {
	Kernel vm.Kernel `json:"kernel"`
	Initrd string    `json:"initrd"`
	// Accel is kvm or tcg; AccelReason says why TCG was used.
	Accel       string `json:"accel"`
	AccelReason string `json:"accelReason,omitempty"`
	QEMUVersion string `json:"qemuVersion,omitempty"`
	CPUs        int    `json:"cpus"`
	MemoryMiB   int    `json:"memoryMiB"`
	Tap         string `json:"tap"`
	Token       string `json:"token"`
	// BootSeconds runs from qemu's start to the agent's first answer.
	BootSeconds float64 `json:"bootSeconds,omitempty"`
	// KubeProxy is kube-proxy in the guest (guest PID and start time).
	KubeProxy *vm.Proc `json:"kubeProxy,omitempty"`
}

// isVM reports whether st is a lab with a VM client node.
func isVM(st *State) bool { return st != nil && st.VM != nil }

func (l *Lab) vmDir() string { return filepath.Join(l.dir, "vm") }

// vmScratch is a directory of the lab both sides can write: the load
// client's raw files pass through it.
func (l *Lab) vmScratch() string { return filepath.Join(l.vmDir(), "xfer") }

// vmKernel resolves the configured kernel.
func (c Config) vmKernel() (vm.Kernel, error) {
	if c.VM.Kernel == "" {
		if c.VM.Modules != "" {
			return vm.Kernel{}, fmt.Errorf("%w: a modules directory needs --kernel", ErrBadConfig)
		}
		return vm.DefaultKernel()
	}
	return vm.OpenKernel(c.VM.Kernel, c.VM.Modules)
}

// vmMachine is what Capabilities looks at for a VM client node: the guest
// kernel's release and modules, this machine's tools (the guest runs them).
func vmMachine(k vm.Kernel, cpus int) machine {
	m := realMachine()
	m.kernelRelease = k.Release
	m.cpus = cpus + 1
	mods, err := vm.ReadModules(k.Modules)
	m.ipvs = func() (bool, string) {
		if err == nil && mods.Has("ip_vs") {
			return true, ""
		}
		return false, fmt.Sprintf("guest kernel %s has no ip_vs module (in %s)", k.Release, k.Modules)
	}
	return m
}

// machine is the machine whose kernel runs the client node.
func (l *Lab) machine() (machine, error) {
	st, err := readState(l.dir)
	if err == nil && st.VM != nil {
		return vmMachine(st.VM.Kernel, st.VM.CPUs), nil
	}
	if err == nil || l.cfg.Node != NodeVM {
		return realMachine(), nil
	}
	k, err := l.cfg.vmKernel()
	if err != nil {
		return machine{}, err
	}
	return vmMachine(k, 1), nil
}

// vmBootModules are loaded when the guest boots: what iptables- and
// nftables-mode kube-proxy use (a guest has no udev, and loading them up
// front keeps the first sync from waiting on module autoloading).
var vmBootModules = []string{
	"nf_conntrack", "nf_nat", "nf_tables", "nft_compat", "nft_chain_nat", "nft_ct", "nft_nat", "nft_masq",
	"nft_numgen", "nft_fib_ipv4", "nft_reject_ipv4", "nft_limit",
	"xt_comment", "xt_mark", "xt_conntrack", "xt_addrtype", "xt_MASQUERADE", "xt_statistic", "xt_nat",
	"xt_tcpudp", "xt_multiport", "xt_physdev", "xt_set", "xt_recent",
	"dummy", "br_netfilter",
}

// vmIPVSModules are loaded before kube-proxy starts in ipvs mode.
var vmIPVSModules = []string{
	"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh",
	"ip_set", "ip_set_hash_ip", "ip_set_hash_ipport", "ip_set_hash_ipportip", "ip_set_hash_ipportnet",
	"ip_set_hash_net", "ip_set_bitmap_port",
}

// stepVMStart prepares and boots the VM client node; stepVMReady waits for
// it, so the boot overlaps the control plane's start.
func (l *Lab) stepVMStart(ctx context.Context, bins build.Binaries) error {
	st, _ := l.state()
	k, err := l.cfg.vmKernel()
	if err != nil {
		return err
	}
	qemu, err := vm.FindQEMU()
	if err != nil {
		return err
	}
	busybox := ""
	if l.cfg.VM.Initrd == "" || l.cfg.VM.Accel == "" || l.cfg.VM.Accel == vm.AccelAuto {
		if busybox, err = vm.FindBusybox(); err != nil {
			return err
		}
	}
	if strings.HasPrefix(st.KpbenchBin, "/run/") || strings.HasPrefix(st.KpbenchBin, "/dev/") {
		return fmt.Errorf("%w: the kpbench binary %s is under a directory the guest does not share; put it elsewhere", ErrBadConfig, st.KpbenchBin)
	}
	accel, why, err := vm.ChooseAccel(ctx, l.cfg.VM.Accel, qemu, busybox, k, filepath.Join(l.cfg.CacheDir, "vm"))
	if err != nil {
		return err
	}
	if accel == vm.AccelTCG {
		l.cfg.Logger.Warn("lab: the node VM runs under TCG (software emulation): figures are emulated", "why", why)
	}
	if err := os.MkdirAll(l.vmScratch(), 0o700); err != nil {
		return fmt.Errorf("creating the VM directory: %w", err)
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	vs := &VMState{
		Kernel: k, Accel: accel, AccelReason: why, QEMUVersion: vm.QEMUVersion(ctx, qemu),
		CPUs: max(len(st.NodeCPUs), 1), MemoryMiB: l.cfg.VM.MemoryMiB, Tap: vmTap, Token: hex.EncodeToString(tok),
		Initrd: l.cfg.VM.Initrd,
	}
	if vs.MemoryMiB == 0 {
		vs.MemoryMiB = DefaultVMMemoryMiB
	}
	guestCfg := filepath.Join(l.vmDir(), "guest.json")
	gc := vm.GuestConfig{
		LabDir: l.dir, Release: k.Release, Hostname: NodeName,
		Address: NodeIP.String() + "/" + strconv.Itoa(PodCIDR.Bits()), Gateway: GatewayIP.String(),
		Modules: vmBootModules, Sysctls: map[string]string{"net.netfilter.nf_conntrack_max": vmConntrackMax},
		Token: vs.Token, AgentLog: l.logPath("node-vm-agent"),
	}
	shares := []vm.Share{{Tag: vm.RootTag, Path: "/", ReadOnly: true}, {Tag: vm.LabTag, Path: l.dir}}
	if k.Modules != filepath.Join(vm.ModulesRoot, k.Release) {
		gc.ModulesTag = vm.ModulesTag
		shares = append(shares, vm.Share{Tag: vm.ModulesTag, Path: k.Modules, ReadOnly: true})
	}
	b, _ := json.MarshalIndent(gc, "", "  ")
	if err := os.WriteFile(guestCfg, b, 0o600); err != nil {
		return fmt.Errorf("writing the guest configuration: %w", err)
	}
	if vs.Initrd == "" {
		vs.Initrd = filepath.Join(l.vmDir(), "initrd.img")
		mods, err := vm.ReadModules(k.Modules)
		if err != nil {
			return err
		}
		f, err := os.Create(vs.Initrd)
		if err != nil {
			return fmt.Errorf("writing the initramfs: %w", err)
		}
		werr := vm.Initramfs{Busybox: busybox, Modules: mods, Init: []string{st.KpbenchBin, "lab", "vm-init", "--config", guestCfg}}.Write(f)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return werr
		}
	}
	// Recorded before the tap exists, so a failure from here on is undone.
	if err := l.update(func(s *State) { s.VM = vs; s.Node = NodeVM }); err != nil {
		return err
	}
	netNS := l.nsName("net")
	for _, args := range [][]string{
		{"-n", netNS, "tuntap", "add", vmTap, "mode", "tap"},
		{"-n", netNS, "link", "set", vmTap, "master", "br0", "up"},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			return err
		}
	}
	console := l.logPath("node-vm-console")
	m := vm.Machine{
		QEMU: qemu, Accel: accel, CPUs: vs.CPUs, MemoryMiB: vs.MemoryMiB,
		Kernel: k.Path, Initrd: vs.Initrd, Append: "console=ttyS0 quiet panic=-1",
		Tap: vmTap, MAC: vmMAC, Shares: shares, Console: console,
	}
	_, err = l.start(startSpec{name: CompVM, netns: netNS, cpus: st.NodeCPUs, args: m.Args()})
	return err
}

// stepVMReady waits until the guest agent answers.
func (l *Lab) stepVMReady(ctx context.Context, _ build.Binaries) error {
	st, _ := l.state()
	p, _ := st.proc(CompVM)
	c := l.vmClient(st)
	// A boot under TCG on a busy machine takes tens of seconds.
	timeout := max(l.cfg.ReadyTimeout, 3*time.Minute)
	err := waitFor(ctx, p, timeout, "booted (agent answering)", func(ctx context.Context) error {
		return c.Exec(ctx, nil, nil, nil, "true")
	})
	if err != nil {
		if tail := logTail(l.logPath("node-vm-console"), 20); tail != "" {
			err = fmt.Errorf("%w\n--- last lines of the guest console %s ---\n%s", err, l.logPath("node-vm-console"), tail)
		}
		return err
	}
	boot := time.Since(procStartTime(p))
	l.cfg.Logger.Info("lab: node VM booted", "accel", st.VM.Accel, "kernel", st.VM.Kernel.Release, "boot", boot.Round(100*time.Millisecond))
	return l.update(func(s *State) { s.VM.BootSeconds = boot.Seconds() })
}

// procStartTime is when p started, from its start time in clock ticks
// since boot.
func procStartTime(p Proc) time.Time {
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return time.Now()
	}
	f := strings.Fields(string(up))
	secs, _ := strconv.ParseFloat(f[0], 64)
	boot := time.Now().Add(-time.Duration(secs * float64(time.Second)))
	return boot.Add(time.Duration(p.StartTime) * time.Second / 100)
}

// vmClient is the guest agent's client.
func (l *Lab) vmClient(st *State) *vm.Client {
	d := netns.Dialer{NSPath: netns.Path(l.nsName("net")), Timeout: 5 * time.Second}
	addr := net.JoinHostPort(NodeIP.String(), strconv.Itoa(vm.AgentPort))
	return &vm.Client{Token: st.VM.Token, DialAgent: func(ctx context.Context) (net.Conn, error) {
		return d.DialContext(ctx, "tcp", addr)
	}}
}

// nodeAccess is the client node as the lab uses it.
type nodeAccess interface {
	clusters.ClientNode
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// node is the lab's client node: the VM's agent or the node namespace.
func (l *Lab) node() nodeAccess {
	if st, err := l.state(); err == nil && isVM(st) {
		return &vmNode{l: l}
	}
	return &clientNode{l: l}
}

// nodeHTTPClient is an HTTP client whose connections start on the node.
func nodeHTTPClient(n nodeAccess, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: n.DialContext, DisableKeepAlives: true}}
}

// vmNode is the client node in a VM, reached through its agent.
type vmNode struct{ l *Lab }

var _ clusters.ClientNode = (*vmNode)(nil)

func (n *vmNode) client() (*vm.Client, error) {
	st, err := n.l.state()
	if err != nil {
		return nil, err
	}
	if !isVM(st) {
		return nil, fmt.Errorf("lab %s has no node VM", n.l.cfg.Name)
	}
	return n.l.vmClient(st), nil
}

// Run runs a command in the guest. Its error keeps the guest command's
// exit status (an error with an ExitCode method).
func (n *vmNode) Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	if len(args) == 0 {
		return fmt.Errorf("client node: no command")
	}
	c, err := n.client()
	if err != nil {
		return err
	}
	var captured bytes.Buffer
	if stderr == nil {
		stderr = &captured
	}
	if err := c.Exec(ctx, stdin, stdout, stderr, args...); err != nil {
		msg := strings.TrimSpace(captured.String())
		if len(msg) > 2000 {
			msg = "..." + msg[len(msg)-2000:]
		}
		if msg != "" {
			return fmt.Errorf("client node (VM): %s: %w: %s", strings.Join(args, " "), err, msg)
		}
		return fmt.Errorf("client node (VM): %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// DialContext connects from inside the guest.
func (n *vmNode) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := n.client()
	if err != nil {
		return nil, err
	}
	return c.Dial(ctx, network, addr)
}

// CPUs is empty: the whole guest is the node.
func (n *vmNode) CPUs() []int { return nil }

// ProcRoot is the guest's /proc, as commands run in the guest see it.
func (n *vmNode) ProcRoot() string { return "/proc" }

// KubeProxyPID is kube-proxy's PID in the guest.
func (n *vmNode) KubeProxyPID(ctx context.Context) (int, error) {
	st, err := n.l.state()
	if err != nil {
		return 0, err
	}
	if !isVM(st) || st.VM.KubeProxy == nil {
		return 0, fmt.Errorf("kube-proxy of lab %s: %w", n.l.cfg.Name, ErrNotRunning)
	}
	ok, err := n.l.vmClient(st).Alive(ctx, *st.VM.KubeProxy)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("kube-proxy of lab %s (node VM pid %d): %w", n.l.cfg.Name, st.VM.KubeProxy.PID, ErrNotRunning)
	}
	return st.VM.KubeProxy.PID, nil
}

// KubeProxyGet fetches path from kube-proxy's metrics port in the guest.
func (n *vmNode) KubeProxyGet(ctx context.Context, path string) ([]byte, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("kube-proxy path %q must start with /", path)
	}
	url := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(KubeProxyMetrics)) + path
	body, err := httpget.Get(ctx, nodeHTTPClient(n, 10*time.Second), url)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused") {
			return nil, fmt.Errorf("kube-proxy of lab %s: %w: %w", n.l.cfg.Name, ErrNotRunning, err)
		}
		return nil, err
	}
	return body, nil
}

// Scratch is a directory this process and the guest both write, at the
// same path on both sides.
func (n *vmNode) Scratch() string { return n.l.vmScratch() }

// vmStartKubeProxy starts kube-proxy in the guest and waits until it runs
// in mode with its rules in place.
func (l *Lab) vmStartKubeProxy(ctx context.Context, mode scenarios.Mode, args []string) error {
	st, err := l.state()
	if err != nil {
		return err
	}
	c := l.vmClient(st)
	if mode == scenarios.ModeIPVS {
		// kube-proxy needs IP_VS and ipset's set types; the guest has no
		// udev and kube-proxy does not load them itself.
		var out bytes.Buffer
		if err := c.Exec(ctx, nil, &out, &out, append([]string{"modprobe", "-a"}, vmIPVSModules...)...); err != nil {
			return fmt.Errorf("loading the IPVS modules in the node VM: %w: %s", err, strings.TrimSpace(out.String()))
		}
	}
	logPath := l.logPath(CompKubeProxy)
	p, err := c.Start(ctx, logPath, args...)
	if err != nil {
		return err
	}
	if err := l.update(func(s *State) { s.VM.KubeProxy = &p; s.Mode = mode }); err != nil {
		return err
	}
	alive := func() bool {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		ok, err := c.Alive(actx, p)
		return ok || err != nil // an agent that does not answer is not a dead kube-proxy
	}
	return waitAlive(ctx, CompKubeProxy+" (node VM)", logPath, alive, l.cfg.SyncTimeout, "running in "+string(mode)+" mode", func(ctx context.Context) error {
		return l.VerifyMode(ctx, mode)
	})
}

// vmStopKubeProxy stops kube-proxy in the guest, if the lab has a VM node.
func (l *Lab) vmStopKubeProxy(ctx context.Context, st *State) error {
	if !isVM(st) || st.VM.KubeProxy == nil {
		return nil
	}
	if err := l.vmClient(st).Stop(ctx, *st.VM.KubeProxy, 10*time.Second); err != nil {
		return fmt.Errorf("stopping kube-proxy in the node VM: %w", err)
	}
	return l.update(func(s *State) { s.VM.KubeProxy = nil })
}

// vmComponents are the guest's processes as status shows them.
func (l *Lab) vmComponents(ctx context.Context, st *State) (comps []ComponentStatus, healthy bool) {
	if !isVM(st) || st.VM.KubeProxy == nil {
		return nil, true
	}
	ok, _ := l.vmClient(st).Alive(ctx, *st.VM.KubeProxy)
	return []ComponentStatus{{Name: CompKubeProxy, PID: st.VM.KubeProxy.PID, Running: ok, Netns: "node VM", Log: l.logPath(CompKubeProxy)}}, ok
}

// VMNode describes the lab's VM client node; ok is false when the node is
// not one.
func (l *Lab) VMNode(ctx context.Context) (clusters.VMNodeInfo, bool) {
	st, err := l.state()
	if err != nil || !isVM(st) {
		return clusters.VMNodeInfo{}, false
	}
	p, _ := st.proc(CompVM)
	return clusters.VMNodeInfo{Accelerator: st.VM.Accel, AccelReason: st.VM.AccelReason, HostPID: p.PID, Scratch: l.vmScratch()}, true
}

// vmDetails are run.json's provider details of a VM client node.
func vmDetails(st *State, details map[string]string) {
	if !isVM(st) {
		return
	}
	v := st.VM
	details["node"] = NodeVM
	details["nodeVMKernel"] = v.Kernel.Path + " (" + v.Kernel.Release + ")"
	details["nodeVMAccelerator"] = v.Accel
	details["nodeVMCPUs"] = strconv.Itoa(v.CPUs)
	details["nodeVMMemoryMiB"] = strconv.Itoa(v.MemoryMiB)
	details["nodeVMQEMU"] = v.QEMUVersion
	details["nodeVMBootSeconds"] = strconv.FormatFloat(v.BootSeconds, 'f', 1, 64)
}
