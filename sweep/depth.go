package sweep

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// DepthReader reads, on the client node, how a new connection finds its
// Service in a mode: the chain whose order decides the target's depth.
type DepthReader interface {
	Chain(ctx context.Context, mode scenarios.Mode) (*collector.ServiceChain, error)
}

// NodeDepth reads the client node's rules with its own iptables-save or
// nft (in the lab inside the node's namespace; on kind and existing
// clusters through the agent pod).
type NodeDepth struct {
	Node clusters.ClientNode
}

// Chain implements DepthReader.
func (d NodeDepth) Chain(ctx context.Context, mode scenarios.Mode) (*collector.ServiceChain, error) {
	return collector.ReadServiceChain(ctx, mode, kubeproxy.NodeRunner(d.Node.Run))
}

// maxRepicks bounds how often a placement by depth picks again because
// kube-proxy synced between the pick and the window.
const maxRepicks = 3

// targeting is one step's targets: every candidate Service (in creation
// order) and, for a placement by depth, the last reading of the chain.
type targeting struct {
	mode      scenarios.Mode
	placement scenarios.Targets
	urls      []string
	ports     []collector.ServicePort
	chain     *collector.ServiceChain
}

func newTargeting(mode scenarios.Mode, placement scenarios.Targets, urls []string) (*targeting, error) {
	t := &targeting{mode: mode, placement: placement, urls: urls}
	for _, u := range urls {
		p, err := servicePortOf(u)
		if err != nil {
			return nil, err
		}
		t.ports = append(t.ports, p)
	}
	return t, nil
}

// servicePortOf reads the ClusterIP and port out of a target URL
// (http://IP:PORT/).
func servicePortOf(raw string) (collector.ServicePort, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return collector.ServicePort{}, fmt.Errorf("target URL %q: %w", raw, err)
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return collector.ServicePort{}, fmt.Errorf("target URL %q: not a ClusterIP: %w", raw, err)
	}
	port := uint64(80)
	if p := u.Port(); p != "" {
		if port, err = strconv.ParseUint(p, 10, 16); err != nil {
			return collector.ServicePort{}, fmt.Errorf("target URL %q: port: %w", raw, err)
		}
	}
	return collector.ServicePort{IP: ip, Port: uint16(port), Proto: "tcp"}, nil
}

// tracksDepth says whether the engine reads depths in mode.
func (e *Engine) tracksDepth(mode scenarios.Mode) bool {
	return e.Depth != nil && mode != scenarios.ModeExternal
}

// pick returns the URLs a point sends to: for a placement by depth the
// Service at that depth in chain (read now when there is none), otherwise
// every candidate.
func (e *Engine) pick(ctx context.Context, t *targeting) ([]string, []collector.ServicePort, error) {
	if !t.placement.ByDepth() {
		return t.urls, t.ports, nil
	}
	if !e.tracksDepth(t.mode) {
		// No rules to read (a kube-proxy replacement): the placements
		// fall back to the first-created Service, as in depth-0 modes.
		return t.urls[:1], t.ports[:1], nil
	}
	if t.chain == nil {
		c, err := e.Depth.Chain(ctx, t.mode)
		if err != nil {
			return nil, nil, fmt.Errorf("placing the target %s: %w", t.placement, err)
		}
		t.chain = c
	}
	i, _, err := collector.Place(t.chain, t.ports, t.placement)
	if err != nil {
		return nil, nil, err
	}
	return t.urls[i : i+1], t.ports[i : i+1], nil
}

// depthOf is a point's depth from the readings before and after its
// window, over the targets it used, weighted by the connections each
// received (connects, in the order of used; nil for one target).
func depthOf(before, after *collector.ServiceChain, used []collector.ServicePort, connects []int64, repicks int) (*runs.Depth, error) {
	if len(connects) != len(used) {
		connects = nil
	}
	b, err := before.Reading(used, connects)
	if err != nil {
		return nil, fmt.Errorf("depth before the window: %w", err)
	}
	a, err := after.Reading(used, connects)
	if err != nil {
		return nil, fmt.Errorf("depth after the window: %w", err)
	}
	d := &runs.Depth{Before: b, After: a, Changed: a != b, Targets: len(used), Repicks: repicks}
	if len(used) == 1 {
		d.Via = before.Via(used[0])
		d.Target = before.Name(used[0])
	} else {
		d.Via = before.Lookup
		if before.Mode == scenarios.ModeIPTables {
			d.Via = fmt.Sprintf("nat KUBE-SERVICES, %d rules", before.Length)
		}
	}
	return d, nil
}
