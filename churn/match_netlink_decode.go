package churn

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The decoding half of NFTNetlinkReader (match_netlink.go): the key of a
// Service's service-ips element, the elements and rules the kernel sends,
// and where a service chain's rules send a packet.

// nftServiceKey is svc's key in service-ips, "<ClusterIP> . <protocol> .
// <port>", as the kernel stores a concatenation (each field padded to 4
// bytes; the port in network order), and the table's family.
func nftServiceKey(svc ServiceRef) (uint8, []byte, error) {
	ip, err := netip.ParseAddr(svc.ClusterIP)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: ClusterIP %q is not an IP address", svc, svc.ClusterIP)
	}
	ip = ip.Unmap()
	var proto byte
	switch svc.proto() {
	case "tcp":
		proto = unix.IPPROTO_TCP
	case "udp":
		proto = unix.IPPROTO_UDP
	case "sctp":
		proto = unix.IPPROTO_SCTP
	default:
		return 0, nil, fmt.Errorf("%s: protocol %q is not TCP, UDP or SCTP", svc, svc.Protocol)
	}
	if svc.Port <= 0 || svc.Port > 65535 {
		return 0, nil, fmt.Errorf("%s: port %d out of range", svc, svc.Port)
	}
	fam := uint8(unix.NFPROTO_IPV4)
	if ip.Is6() {
		fam = unix.NFPROTO_IPV6
	}
	key := append(ip.AsSlice(), proto, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(key[len(key)-4:], uint16(svc.Port))
	return fam, key, nil
}

// nftElement is one element of a set or map as the kernel reports it.
type nftElement struct {
	Key, Val []byte
	Verdict  *expr.Verdict // a verdict map's data
}

// decodeNFTElements decodes the attributes of a NEWSETELEM message (after
// its nfgenmsg header).
func decodeNFTElements(b []byte) ([]nftElement, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	var out []nftElement
	for ad.Next() {
		if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		ad.Nested(func(list *netlink.AttributeDecoder) error {
			for list.Next() {
				if list.Type() != unix.NFTA_LIST_ELEM {
					continue
				}
				var el nftElement
				list.Nested(func(ed *netlink.AttributeDecoder) error {
					for ed.Next() {
						switch ed.Type() {
						case unix.NFTA_SET_ELEM_KEY:
							ed.Nested(func(d *netlink.AttributeDecoder) error {
								el.Key, _, _ = decodeNFTData(d)
								return nil
							})
						case unix.NFTA_SET_ELEM_DATA:
							ed.Nested(func(d *netlink.AttributeDecoder) error {
								var err error
								el.Val, el.Verdict, err = decodeNFTData(d)
								return err
							})
						}
					}
					return nil
				})
				out = append(out, el)
			}
			return nil
		})
	}
	return out, ad.Err()
}

// decodeNFTData decodes an nft_data: a value or a verdict.
func decodeNFTData(d *netlink.AttributeDecoder) ([]byte, *expr.Verdict, error) {
	var val []byte
	var v *expr.Verdict
	for d.Next() {
		switch d.Type() {
		case unix.NFTA_DATA_VALUE:
			val = d.Bytes()
		case unix.NFTA_DATA_VERDICT:
			v = &expr.Verdict{}
			d.Nested(func(vd *netlink.AttributeDecoder) error {
				for vd.Next() {
					switch vd.Type() {
					case unix.NFTA_VERDICT_CODE:
						v.Kind = expr.VerdictKind(int32(vd.Uint32()))
					case unix.NFTA_VERDICT_CHAIN:
						v.Chain = vd.String()
					}
				}
				return nil
			})
		}
	}
	return val, v, d.Err()
}

// decodeNFTRule decodes the expressions of a NEWRULE message (after its
// nfgenmsg header) that tell where the rule sends a packet: immediate
// (values, verdicts), lookup, nat. Others are left out.
func decodeNFTRule(fam uint8, b []byte) ([]expr.Any, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	var out []expr.Any
	for ad.Next() {
		if ad.Type() != unix.NFTA_RULE_EXPRESSIONS {
			continue
		}
		ad.Nested(func(list *netlink.AttributeDecoder) error {
			for list.Next() {
				if list.Type() != unix.NFTA_LIST_ELEM {
					continue
				}
				list.Nested(func(ed *netlink.AttributeDecoder) error {
					var name string
					for ed.Next() {
						switch ed.Type() {
						case unix.NFTA_EXPR_NAME:
							name = ed.String()
						case unix.NFTA_EXPR_DATA:
							e, err := decodeNFTExpr(fam, name, ed.Bytes())
							if err != nil {
								return fmt.Errorf("expression %s: %w", name, err)
							}
							if e != nil {
								out = append(out, e)
							}
						}
					}
					return nil
				})
			}
			return nil
		})
	}
	return out, ad.Err()
}

func decodeNFTExpr(fam uint8, name string, data []byte) (expr.Any, error) {
	var e expr.Any
	switch name {
	case "immediate":
		e = &expr.Immediate{}
	case "lookup":
		e = &expr.Lookup{}
	case "nat":
		e = &expr.NAT{}
	default:
		return nil, nil
	}
	if err := expr.Unmarshal(fam, data, e); err != nil {
		return nil, err
	}
	// A verdict is an immediate to the verdict register (as
	// google/nftables' own rule decoding does).
	if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT && len(imm.Data) == 0 {
		v := &expr.Verdict{}
		if err := expr.Unmarshal(fam, data, v); err != nil {
			return nil, err
		}
		return v, nil
	}
	return e, nil
}

// nftChainTargets is where a service chain's rules send a packet.
type nftChainTargets struct {
	// dnatMaps: a DNAT through a map ("dnat to numgen random mod N map
	// { i : ip . port }").
	dnatMaps []nftDNATMap
	// endpoints: a DNAT to an immediate address ("dnat to ip:port").
	endpoints []string
	// chains: goto and jump verdicts; vmaps: verdict maps looked up
	// (session affinity: "numgen random mod N vmap { i : goto endpoint-… }").
	chains []string
	vmaps  []string
}

// nftDNATMap is a map whose data a DNAT reads: the address from the
// word at addr, the port (when proto ≥ 0) from the word at proto.
type nftDNATMap struct {
	name        string
	addr, proto int
	v6          bool
}

// endpoint decodes one element's data of the map into ip:port.
func (m nftDNATMap) endpoint(val []byte) (string, error) {
	var port []byte
	if m.proto >= 0 {
		if len(val) < m.proto*4+2 {
			return "", fmt.Errorf("%d bytes of data hold no port at word %d", len(val), m.proto)
		}
		port = val[m.proto*4:]
	}
	if len(val) < m.addr*4 {
		return "", fmt.Errorf("%d bytes of data hold no address at word %d", len(val), m.addr)
	}
	return nftEndpoint(val[m.addr*4:], port, m.v6)
}

// nftEndpoint is the address at the start of addr (4 bytes, 16 with v6)
// joined with the port (network order) at the start of port; the address
// alone when port is nil.
func nftEndpoint(addr, port []byte, v6 bool) (string, error) {
	n := 4
	if v6 {
		n = 16
	}
	if len(addr) < n {
		return "", fmt.Errorf("%d bytes hold no IPv%d address", len(addr), map[bool]int{false: 4, true: 6}[v6])
	}
	ip, _ := netip.AddrFromSlice(addr[:n])
	if port == nil {
		return ip.String(), nil
	}
	if len(port) < 2 {
		return "", fmt.Errorf("%d bytes hold no port", len(port))
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(int(binary.BigEndian.Uint16(port)))), nil
}

// nftReg32 is the first 32-bit register of r: NFT_REG_1..4 (16 bytes
// each) alias NFT_REG32_00..15 (numbered from 8).
func nftReg32(r uint32) int {
	if r >= unix.NFT_REG_1 && r <= unix.NFT_REG_4 {
		return 8 + int(r-unix.NFT_REG_1)*4
	}
	return int(r)
}

// add follows one rule's expressions through the registers: a lookup or
// an immediate fills registers that a later DNAT reads.
func (t *nftChainTargets) add(exprs []expr.Any) error {
	type source struct {
		set  string // the map a lookup read
		data []byte // an immediate's value from this word on
		word int    // the word of the map's data
	}
	regs := map[int]source{}
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Immediate:
			r := nftReg32(e.Register)
			for w := 0; w*4 < len(e.Data); w++ {
				regs[r+w] = source{data: e.Data[w*4:], word: w}
			}
		case *expr.Lookup:
			if !e.IsDestRegSet {
				continue // a membership test (the affinity sets)
			}
			if e.DestRegister == unix.NFT_REG_VERDICT {
				t.vmaps = append(t.vmaps, e.SetName)
				continue
			}
			r := nftReg32(e.DestRegister)
			for w := 0; w < 16; w++ { // a map's data spans up to 64 bytes
				regs[r+w] = source{set: e.SetName, word: w}
			}
		case *expr.Verdict:
			if (e.Kind == expr.VerdictGoto || e.Kind == expr.VerdictJump) && e.Chain != "" {
				t.chains = append(t.chains, e.Chain)
			}
		case *expr.NAT:
			if e.Type != expr.NATTypeDestNAT {
				continue
			}
			v6 := e.Family == unix.NFPROTO_IPV6
			a, ok := regs[nftReg32(e.RegAddrMin)]
			if !ok || e.RegAddrMin == 0 {
				return fmt.Errorf("%w: a DNAT reads register %d, which no lookup or value filled", ErrRules, e.RegAddrMin)
			}
			var p source
			hasPort := e.RegProtoMin != 0
			if hasPort {
				if p, ok = regs[nftReg32(e.RegProtoMin)]; !ok || p.set != a.set {
					return fmt.Errorf("%w: a DNAT's port (register %d) does not come from its address's source", ErrRules, e.RegProtoMin)
				}
			}
			if a.set != "" {
				m := nftDNATMap{name: a.set, addr: a.word, proto: -1, v6: v6}
				if hasPort {
					m.proto = p.word
				}
				t.dnatMaps = append(t.dnatMaps, m)
				continue
			}
			var port []byte
			if hasPort {
				port = p.data
			}
			ep, err := nftEndpoint(a.data, port, v6)
			if err != nil {
				return fmt.Errorf("%w: a DNAT to a value: %v", ErrRules, err)
			}
			t.endpoints = append(t.endpoints, ep)
		}
	}
	return nil
}
