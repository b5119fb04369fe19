package existing

import (
	"context"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/scenarios"
)

// The target's depth on kind and existing clusters is read through the
// agent pod: iptables-save and nft run from the node's root filesystem and
// see the node's rules.
func TestAgentNodeReadsDepth(t *testing.T) {
	ipt, err := os.ReadFile("../../collector/testdata/lab/iptables-save-nat-20svc.txt")
	if err != nil {
		t.Fatal(err)
	}
	nft, err := os.ReadFile("../../collector/testdata/lab/nft-list-table-ip-kube-proxy-20svc.txt")
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeCluster(t)
	f.addAgentPod("agent-a", "node-a")
	var ran []string
	ex := &scriptedExecer{fn: func(cmd []string, stdout, stderr io.Writer) error {
		ran = append(ran, strings.Join(cmd, " "))
		switch strings.Join(cmd, " ") {
		case "/kpbench cluster agent host -- iptables-save -t nat":
			_, err := stdout.Write(ipt)
			return err
		case "/kpbench cluster agent host -- nft list table ip kube-proxy":
			_, err := stdout.Write(nft)
			return err
		}
		return &ExitError{Cmd: cmd, Code: 127}
	}}
	n := NewAgentNode(f.cs, ex)
	run := kubeproxy.NodeRunner(n.Run)
	svc008 := collector.ServicePort{IP: netip.MustParseAddr("198.19.205.122"), Port: 80, Proto: "tcp"}

	c, err := collector.ReadServiceChain(context.Background(), scenarios.ModeIPTables, run)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.Depth(svc008); err != nil || d != 21 || c.Length != 22 {
		t.Errorf("iptables through the agent: depth %d of %d, %v; want 21 of 22", d, c.Length, err)
	}
	c, err = collector.ReadServiceChain(context.Background(), scenarios.ModeNFTables, run)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := c.Depth(svc008); err != nil || d != 0 || !strings.Contains(c.Via(svc008), "vmap @service-ips") {
		t.Errorf("nftables through the agent: depth %d via %q, %v", d, c.Via(svc008), err)
	}
	if len(ran) != 2 {
		t.Errorf("ran %q", ran)
	}
}
