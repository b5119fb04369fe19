package lab

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/scenarios"
)

// ErrLeftoverState is wrapped when, after a mode switch, the client node
// still holds state of another mode.
var ErrLeftoverState = fmt.Errorf("state of another proxy mode left behind")

// otherModeState lists what the client node holds of modes other than
// mode: IPVS's kube-ipvs0 device, KUBE- ipsets and virtual servers
// outside ipvs mode; kube-proxy's nftables table outside nftables mode;
// KUBE- iptables chains in nftables mode, and iptables mode's per-Service
// chains in ipvs mode. A tool or kernel feature the node lacks (ipset
// without ip_set, /proc/net/ip_vs without IP_VS) means none of that state.
func otherModeState(ctx context.Context, node clusters.ClientNode, mode scenarios.Mode) []string {
	out := func(args ...string) (string, bool) {
		var b bytes.Buffer
		if err := node.Run(ctx, nil, &b, nil, args...); err != nil {
			return "", false
		}
		return b.String(), true
	}
	var left []string
	if mode != scenarios.ModeIPVS {
		if _, ok := out("ip", "-o", "link", "show", "kube-ipvs0"); ok {
			left = append(left, "the kube-ipvs0 device (IPVS Service addresses)")
		}
		if s, ok := out("ipset", "list", "-n"); ok {
			if sets := prefixed(s, "KUBE-"); len(sets) > 0 {
				left = append(left, "ipsets "+strings.Join(sets, ", "))
			}
		}
		if s, ok := out("cat", "/proc/net/ip_vs"); ok {
			if n := kubeproxy.IPVSVirtualServers(s); n > 0 {
				left = append(left, fmt.Sprintf("%d IPVS virtual servers", n))
			}
		}
	}
	if mode != scenarios.ModeNFTables {
		if s, ok := out("nft", "list", "tables"); ok {
			for _, t := range []string{"table ip kube-proxy", "table ip6 kube-proxy"} {
				if strings.Contains(s, t) {
					left = append(left, "nftables "+t)
				}
			}
		}
	}
	if s, ok := out("iptables-save"); ok {
		var chains []string
		switch mode {
		case scenarios.ModeNFTables:
			chains = prefixed(s, ":KUBE-")
		case scenarios.ModeIPVS:
			chains = append(prefixed(s, ":KUBE-SVC-"), prefixed(s, ":KUBE-SEP-")...)
		}
		if len(chains) > 0 {
			if len(chains) > 5 {
				chains = append(chains[:5], fmt.Sprintf("and %d more", len(chains)-5))
			}
			left = append(left, "iptables chains "+strings.Join(chains, ", "))
		}
	}
	return left
}

// prefixed returns the first words of the lines of s that start with
// prefix, without a leading ':'.
func prefixed(s, prefix string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, strings.TrimPrefix(strings.Fields(line)[0], ":"))
		}
	}
	return out
}
