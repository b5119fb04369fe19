package collector

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// ErrParse is wrapped by the rule parsers when the text is not what the
// tool prints.
var ErrParse = errors.New("unexpected output")

// Runner runs a command on the client node (kubeproxy.ExecRunner,
// kubeproxy.NodeRunner).
type Runner = kubeproxy.Runner

// newLineScanner scans lines of up to 16 MiB (iptables-save lines are
// short, but nft prints a set's elements on one line per few elements and
// anonymous vmaps of big Services on one line).
func newLineScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	return sc
}

// IPTablesCounts counts an iptables-save dump.
type IPTablesCounts struct {
	// Rules counts every rule (-A line) of every table in the dump; with
	// `iptables-save -t nat` that is the nat table.
	Rules int `json:"rules"`
	// Chains counts declared chains, built-in ones included.
	Chains int `json:"chains"`
	// RulesByTable and RulesByChain ("table/chain") break Rules down.
	RulesByTable map[string]int `json:"rulesByTable"`
	RulesByChain map[string]int `json:"rulesByChain"`
	// KubeServices is the length of nat KUBE-SERVICES: the rules a new
	// connection to a Service walks, one by one, until its Service's rule
	// matches (one per Service port, plus the nodeports rule at the end).
	KubeServices int `json:"kubeServices"`
	// KubeRules counts rules in kube-proxy's chains (KUBE-*).
	KubeRules int `json:"kubeRules"`
	// ServiceChains (KUBE-SVC-*, KUBE-SVL-*, KUBE-EXT-*, KUBE-FW-*) and
	// EndpointChains (KUBE-SEP-*) count kube-proxy's per-Service chains.
	ServiceChains  int `json:"serviceChains"`
	EndpointChains int `json:"endpointChains"`
}

// ParseIPTablesSave counts the rules of iptables-save output. Every table
// must end with COMMIT (a truncated dump is an error); comment lines are
// skipped.
func ParseIPTablesSave(r io.Reader) (IPTablesCounts, error) {
	c := IPTablesCounts{RulesByTable: map[string]int{}, RulesByChain: map[string]int{}}
	sc := newLineScanner(r)
	table := ""
	// Rules per chain of the current table, keyed by the chain's name; a
	// declared chain is present (maybe with 0 rules).
	chains := map[string]int{}
	flush := func() {
		for name, n := range chains {
			if n > 0 {
				c.RulesByChain[table+"/"+name] += n
			}
		}
	}
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		switch {
		case line[0] == '-' && len(line) > 3 && (line[1] == 'A' || line[1] == 'I') && line[2] == ' ':
			if table == "" {
				return c, fmt.Errorf("%w: line %d: rule outside a table", ErrParse, n)
			}
			rest := bytes.TrimLeft(line[3:], " ")
			chain := rest
			if i := bytes.IndexByte(rest, ' '); i >= 0 {
				chain = rest[:i]
			}
			k, ok := chains[string(chain)] // no allocation for the lookup
			if !ok {
				return c, fmt.Errorf("%w: line %d: rule in undeclared chain %s", ErrParse, n, chain)
			}
			chains[string(chain)] = k + 1
			c.Rules++
			c.RulesByTable[table]++
			if bytes.HasPrefix(chain, []byte("KUBE-")) {
				c.KubeRules++
				if table == "nat" && string(chain) == "KUBE-SERVICES" {
					c.KubeServices++
				}
			}
		case line[0] == ':':
			if table == "" {
				return c, fmt.Errorf("%w: line %d: chain outside a table", ErrParse, n)
			}
			name, _, _ := strings.Cut(string(line[1:]), " ")
			chains[name] += 0
			c.Chains++
			switch {
			case strings.HasPrefix(name, "KUBE-SVC-"), strings.HasPrefix(name, "KUBE-SVL-"),
				strings.HasPrefix(name, "KUBE-EXT-"), strings.HasPrefix(name, "KUBE-FW-"):
				c.ServiceChains++
			case strings.HasPrefix(name, "KUBE-SEP-"):
				c.EndpointChains++
			}
		case line[0] == '*':
			if table != "" {
				return c, fmt.Errorf("%w: line %d: table %s starts before table %s's COMMIT", ErrParse, n, line[1:], table)
			}
			table = string(line[1:])
			chains = map[string]int{}
			c.RulesByTable[table] += 0
		case string(bytes.Fields(line)[0]) == "COMMIT":
			// Anything after COMMIT on the line is ignored (text copied
			// from web pages runs on after it).
			if table == "" {
				return c, fmt.Errorf("%w: line %d: COMMIT outside a table", ErrParse, n)
			}
			flush()
			table = ""
		default:
			return c, fmt.Errorf("%w: line %d: not iptables-save output: %.60q", ErrParse, n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("reading iptables-save output: %w", err)
	}
	if table != "" {
		return c, fmt.Errorf("%w: table %s has no COMMIT (truncated output?)", ErrParse, table)
	}
	if len(c.RulesByTable) == 0 {
		return c, fmt.Errorf("%w: no table in iptables-save output", ErrParse)
	}
	return c, nil
}

// NFTCounts counts an `nft list table` (or `nft list ruleset`) listing.
type NFTCounts struct {
	Tables int `json:"tables"`
	Chains int `json:"chains"`
	// Rules counts rule statements in every chain (chain headers — type,
	// hook, policy — and comments are not rules).
	Rules int `json:"rules"`
	// RulesByChain and Elements are keyed "<family> <table>/<name>", e.g.
	// "ip kube-proxy/services".
	RulesByChain map[string]int `json:"rulesByChain"`
	Sets         int            `json:"sets"`
	Maps         int            `json:"maps"`
	// Elements counts each named set's or map's elements; SetElements and
	// MapElements sum them by kind. kube-proxy's service-ips map holds one
	// element per ClusterIP:port, looked up in one hash step.
	Elements    map[string]int `json:"elements"`
	SetElements int            `json:"setElements"`
	MapElements int            `json:"mapElements"`
}

// ParseNFTList counts the tables, chains, rules and set/map elements of
// nft's listing format.
func ParseNFTList(r io.Reader) (NFTCounts, error) {
	c := NFTCounts{RulesByChain: map[string]int{}, Elements: map[string]int{}}
	sc := newLineScanner(r)
	var stack []nftBlock
	var pending strings.Builder // a statement spanning lines (open braces)
	pendingKind := ""           // "rule" or "elements"
	depth := 0
	n := 0
	top := func() nftBlock {
		if len(stack) == 0 {
			return nftBlock{}
		}
		return stack[len(stack)-1]
	}
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if pendingKind != "" {
			pending.WriteByte(' ')
			pending.WriteString(line)
			depth += strings.Count(line, "{") - strings.Count(line, "}")
			if depth > 0 {
				continue
			}
			if err := c.finish(pendingKind, top(), pending.String()); err != nil {
				return c, fmt.Errorf("line %d: %w", n, err)
			}
			pending.Reset()
			pendingKind = ""
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if line == "}" {
			if len(stack) == 0 {
				return c, fmt.Errorf("%w: line %d: unbalanced }", ErrParse, n)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		fields := strings.Fields(line)
		opens := strings.HasSuffix(line, "{") && strings.Count(line, "{") == 1 && !strings.Contains(line, "}")
		cur := top()
		switch {
		case opens && cur.kind == "" && fields[0] == "table":
			if len(fields) < 3 {
				return c, fmt.Errorf("%w: line %d: %q", ErrParse, n, line)
			}
			c.Tables++
			stack = append(stack, nftBlock{"table", strings.Join(fields[1:len(fields)-1], " ")})
		case opens && cur.kind == "table":
			if len(fields) != 3 {
				// Named objects like "ct helper NAME {": skipped whole.
				stack = append(stack, nftBlock{"skip", ""})
				continue
			}
			kind, name := fields[0], cur.name+"/"+fields[1]
			switch kind {
			case "chain":
				c.Chains++
				c.RulesByChain[name] += 0
			case "set":
				c.Sets++
				c.Elements[name] += 0
			case "map":
				c.Maps++
				c.Elements[name] += 0
			}
			// flowtables, counters, quotas, ct objects: skipped as blocks.
			stack = append(stack, nftBlock{kind, name})
		case cur.kind == "table":
			// Table attributes: comment, flags.
			if fields[0] != "comment" && fields[0] != "flags" {
				return c, fmt.Errorf("%w: line %d: unexpected in table: %.60q", ErrParse, n, line)
			}
		case cur.kind == "chain":
			switch fields[0] {
			case "type", "policy", "comment", "devices":
				continue // chain header, not a rule
			}
			if d := strings.Count(line, "{") - strings.Count(line, "}"); d > 0 {
				pending.WriteString(line)
				pendingKind, depth = "rule", d
				continue
			}
			if err := c.finish("rule", cur, line); err != nil {
				return c, fmt.Errorf("line %d: %w", n, err)
			}
		case cur.kind == "set" || cur.kind == "map":
			if !strings.HasPrefix(line, "elements = {") {
				continue // type, flags, comment, size, timeout, ...
			}
			if d := strings.Count(line, "{") - strings.Count(line, "}"); d > 0 {
				pending.WriteString(line)
				pendingKind, depth = "elements", d
				continue
			}
			if err := c.finish("elements", cur, line); err != nil {
				return c, fmt.Errorf("line %d: %w", n, err)
			}
		case cur.kind == "":
			return c, fmt.Errorf("%w: line %d: not nft listing output: %.60q", ErrParse, n, line)
		default:
			// Inside a block kinds we skip.
			if opens {
				stack = append(stack, nftBlock{"skip", ""})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("reading nft output: %w", err)
	}
	if pendingKind != "" || len(stack) != 0 {
		return c, fmt.Errorf("%w: listing ends inside a block (truncated output?)", ErrParse)
	}
	if c.Tables == 0 {
		return c, fmt.Errorf("%w: no table in nft output", ErrParse)
	}
	return c, nil
}

// nftBlock is an open { } block of an nft listing: table, chain, set,
// map, or another object skipped whole.
type nftBlock struct{ kind, name string }

// finish records one complete statement.
func (c *NFTCounts) finish(kind string, in nftBlock, stmt string) error {
	switch kind {
	case "rule":
		c.Rules++
		c.RulesByChain[in.name]++
	case "elements":
		_, body, ok := strings.Cut(stmt, "{")
		i := strings.LastIndex(body, "}")
		if !ok || i < 0 {
			return fmt.Errorf("%w: elements of %s: %.60q", ErrParse, in.name, stmt)
		}
		k := countTopLevel(body[:i])
		c.Elements[in.name] += k
		if in.kind == "map" {
			c.MapElements += k
		} else {
			c.SetElements += k
		}
	}
	return nil
}

// countTopLevel counts the comma-separated items of s outside braces.
func countTopLevel(s string) int {
	n, depth, item := 0, 0, false
	for _, r := range s {
		switch {
		case r == '{':
			depth++
		case r == '}':
			depth--
		case r == ',' && depth == 0:
			if item {
				n++
			}
			item = false
			continue
		}
		if r != ' ' && r != '\t' {
			item = true
		}
	}
	if item {
		n++
	}
	return n
}

// IPVSCounts counts IPVS virtual services and their real servers.
type IPVSCounts struct {
	VirtualServices int `json:"virtualServices"`
	RealServers     int `json:"realServers"`
}

var (
	ipvsProtos   = map[string]bool{"TCP": true, "UDP": true, "SCTP": true, "FWM": true}
	ipvsForwards = map[string]bool{"Masq": true, "Local": true, "Route": true, "Tunnel": true, "Bypass": true}
	ipvsAddrPort = regexp.MustCompile(`^(\[[0-9a-fA-F:.]+\]|[0-9.]+|[0-9a-fA-F:]+|[A-Za-z0-9.-]+):[0-9a-z-]+$`)
)

// ParseIPVSAdm counts the virtual services and real servers of
// `ipvsadm -Ln` output:
//
//	IP Virtual Server version 1.2.1 (size=4096)
//	Prot LocalAddress:Port Scheduler Flags
//	  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
//	TCP  10.96.0.1:443 rr
//	  -> 172.18.0.3:6443              Masq    1      0          0
func ParseIPVSAdm(r io.Reader) (IPVSCounts, error) {
	var c IPVSCounts
	sc := newLineScanner(r)
	n := 0
	header := false
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		fields := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "IP Virtual Server version"):
			header = true
		case fields[0] == "Prot" || (fields[0] == "->" && len(fields) > 1 && strings.HasPrefix(fields[1], "RemoteAddress")):
			header = true
		case ipvsProtos[fields[0]]:
			if len(fields) < 3 {
				return c, fmt.Errorf("%w: line %d: virtual service without scheduler: %q", ErrParse, n, line)
			}
			if fields[0] != "FWM" && !ipvsAddrPort.MatchString(fields[1]) {
				return c, fmt.Errorf("%w: line %d: %q is not address:port", ErrParse, n, fields[1])
			}
			c.VirtualServices++
		case fields[0] == "->":
			if len(fields) < 6 || !ipvsAddrPort.MatchString(fields[1]) || !ipvsForwards[fields[2]] {
				return c, fmt.Errorf("%w: line %d: not a real server line: %q", ErrParse, n, line)
			}
			if c.VirtualServices == 0 {
				return c, fmt.Errorf("%w: line %d: real server before any virtual service", ErrParse, n)
			}
			c.RealServers++
		default:
			return c, fmt.Errorf("%w: line %d: not ipvsadm -Ln output: %.60q", ErrParse, n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("reading ipvsadm output: %w", err)
	}
	if !header && c.VirtualServices == 0 {
		return c, fmt.Errorf("%w: empty ipvsadm output", ErrParse)
	}
	return c, nil
}

// RuleCounts is a dataplane's rule count in one mode; the field of that
// mode is set.
type RuleCounts struct {
	Mode     scenarios.Mode  `json:"mode"`
	IPTables *IPTablesCounts `json:"iptables,omitempty"`
	NFT      *NFTCounts      `json:"nftables,omitempty"`
	IPVS     *IPVSCounts     `json:"ipvs,omitempty"`
}

// RuleCommand is the command CountRules runs for mode: the mode's rule
// listing (kubeproxy.Mode.List).
func RuleCommand(mode scenarios.Mode) []string {
	m, _ := kubeproxy.For(mode)
	return m.List
}

// CountRules lists the dataplane's rules of mode through run and counts
// them: iptables-save -t nat, nft list table ip kube-proxy, ipvsadm -Ln.
func CountRules(ctx context.Context, mode scenarios.Mode, run Runner) (RuleCounts, error) {
	m, ok := kubeproxy.For(mode)
	args := m.List
	if !ok || len(args) == 0 {
		return RuleCounts{}, fmt.Errorf("counting rules: mode %q has no rule listing", mode)
	}
	out, err := run(ctx, args...)
	if err != nil {
		return RuleCounts{}, fmt.Errorf("counting %s rules: %w", mode, err)
	}
	rc := RuleCounts{Mode: mode}
	r := bytes.NewReader(out)
	switch mode {
	case scenarios.ModeIPTables:
		c, err := ParseIPTablesSave(r)
		if err != nil {
			return rc, fmt.Errorf("counting iptables rules: %w", err)
		}
		rc.IPTables = &c
	case scenarios.ModeNFTables:
		c, err := ParseNFTList(r)
		if err != nil {
			return rc, fmt.Errorf("counting nftables rules: %w", err)
		}
		rc.NFT = &c
	case scenarios.ModeIPVS:
		c, err := ParseIPVSAdm(r)
		if err != nil {
			return rc, fmt.Errorf("counting IPVS services: %w", err)
		}
		rc.IPVS = &c
	}
	return rc, nil
}

// RunsRules maps the counts onto the results schema: iptables nat rules
// and the KUBE-SERVICES length; nftables rules and set/map elements (a
// new connection does one map lookup: chain length 0); IPVS real servers
// and virtual services (a hash lookup: chain length 0).
func (rc RuleCounts) RunsRules() runs.Rules {
	switch {
	case rc.IPTables != nil:
		return runs.Rules{Total: rc.IPTables.Rules, ChainLength: rc.IPTables.KubeServices}
	case rc.NFT != nil:
		return runs.Rules{Total: rc.NFT.Rules, MapElements: rc.NFT.MapElements + rc.NFT.SetElements}
	case rc.IPVS != nil:
		return runs.Rules{Total: rc.IPVS.RealServers, VirtualServers: rc.IPVS.VirtualServices}
	}
	return runs.Rules{}
}
