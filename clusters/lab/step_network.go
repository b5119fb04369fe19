package lab

// The network step: the lab's namespaces, the bridge in its own namespace
// and a veth port per namespace. Nothing goes into the root namespace.

import (
	"context"
	"fmt"
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
	for i := 0; i < l.cfg.Backends; i++ {
		if err := noTimeWait(l.nsName("b" + strconv.Itoa(i))); err != nil {
			return err
		}
	}
	return nil
}

// noTimeWait keeps a backend namespace's closed connections out of
// TIME_WAIT (tcp_max_tw_buckets 0). The backends close first, so each
// would hold a connection's tuple for 60 s; at 1,000 new connections per
// second the client's 28,000 ephemeral ports come round within that time,
// and a port reused through another Service (another ClusterIP, so another
// TCP timestamp offset on the client) meets the old tuple on the backend
// with a lower timestamp: the backend answers the SYN with an ACK, the
// client resets it and retransmits the SYN a second later — a timeout.
// With two placements taking turns, 0.1–0.2% of a point's connections
// failed that way. Real backends are seldom reached from one client port
// range at this rate; the backends are the lab's own, and what the client
// node sends and receives is unchanged (the backend still sends the FIN
// first).
func noTimeWait(ns string) error {
	return netns.Do(netns.Path(ns), nil, func() error {
		if err := os.WriteFile("/proc/sys/net/ipv4/tcp_max_tw_buckets", []byte("0"), 0o644); err != nil {
			return fmt.Errorf("backend namespace %s: no TIME_WAIT: %w", ns, err)
		}
		return nil
	})
}
