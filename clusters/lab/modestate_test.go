package lab

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/scenarios"
)

// cannedNode answers commands from a table; a command not in it fails.
type cannedNode struct {
	clusters.ClientNode
	out map[string]string
}

func (n cannedNode) Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	s, ok := n.out[strings.Join(args, " ")]
	if !ok {
		return errors.New("exit status 1")
	}
	if stdout != nil {
		io.WriteString(stdout, s)
	}
	return nil
}

func TestOtherModeState(t *testing.T) {
	ipvsLeft := cannedNode{out: map[string]string{
		"ip -o link show kube-ipvs0": "5: kube-ipvs0: <BROADCAST,NOARP> mtu 1500",
		"ipset list -n":              "KUBE-CLUSTER-IP\nKUBE-LOOP-BACK\nother\n",
		"cat /proc/net/ip_vs":        "IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\nTCP  C6130001:01BB rr\n  -> C6120002:192B      Masq    1      0          0\n",
		"nft list tables":            "table ip nat\ntable ip filter\n",
		"iptables-save":              "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n",
	}}
	left := otherModeState(context.Background(), ipvsLeft, scenarios.ModeNFTables)
	got := strings.Join(left, "; ")
	for _, want := range []string{"kube-ipvs0", "ipsets KUBE-CLUSTER-IP, KUBE-LOOP-BACK", "1 IPVS virtual servers", "iptables chains KUBE-SERVICES"} {
		if !strings.Contains(got, want) {
			t.Errorf("leftovers %q lack %q", got, want)
		}
	}
	if strings.Contains(got, "other") {
		t.Errorf("a set that is not kube-proxy's counted: %q", got)
	}
	// In iptables mode KUBE- chains are its own; the IPVS state is not.
	left = otherModeState(context.Background(), ipvsLeft, scenarios.ModeIPTables)
	if got := strings.Join(left, "; "); strings.Contains(got, "iptables chains") || !strings.Contains(got, "kube-ipvs0") {
		t.Errorf("iptables mode leftovers: %q", got)
	}

	clean := cannedNode{out: map[string]string{
		"ipset list -n":   "\n",
		"nft list tables": "table ip kube-proxy\n",
		"iptables-save":   "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-ABC - [0:0]\nCOMMIT\n",
	}}
	if left := otherModeState(context.Background(), clean, scenarios.ModeNFTables); len(left) != 1 || !strings.Contains(left[0], "KUBE-SERVICES") {
		t.Errorf("nftables mode: %q", left)
	}
	// ipvs mode: iptables mode's per-Service chains and the nftables
	// table are another mode's; ipset and /proc/net/ip_vs failing is fine.
	left = otherModeState(context.Background(), clean, scenarios.ModeIPVS)
	if got := strings.Join(left, "; "); !strings.Contains(got, "KUBE-SVC-ABC") || !strings.Contains(got, "table ip kube-proxy") || strings.Contains(got, "KUBE-SERVICES") {
		t.Errorf("ipvs mode leftovers: %q", got)
	}
	none := cannedNode{out: map[string]string{"iptables-save": "", "nft list tables": "table ip kube-proxy\n"}}
	if left := otherModeState(context.Background(), none, scenarios.ModeNFTables); len(left) != 0 {
		t.Errorf("a clean nftables node: %q", left)
	}
}
