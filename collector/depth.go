package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// This file reads where a new connection finds its Service in the client
// node's rules: the depth of the target. In iptables mode the first packet
// walks nat KUBE-SERVICES one rule per Service port until its own rule
// matches, and kube-proxy writes that chain in Go-map order (random) at
// every sync; nftables looks the destination up in a verdict map and IPVS
// in a hash table, so no rule is walked before the Service's own.

// ServicePort is a Service port a connection is sent to: its ClusterIP,
// port and protocol (lower case, "tcp" when empty).
type ServicePort struct {
	IP    netip.Addr
	Port  uint16
	Proto string
}

func (t ServicePort) key() string {
	proto := t.Proto
	if proto == "" {
		proto = "tcp"
	}
	return netip.AddrPortFrom(t.IP, t.Port).String() + "/" + strings.ToLower(proto)
}

func (t ServicePort) String() string { return t.key() }

// ErrTargetNotFound is wrapped when a target has no rule in the chain read.
var ErrTargetNotFound = errors.New("target not in the node's Service rules")

// ServiceChain is one reading of how the client node's dataplane finds a
// Service for a new connection.
type ServiceChain struct {
	Mode scenarios.Mode
	// Length is the number of rules in nat KUBE-SERVICES (iptables mode;
	// one per Service port, plus the nodeports rule at its end), 0 in the
	// other modes.
	Length int
	// Lookup says what a new connection traverses where it walks no list:
	// nftables' verdict-map lookup and the chain it is made from, IPVS's
	// hash lookup. Empty in iptables mode.
	Lookup string
	// Fingerprint changes whenever the order or the content of the
	// Services' rules changes: two readings with the same fingerprint
	// place every target at the same depth.
	Fingerprint string

	// index maps a ServicePort key to its 1-based rule index (iptables).
	index map[string]int
	// names maps a key to the Service name kube-proxy wrote
	// (namespace/name:port) where the rule says it.
	names map[string]string
	// chains maps a key to the chain the verdict map jumps to (nftables).
	chains map[string]string
}

// Depth returns the rules a new connection to t walks in this chain up to
// and including its Service's rule: the rule's 1-based index in iptables
// mode, 0 in nftables and IPVS mode. A target the chain does not hold is
// an error wrapping ErrTargetNotFound.
func (c *ServiceChain) Depth(t ServicePort) (int, error) {
	switch c.Mode {
	case scenarios.ModeIPTables:
		i, ok := c.index[t.key()]
		if !ok {
			return 0, fmt.Errorf("%w: service %s has no ClusterIP rule in nat KUBE-SERVICES (%d rules): not programmed yet, or not a Service of this cluster", ErrTargetNotFound, t, c.Length)
		}
		return i, nil
	case scenarios.ModeNFTables:
		if _, ok := c.chains[t.key()]; !ok {
			return 0, fmt.Errorf("%w: service %s has no element in kube-proxy's service-ips map (%d elements): not programmed yet, or not a Service of this cluster", ErrTargetNotFound, t, len(c.chains))
		}
		return 0, nil
	}
	return 0, nil
}

// Via says what a new connection to t traverses to find its Service:
// nftables' lookup and the Service's chain it jumps to, IPVS's lookup,
// and in iptables mode the rule it walks to.
func (c *ServiceChain) Via(t ServicePort) string {
	switch c.Mode {
	case scenarios.ModeIPTables:
		s := fmt.Sprintf("nat KUBE-SERVICES rule %d of %d", c.index[t.key()], c.Length)
		if n := c.names[t.key()]; n != "" {
			s += " (" + n + ")"
		}
		return s
	case scenarios.ModeNFTables:
		if ch := c.chains[t.key()]; ch != "" {
			return c.Lookup + " → " + ch
		}
	}
	return c.Lookup
}

// Name is the Service name kube-proxy wrote for t (namespace/name:port),
// or "" when the rules do not say.
func (c *ServiceChain) Name(t ServicePort) string { return c.names[t.key()] }

// ParseKubeServices reads nat KUBE-SERVICES from iptables-save output (of
// the nat table or of every table). Every rule of the chain counts towards
// the index, whether it names a ClusterIP or not (the nodeports rule, an
// external IP's rule), since the packet walks them all.
func ParseKubeServices(r io.Reader) (*ServiceChain, error) {
	c := &ServiceChain{Mode: scenarios.ModeIPTables, index: map[string]int{}, names: map[string]string{}}
	sc := newLineScanner(r)
	h := fnv.New64a()
	table, seenNat, declared := "", false, false
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		switch {
		case len(line) == 0 || line[0] == '#':
		case line[0] == '*':
			table = string(line[1:])
			if table == "nat" {
				seenNat = true
			}
		case table != "nat":
		case bytes.HasPrefix(line, []byte(":KUBE-SERVICES ")):
			declared = true
		case bytes.HasPrefix(line, []byte("-A KUBE-SERVICES ")):
			c.Length++
			h.Write(line)
			h.Write([]byte{'\n'})
			t, name, ok := clusterIPRule(string(line))
			if !ok {
				continue
			}
			if _, dup := c.index[t.key()]; !dup { // the first match wins
				c.index[t.key()] = c.Length
				if name != "" {
					c.names[t.key()] = name
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading iptables-save output: %w", err)
	}
	if !seenNat {
		return nil, fmt.Errorf("%w: no nat table in iptables-save output", ErrParse)
	}
	if !declared {
		return nil, fmt.Errorf("%w: nat table has no KUBE-SERVICES chain: kube-proxy has not written its iptables rules", ErrParse)
	}
	c.Fingerprint = strconv.FormatUint(h.Sum64(), 16)
	return c, nil
}

// clusterIPRule reads the destination of a KUBE-SERVICES rule:
//
//	-A KUBE-SERVICES -d 198.19.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-...
//
// ok is false for rules without a single destination address and port.
func clusterIPRule(line string) (t ServicePort, name string, ok bool) {
	f := splitRule(line)
	var dst, proto, dport string
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "-d", "--destination":
			dst = f[i+1]
		case "-p", "--protocol":
			proto = f[i+1]
		case "--dport", "--destination-port":
			dport = f[i+1]
		case "--comment":
			// Quoted comments are one field; the unquoted ones of some
			// published dumps run up to the next option.
			var words []string
			for j := i + 1; j < len(f) && !strings.HasPrefix(f[j], "-"); j++ {
				words = append(words, f[j])
			}
			name = strings.TrimSuffix(strings.Join(words, " "), " cluster IP")
			if len(words) == 0 || name == strings.Join(words, " ") {
				name = "" // not a ClusterIP rule's comment
			}
		}
	}
	if dst == "" || dport == "" {
		return t, "", false
	}
	addr, bits, _ := strings.Cut(dst, "/")
	ip, err := netip.ParseAddr(addr)
	if err != nil || (bits != "" && bits != "32" && bits != "128") {
		return t, "", false
	}
	port, err := strconv.ParseUint(dport, 10, 16)
	if err != nil {
		return t, "", false
	}
	if proto == "" {
		proto = "tcp"
	}
	return ServicePort{IP: ip, Port: uint16(port), Proto: strings.ToLower(proto)}, name, true
}

// splitRule splits an iptables-save rule into fields, keeping a "quoted
// string" as one field without its quotes.
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

// nftServiceMap is the verdict map kube-proxy's nftables proxier looks
// every ClusterIP, external IP and load-balancer IP up in.
const nftServiceMap = "service-ips"

// ParseNFTServices reads kube-proxy's nftables table (`nft list table ip
// kube-proxy`): the chain that looks Services up in the service-ips
// verdict map and the map's elements. A new connection's depth is 0 there:
// what it traverses is one hash lookup, recorded in Lookup.
func ParseNFTServices(r io.Reader) (*ServiceChain, error) {
	c := &ServiceChain{Mode: scenarios.ModeNFTables, chains: map[string]string{}, names: map[string]string{}}
	sc := newLineScanner(r)
	var (
		block, name string // the innermost named block: "chain" or "map"
		elems       strings.Builder
		inElems     bool
		lookupChain string
		hooks       = map[string][]string{} // chain → chains it jumps to
		hooked      []string                // base chains of the nat hooks
		sawMap      bool
		sawTable    bool
	)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if inElems {
			elems.WriteString(" " + line)
			if strings.Contains(line, "}") {
				inElems = false
			}
			continue
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case fields[0] == "table":
			sawTable = true
		case len(fields) == 3 && (fields[0] == "chain" || fields[0] == "map" || fields[0] == "set") && fields[2] == "{":
			block, name = fields[0], fields[1]
			if block == "map" && name == nftServiceMap {
				sawMap = true
			}
		case line == "}":
			block, name = "", ""
		case block == "map" && name == nftServiceMap && strings.HasPrefix(line, "elements = {"):
			elems.WriteString(line)
			inElems = !strings.Contains(line, "}")
		case block == "chain" && fields[0] == "type" && strings.Contains(line, "type nat hook"):
			if strings.Contains(line, "hook output") || strings.Contains(line, "hook prerouting") {
				hooked = append(hooked, name)
			}
		case block == "chain":
			if strings.Contains(line, "vmap @"+nftServiceMap) {
				lookupChain = name
			}
			for i := 0; i+1 < len(fields); i++ {
				if fields[i] == "jump" || fields[i] == "goto" {
					hooks[name] = append(hooks[name], fields[i+1])
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading nft output: %w", err)
	}
	if !sawTable || !sawMap {
		return nil, fmt.Errorf("%w: no %s map in the nft listing: kube-proxy has not written its nftables rules", ErrParse, nftServiceMap)
	}
	if lookupChain == "" {
		return nil, fmt.Errorf("%w: no chain looks up the %s map", ErrParse, nftServiceMap)
	}
	body := elems.String()
	if _, rest, ok := strings.Cut(body, "{"); ok {
		if i := strings.LastIndex(rest, "}"); i >= 0 {
			rest = rest[:i]
		}
		for _, el := range strings.Split(rest, ",") {
			k, v, ok := strings.Cut(el, ":")
			if !ok {
				continue
			}
			parts := strings.Split(strings.TrimSpace(k), " . ")
			if len(parts) != 3 {
				continue
			}
			ip, err1 := netip.ParseAddr(strings.TrimSpace(parts[0]))
			port, err2 := strconv.ParseUint(strings.TrimSpace(parts[2]), 10, 16)
			if err1 != nil || err2 != nil {
				continue
			}
			t := ServicePort{IP: ip, Port: uint16(port), Proto: strings.TrimSpace(parts[1])}
			vf := strings.Fields(v)
			if len(vf) == 2 && (vf[0] == "goto" || vf[0] == "jump") {
				c.chains[t.key()] = vf[1]
				c.names[t.key()] = nftServiceName(vf[1])
			}
		}
	}
	// The path from a nat hook to the lookup: hook chain → ... → lookup.
	path := lookupChain
	sort.Strings(hooked)
	for _, base := range hooked {
		if p := nftPath(hooks, base, lookupChain, 4); p != "" {
			path = p
			break
		}
	}
	c.Lookup = fmt.Sprintf("chain %s: vmap @%s (%d elements)", path, nftServiceMap, len(c.chains))
	keys := make([]string, 0, len(c.chains))
	for k := range c.chains {
		keys = append(keys, k+"="+c.chains[k])
	}
	sort.Strings(keys)
	h := fnv.New64a()
	for _, k := range keys {
		h.Write([]byte(k + "\n"))
	}
	c.Fingerprint = strconv.FormatUint(h.Sum64(), 16)
	return c, nil
}

// nftPath finds a jump path from chain from to chain to, at most depth
// jumps long, written "a → b → c".
func nftPath(jumps map[string][]string, from, to string, depth int) string {
	if from == to {
		return to
	}
	if depth == 0 {
		return ""
	}
	for _, next := range jumps[from] {
		if p := nftPath(jumps, next, to, depth-1); p != "" {
			return from + " → " + p
		}
	}
	return ""
}

// nftServiceName reads namespace/name:port out of a kube-proxy service
// chain name, service-HASH-namespace/name/proto/port.
func nftServiceName(chain string) string {
	rest, ok := strings.CutPrefix(chain, "service-")
	if !ok {
		return ""
	}
	_, rest, ok = strings.Cut(rest, "-")
	if !ok {
		return ""
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 {
		return ""
	}
	return parts[0] + "/" + parts[1] + ":" + parts[3]
}

// ReadServiceChain reads how the client node finds Services in mode,
// through run (the node's own iptables-save or nft; IPVS needs no
// reading: its lookup is a hash).
func ReadServiceChain(ctx context.Context, mode scenarios.Mode, run Runner) (*ServiceChain, error) {
	m, ok := kubeproxy.For(mode)
	switch {
	case !ok:
		return nil, fmt.Errorf("reading the target's depth: mode %q has no rules kpbench reads", mode)
	case !m.Depth.Read:
		// A lookup with nothing to read (IPVS's hash table): depth 0.
		return &ServiceChain{Mode: mode, Lookup: m.Depth.Where, Fingerprint: string(mode)}, nil
	}
	out, err := run(ctx, m.List...)
	if err != nil {
		return nil, fmt.Errorf("reading %s rules for the target's depth: %w", mode, err)
	}
	// A chain walked rule by rule is iptables-save's KUBE-SERVICES; a
	// lookup that is read is nftables' service-ips map.
	var c *ServiceChain
	if m.Depth.Walk {
		c, err = ParseKubeServices(bytes.NewReader(out))
	} else {
		c, err = ParseNFTServices(bytes.NewReader(out))
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s rules for the target's depth: %w", mode, err)
	}
	return c, nil
}

// Place picks the target of a placement by depth among candidates (in
// creation order) from chain: the deepest, the shallowest, or the median
// (the lower middle when even) by depth; ties go to the first created. In
// modes where every depth is 0 that is candidates[0], the Service targets
// "one" uses. It returns the index into candidates and the depth.
func Place(chain *ServiceChain, candidates []ServicePort, placement scenarios.Targets) (int, int, error) {
	if len(candidates) == 0 {
		return 0, 0, errors.New("placing the target: no candidate Services")
	}
	if !placement.ByDepth() {
		return 0, 0, fmt.Errorf("placing the target: %q is not a placement by depth", placement)
	}
	type cand struct{ i, depth int }
	cs := make([]cand, len(candidates))
	var missing []string
	for i, t := range candidates {
		d, err := chain.Depth(t)
		if err != nil {
			missing = append(missing, t.String())
			continue
		}
		cs[i] = cand{i, d}
	}
	if len(missing) > 0 {
		shown := missing
		if len(shown) > 5 {
			shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(missing)-5))
		}
		return 0, 0, fmt.Errorf("placing the target %s: %w: %d of %d Services have no rule (%s); kube-proxy has not programmed them", placement, ErrTargetNotFound, len(missing), len(candidates), strings.Join(shown, ", "))
	}
	sort.SliceStable(cs, func(a, b int) bool { return cs[a].depth < cs[b].depth })
	var pick cand
	switch placement {
	case scenarios.TargetsShallowest:
		pick = cs[0]
	case scenarios.TargetsDeepest:
		// The first created among the deepest (a stable sort keeps
		// creation order among equal depths).
		last := cs[len(cs)-1].depth
		for _, c := range cs {
			if c.depth == last {
				pick = c
				break
			}
		}
	case scenarios.TargetsMedian:
		mid := cs[(len(cs)-1)/2].depth
		for _, c := range cs {
			if c.depth == mid {
				pick = c
				break
			}
		}
	}
	return pick.i, pick.depth, nil
}

// Reading is the depth of targets in the chain: for one target its depth;
// for several, the mean weighted by the connections each received
// (weights[i] for targets[i]), and the least and greatest depth among the
// targets that received any. Without weights (nil, or all zero) every
// target counts once. Every target must be in the chain.
func (c *ServiceChain) Reading(targets []ServicePort, weights []int64) (runs.DepthReading, error) {
	r := runs.DepthReading{ChainLength: c.Length}
	if len(targets) == 0 {
		return r, errors.New("depth of no targets")
	}
	if weights != nil && len(weights) != len(targets) {
		return r, fmt.Errorf("depth: %d connection counts for %d targets", len(weights), len(targets))
	}
	var total int64
	for _, w := range weights {
		total += w
	}
	var sum float64
	var n int64
	first := true
	for i, t := range targets {
		w := int64(1)
		if total > 0 {
			w = weights[i]
		}
		if w == 0 {
			continue
		}
		d, err := c.Depth(t)
		if err != nil {
			return r, err
		}
		sum += float64(d) * float64(w)
		n += w
		if first || d < r.Min {
			r.Min = d
		}
		if first || d > r.Max {
			r.Max = d
		}
		first = false
	}
	r.Mean = sum / float64(n)
	return r, nil
}
