package app

import (
	"context"
	"os"
	"runtime"

	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/runs"
)

// loadFirstPacket is `kpbench load --first-packet`: the kernel probe of
// collector/firstpacket around this process's own load, in this
// machine's kernel and network namespace. It is how a client node with
// its own kernel (the lab's VM node, whose load client is this command in
// the guest) is timed the same way as a node that shares the run's
// kernel: the same observer, filtering on this process's connections in
// its measured window. A probe that cannot load leaves the load as it is
// and its summary says why.
type loadFirstPacket struct {
	w collector.Window
}

// beginFirstPacket loads the probe; call it before the load starts (its
// warm-up included).
func beginFirstPacket(ctx context.Context) *loadFirstPacket {
	o := &collector.FirstPacketObserver{Netns: func(context.Context) (string, error) { return "/proc/self/ns/net", nil }}
	w, err := o.Begin(ctx, "")
	if err != nil {
		// Begin records its failures in the window; this is not reached.
		return &loadFirstPacket{}
	}
	// Loading parses the kernel's BTF: collect its garbage now rather
	// than inside the measured window.
	runtime.GC()
	return &loadFirstPacket{w: w}
}

// end puts the probe's figure for s's measured window on s.
func (l *loadFirstPacket) end(ctx context.Context, s *loadgen.Summary) {
	fp := &runs.FirstPacket{Unavailable: "the probe did not start"}
	if l.w != nil {
		start, end := s.Window()
		var p runs.Point
		if err := l.w.End(ctx, collector.Load{Span: collector.Span{Start: start, End: end}, PID: os.Getpid(), Connections: s.Connect.Count}, &p); err == nil && p.FirstPacket != nil {
			fp = p.FirstPacket
		}
	}
	s.FirstPacket = fp
}
