package collector

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

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
}
