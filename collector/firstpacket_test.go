package collector

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/collector/firstpacket"
	"github.com/kpbench/kpbench/runs"
)

// A probe that cannot run leaves a complete point that says why.
func TestFirstPacketUnavailableIsRecorded(t *testing.T) {
	for name, o := range map[string]*FirstPacketObserver{
		"no namespace": {Netns: func(context.Context) (string, error) { return "", errors.New("no kube-proxy") }},
		"no such namespace": {Netns: func(context.Context) (string, error) {
			return "/nonexistent/ns/net", nil
		}},
		"a pod": {Unavailable: "the client node (pod) does not run on this machine's kernel"},
	} {
		t.Run(name, func(t *testing.T) {
			w, err := o.Begin(context.Background(), "")
			if err != nil {
				t.Fatalf("Begin failed the point: %v", err)
			}
			p := &runs.Point{Valid: true}
			now := time.Now()
			if err := w.End(context.Background(), Load{Span: Span{now, now.Add(time.Second)}, PID: 1, Connections: 10}, p); err != nil {
				t.Fatalf("End failed the point: %v", err)
			}
			fp := p.FirstPacket
			if fp == nil || fp.Unavailable == "" || fp.Connections != 0 || !p.Valid {
				t.Fatalf("point %+v, first packet %+v", p, fp)
			}
			if name == "no namespace" && !strings.Contains(fp.Unavailable, "no kube-proxy") {
				t.Errorf("reason %q does not say why", fp.Unavailable)
			}
		})
	}
}

// On this kernel (root), the observer times this process's connections
// inside the load's window and none outside it.
func TestFirstPacketObserverTimesTheWindow(t *testing.T) {
	if os.Getenv("KPBENCH_SKIP_INTEGRATION") != "" || os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root (and not KPBENCH_SKIP_INTEGRATION)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func(n int) {
		for range n {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
	}
	o := &FirstPacketObserver{Netns: func(context.Context) (string, error) { return "/proc/self/ns/net", nil }}
	w, err := o.Begin(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	dial(30) // a warm-up: before the window
	start := time.Now()
	dial(120)
	end := time.Now()
	dial(30) // after it
	p := &runs.Point{}
	if err := w.End(context.Background(), Load{Span: Span{start, end}, PID: os.Getpid(), Connections: 120}, p); err != nil {
		t.Fatal(err)
	}
	fp := p.FirstPacket
	if fp == nil || fp.Unavailable != "" {
		t.Fatalf("first packet %+v", fp)
	}
	if fp.Connections != 120 || fp.ClientConnections != 120 {
		t.Errorf("timed %d connections in the window (client: %d), want 120", fp.Connections, fp.ClientConnections)
	}
	if !(fp.P01Us > 0 && fp.P01Us <= fp.P50Us && fp.P50Us <= fp.P99Us) {
		t.Errorf("quantiles out of order: %+v", fp)
	}
	if fp.ProbeRunNs <= 0 || fp.ProbeCores <= 0 {
		t.Errorf("the probe's own cost was not measured: %+v", fp)
	}
	// The way back, counted by the same SYN_SENT instants.
	r := fp.Return
	if r == nil || r.Unavailable != "" || r.Connections != 120 || r.ClientConnections != 120 || !r.Usable() {
		t.Fatalf("way back %+v, want 120 of 120 connections", r)
	}
	if !(r.P01Us > 0 && r.P01Us <= r.P50Us && r.P50Us <= r.P99Us) {
		t.Errorf("way back's quantiles out of order: %+v", r)
	}
}

// The way back is summarized from the Return spans alone, judged for
// coverage like the first packet, and a probe that could not time it
// says why.
func TestFirstPacketReturn(t *testing.T) {
	var ev []firstpacket.Event
	for i := range 100 {
		ev = append(ev, firstpacket.Event{Span: 40 * time.Microsecond, Kind: firstpacket.First})
		if i < 98 {
			ev = append(ev, firstpacket.Event{Span: time.Duration(10+i%3) * time.Microsecond, Kind: firstpacket.Return})
		}
	}
	r := firstPacketReturn(ev, 100, "")
	if r.Connections != 98 || r.ClientConnections != 100 || r.P50Us != 11 || r.Span != firstpacket.ReturnSpan {
		t.Errorf("way back %+v, want 98 connections of 100, p50 11 µs", r)
	}
	if r.Incomplete == "" || r.Usable() {
		t.Errorf("98 of 100 connections timed, and the way back is usable: %+v", r)
	}
	if r := firstPacketReturn(ev, 98, ""); r.Incomplete != "" || !r.Usable() {
		t.Errorf("98 of 98 connections: %+v", r)
	}
	r = firstPacketReturn(ev, 100, "attaching to raw tracepoint netif_receive_skb: no such tracepoint")
	if r.Unavailable == "" || r.Connections != 0 || r.Usable() || r.Incomplete != "" {
		t.Errorf("an unavailable way back: %+v", r)
	}
}

// A VM node's load client times its own connections in the guest's
// kernel: the point takes its figure as it is, labelled emulated under
// TCG, and says why when the load brought none.
func TestLoadFirstPacketOnTheNode(t *testing.T) {
	vm := Setup{FirstPacket: true, Client: clusters.Client{Where: clusters.ClientVM, Bin: "kpbench", VM: &clusters.VMNodeInfo{Accelerator: "tcg"}}}
	if !LoadTimesFirstPacket(vm) {
		t.Fatal("a VM node's load does not time its own connections")
	}
	o, ok := firstPacketFor(context.Background(), vm).(*LoadFirstPacketObserver)
	if !ok || !o.Emulated {
		t.Fatalf("observer %#v, want the load's own figure, emulated", firstPacketFor(context.Background(), vm))
	}
	now := time.Now()
	window := Span{now, now.Add(5 * time.Second)}
	guest := &runs.FirstPacket{Span: "s", Connections: 100, ClientConnections: 100, P50Us: 61.5, P99Us: 230.25,
		Return: &runs.FirstPacketReturn{Connections: 100, ClientConnections: 100, P50Us: 20.5}}
	guestReturn := &runs.FirstPacketReturn{Connections: 97, ClientConnections: 100, P50Us: 21}
	for name, c := range map[string]struct {
		load     Load
		p50      float64
		reason   string
		emulated bool
	}{
		"timed":        {Load{Span: window, PID: 7, Connections: 100, FirstPacket: guest}, 61.5, "", true},
		"not reported": {Load{Span: window, PID: 7, Connections: 100}, 0, "reported no time to first packet", true},
		"no window":    {Load{}, 0, "no measured window", true},
		"guest's reason": {Load{Span: window, FirstPacket: &runs.FirstPacket{Unavailable: "kernel probe unavailable: loading: no BTF"}},
			0, "no BTF", true},
		"incomplete": {Load{Span: window, PID: 7, Connections: 100, FirstPacket: &runs.FirstPacket{Connections: 90, ClientConnections: 100, P50Us: 50}},
			50, "", true},
		"return incomplete": {Load{Span: window, PID: 7, Connections: 100, FirstPacket: &runs.FirstPacket{Connections: 100, ClientConnections: 100, P50Us: 50,
			Return: guestReturn}}, 50, "", true},
	} {
		t.Run(name, func(t *testing.T) {
			w, err := o.Begin(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			p := &runs.Point{Valid: true}
			if err := w.End(context.Background(), c.load, p); err != nil {
				t.Fatal(err)
			}
			fp := p.FirstPacket
			if fp == nil || fp.P50Us != c.p50 || fp.Emulated != c.emulated || !p.Valid {
				t.Fatalf("point's first packet %+v", fp)
			}
			if (c.reason == "") != (fp.Unavailable == "") || !strings.Contains(fp.Unavailable, c.reason) {
				t.Errorf("reason %q, want one with %q", fp.Unavailable, c.reason)
			}
			if name == "timed" && (fp.Connections != 100 || fp.P99Us != 230.25 || fp.Incomplete != "" || !fp.Usable() ||
				fp.Return == nil || fp.Return.P50Us != 20.5 || !fp.Return.Usable()) {
				t.Errorf("figure %+v, want the load's", fp)
			}
			if name == "return incomplete" && (!fp.Usable() || fp.Return == nil || fp.Return.Incomplete == "" || fp.Return.Usable()) {
				t.Errorf("the way back timed 97 of 100 connections, and is usable: %+v %+v", fp, fp.Return)
			}
			if name == "incomplete" && (fp.Incomplete == "" || fp.Usable()) {
				t.Errorf("90 of 100 connections timed, and the figure is usable: %+v", fp)
			}
		})
	}
	if guest.Emulated || guestReturn.Incomplete != "" {
		t.Error("the load's figure was changed in place")
	}

	// Under KVM the guest's times are a real kernel's.
	kvm := vm
	kvm.Client.VM = &clusters.VMNodeInfo{Accelerator: "kvm"}
	if o := firstPacketFor(context.Background(), kvm).(*LoadFirstPacketObserver); o.Emulated {
		t.Error("a KVM guest's figure is labelled emulated")
	}
	// Pods run the load as Jobs: the probe cannot reach their kernel.
	pod := Setup{FirstPacket: true, Client: clusters.Client{Where: clusters.ClientPod, Bin: "kpbench", Load: fakeLoadRunner{}}}
	if LoadTimesFirstPacket(pod) {
		t.Error("in-cluster load clients asked to time their connections")
	}
	if o, ok := firstPacketFor(context.Background(), pod).(*FirstPacketObserver); !ok || o.Unavailable == "" {
		t.Errorf("pod observer %#v, want one saying why not", firstPacketFor(context.Background(), pod))
	}
	vm.FirstPacket = false
	if LoadTimesFirstPacket(vm) || firstPacketFor(context.Background(), vm) != nil {
		t.Error("not asked for, and the probe runs")
	}
}

type fakeLoadRunner struct{}

func (fakeLoadRunner) RunLoad(context.Context, clusters.LoadRequest) ([]clusters.LoadResult, error) {
	return nil, nil
}
