package lab

// The network step: the lab's namespaces, the bridge in its own namespace
// and a veth port per namespace. Nothing goes into the root namespace.

import (
	"context"
	"os"
	"strconv"

	"github.com/kpbench/kpbench/clusters/lab/build"
	"github.com/kpbench/kpbench/clusters/lab/netns"
)

func ipCmd(ctx context.Context, args ...string) error {
	_, err := netns.Run(ctx, "ip", args...)
	return err
}

func (l *Lab) stepNetwork(ctx context.Context, _ build.Binaries) error {
	type member struct{ short, ns, ip string }
	members := []member{{"cp", l.nsName("cp"), APIServerIP.String()}}
	if l.cfg.Node != NodeVM { // a VM node's NIC is a tap device (stepVMStart)
		members = append(members, member{"node", l.nsName("node"), NodeIP.String()})
	}
	for i := 0; i < l.cfg.Backends; i++ {
		s := "b" + strconv.Itoa(i)
		members = append(members, member{s, l.nsName(s), BackendIP(i).String()})
	}
	netNS := l.nsName("net")
	all := []string{netNS}
	for _, m := range members {
		all = append(all, m.ns)
	}
	for _, ns := range all {
		if err := l.update(func(s *State) { s.Namespaces = append(s.Namespaces, ns) }); err != nil {
			return err
		}
		if err := netns.Add(ctx, ns); err != nil {
			return err
		}
	}
	bits := strconv.Itoa(PodCIDR.Bits())
	for _, args := range [][]string{
		{"-n", netNS, "link", "set", "lo", "up"},
		{"-n", netNS, "link", "add", "br0", "type", "bridge"},
		{"-n", netNS, "addr", "add", GatewayIP.String() + "/" + bits, "dev", "br0"},
		{"-n", netNS, "link", "set", "br0", "up"},
	} {
		if err := ipCmd(ctx, args...); err != nil {
			return err
		}
	}
	// The bridge is the lab's switch: keep bridged frames out of netfilter.
	_ = netns.Do(netns.Path(netNS), nil, func() error {
		return os.WriteFile("/proc/sys/net/bridge/bridge-nf-call-iptables", []byte("0"), 0o644)
	})
	for _, m := range members {
		for _, args := range [][]string{
			{"-n", netNS, "link", "add", m.short, "type", "veth", "peer", "name", "eth0", "netns", m.ns},
			{"-n", netNS, "link", "set", m.short, "master", "br0", "up"},
			{"-n", m.ns, "link", "set", "lo", "up"},
			{"-n", m.ns, "addr", "add", m.ip + "/" + bits, "dev", "eth0"},
			{"-n", m.ns, "link", "set", "eth0", "up"},
			{"-n", m.ns, "route", "add", "default", "via", GatewayIP.String()},
		} {
			if err := ipCmd(ctx, args...); err != nil {
				return err
			}
		}
	}
	return nil
}
