package sweep

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

// FirstPacketObserver adds the kernel's time to first packet
// (collector/firstpacket) to another observer's windows, for a client node
// whose kernel is this machine's. It loads the probe at each window's
// start, before the load process (and its warm-up) starts, and keeps only
// the load process's connections whose SYN_SENT fell inside the load's
// measured window. A probe that cannot load leaves the point complete,
// with the reason in FirstPacket.Unavailable.
type FirstPacketObserver struct {
	Observer
	// Netns returns the client node's network namespace path.
	Netns func(ctx context.Context) (string, error)
}

type firstPacketWindow struct {
	Window
	probe *firstpacket.Probe
	// cost0 and at0 are the probe's own CPU when the window opened.
	cost0       firstpacket.Cost
	at0         time.Time
	unavailable string
	load        *LoadResult
}

// LoadTrimmer is implemented by windows that need the load's whole account
// (its process and its connection count), not only its window (Trimmer).
type LoadTrimmer interface {
	TrimToLoad(res *LoadResult)
}

// Begin implements Observer.
func (o *FirstPacketObserver) Begin(ctx context.Context, rawDir string) (Window, error) {
	w := &firstPacketWindow{}
	ns, err := o.Netns(ctx)
	if err == nil {
		w.probe, err = firstpacket.Open(firstpacket.Options{Netns: ns})
	}
	if err != nil {
		w.unavailable = err.Error()
	}
	inner, err := o.Observer.Begin(ctx, rawDir)
	if err != nil {
		w.close()
		return nil, err
	}
	w.Window = inner
	if w.probe != nil {
		err := w.probe.Discard()
		if err == nil {
			w.cost0, err = w.probe.Cost()
			w.at0 = time.Now()
		}
		if err != nil {
			w.unavailable = err.Error()
			w.close()
		}
	}
	return w, nil
}

// Trim implements Trimmer for the observer inside.
func (w *firstPacketWindow) Trim(start, end time.Time) {
	if t, ok := w.Window.(Trimmer); ok {
		t.Trim(start, end)
	}
}

// TrimToLoad implements LoadTrimmer.
func (w *firstPacketWindow) TrimToLoad(res *LoadResult) { w.load = res }

func (w *firstPacketWindow) close() {
	if w.probe != nil {
		w.probe.Close()
		w.probe = nil
	}
}

// End implements Window.
func (w *firstPacketWindow) End(ctx context.Context) (*Observation, error) {
	defer w.close()
	obs, err := w.Window.End(ctx)
	if err != nil {
		return nil, err
	}
	fp, err := w.firstPacket()
	if err != nil {
		fp = runs.FirstPacket{Span: firstpacket.Span, Unavailable: err.Error()}
	}
	obs.FirstPacket = &fp
	return obs, nil
}

func (w *firstPacketWindow) firstPacket() (runs.FirstPacket, error) {
	switch {
	case w.probe == nil:
		return runs.FirstPacket{}, errors.New(w.unavailable)
	case w.load == nil || w.load.WindowStart.IsZero():
		return runs.FirstPacket{}, errors.New("the load reported no measured window")
	case w.load.PID == 0:
		return runs.FirstPacket{}, errors.New("the load did not report its process")
	}
	ev, err := w.probe.Take(w.load.PID, w.load.WindowStart, w.load.WindowEnd)
	if err != nil {
		return runs.FirstPacket{}, err
	}
	fp := firstpacket.Summarize(ev, w.load.Connect.Count)
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

// nodeNetns is the network namespace of a local client node: kube-proxy's
// (it runs in the node's namespace), seen through the node's /proc.
func nodeNetns(procRoot string, kubeProxyPID func(context.Context) (int, error)) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		pid, err := kubeProxyPID(ctx)
		if err != nil {
			return "", fmt.Errorf("finding the client node's namespace: %w", err)
		}
		return filepath.Join(procRoot, strconv.Itoa(pid), "ns", "net"), nil
	}
}
