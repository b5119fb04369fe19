package kubeproxy

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/kpbench/kpbench/scenarios"
)

// Mode describes one kube-proxy mode: what it needs, how to tell it runs,
// and where its rules are read. A new mode is one entry in modes.
type Mode struct {
	Name scenarios.Mode
	// Tools are the commands kube-proxy runs on the node in this mode.
	Tools []string
	// MinKernel is the oldest kernel release the mode runs on ("" = any).
	MinKernel string
	// MinKubeProxy is the oldest kube-proxy that has the mode (GA or on by
	// default; "" = any).
	MinKubeProxy string
	// NeedsIPVS is true when the kernel must have IP_VS (IPVSAvailable).
	NeedsIPVS bool
	// Present are the checks that kube-proxy's rules of this mode are in
	// place on the node; all must pass (VerifyRules).
	Present []Check
	// List is the command that lists the mode's rules on the node. The
	// collector counts them from its output (CountRules) and, where
	// Depth.Read is set, reads the target's depth from it.
	List []string
	// Depth says where a new connection's target depth comes from.
	Depth Depth
}

// Check is one sign that a mode's rules are in place: Args run on the
// node must succeed, and print Want when it is set.
type Check struct {
	Args []string
	Want string
	// What names what is missing when the check fails.
	What string
}

// Depth is how a new connection finds its Service in a mode, and so what
// "the target's depth" means there.
type Depth struct {
	// Walk is true when the first packet walks a chain rule by rule until
	// its Service's rule matches (iptables: nat KUBE-SERVICES, written in
	// random order at every sync): the depth is that rule's 1-based index.
	// Otherwise the Service is found by a lookup and the depth is 0.
	Walk bool
	// Read is true when the depth (or the lookup's path) is read from
	// List's output; the collector's parser for the mode does it
	// (collector.ReadServiceChain).
	Read bool
	// Where names the chain walked or the lookup done.
	Where string
}

// modes is every mode kube-proxy runs in and kpbench measures.
var modes = map[scenarios.Mode]Mode{
	scenarios.ModeIPTables: {
		Name:  scenarios.ModeIPTables,
		Tools: []string{"ip", "iptables", "iptables-save", "iptables-restore"},
		Present: []Check{
			{Args: []string{"iptables-save", "-t", "nat"}, Want: ":KUBE-SERVICES ", What: "KUBE-SERVICES chain in the nat table"},
		},
		List:  []string{"iptables-save", "-t", "nat"},
		Depth: Depth{Walk: true, Read: true, Where: "nat KUBE-SERVICES, one rule per Service port"},
	},
	scenarios.ModeIPVS: {
		Name:      scenarios.ModeIPVS,
		Tools:     []string{"ip", "iptables", "iptables-save", "iptables-restore", "ipset", "ipvsadm"},
		NeedsIPVS: true,
		Present: []Check{
			{Args: []string{"iptables-save", "-t", "nat"}, Want: ":KUBE-SERVICES ", What: "KUBE-SERVICES chain in the nat table"},
			// kube-proxy binds every ClusterIP it programs as a virtual
			// server to kube-ipvs0, and the kubernetes Service is always
			// there: an address on the device means a synced kube-proxy.
			// (ip is on every node; ipvsadm, which would list the virtual
			// servers, is not.)
			{Args: []string{"ip", "-4", "addr", "show", "dev", "kube-ipvs0"}, Want: " inet ", What: "kube-ipvs0 device with a Service address"},
		},
		List:  []string{"ipvsadm", "-Ln"},
		Depth: Depth{Where: "IPVS virtual-server hash lookup"},
	},
	scenarios.ModeNFTables: {
		Name:         scenarios.ModeNFTables,
		Tools:        []string{"ip", "nft"},
		MinKernel:    "5.13",
		MinKubeProxy: "v1.31",
		Present: []Check{
			{Args: []string{"nft", "list", "table", "ip", "kube-proxy"}, Want: "chain services", What: "services chain in nftables table ip kube-proxy"},
		},
		List:  []string{"nft", "list", "table", "ip", "kube-proxy"},
		Depth: Depth{Read: true, Where: "service-ips verdict map lookup"},
	},
}

// For returns mode's descriptor; ok is false for a mode kube-proxy does
// not run in (external).
func For(mode scenarios.Mode) (Mode, bool) {
	m, ok := modes[mode]
	if ok {
		m.Tools = append([]string(nil), m.Tools...)
		m.Present = append([]Check(nil), m.Present...)
		m.List = append([]string(nil), m.List...)
	}
	return m, ok
}

// Host is what availability looks at on the node: its tools, its kernel
// release and whether the kernel has IP_VS. A nil func is not checked.
type Host struct {
	LookPath      func(file string) (string, error)
	KernelRelease string
	IPVS          func() (ok bool, reason string)
}

// InstallHint says how to get the tools the modes need.
const InstallHint = "install with hack/deps.sh or apt-get install iptables nftables ipset ipvsadm"

// Unavailable says why the mode cannot run on h, or "" when it can.
func (m Mode) Unavailable(h Host) string {
	if m.NeedsIPVS && h.IPVS != nil {
		if ok, reason := h.IPVS(); !ok {
			return reason
		}
	}
	if h.LookPath != nil {
		var gone []string
		for _, t := range m.Tools {
			if _, err := h.LookPath(t); err != nil {
				gone = append(gone, t)
			}
		}
		if len(gone) > 0 {
			return "missing " + strings.Join(gone, ", ") + " (" + InstallHint + ")"
		}
	}
	if m.MinKernel != "" && h.KernelRelease != "" && !AtLeast(h.KernelRelease, m.MinKernel) {
		return fmt.Sprintf("kernel %s is older than %s, which kube-proxy's %s mode needs", h.KernelRelease, m.MinKernel, m.Name)
	}
	return ""
}

// KubeProxyTooOld says why kube-proxy of version cannot run the mode, or
// "" when it can (or the version is unknown).
func (m Mode) KubeProxyTooOld(version string) string {
	if m.MinKubeProxy == "" || version == "" || AtLeast(version, m.MinKubeProxy) {
		return ""
	}
	return fmt.Sprintf("%s mode needs kube-proxy %s or later (this one is %s)", m.Name, m.MinKubeProxy, version)
}

// VerifyRules runs the mode's checks through run; the first that fails is
// an error wrapping ErrModeMismatch.
func VerifyRules(ctx context.Context, run Runner, mode scenarios.Mode) error {
	m, ok := For(mode)
	if !ok {
		return fmt.Errorf("no rule check for mode %q", mode)
	}
	for _, c := range m.Present {
		out, err := run(ctx, c.Args...)
		if err != nil {
			return fmt.Errorf("no %s yet: %w: %w", c.What, ErrModeMismatch, err)
		}
		if c.Want != "" && !bytes.Contains(out, []byte(c.Want)) {
			return fmt.Errorf("no %s yet (%s shows no %q): %w", c.What, strings.Join(c.Args, " "), c.Want, ErrModeMismatch)
		}
	}
	return nil
}

// Verify checks that kube-proxy on a node runs in mode: it answers
// /proxyMode with mode (through get) and the mode's rules are in place
// (through run). Errors wrap ErrModeMismatch when kube-proxy answers but
// another mode or no rules are there.
func Verify(ctx context.Context, get Fetch, run Runner, mode scenarios.Mode) error {
	if err := CheckProxyMode(ctx, get, mode); err != nil {
		return err
	}
	return VerifyRules(ctx, run, mode)
}
