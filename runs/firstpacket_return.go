package runs

// FirstPacketReturn is the way back of the client's new connections,
// timed in the kernel by the probe that times the first packet
// (collector/firstpacket): from the SYN-ACK's arrival on a device of the
// client's network namespace (netif_receive_skb) to the socket becoming
// ESTABLISHED. It covers the receive path, conntrack and the reverse of
// the connection's NAT, routing, INPUT and TCP's SYN-ACK processing;
// kube-proxy's Service rules run on a connection's first packet only, so
// in iptables mode it does not grow with them: a control beside the first
// packet. Span says so in words; when the probe could not time it,
// Unavailable says why and the figures are zero.
type FirstPacketReturn struct {
	Span        string `json:"span,omitempty"`
	Unavailable string `json:"unavailable,omitempty"`
	// Connections counts the client's connections whose way back was
	// timed in the window (by their SYN_SENT, as the first packet's);
	// ClientConnections those the client itself opened there.
	Connections       int64   `json:"connections"`
	ClientConnections int64   `json:"clientConnections"`
	P01Us             float64 `json:"p01Us"`
	P10Us             float64 `json:"p10Us"`
	P50Us             float64 `json:"p50Us"`
	P90Us             float64 `json:"p90Us"`
	P99Us             float64 `json:"p99Us"`
	MeanUs            float64 `json:"meanUs"`
	// Incomplete says why the figures above must not be used although
	// the probe ran: it timed a share of the client's connections outside
	// 99–101% (FirstPacketReturnIncomplete).
	Incomplete string `json:"incomplete,omitempty"`
}

// FirstPacketReturnIncomplete says why r's figures do not describe the
// client's connections ("" when they do, or when the probe did not time
// the way back at all: Unavailable says that).
func FirstPacketReturnIncomplete(r *FirstPacketReturn) string {
	if r == nil || r.Unavailable != "" {
		return ""
	}
	return coverageIncomplete(r.Connections, r.ClientConnections)
}

// Usable reports whether r's figures are the way back of the point's
// connections: the probe timed it and timed the client's connections
// within 1%.
func (r *FirstPacketReturn) Usable() bool {
	return r != nil && r.Unavailable == "" && r.Incomplete == "" && r.Connections > 0 && FirstPacketReturnIncomplete(r) == ""
}
