package churn

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// This file reads what kube-proxy's rules say of one Service, in the
// layout kube-proxy v1.36 writes (pkg/proxy/iptables/proxier.go and
// pkg/proxy/nftables/proxier.go):
//
//   - iptables: nat KUBE-SERVICES holds one rule per Service port with
//     endpoints, "-d <ClusterIP>/32 -p tcp --dport <port> -j KUBE-SVC-<hash>"
//     (a Service without endpoints has none there, only a REJECT rule in the
//     filter table). KUBE-SVC-<hash> jumps to one KUBE-SEP-<hash> chain per
//     endpoint, each of which DNATs to the endpoint. Chain names are
//     sha256 hashes of the service port name (and of the endpoint), so the
//     chains of one Service can be named without listing anything.
//   - nftables: the service-ips verdict map maps "<ClusterIP> . tcp .
//     <port>" to "goto service-<hash>-<ns>/<name>/tcp/<port name>" for a
//     Service with endpoints; that chain DNATs through an anonymous map
//     "numgen random mod N map { 0 : <ip> . <port>, ... }" (or, with
//     session affinity, jumps to endpoint-... chains that each DNAT).
//   - ipvs: one virtual server per ClusterIP:port, its endpoints as real
//     servers (weight 0 while a removed endpoint drains).

// ServiceRef names one Service port whose rules are read.
type ServiceRef struct {
	Namespace, Name, ClusterIP string
	Port                       int32
	// PortName is the Service port's name: "" for an unnamed port (the
	// scaler's Services have one unnamed TCP port). Protocol is the
	// port's protocol, "" meaning TCP.
	PortName, Protocol string
}

// String is namespace/name[:port name] @ ClusterIP:port/protocol.
func (s ServiceRef) String() string {
	return fmt.Sprintf("%s @ %s", s.portName(), s.key())
}

// Service is namespace/name, as runs.ChurnChange.Service spells it.
func (s ServiceRef) Service() string { return s.Namespace + "/" + s.Name }

// portName is kube-proxy's ServicePortName.String(): namespace/name, with
// ":<port name>" when the port is named.
func (s ServiceRef) portName() string {
	n := s.Namespace + "/" + s.Name
	if s.PortName != "" {
		n += ":" + s.PortName
	}
	return n
}

// proto is the lower-case protocol kube-proxy hashes and writes.
func (s ServiceRef) proto() string {
	if s.Protocol == "" {
		return "tcp"
	}
	return strings.ToLower(s.Protocol)
}

// key identifies the ClusterIP:port/protocol the rules match on.
func (s ServiceRef) key() string {
	return ruleKey(s.ClusterIP, strconv.Itoa(int(s.Port)), s.proto())
}

func ruleKey(ip, port, proto string) string {
	if a, err := netip.ParseAddr(ip); err == nil {
		ip = a.String()
	}
	return net.JoinHostPort(ip, port) + "/" + strings.ToLower(proto)
}

// ServiceRules is what the node's rules say of one Service.
type ServiceRules struct {
	// Present is true when the Service's ClusterIP leads somewhere: nat
	// KUBE-SERVICES has its rule (iptables), service-ips has its element
	// (nftables), its virtual server has a real server of weight > 0
	// (ipvs). kube-proxy writes none of these for a Service without
	// endpoints.
	Present bool
	// Endpoints are the addresses (IP:port) the Service's rules DNAT to,
	// sorted; empty when not Present.
	Endpoints []string
}

// ErrRules is wrapped when a listing is not what kube-proxy's layout
// leads to expect (a ServiceRef whose port name or protocol is wrong, a
// Service with a Local traffic policy, another kube-proxy version).
var ErrRules = errors.New("rules not in kube-proxy's layout")

// hash16 is kube-proxy's portProtoHash: base32(sha256(s))[:16].
func hash16(s string) string {
	h := sha256.Sum256([]byte(s))
	return base32.StdEncoding.EncodeToString(h[:])[:16]
}

// IPTablesServiceChain is the KUBE-SVC-* chain kube-proxy's iptables
// proxier writes for svc (servicePortPolicyClusterChain).
func IPTablesServiceChain(svc ServiceRef) string {
	return "KUBE-SVC-" + hash16(svc.portName()+svc.proto())
}

// IPTablesEndpointChain is the KUBE-SEP-* chain of one endpoint (IP:port)
// of svc (servicePortEndpointChainName).
func IPTablesEndpointChain(svc ServiceRef, endpoint string) string {
	return "KUBE-SEP-" + hash16(svc.portName()+svc.proto()+endpoint)
}

// nftNameBaseMax is kube-proxy's chainNameBaseLengthMax: knftables'
// 256-character name limit less the longest prefix (16).
const nftNameBaseMax = 256 - 16

// nftHashAndTruncate is kube-proxy's hashAndTruncate.
func nftHashAndTruncate(name string) string {
	h := sha256.Sum256([]byte(name))
	name = base32.StdEncoding.EncodeToString(h[:])[:8] + "-" + name
	if len(name) > nftNameBaseMax {
		name = name[:nftNameBaseMax-3] + "..."
	}
	return name
}

// NFTServiceChain is the service-* chain kube-proxy's nftables proxier
// writes for svc (servicePortChainNameBase with the cluster policy prefix).
func NFTServiceChain(svc ServiceRef) string {
	return "service-" + nftHashAndTruncate(fmt.Sprintf("%s/%s/%s/%s", svc.Namespace, svc.Name, svc.proto(), svc.PortName))
}

// ParseIPTablesServices reads nat KUBE-SERVICES, as `iptables -t nat -S
// KUBE-SERVICES` or iptables-save prints it, into the chain each
// ClusterIP:port/protocol jumps to. The first rule of a destination wins,
// as it does for a packet.
func ParseIPTablesServices(out []byte) (map[string]string, error) {
	m := map[string]string{}
	declared := false
	sc := lineScanner(out)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "-N KUBE-SERVICES" || strings.HasPrefix(line, ":KUBE-SERVICES "):
			declared = true
		case strings.HasPrefix(line, "-A KUBE-SERVICES "):
			declared = true
			f := splitRule(line)
			dst, proto, dport, jump := "", "tcp", "", ""
			for i := 0; i+1 < len(f); i++ {
				switch f[i] {
				case "-d", "--destination":
					dst = f[i+1]
				case "-p", "--protocol":
					proto = f[i+1]
				case "--dport", "--destination-port":
					dport = f[i+1]
				case "-j", "--jump":
					jump = f[i+1]
				}
			}
			ip, bits, _ := strings.Cut(dst, "/")
			if ip == "" || dport == "" || jump == "" || (bits != "" && bits != "32" && bits != "128") {
				continue // the nodeports rule, or not a ClusterIP rule
			}
			k := ruleKey(ip, dport, proto)
			if _, dup := m[k]; !dup {
				m[k] = jump
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !declared {
		return nil, fmt.Errorf("%w: no nat KUBE-SERVICES chain in the listing", ErrRules)
	}
	return m, nil
}

// IPTablesJump is one rule of a KUBE-SVC-* chain that leads to an
// endpoint chain, and the endpoint its comment names (kube-proxy drops
// these comments above 1,000 endpoints, its "large cluster mode").
type IPTablesJump struct {
	Chain    string
	Endpoint string
}

// ParseIPTablesServiceChain reads `iptables -t nat -S KUBE-SVC-...`: the
// KUBE-SEP-* chains it jumps to, in order, each once (session affinity
// writes a second rule per endpoint).
func ParseIPTablesServiceChain(out []byte, chain string) ([]IPTablesJump, error) {
	var jumps []IPTablesJump
	seen := map[string]bool{}
	declared := false
	sc := lineScanner(out)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "-N "+chain {
			declared = true
			continue
		}
		if !strings.HasPrefix(line, "-A "+chain+" ") {
			continue
		}
		declared = true
		f := splitRule(line)
		var j IPTablesJump
		for i := 0; i+1 < len(f); i++ {
			switch f[i] {
			case "-j", "--jump":
				j.Chain = f[i+1]
			case "--comment":
				if _, ep, ok := strings.Cut(f[i+1], " -> "); ok {
					j.Endpoint = strings.TrimSpace(ep)
				}
			}
		}
		if !strings.HasPrefix(j.Chain, "KUBE-SEP-") || seen[j.Chain] {
			continue // KUBE-MARK-MASQ, or the affinity rule's twin
		}
		seen[j.Chain] = true
		jumps = append(jumps, j)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !declared {
		return nil, fmt.Errorf("%w: the listing holds no chain %s", ErrRules, chain)
	}
	return jumps, nil
}

// ParseIPTablesEndpointChain reads `iptables -t nat -S KUBE-SEP-...`: the
// address its DNAT rule sends to.
func ParseIPTablesEndpointChain(out []byte, chain string) (string, error) {
	sc := lineScanner(out)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "-A "+chain+" ") {
			continue
		}
		f := splitRule(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "--to-destination" {
				return f[i+1], nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%w: chain %s has no DNAT rule", ErrRules, chain)
}

// nftServiceIPs is the verdict map kube-proxy looks ClusterIPs up in.
const nftServiceIPs = "service-ips"

// ParseNFTServiceIPs reads the service-ips map, as `nft list map ip
// kube-proxy service-ips` or `nft list table ip kube-proxy` prints it,
// into the chain each ClusterIP:port/protocol goes to.
func ParseNFTServiceIPs(out []byte) (map[string]string, error) {
	body, found := nftBlock(out, "map "+nftServiceIPs+" {")
	if !found {
		return nil, fmt.Errorf("%w: no %s map in the listing", ErrRules, nftServiceIPs)
	}
	m := map[string]string{}
	_, elems, ok := strings.Cut(body, "elements = {")
	if !ok {
		return m, nil // an empty map lists no elements
	}
	if i := strings.Index(elems, "}"); i >= 0 {
		elems = elems[:i]
	}
	for _, el := range strings.Split(elems, ",") {
		k, v, ok := strings.Cut(el, " : ")
		if !ok {
			continue
		}
		parts := strings.Split(strings.TrimSpace(k), " . ")
		vf := strings.Fields(v)
		if len(parts) != 3 || len(vf) != 2 || (vf[0] != "goto" && vf[0] != "jump") {
			return nil, fmt.Errorf("%w: %s element %q", ErrRules, nftServiceIPs, strings.TrimSpace(el))
		}
		m[ruleKey(strings.TrimSpace(parts[0]), strings.TrimSpace(parts[2]), strings.TrimSpace(parts[1]))] = vf[1]
	}
	return m, nil
}

// ParseNFTServiceChain reads `nft list chain ip kube-proxy service-...`:
// the endpoints (IP:port) its DNAT map holds, or, with session affinity,
// those its endpoint chains stand for (their names end in
// "__<ip>/<port>"). A chain kube-proxy flushed (stale, deleted later) has
// none.
func ParseNFTServiceChain(out []byte, chain string) ([]string, error) {
	body, found := nftBlock(out, "chain "+chain+" {")
	if !found {
		return nil, fmt.Errorf("%w: the listing holds no chain %s", ErrRules, chain)
	}
	var eps []string
	if _, m, ok := strings.Cut(body, " map {"); ok && strings.Contains(body, "dnat") {
		if i := strings.Index(m, "}"); i >= 0 {
			m = m[:i]
		}
		for _, el := range strings.Split(m, ",") {
			_, v, ok := strings.Cut(el, " : ")
			if !ok {
				continue
			}
			ip, port, ok := strings.Cut(strings.TrimSpace(v), " . ")
			if !ok {
				return nil, fmt.Errorf("%w: chain %s: DNAT map element %q", ErrRules, chain, strings.TrimSpace(el))
			}
			eps = append(eps, net.JoinHostPort(strings.Trim(ip, "[]"), strings.TrimSpace(port)))
		}
		return eps, nil
	}
	seen := map[string]bool{}
	for _, f := range strings.Fields(body) {
		f = strings.TrimRight(f, ",}")
		if !strings.HasPrefix(f, "endpoint-") || seen[f] {
			continue
		}
		seen[f] = true
		ep, ok := nftEndpointChainAddr(f)
		if !ok {
			return nil, fmt.Errorf("%w: chain %s: endpoint chain name %q", ErrRules, chain, f)
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// nftEndpointChainAddr is the endpoint (IP:port) an endpoint-… chain of
// kube-proxy's stands for: its name ends in "__<ip>/<port>", an IPv6
// address's colons written as dots.
func nftEndpointChainAddr(name string) (string, bool) {
	_, ep, ok := strings.Cut(name, "__")
	ip, port, ok2 := strings.Cut(ep, "/")
	if !ok || !ok2 || ip == "" || port == "" {
		return "", false
	}
	if _, err := netip.ParseAddr(ip); err != nil {
		ip = strings.ReplaceAll(ip, ".", ":")
		if _, err := netip.ParseAddr(ip); err != nil {
			return "", false
		}
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", false
	}
	return net.JoinHostPort(ip, port), true
}

// ParseIPVSService reads `ipvsadm -Ln -t <ClusterIP>:<port>`: the real
// servers of weight > 0 (kube-proxy sets a removed endpoint's weight to 0
// and deletes it once its connections drained).
func ParseIPVSService(out []byte) ([]string, error) {
	var eps []string
	virtual := false
	sc := lineScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 2 && (f[0] == "TCP" || f[0] == "UDP" || f[0] == "SCTP"):
			virtual = true
		case len(f) >= 4 && f[0] == "->" && virtual:
			w, err := strconv.Atoi(f[3])
			if err != nil {
				return nil, fmt.Errorf("%w: ipvsadm real server line %q", ErrRules, sc.Text())
			}
			if w > 0 {
				eps = append(eps, f[1])
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !virtual {
		return nil, fmt.Errorf("%w: no virtual server in the ipvsadm listing", ErrRules)
	}
	return eps, nil
}

// nftBlock returns the text of the block that opens with header (a line
// ending in "{"), its lines joined by spaces, up to its closing brace.
func nftBlock(out []byte, header string) (string, bool) {
	sc := lineScanner(out)
	var b strings.Builder
	depth := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if depth == 0 {
			if line == header {
				depth = 1
			}
			continue
		}
		depth += strings.Count(line, "{") - strings.Count(line, "}")
		if depth <= 0 {
			return b.String(), true
		}
		b.WriteString(line)
		b.WriteByte(' ')
	}
	return "", false // the listing ends inside the block: truncated
}

// lineScanner scans lines of up to 16 MiB: nft prints an anonymous map
// of a Service's endpoints on one line.
func lineScanner(out []byte) *bufio.Scanner {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return sc
}

// splitRule splits an iptables rule into fields, a "quoted string" being
// one field without its quotes.
func splitRule(line string) []string {
	var out []string
	var cur strings.Builder
	inQuote, has := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == '\\' && inQuote && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case ch == '"':
			inQuote = !inQuote
			has = true
		case (ch == ' ' || ch == '\t') && !inQuote:
			if has {
				out = append(out, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteByte(ch)
			has = true
		}
	}
	if has {
		out = append(out, cur.String())
	}
	return out
}
