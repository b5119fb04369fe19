package collector

// The kernel's time to first packet of the load client's connections
// (collector/firstpacket times it), as one observer of a point.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kpbench/kpbench/collector/firstpacket"
	"github.com/kpbench/kpbench/runs"
)

// FirstPacketObserver loads the kernel probe at each window's start,
// before the load process (and its warm-up) starts, and fills
// runs.Point.FirstPacket with the load process's connections whose
// SYN_SENT fell inside the load's measured window. A probe that cannot
// run leaves the point complete, with the reason in
// FirstPacket.Unavailable.
type FirstPacketObserver struct {
	// Netns returns the client node's network namespace path; nil when
	// the probe cannot run on this client node (Unavailable says why).
	Netns       func(ctx context.Context) (string, error)
	Unavailable string
}

// firstPacketFor is the probe's observer when the scenario asks for it:
// on a client node whose kernel is this machine's it times connections;
// elsewhere every point records why not.
func firstPacketFor(_ context.Context, s Setup) Observer {
	if !s.FirstPacket {
		return nil
	}
	if LoadTimesFirstPacket(s) {
		return &LoadFirstPacketObserver{Emulated: s.Client.VM != nil && s.Client.VM.Accelerator == "tcg"}
	}
	if s.Client.Bin != "" {
		// The node runs its own kpbench in a pod: its kernel is not
		// this one, and the load runs as Jobs.
		return &FirstPacketObserver{Unavailable: fmt.Sprintf("the client node (%s) does not run on this machine's kernel, the only one kpbench loads the probe into", s.Client.Where)}
	}
	node := s.Node
	return &FirstPacketObserver{Netns: func(ctx context.Context) (string, error) {
		// kube-proxy runs in the node's network namespace.
		pid, err := node.KubeProxyPID(ctx)
		if err != nil {
			return "", fmt.Errorf("finding the client node's network namespace: %w", err)
		}
		return filepath.Join(node.ProcRoot(), strconv.Itoa(pid), "ns", "net"), nil
	}}
}

type firstPacketWindow struct {
	probe       *firstpacket.Probe
	unavailable string
	// cost0 and at0 are the probe's own CPU when the window opened.
	cost0 firstpacket.Cost
	at0   time.Time
}

// Begin implements Observer.
func (o *FirstPacketObserver) Begin(ctx context.Context, _ string) (Window, error) {
	w := &firstPacketWindow{unavailable: o.Unavailable}
	if o.Netns == nil {
		return w, nil
	}
	ns, err := o.Netns(ctx)
	if err == nil {
		w.probe, err = firstpacket.Open(firstpacket.Options{Netns: ns})
	}
	if err == nil {
		if err = w.probe.Discard(); err == nil {
			w.cost0, err = w.probe.Cost()
			w.at0 = time.Now()
		}
	}
	if err != nil {
		w.unavailable = err.Error()
		w.close()
	}
	return w, nil
}

func (w *firstPacketWindow) close() {
	if w.probe != nil {
		w.probe.Close()
		w.probe = nil
	}
}

// End implements Window.
func (w *firstPacketWindow) End(_ context.Context, load Load, p *runs.Point) error {
	defer w.close()
	fp, err := w.firstPacket(load)
	if err != nil {
		fp = runs.FirstPacket{Span: firstpacket.Span, Unavailable: err.Error()}
	}
	p.FirstPacket = &fp
	return nil
}

func (w *firstPacketWindow) firstPacket(load Load) (runs.FirstPacket, error) {
	switch {
	case w.probe == nil:
		return runs.FirstPacket{}, errors.New(w.unavailable)
	case load.IsZero():
		return runs.FirstPacket{}, errors.New("the load reported no measured window")
	case load.PID == 0:
		return runs.FirstPacket{}, errors.New("the load did not report its process")
	}
	// A connection is an instant: the one window rule, applied to it.
	ev, err := w.probe.Take(load.PID, func(t time.Time) bool { return InWindow(Span{t, t}, load.Span) })
	if err != nil {
		return runs.FirstPacket{}, err
	}
	fp := firstpacket.Summarize(ev, load.Connections)
	// A probe that timed another share of the connections than the
	// client's own leaves its figures out of the report; the point's
	// other measures stand.
	fp.Incomplete = runs.FirstPacketIncomplete(&fp)
	fp.Return = firstPacketReturn(ev, load.Connections, w.probe.ReturnUnavailable())
	cost, err := w.probe.Cost()
	if err != nil {
		return runs.FirstPacket{}, err
	}
	if d, n := cost.Runtime-w.cost0.Runtime, cost.Runs-w.cost0.Runs; n > 0 {
		fp.ProbeCores = d.Seconds() / time.Since(w.at0).Seconds()
		fp.ProbeRunNs = float64(d.Nanoseconds()) / float64(n)
	}
	return fp, nil
}

// firstPacketReturn is the way back of a window's connections, judged for
// coverage as the first packet is; unavailable is why the probe could not
// time it ("" when it did).
func firstPacketReturn(ev []firstpacket.Event, client int64, unavailable string) *runs.FirstPacketReturn {
	if unavailable != "" {
		return &runs.FirstPacketReturn{Span: firstpacket.ReturnSpan, Unavailable: unavailable}
	}
	r := firstpacket.SummarizeReturn(ev, client)
	r.Incomplete = runs.FirstPacketReturnIncomplete(&r)
	return &r
}

// LoadTimesFirstPacket says whether the load client times its own
// connections (`kpbench load --first-packet`): the scenario asks for the
// probe, and the load runs as the node's own kpbench through
// ClientNode.Run (a VM client node), whose kernel is not this machine's.
// The probe then loads into the node's kernel around the load's window,
// with the same code (FirstPacketObserver in the load process), and the
// load's summary carries the figure (Load.FirstPacket).
func LoadTimesFirstPacket(s Setup) bool {
	return s.FirstPacket && s.Client.Bin != "" && s.Client.Load == nil
}

// LoadFirstPacketObserver puts on each point the time to first packet the
// load client measured in its own node's kernel (Load.FirstPacket),
// labelled emulated when that kernel runs under software emulation.
type LoadFirstPacketObserver struct {
	Emulated bool
}

type loadFirstPacketWindow struct{ emulated bool }

// Begin implements Observer.
func (o *LoadFirstPacketObserver) Begin(context.Context, string) (Window, error) {
	return loadFirstPacketWindow{emulated: o.Emulated}, nil
}

// End implements Window.
func (w loadFirstPacketWindow) End(_ context.Context, load Load, p *runs.Point) error {
	fp := runs.FirstPacket{Span: firstpacket.Span, Unavailable: "the load client on the node reported no time to first packet (a kpbench without load --first-packet?)"}
	switch {
	case load.IsZero():
		fp.Unavailable = "the load reported no measured window"
	case load.FirstPacket != nil:
		fp = *load.FirstPacket
		if fp.Incomplete == "" {
			// Judged here too: the figure crossed from another kpbench.
			fp.Incomplete = runs.FirstPacketIncomplete(&fp)
		}
		if r := fp.Return; r != nil && r.Incomplete == "" {
			ret := *r
			ret.Incomplete = runs.FirstPacketReturnIncomplete(&ret)
			fp.Return = &ret
		}
	}
	fp.Emulated = w.emulated
	p.FirstPacket = &fp
	return nil
}
