package collector

import (
	"bytes"
	"fmt"
	"os"
	"testing"
)

// bigIPTablesSave builds an iptables-save nat dump shaped like kube-proxy's
// for services × endpoints (10,000 × 10 is ~430k lines, the size the lab
// sees at its largest step).
func bigIPTablesSave(services, endpoints int) []byte {
	var b bytes.Buffer
	b.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n")
	for s := 0; s < services; s++ {
		fmt.Fprintf(&b, ":KUBE-SVC-%016X - [0:0]\n", s)
		for e := 0; e < endpoints; e++ {
			fmt.Fprintf(&b, ":KUBE-SEP-%08X%08X - [0:0]\n", s, e)
		}
	}
	b.WriteString("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n")
	for s := 0; s < services; s++ {
		fmt.Fprintf(&b, "-A KUBE-SERVICES -d 198.19.%d.%d/32 -p tcp -m comment --comment \"kpbench/svc-%05d:http cluster IP\" -m tcp --dport 80 -j KUBE-SVC-%016X\n", s/250, s%250+1, s, s)
		fmt.Fprintf(&b, "-A KUBE-SVC-%016X ! -s 198.18.0.0/16 -d 198.19.%d.%d/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ\n", s, s/250, s%250+1)
		for e := 0; e < endpoints; e++ {
			fmt.Fprintf(&b, "-A KUBE-SVC-%016X -m statistic --mode random --probability 0.1 -j KUBE-SEP-%08X%08X\n", s, s, e)
			fmt.Fprintf(&b, "-A KUBE-SEP-%08X%08X -s 198.18.1.%d/32 -j KUBE-MARK-MASQ\n", s, e, e+1)
			fmt.Fprintf(&b, "-A KUBE-SEP-%08X%08X -p tcp -m tcp -j DNAT --to-destination 198.18.1.%d:8080\n", s, e, e+1)
		}
	}
	b.WriteString("COMMIT\n")
	return b.Bytes()
}

func BenchmarkParseIPTablesSave10kServices(b *testing.B) {
	dump := bigIPTablesSave(10000, 10)
	b.SetBytes(int64(len(dump)))
	b.ReportAllocs()
	for b.Loop() {
		c, err := ParseIPTablesSave(bytes.NewReader(dump))
		if err != nil || c.KubeServices != 10000 {
			b.Fatal(c.KubeServices, err)
		}
	}
}

func BenchmarkParseNFTList(b *testing.B) {
	var l bytes.Buffer
	l.WriteString("table ip kube-proxy {\n\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t\telements = { ")
	for s := 0; s < 10000; s++ {
		if s > 0 {
			l.WriteString(",\n\t\t\t     ")
		}
		fmt.Fprintf(&l, "198.19.%d.%d . tcp . 80 : goto service-%08X-kpbench/svc-%05d/tcp/http", s/250, s%250+1, s, s)
	}
	l.WriteString(" }\n\t}\n")
	for s := 0; s < 10000; s++ {
		fmt.Fprintf(&l, "\n\tchain service-%08X-kpbench/svc-%05d/tcp/http {\n\t\tip daddr 198.19.%d.%d tcp dport 80 ip saddr != 198.18.0.0/16 jump mark-for-masquerade\n\t\tnumgen random mod 10 vmap { 0 : goto a, 1 : goto b, 2 : goto c }\n\t}\n", s, s, s/250, s%250+1)
	}
	l.WriteString("}\n")
	text := l.Bytes()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		c, err := ParseNFTList(bytes.NewReader(text))
		if err != nil || c.MapElements != 10000 || c.Rules != 20000 {
			b.Fatal(c.MapElements, c.Rules, err)
		}
	}
}

// BenchmarkSnapshot is the sampler's cost per reading on this machine:
// /proc/stat plus one /proc/PID/stat.
func BenchmarkSnapshot(b *testing.B) {
	fs, err := NewFS("/proc")
	if err != nil {
		b.Fatal(err)
	}
	pid := []int{os.Getpid()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fs.Snapshot(nil, pid); err != nil {
			b.Fatal(err)
		}
	}
}
