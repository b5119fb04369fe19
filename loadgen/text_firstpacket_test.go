package loadgen

import (
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
)

// kpbench load --first-packet prints the way back under the first packet,
// or why it was not timed.
func TestTextShowsTheWayBack(t *testing.T) {
	s := &Summary{Valid: true, FirstPacket: &runs.FirstPacket{Connections: 100, ClientConnections: 100, P50Us: 40, P99Us: 90,
		Return: &runs.FirstPacketReturn{Connections: 99, ClientConnections: 100, P50Us: 12.5, P99Us: 30}}}
	text := textOf(t, s)
	first := strings.Index(text, "kernel time to first packet p50 40.0µs, p99 90.0µs (100 of 100 connections timed)")
	back := strings.Index(text, "kernel time of the SYN-ACK's way back p50 12.5µs, p99 30.0µs (99 of 100 connections timed)")
	if first < 0 || back < first {
		t.Errorf("text lacks the way back under the first packet:\n%s", text)
	}
	s.FirstPacket.Return = &runs.FirstPacketReturn{Unavailable: "attaching to raw tracepoint netif_receive_skb: no such file"}
	if text := textOf(t, s); !strings.Contains(text, "kernel time of the SYN-ACK's way back unavailable: attaching to raw tracepoint netif_receive_skb") {
		t.Errorf("text lacks why the way back is not timed:\n%s", text)
	}
	s.FirstPacket.Return = nil
	if text := textOf(t, s); strings.Contains(text, "way back") {
		t.Errorf("a figure without the way back prints one:\n%s", text)
	}
}
