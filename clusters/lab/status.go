package lab

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kpbench/kpbench/clusters/lab/netns"
	"github.com/kpbench/kpbench/internal/cpuset"
	"github.com/kpbench/kpbench/scenarios"
)

// Status is what `kpbench lab status` shows.
type Status struct {
	Name  string `json:"name"`
	Phase string `json:"phase"`
	// Healthy is true when the phase is up and every component runs.
	Healthy          bool              `json:"healthy"`
	Mode             scenarios.Mode    `json:"mode,omitempty"`
	KubernetesVer    string            `json:"kubernetesVersion,omitempty"`
	KubeProxyVer     string            `json:"kubeProxyVersion,omitempty"`
	EtcdVersion      string            `json:"etcdVersion,omitempty"`
	IPTablesBackend  string            `json:"iptablesBackend,omitempty"`
	Kubeconfig       string            `json:"kubeconfig"`
	APIServerURL     string            `json:"apiServerURL,omitempty"`
	StateDir         string            `json:"stateDir"`
	BinDir           string            `json:"binDir,omitempty"`
	NodeCPUs         []int             `json:"nodeCPUs"`
	OtherCPUs        []int             `json:"otherCPUs"`
	Backends         []string          `json:"backends"`
	Namespaces       []NamespaceStatus `json:"namespaces"`
	Components       []ComponentStatus `json:"components"`
	UnavailableModes map[string]string `json:"unavailableModes,omitempty"`
	// Node describes a VM client node (absent for a netns node).
	Node *NodeVMStatus `json:"nodeVM,omitempty"`
	// HeldBy is the run that holds the lab (absent when none does).
	HeldBy *Hold `json:"heldBy,omitempty"`
}

// NodeVMStatus is a VM client node.
type NodeVMStatus struct {
	Accel         string  `json:"accel"`
	AccelReason   string  `json:"accelReason,omitempty"`
	Kernel        string  `json:"kernel"`
	KernelRelease string  `json:"kernelRelease"`
	Modules       string  `json:"modules"`
	CPUs          int     `json:"cpus"`
	MemoryMiB     int     `json:"memoryMiB"`
	BootSeconds   float64 `json:"bootSeconds,omitempty"`
	QEMU          string  `json:"qemu,omitempty"`
}

// NamespaceStatus is one of the lab's network namespaces.
type NamespaceStatus struct {
	Name   string `json:"name"`
	Exists bool   `json:"exists"`
}

// ComponentStatus is one process of the lab.
type ComponentStatus struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Running bool   `json:"running"`
	Netns   string `json:"netns,omitempty"`
	CPUs    []int  `json:"cpus,omitempty"`
	Log     string `json:"log"`
}

// Status reports the lab's components, mode, versions and addresses. It
// wraps ErrNotFound when the lab does not exist.
func (l *Lab) Status(ctx context.Context) (Status, error) {
	l.mu.Lock()
	l.st = nil
	l.mu.Unlock()
	st, err := l.state()
	if err != nil {
		return Status{}, err
	}
	s := Status{
		Name: st.Name, Phase: st.Phase, Mode: st.Mode,
		KubernetesVer: st.K8sVersion, KubeProxyVer: st.KubeProxyVer, EtcdVersion: st.EtcdVersion,
		IPTablesBackend: st.IPTablesBackend,
		Kubeconfig:      st.Kubeconfig, APIServerURL: st.APIServerURL, StateDir: l.dir, BinDir: st.BinDir,
		NodeCPUs: st.NodeCPUs, OtherCPUs: st.OtherCPUs, Backends: st.Backends,
	}
	healthy := st.Phase == PhaseUp
	for _, n := range st.Namespaces {
		ok := netns.Exists(n)
		healthy = healthy && ok
		s.Namespaces = append(s.Namespaces, NamespaceStatus{Name: n, Exists: ok})
	}
	for _, p := range st.Procs {
		alive := p.Alive()
		healthy = healthy && alive
		s.Components = append(s.Components, ComponentStatus{Name: p.Name, PID: p.PID, Running: alive, Netns: p.Netns, CPUs: p.CPUs, Log: p.Log})
	}
	vmComps, vmOK := l.vmComponents(ctx, st)
	s.Components = append(s.Components, vmComps...)
	s.Healthy = healthy && vmOK && len(st.Procs) > 0
	if isVM(st) {
		v := st.VM
		s.Node = &NodeVMStatus{Accel: v.Accel, AccelReason: v.AccelReason, Kernel: v.Kernel.Path, KernelRelease: v.Kernel.Release,
			Modules: v.Kernel.Modules, CPUs: v.CPUs, MemoryMiB: v.MemoryMiB, BootSeconds: v.BootSeconds, QEMU: v.QEMUVersion}
	}
	if s.HeldBy, err = l.HeldBy(); err != nil {
		return Status{}, err
	}
	caps, _ := l.Capabilities(ctx)
	for m, reason := range caps.Modes {
		if reason != "" {
			if s.UnavailableModes == nil {
				s.UnavailableModes = map[string]string{}
			}
			s.UnavailableModes[string(m)] = reason
		}
	}
	return s, nil
}

// WriteText writes s for people.
func (s Status) WriteText(w io.Writer) error {
	health := "healthy"
	if !s.Healthy {
		health = "NOT healthy"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "lab\t%s (%s, %s)\n", s.Name, s.Phase, health)
	fmt.Fprintf(tw, "mode\t%s\n", s.Mode)
	fmt.Fprintf(tw, "versions\tkubernetes %s, kube-proxy %s, etcd %s, iptables backend %s\n", orDash(s.KubernetesVer), orDash(s.KubeProxyVer), orDash(s.EtcdVersion), orDash(s.IPTablesBackend))
	fmt.Fprintf(tw, "kubeconfig\t%s\n", s.Kubeconfig)
	fmt.Fprintf(tw, "apiserver\t%s (forwarded from the cp namespace)\n", orDash(s.APIServerURL))
	fmt.Fprintf(tw, "node CPUs\t%s (everything else on %s)\n", orDash(cpuset.Format(s.NodeCPUs)), orDash(cpuset.Format(s.OtherCPUs)))
	if v := s.Node; v != nil {
		accel := v.Accel
		if v.Accel == "tcg" {
			accel = "tcg (software emulation: figures are emulated)"
		}
		fmt.Fprintf(tw, "node\tVM: kernel %s (%s), %d vCPU, %d MiB, %s, booted in %.1fs\n", v.KernelRelease, v.Kernel, v.CPUs, v.MemoryMiB, accel, v.BootSeconds)
	}
	fmt.Fprintf(tw, "backends\t%s\n", strings.Join(s.Backends, " "))
	fmt.Fprintf(tw, "state\t%s\n", s.StateDir)
	if h := s.HeldBy; h != nil {
		fmt.Fprintf(tw, "held by\trun %s (kpbench pid %d, since %s%s): commands that change the lab refuse without --force\n",
			h.RunID, h.Process.PID, h.Since.Local().Format(time.DateTime), withPrefix(", results in ", h.RunDir))
	}
	for m, r := range s.UnavailableModes {
		fmt.Fprintf(tw, "mode %s\tunavailable: %s\n", m, r)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tPID\tSTATE\tNETNS\tCPUS\tLOG")
	for _, c := range s.Components {
		state := "running"
		if !c.Running {
			state = "STOPPED"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", c.Name, c.PID, state, orDash(c.Netns), orDash(cpuset.Format(c.CPUs)), c.Log)
	}
	return tw.Flush()
}

// withPrefix returns p+s, or "" when s is empty.
func withPrefix(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
