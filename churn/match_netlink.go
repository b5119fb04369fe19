package churn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/kpbench/kpbench/clusters/lab/netns"
)

// This file reads nftables mode's rules of one Service with netlink
// requests of its own instead of the nft CLI, whose every read of a chain
// loads the whole table (docs/churn-syncs.md): the service-ips element of
// the Service's ClusterIP (a single-element get, answered by the kernel
// from the map's hash), the rules of its service chain (a rule dump
// filtered by table and chain), and the elements of the anonymous map its
// DNAT (or, with session affinity, its verdict map) looks up. Each is
// O(that Service), whatever the number of Services. The expressions are
// decoded with github.com/google/nftables/expr; the requests are sent
// with github.com/mdlayher/netlink directly because google/nftables'
// getters wrap the kernel's error as text (fmt "%v"), and "no such
// chain" (a Service deleted between two requests) must be told apart
// from a failure.

// Kinds of netlink request NFTNetlinkReader makes (its Cost's keys).
const (
	// NetlinkServiceElement gets one Service's element of service-ips.
	NetlinkServiceElement = "netlink-service-element"
	// NetlinkChainRules dumps the rules of one Service's chain.
	NetlinkChainRules = "netlink-chain-rules"
	// NetlinkMapElements dumps the elements of the anonymous map a
	// service chain's rule looks up (DNAT map or verdict map).
	NetlinkMapElements = "netlink-map-elements"
)

// nftTable is the table kube-proxy's nftables proxier writes, in the ip
// family (IPv4) and in the ip6 family (IPv6).
const nftTable = "kube-proxy"

// NetlinkOptions tune an NFTNetlinkReader.
type NetlinkOptions struct {
	// CPUs pins the thread that makes the requests (the kernel does a
	// dump's work in that thread): the lab's observer CPUs. Nil: unpinned.
	CPUs []int
	// Now times the requests; time.Now when nil.
	Now func() time.Time
}

// NFTNetlinkReader reads nftables mode's rules of one Service in a network
// namespace of this machine (the lab's client node), in-process: no
// command per read. It answers Read and ReadPresence like NodeReader in
// nftables mode; it has no round state (each presence is one element
// get, cheaper than listing service-ips at any size).
type NFTNetlinkReader struct {
	nsPath string
	cpus   []int
	now    func() time.Time
	// dial opens the netfilter netlink socket (in the namespace do
	// switched to); tests replace it with a fake kernel.
	dial func() (*netlink.Conn, error)
	// record, when set, is handed each request's replies (the kernel
	// test records the fixtures of the decoding tests with it).
	record func(kind string, replies []netlink.Message)

	mu   sync.Mutex
	cost map[string]*CommandCost
}

// NewNFTNetlinkReader returns a reader of the rules in the network
// namespace at nsPath ("" is this process's own namespace).
func NewNFTNetlinkReader(nsPath string, opt NetlinkOptions) (*NFTNetlinkReader, error) {
	if nsPath != "" {
		if _, err := os.Stat(nsPath); err != nil {
			return nil, fmt.Errorf("reading nftables rules over netlink: network namespace %s: %w", nsPath, err)
		}
	}
	r := &NFTNetlinkReader{nsPath: nsPath, cpus: opt.CPUs, now: opt.Now, cost: map[string]*CommandCost{}}
	if r.now == nil {
		r.now = time.Now
	}
	r.dial = func() (*netlink.Conn, error) { return netlink.Dial(unix.NETLINK_NETFILTER, nil) }
	return r, nil
}

// Cost returns what the requests cost so far, by kind (NetlinkServiceElement,
// NetlinkChainRules, NetlinkMapElements): count, wall time, reply bytes.
// A request answered "no such object" (a Service without endpoints) is an
// answer, not an error.
func (r *NFTNetlinkReader) Cost() map[string]CommandCost {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]CommandCost, len(r.cost))
	for k, c := range r.cost {
		out[k] = *c
	}
	return out
}

// ReadPresence tells whether svc's ClusterIP leads to endpoints: whether
// service-ips holds its element (and that it goes to kube-proxy's chain
// for svc). Endpoints is left empty.
func (r *NFTNetlinkReader) ReadPresence(ctx context.Context, svc ServiceRef) (ServiceRules, error) {
	if err := ctx.Err(); err != nil {
		return ServiceRules{}, err
	}
	var present bool
	err := r.do(func(c *netlink.Conn) error {
		_, ok, err := r.serviceChain(c, svc)
		present = ok
		return err
	})
	return ServiceRules{Present: present}, err
}

// Read returns what the node's rules say of svc: its service-ips element,
// then its chain's rules, then the elements of the map they look up.
func (r *NFTNetlinkReader) Read(ctx context.Context, svc ServiceRef) (ServiceRules, error) {
	if err := ctx.Err(); err != nil {
		return ServiceRules{}, err
	}
	var out ServiceRules
	err := r.do(func(c *netlink.Conn) error {
		fam, _, err := nftServiceKey(svc)
		if err != nil {
			return err
		}
		chain, ok, err := r.serviceChain(c, svc)
		if err != nil || !ok {
			return err
		}
		// A sync that rewrites the chain between the rule dump and the
		// map's elements deletes the map the rule named: read again.
		for attempt := 1; ; attempt++ {
			eps, err := r.chainEndpoints(c, fam, chain)
			if errors.Is(err, errMapGone) && attempt < 3 {
				continue
			}
			if err != nil {
				return fmt.Errorf("reading %s's chain %s: %w", svc, chain, err)
			}
			out = rules(eps)
			return nil
		}
	})
	return out, err
}

// errMapGone: a map a chain's rule named was gone when its elements were
// asked for.
var errMapGone = errors.New("the chain's map is gone")

// do runs fn with a netlink socket opened in the reader's namespace, on a
// thread pinned to the reader's CPUs.
func (r *NFTNetlinkReader) do(fn func(c *netlink.Conn) error) error {
	return netns.Do(r.nsPath, r.cpus, func() error {
		c, err := r.dial()
		if err != nil {
			return fmt.Errorf("opening a netfilter netlink socket: %w", err)
		}
		defer c.Close()
		return fn(c)
	})
}

// request sends one nftables request and returns the replies of type
// reply (a dump's Done left out), counting its cost under kind. ENOENT
// (no such table, chain, set or element) is returned as is.
func (r *NFTNetlinkReader) request(c *netlink.Conn, kind string, family uint8, msgType, reply uint16, dump bool, attrs []byte) ([]netlink.Message, error) {
	flags := netlink.Request
	if dump {
		flags |= netlink.Dump
	}
	m := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msgType), Flags: flags},
		Data:   append([]byte{family, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	start := r.now()
	msgs, err := c.Execute(m)
	d := r.now().Sub(start).Seconds()
	var out []netlink.Message
	var size int64
	for _, msg := range msgs {
		size += int64(len(msg.Data))
		if msg.Header.Type == netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8|reply) && len(msg.Data) >= 4 {
			out = append(out, msg)
		}
	}
	if r.record != nil && err == nil {
		r.record(kind, out)
	}
	r.mu.Lock()
	cc := r.cost[kind]
	if cc == nil {
		cc = &CommandCost{}
		r.cost[kind] = cc
	}
	cc.Count++
	cc.Seconds += d
	if d > cc.MaxSeconds {
		cc.MaxSeconds = d
	}
	cc.Bytes += size
	if err != nil && !errors.Is(err, unix.ENOENT) {
		cc.Errors++
	}
	r.mu.Unlock()
	return out, err
}

// serviceChain gets svc's element of service-ips: the chain it goes to,
// false when there is none (no endpoints, or no kube-proxy table).
func (r *NFTNetlinkReader) serviceChain(c *netlink.Conn, svc ServiceRef) (string, bool, error) {
	fam, key, err := nftServiceKey(svc)
	if err != nil {
		return "", false, err
	}
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, nftTable)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, nftServiceIPs)
	ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(ae *netlink.AttributeEncoder) error {
		ae.Nested(unix.NFTA_LIST_ELEM, func(ae *netlink.AttributeEncoder) error {
			ae.Nested(unix.NFTA_SET_ELEM_KEY, func(ae *netlink.AttributeEncoder) error {
				ae.Bytes(unix.NFTA_DATA_VALUE, key)
				return nil
			})
			return nil
		})
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return "", false, err
	}
	msgs, err := r.request(c, NetlinkServiceElement, fam, unix.NFT_MSG_GETSETELEM, unix.NFT_MSG_NEWSETELEM, false, attrs)
	if errors.Is(err, unix.ENOENT) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("getting %s's element of %s: %w", svc, nftServiceIPs, err)
	}
	var els []nftElement
	for _, m := range msgs {
		e, err := decodeNFTElements(m.Data[4:])
		if err != nil {
			return "", false, fmt.Errorf("%w: %s's element of %s: %v", ErrRules, svc, nftServiceIPs, err)
		}
		els = append(els, e...)
	}
	if len(els) != 1 || els[0].Verdict == nil || (els[0].Verdict.Kind != expr.VerdictGoto && els[0].Verdict.Kind != expr.VerdictJump) {
		return "", false, fmt.Errorf("%w: %s's element of %s is not one goto or jump (%d elements)", ErrRules, svc, nftServiceIPs, len(els))
	}
	chain := els[0].Verdict.Chain
	if want := NFTServiceChain(svc); chain != want {
		return "", false, fmt.Errorf("%w: %s: service-ips sends it to %s, not to %s, kube-proxy's cluster-policy chain for it (wrong port name or protocol, or a Local traffic policy?)", ErrRules, svc, chain, want)
	}
	return chain, true, nil
}

// chainEndpoints reads chain's rules and the elements of the maps they
// look up: the endpoints (none when the chain is flushed or gone).
func (r *NFTNetlinkReader) chainEndpoints(c *netlink.Conn, fam uint8, chain string) ([]string, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_RULE_TABLE, nftTable)
	ae.String(unix.NFTA_RULE_CHAIN, chain)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := r.request(c, NetlinkChainRules, fam, unix.NFT_MSG_GETRULE, unix.NFT_MSG_NEWRULE, true, attrs)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil // deleted by a sync after the element was read
	}
	if err != nil {
		return nil, fmt.Errorf("dumping its rules: %w", err)
	}
	var t nftChainTargets
	for _, m := range msgs {
		exprs, err := decodeNFTRule(fam, m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrRules, err)
		}
		if err := t.add(exprs); err != nil {
			return nil, err
		}
	}
	if len(msgs) == 0 {
		return nil, nil // flushed: kube-proxy deletes it later
	}
	if len(t.dnatMaps) > 0 {
		var eps []string
		for _, dm := range t.dnatMaps {
			els, err := r.mapElements(c, fam, dm.name)
			if err != nil {
				return nil, err
			}
			for _, el := range els {
				ep, err := dm.endpoint(el.Val)
				if err != nil {
					return nil, fmt.Errorf("%w: DNAT map %s: %v", ErrRules, dm.name, err)
				}
				eps = append(eps, ep)
			}
		}
		return eps, nil
	}
	eps := append([]string(nil), t.endpoints...)
	chains := append([]string(nil), t.chains...)
	for _, vm := range t.vmaps {
		els, err := r.mapElements(c, fam, vm)
		if err != nil {
			return nil, err
		}
		for _, el := range els {
			if el.Verdict != nil && el.Verdict.Chain != "" {
				chains = append(chains, el.Verdict.Chain)
			}
		}
	}
	seen := map[string]bool{}
	for _, ch := range chains {
		if !strings.HasPrefix(ch, "endpoint-") || seen[ch] {
			continue // mark-for-masquerade, or the affinity rule's twin
		}
		seen[ch] = true
		ep, ok := nftEndpointChainAddr(ch)
		if !ok {
			return nil, fmt.Errorf("%w: endpoint chain name %q", ErrRules, ch)
		}
		eps = append(eps, ep)
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("%w: none of its %d rules leads to an endpoint", ErrRules, len(msgs))
	}
	return eps, nil
}

// mapElements dumps the elements of the (anonymous) map name.
func (r *NFTNetlinkReader) mapElements(c *netlink.Conn, fam uint8, name string) ([]nftElement, error) {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, nftTable)
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, name)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := r.request(c, NetlinkMapElements, fam, unix.NFT_MSG_GETSETELEM, unix.NFT_MSG_NEWSETELEM, true, attrs)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("map %s: %w", name, errMapGone)
	}
	if err != nil {
		return nil, fmt.Errorf("dumping map %s: %w", name, err)
	}
	var els []nftElement
	for _, m := range msgs {
		e, err := decodeNFTElements(m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("%w: map %s: %v", ErrRules, name, err)
		}
		els = append(els, e...)
	}
	return els, nil
}
