package sweep

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/procfs"
)

// HostProcessObserver observes like Observer and also measures the CPU of
// a process of this machine over the window: the qemu process of a VM
// client node, whose guest reports its own CPU but not what emulating it
// cost the host.
type HostProcessObserver struct {
	Observer
	// PID is the process on this machine (under /proc).
	PID int
	// Every is the sampling interval (default 250 ms).
	Every time.Duration
}

type hostSample struct {
	at  time.Time
	cpu float64 // user+system seconds
}

type hostProcWindow struct {
	sideWindow
	proc    procfs.Proc
	mu      sync.Mutex
	samples []hostSample
	err     error
}

// Begin implements Observer.
func (o *HostProcessObserver) Begin(ctx context.Context, rawDir string) (Window, error) {
	p, err := procfs.NewProc(o.PID)
	if err != nil {
		return nil, fmt.Errorf("host process %d: %w", o.PID, err)
	}
	w := &hostProcWindow{proc: p}
	w.sample()
	inner, err := o.Observer.Begin(ctx, rawDir)
	if err != nil {
		return nil, err
	}
	w.Window = inner
	every := o.Every
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	w.sampleEvery(every, w.sample)
	return w, nil
}

func (w *hostProcWindow) sample() {
	st, err := w.proc.Stat()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.err = err
		return
	}
	w.samples = append(w.samples, hostSample{at: time.Now(), cpu: st.CPUTime()})
}

// End implements Window.
func (w *hostProcWindow) End(ctx context.Context) (*Observation, error) {
	obs, err := w.finish(ctx, w.sample)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return nil, fmt.Errorf("host process CPU: %w", w.err)
	}
	cores, err := hostCores(w.samples, w.start, w.end)
	if err != nil {
		return nil, err
	}
	obs.HostProcess = cores
	return obs, nil
}

// hostCores is the process's CPU per wall second between the samples that
// bound [start, end] most tightly (the whole series when start is zero).
func hostCores(s []hostSample, start, end time.Time) (float64, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("host process CPU: %d samples", len(s))
	}
	i, j := bounding(len(s), func(i int) time.Time { return s[i].at }, start, end)
	a, b := s[i], s[j]
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return 0, fmt.Errorf("host process CPU: empty window")
	}
	return (b.cpu - a.cpu) / secs, nil
}
