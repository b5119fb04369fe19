package churn

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/scenarios"
)

// Runner runs a command on the client node and returns its stdout
// (collector.Runner: kubeproxy.NodeRunner(node.Run) in the sweep).
type Runner = collector.Runner

// LowPriority is the prefix the node readers put before every command by
// default: nice 19, so that kube-proxy and the load client, which share
// the node's CPUs with the reads, get the CPU first. (The lab runs node
// commands pinned to the node's CPUs; the sweep moves the reads to the
// lab's other CPUs with taskset before nice: docs/churn-syncs.md.)
var LowPriority = []string{"nice", "-n", "19"}

// ReaderOptions tune a node reader.
type ReaderOptions struct {
	// Prefix is put before every command: LowPriority when nil; an empty
	// non-nil slice runs the tools directly.
	Prefix []string
	// Now times the commands; time.Now when nil.
	Now func() time.Time
}

// CommandCost is what one kind of command cost the node over a reader's
// life: how many ran, their wall time and output size, and how many
// failed.
type CommandCost struct {
	Count      int     `json:"count"`
	Seconds    float64 `json:"seconds"`
	MaxSeconds float64 `json:"maxSeconds"`
	Bytes      int64   `json:"bytes"`
	Errors     int     `json:"errors,omitempty"`
}

// Mean is the mean wall time of one command (0 without commands).
func (c CommandCost) Mean() float64 {
	if c.Count == 0 {
		return 0
	}
	return c.Seconds / float64(c.Count)
}

// Kinds of command a node reader runs.
const (
	// CommandServices lists every Service's entry point once per poll
	// round: nat KUBE-SERVICES (iptables), the service-ips map (nftables).
	CommandServices = "services"
	// CommandServiceChain lists one Service's chain (KUBE-SVC-*,
	// service-*) or, in ipvs mode, its virtual server.
	CommandServiceChain = "service-chain"
	// CommandEndpointChain lists one KUBE-SEP-* chain whose endpoint
	// neither a comment nor an earlier read told (iptables above 1,000
	// endpoints); each is read once, its name being a hash of the endpoint.
	CommandEndpointChain = "endpoint-chain"
	// CommandTable dumps nftables mode's whole table once for a round
	// that reads several Services' chains (NodeReader.PlanRound).
	CommandTable = "table"
)

// NodeReader reads one Service's rules on the client node through a
// Runner, in one kube-proxy mode. Reads are cheap where the tools allow
// it: one chain, not the whole table.
type NodeReader struct {
	mode   scenarios.Mode
	run    Runner
	prefix []string
	now    func() time.Time

	mu   sync.Mutex
	cost map[string]*CommandCost
	// services is this round's listing of every Service's entry point
	// (key → chain), read on the round's first Read; nil until then.
	services map[string]string
	// dumpRound: this round reads nftables mode's whole table once
	// (PlanRound), and table holds that dump once read.
	dumpRound bool
	table     []byte
	// seps maps a KUBE-SEP-* chain to its endpoint. The chain's name is a
	// hash of the Service port and the endpoint, so the mapping never
	// changes once read.
	seps map[string]string
}

// NewNodeReader returns the reader of mode's rules through run: iptables,
// nftables or ipvs.
func NewNodeReader(mode scenarios.Mode, run Runner, opt ReaderOptions) (*NodeReader, error) {
	switch mode {
	case scenarios.ModeIPTables, scenarios.ModeNFTables, scenarios.ModeIPVS:
	default:
		return nil, fmt.Errorf("reading a Service's rules: kube-proxy has no rules in mode %q", mode)
	}
	if run == nil {
		return nil, fmt.Errorf("reading a Service's rules: no runner")
	}
	r := &NodeReader{mode: mode, run: run, prefix: opt.Prefix, now: opt.Now,
		cost: map[string]*CommandCost{}, seps: map[string]string{}}
	if r.prefix == nil {
		r.prefix = LowPriority
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// StartRound forgets the round's listing of every Service's entry point:
// the next Read lists it again. The Watcher calls it before every poll
// round, so that the Services read in one round share one listing.
func (r *NodeReader) StartRound() {
	r.mu.Lock()
	r.services = nil
	r.dumpRound, r.table = false, nil
	r.mu.Unlock()
}

// NFTDumpFrom is the number of Services' chains a round must read in
// nftables mode for one `nft list table ip kube-proxy` to cost less than
// the service-ips listing and a `nft list chain` per Service: nft fills its
// cache with the whole table for either, so one chain costs about a third
// of the table (86 of 262 ms at 1,000 Services, 3.6 of 5.5 s at 10,000;
// docs/churn-syncs.md).
const NFTDumpFrom = 3

// PlanRound tells the reader, after StartRound, how many Services' chains
// the round will read. In nftables mode, from NFTDumpFrom of them, the
// round's first read dumps the whole table once and every read of the
// round (the listing included) is answered from that dump.
func (r *NodeReader) PlanRound(chains int) {
	r.mu.Lock()
	r.dumpRound = r.mode == scenarios.ModeNFTables && chains >= NFTDumpFrom
	r.mu.Unlock()
}

// tableDump returns the round's dump of nftables mode's table, reading it
// on the round's first call; nil, nil when the round reads chain by chain;
// an empty dump when kube-proxy has no table.
func (r *NodeReader) tableDump(ctx context.Context) ([]byte, error) {
	r.mu.Lock()
	dump, t := r.dumpRound, r.table
	r.mu.Unlock()
	if !dump || t != nil {
		return t, nil
	}
	out, err := r.exec(ctx, CommandTable, "nft", "list", "table", "ip", "kube-proxy")
	switch {
	case absent(err):
		out = []byte{}
	case err != nil:
		return nil, fmt.Errorf("listing nftables table ip kube-proxy: %w", err)
	}
	if out == nil {
		out = []byte{}
	}
	r.mu.Lock()
	r.table = out
	r.mu.Unlock()
	return out, nil
}

// Cost returns what the reads cost so far, by kind of command.
func (r *NodeReader) Cost() map[string]CommandCost {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]CommandCost, len(r.cost))
	for k, c := range r.cost {
		out[k] = *c
	}
	return out
}

// Read returns what the node's rules say of svc.
func (r *NodeReader) Read(ctx context.Context, svc ServiceRef) (ServiceRules, error) {
	switch r.mode {
	case scenarios.ModeIPTables:
		return r.readIPTables(ctx, svc)
	case scenarios.ModeNFTables:
		return r.readNFT(ctx, svc)
	default:
		return r.readIPVS(ctx, svc)
	}
}

// ReadPresence tells only whether svc's ClusterIP leads to endpoints,
// from the round's listing of every Service (iptables, nftables): no
// per-Service command. kube-proxy writes a Service's entry point in the
// same transaction as its endpoints, so presence alone shows a Service
// created or deleted and endpoints taken to zero or restored. In ipvs mode
// it is Read. Endpoints is left empty.
func (r *NodeReader) ReadPresence(ctx context.Context, svc ServiceRef) (ServiceRules, error) {
	if r.mode == scenarios.ModeIPVS {
		got, err := r.readIPVS(ctx, svc)
		return ServiceRules{Present: got.Present}, err
	}
	svcs, err := r.listing(ctx)
	if err != nil {
		return ServiceRules{}, err
	}
	chain, ok := svcs[svc.key()]
	if !ok {
		return ServiceRules{}, nil
	}
	want := IPTablesServiceChain(svc)
	if r.mode == scenarios.ModeNFTables {
		want = NFTServiceChain(svc)
	}
	if chain != want {
		return ServiceRules{}, fmt.Errorf("%w: %s: its ClusterIP leads to %s, not to %s, kube-proxy's cluster-policy chain for it (wrong port name or protocol, or a Local traffic policy?)", ErrRules, svc, chain, want)
	}
	return ServiceRules{Present: true}, nil
}

// exec runs one command, counting its cost under kind.
func (r *NodeReader) exec(ctx context.Context, kind string, args ...string) ([]byte, error) {
	full := append(append([]string(nil), r.prefix...), args...)
	start := r.now()
	out, err := r.run(ctx, full...)
	d := r.now().Sub(start).Seconds()
	r.mu.Lock()
	c := r.cost[kind]
	if c == nil {
		c = &CommandCost{}
		r.cost[kind] = c
	}
	c.Count++
	c.Seconds += d
	if d > c.MaxSeconds {
		c.MaxSeconds = d
	}
	c.Bytes += int64(len(out))
	if err != nil {
		c.Errors++
	}
	r.mu.Unlock()
	return out, err
}

// absent tells whether a command failed because what it lists does not
// exist (as opposed to failing to run): iptables-nft 1.8.9 reports a
// missing chain as "incompatible", legacy iptables as "No
// chain/target/match"; nft as "Error: No such file or directory"; ipvsadm
// as "No such service".
func absent(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	for _, m := range []string{"No chain/target/match by that name", "is incompatible, use 'nft' tool",
		"Error: No such file or directory", "Error: Could not process rule: No such file or directory", "No such service"} {
		if strings.Contains(s, m) {
			return true
		}
	}
	return false
}

// listing returns the round's map of every Service's entry point, reading
// it on the round's first call.
func (r *NodeReader) listing(ctx context.Context) (map[string]string, error) {
	r.mu.Lock()
	m := r.services
	r.mu.Unlock()
	if m != nil {
		return m, nil
	}
	var err error
	switch r.mode {
	case scenarios.ModeIPTables:
		var out []byte
		out, err = r.exec(ctx, CommandServices, "iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES")
		switch {
		case absent(err):
			m, err = map[string]string{}, nil // no KUBE-SERVICES at all: nothing programmed
		case err == nil:
			m, err = ParseIPTablesServices(out)
		}
	case scenarios.ModeNFTables:
		var out []byte
		if out, err = r.tableDump(ctx); err == nil && out != nil {
			if len(out) == 0 {
				m = map[string]string{} // no kube-proxy table: nothing programmed
			} else {
				m, err = ParseNFTServiceIPs(out)
			}
			break
		}
		out, err = r.exec(ctx, CommandServices, "nft", "list", "map", "ip", "kube-proxy", nftServiceIPs)
		switch {
		case absent(err):
			m, err = map[string]string{}, nil // no kube-proxy table: nothing programmed
		case err == nil:
			m, err = ParseNFTServiceIPs(out)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("listing every Service's %s entry point: %w", r.mode, err)
	}
	r.mu.Lock()
	r.services = m
	r.mu.Unlock()
	return m, nil
}

// readIPTables: nat KUBE-SERVICES (the round's listing) has the
// ClusterIP's rule → `iptables -S KUBE-SVC-<hash>` → each KUBE-SEP-* chain's
// endpoint, from the rule's comment (checked against the chain's hash), an
// earlier read, or `iptables -S KUBE-SEP-<hash>`'s DNAT.
func (r *NodeReader) readIPTables(ctx context.Context, svc ServiceRef) (ServiceRules, error) {
	svcs, err := r.listing(ctx)
	if err != nil {
		return ServiceRules{}, err
	}
	chain, ok := svcs[svc.key()]
	if !ok {
		return ServiceRules{}, nil
	}
	if want := IPTablesServiceChain(svc); chain != want {
		return ServiceRules{}, fmt.Errorf("%w: %s: nat KUBE-SERVICES sends it to %s, not to %s, kube-proxy's cluster-policy chain for it (wrong port name or protocol, or a Local traffic policy?)", ErrRules, svc, chain, want)
	}
	out, err := r.exec(ctx, CommandServiceChain, "iptables", "-w", "-t", "nat", "-S", chain)
	if absent(err) {
		return ServiceRules{}, nil // deleted by a sync after the listing
	}
	if err != nil {
		return ServiceRules{}, fmt.Errorf("reading %s's chain %s: %w", svc, chain, err)
	}
	jumps, err := ParseIPTablesServiceChain(out, chain)
	if err != nil {
		return ServiceRules{}, fmt.Errorf("reading %s: %w", svc, err)
	}
	eps := make([]string, 0, len(jumps))
	for _, j := range jumps {
		ep, err := r.endpoint(ctx, svc, j)
		if err != nil {
			return ServiceRules{}, err
		}
		eps = append(eps, ep)
	}
	return rules(eps), nil
}

// endpoint resolves one KUBE-SEP-* chain of svc to its endpoint.
func (r *NodeReader) endpoint(ctx context.Context, svc ServiceRef, j IPTablesJump) (string, error) {
	if j.Endpoint != "" {
		if want := IPTablesEndpointChain(svc, j.Endpoint); want != j.Chain {
			return "", fmt.Errorf("%w: %s: the rule to %s says endpoint %s, whose chain would be %s", ErrRules, svc, j.Chain, j.Endpoint, want)
		}
		return j.Endpoint, nil
	}
	r.mu.Lock()
	ep, ok := r.seps[j.Chain]
	r.mu.Unlock()
	if ok {
		return ep, nil
	}
	out, err := r.exec(ctx, CommandEndpointChain, "iptables", "-w", "-t", "nat", "-S", j.Chain)
	if err != nil {
		return "", fmt.Errorf("reading %s's endpoint chain %s: %w", svc, j.Chain, err)
	}
	ep, err = ParseIPTablesEndpointChain(out, j.Chain)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", svc, err)
	}
	if want := IPTablesEndpointChain(svc, ep); want != j.Chain {
		return "", fmt.Errorf("%w: %s: chain %s DNATs to %s, whose chain would be %s", ErrRules, svc, j.Chain, ep, want)
	}
	r.mu.Lock()
	r.seps[j.Chain] = ep
	r.mu.Unlock()
	return ep, nil
}

// readNFT: the service-ips map (the round's listing) has the ClusterIP's
// element → `nft list chain ip kube-proxy service-<hash>-...` → the DNAT
// map's endpoints.
func (r *NodeReader) readNFT(ctx context.Context, svc ServiceRef) (ServiceRules, error) {
	svcs, err := r.listing(ctx)
	if err != nil {
		return ServiceRules{}, err
	}
	chain, ok := svcs[svc.key()]
	if !ok {
		return ServiceRules{}, nil
	}
	if want := NFTServiceChain(svc); chain != want {
		return ServiceRules{}, fmt.Errorf("%w: %s: service-ips sends it to %s, not to %s, kube-proxy's cluster-policy chain for it (wrong port name or protocol, or a Local traffic policy?)", ErrRules, svc, chain, want)
	}
	out, err := r.tableDump(ctx)
	if err == nil && out != nil {
		if !bytes.Contains(out, []byte("chain "+chain+" {")) {
			return ServiceRules{}, nil // deleted: the dump has no such chain
		}
	} else if err == nil {
		out, err = r.exec(ctx, CommandServiceChain, "nft", "list", "chain", "ip", "kube-proxy", chain)
	}
	if absent(err) {
		return ServiceRules{}, nil // deleted by a sync after the listing
	}
	if err != nil {
		return ServiceRules{}, fmt.Errorf("reading %s's chain %s: %w", svc, chain, err)
	}
	eps, err := ParseNFTServiceChain(out, chain)
	if err != nil {
		return ServiceRules{}, fmt.Errorf("reading %s: %w", svc, err)
	}
	return rules(eps), nil
}

// readIPVS: `ipvsadm -Ln -t <ClusterIP>:<port>`, one virtual server.
func (r *NodeReader) readIPVS(ctx context.Context, svc ServiceRef) (ServiceRules, error) {
	flag := "-t"
	switch svc.proto() {
	case "udp":
		flag = "-u"
	case "sctp":
		flag = "--sctp-service"
	}
	out, err := r.exec(ctx, CommandServiceChain, "ipvsadm", "-Ln", flag, net.JoinHostPort(svc.ClusterIP, strconv.Itoa(int(svc.Port))))
	if absent(err) {
		return ServiceRules{}, nil
	}
	if err != nil {
		return ServiceRules{}, fmt.Errorf("reading %s's virtual server: %w", svc, err)
	}
	eps, err := ParseIPVSService(out)
	if err != nil {
		return ServiceRules{}, fmt.Errorf("reading %s: %w", svc, err)
	}
	return rules(eps), nil
}

// rules is the ServiceRules of a Service whose rules lead to eps.
func rules(eps []string) ServiceRules {
	if len(eps) == 0 {
		return ServiceRules{}
	}
	sort.Strings(eps)
	return ServiceRules{Present: true, Endpoints: eps}
}

// CheckReader reads Services kube-proxy has programmed (a step's target,
// a few others) and fails, naming every one, when a read errs or finds a
// Service absent: a reader that cannot see programmed Services would
// leave every change unprogrammed. The sweep calls it before a window.
func CheckReader(ctx context.Context, r RuleReader, svcs []ServiceRef) error {
	if rr, ok := r.(roundReader); ok {
		rr.StartRound()
	}
	var bad []string
	for _, s := range svcs {
		got, err := r.Read(ctx, s)
		switch {
		case err != nil:
			bad = append(bad, err.Error())
		case !got.Present:
			bad = append(bad, s.String()+": no rule leads to its endpoints")
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("the node's rules do not show %d of %d programmed Services: %s", len(bad), len(svcs), strings.Join(bad, "; "))
	}
	return nil
}
