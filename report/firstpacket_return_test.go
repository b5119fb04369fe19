package report

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
)

// The way back's metrics count only where the probe timed it within 1%
// of the client's connections, whatever the first packet's state.
func TestWayBackMetricsNeedTheClientsConnections(t *testing.T) {
	point := func(ret *runs.FirstPacketReturn) *runs.Point {
		return &runs.Point{DurationSeconds: 5, Connect: runs.Connect{Count: 5000, P50Us: 40},
			FirstPacket: &runs.FirstPacket{Connections: 5000, ClientConnections: 5000, P50Us: 30, P99Us: 60, Return: ret}}
	}
	for _, c := range []struct {
		name string
		ret  *runs.FirstPacketReturn
		ok   bool
	}{
		{"every connection", &runs.FirstPacketReturn{Connections: 5000, ClientConnections: 5000, P50Us: 11, P99Us: 25}, true},
		{"99% of them", &runs.FirstPacketReturn{Connections: 4950, ClientConnections: 5000, P50Us: 11, P99Us: 25}, true},
		{"98.9%", &runs.FirstPacketReturn{Connections: 4945, ClientConnections: 5000, P50Us: 11, P99Us: 25}, false},
		{"marked incomplete", &runs.FirstPacketReturn{Connections: 5000, ClientConnections: 5000, P50Us: 11, Incomplete: "x"}, false},
		{"unavailable", &runs.FirstPacketReturn{Unavailable: "no netif_receive_skb"}, false},
		{"an older run", nil, false},
	} {
		p := point(c.ret)
		for name, want := range map[string]float64{"first-packet-return": 11, "first-packet-return-p99": 25} {
			v, ok := metric(name).Value(p)
			if ok != c.ok || (ok && v != want) {
				t.Errorf("%s: %s = %v, %v; want measured %v", c.name, name, v, ok, c.ok)
			}
		}
		if v, ok := metric("first-packet").Value(p); !ok || v != 30 {
			t.Errorf("%s: the first packet's p50 %v, %v", c.name, v, ok)
		}
	}
	if _, ok := metric("first-packet-return").Value(&runs.Point{}); ok {
		t.Error("a point without a probe measured the way back")
	}
}

// The way back is the control of the depth fits: in a seeded simulation
// where the first packet grows 15 ns per rule walked and the way back
// does not, the within-step contrasts give the first packet its slope and
// the way back an interval around 0, and the across-step fit slopes of 15
// and about 0.
func TestWayBackIsTheDepthControl(t *testing.T) {
	d := depthData(t)
	rng := rand.New(rand.NewPCG(22, 6))
	for i := range d.Points {
		p := &d.Points[i]
		depth := p.Depth.Before.Mean
		first := 11_000 + 15*depth + 300*rng.NormFloat64() // ns
		back := 9_000 + 300*rng.NormFloat64()
		p.FirstPacket = &runs.FirstPacket{Connections: 10_000, ClientConnections: 10_000,
			P01Us: first/1e3 - 1, P50Us: first / 1e3, P99Us: first/1e3 + 30, MeanUs: first/1e3 + 2,
			Return: &runs.FirstPacketReturn{Connections: 10_000, ClientConnections: 10_000,
				P01Us: back/1e3 - 1, P50Us: back / 1e3, P99Us: back/1e3 + 20, MeanUs: back/1e3 + 1}}
	}
	d.groups = groupPoints(d.Points)

	cs := StepContrasts(d)
	if len(cs) != 2 || cs[0].Mode != "iptables" {
		t.Fatalf("contrasts %+v", cs)
	}
	if e, ok := cs[0].estimateOf("kernel time to first packet p50"); !ok || !e.HasCI || e.Lo > 15 || e.Hi < 15 || e.Lo <= 0 {
		t.Errorf("iptables first packet: %+v, want a CI around 15 ns per rule excluding 0", e)
	}
	e, ok := cs[0].estimateOf(returnDepthName)
	if !ok || !e.HasCI || e.Lo > 0 || e.Hi < 0 || e.Hi-e.Lo > 2 {
		t.Errorf("iptables way back: %+v, want a CI narrower than 2 ns per rule holding 0", e)
	}
	if e, ok := cs[1].estimateOf(returnDepthName); !ok || !e.HasCI || e.Lo > 0 || e.Hi < 0 {
		t.Errorf("nftables way back, deep − shallow: %+v, want a CI holding 0", e)
	}

	// Across three steps the bootstrap's interval is degenerate (a
	// resample of one step has no spread of depths), so the slopes
	// themselves are checked.
	fits := DepthFits(d)
	if f, ok := fits[0].fitOf(returnDepthName); !ok || math.Abs(f.Slope) > 0.5 {
		t.Errorf("iptables way back across steps: %.3f ns per rule (%v), want about 0", f.Slope, ok)
	}
	if f, ok := fits[0].fitOf("kernel time to first packet p50"); !ok || math.Abs(f.Slope-15) > 1 {
		t.Errorf("iptables first packet across steps: %.3f ns per rule (%v), want about 15", f.Slope, ok)
	}
	for _, s := range []string{fits[0].Sentence(), cs[0].Sentence()} {
		if !strings.Contains(s, "kernel SYN-ACK way back") || !strings.Contains(s, "control: no rule runs on it") {
			t.Errorf("the sentence does not state the control:\n%s", s)
		}
	}

	// Without the way back (runs of older kpbench versions), the fits
	// leave it out rather than report an empty control.
	for i := range d.Points {
		d.Points[i].FirstPacket.Return = nil
	}
	d.groups = groupPoints(d.Points)
	if _, ok := DepthFits(d)[0].fitOf(returnDepthName); ok {
		t.Error("a run without the way back fitted it")
	}
	if _, ok := StepContrasts(d)[0].estimateOf(returnDepthName); ok {
		t.Error("a run without the way back contrasted it")
	}
}
