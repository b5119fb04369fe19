package runs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A point written before the way back was timed reads as it was (no
// Return); one with it reads back whole.
func TestFirstPacketReturnReads(t *testing.T) {
	dir := t.TempDir()
	older := `{"schemaVersion":1,"id":"a","valid":true,"firstPacket":{"span":"s","connections":100,"clientConnections":100,"p50Us":40}}` + "\n"
	if err := os.WriteFile(filepath.Join(dir, PointsFile), []byte(older), 0o644); err != nil {
		t.Fatal(err)
	}
	pts, err := ReadPoints(dir)
	if err != nil || len(pts) != 1 {
		t.Fatalf("an older point: %v, %v", pts, err)
	}
	if fp := pts[0].FirstPacket; fp == nil || fp.P50Us != 40 || fp.Return != nil || !fp.Usable() {
		t.Errorf("an older point's first packet: %+v", fp)
	}

	p := Point{SchemaVersion: SchemaVersion, ID: "b", Valid: true, FirstPacket: &FirstPacket{Span: "s", Connections: 100, ClientConnections: 100, P50Us: 40,
		Return: &FirstPacketReturn{Span: "r", Connections: 99, ClientConnections: 100, P01Us: 8, P50Us: 11.5, P99Us: 30, MeanUs: 12}}}
	dir = t.TempDir()
	if err := AppendPoint(dir, &p); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, PointsFile))
	if err != nil || !strings.Contains(string(b), `"return":{"span":"r","connections":99`) {
		t.Errorf("points.jsonl: %s, %v", b, err)
	}
	if pts, err = ReadPoints(dir); err != nil || len(pts) != 1 || !reflect.DeepEqual(pts[0], p) {
		t.Errorf("round trip: %+v, %v; want %+v", pts, err, p)
	}
}

// The way back is judged for coverage as the first packet is: within 1%
// of the client's connections, or marked.
func TestFirstPacketReturnIncomplete(t *testing.T) {
	for _, c := range []struct {
		timed, client int64
		unavailable   string
		want          string // "" when complete
	}{
		{5000, 5000, "", ""},
		{4950, 5000, "", ""},
		{5050, 5000, "", ""},
		{4949, 5000, "", "4949 of the client's 5000 connections (99.0%, below 99%)"},
		{5051, 5000, "", "timed 5051 connections, the client opened 5000"},
		{3, 0, "", "the client reported none"},
		{0, 0, "", ""},
		{0, 5000, "no netif_receive_skb", ""},
	} {
		r := &FirstPacketReturn{Connections: c.timed, ClientConnections: c.client, Unavailable: c.unavailable}
		got := FirstPacketReturnIncomplete(r)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%d of %d (%q): %q, want %q", c.timed, c.client, c.unavailable, got, c.want)
		}
		usable := c.want == "" && c.unavailable == "" && c.timed > 0
		if r.Usable() != usable {
			t.Errorf("%d of %d (%q): usable %v", c.timed, c.client, c.unavailable, r.Usable())
		}
	}
	if FirstPacketReturnIncomplete(nil) != "" || (*FirstPacketReturn)(nil).Usable() {
		t.Error("no way back is incomplete or usable")
	}
}
