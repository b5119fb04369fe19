package sweep

import (
	"context"
	"time"
)

// sideWindow wraps an observer's Window with a sampler of its own that
// runs from Begin to End on an interval — the qemu process of a VM client
// node (HostProcessObserver), the cgroups of kind's client nodes
// (CgroupObserver) — and narrows both to the load's window (Trimmer).
type sideWindow struct {
	Window
	// start and end are the load's measured window (zero: untrimmed).
	start, end time.Time
	stop, done chan struct{}
}

// Trim narrows the side sampler's window and the inner window's.
func (w *sideWindow) Trim(start, end time.Time) {
	w.start, w.end = start, end
	if t, ok := w.Window.(Trimmer); ok {
		t.Trim(start, end)
	}
}

// sampleEvery calls sample every interval until finish.
func (w *sideWindow) sampleEvery(every time.Duration, sample func()) {
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				sample()
			}
		}
	}()
}

// finish ends the inner window, then the sampling with one last sample,
// so that the samples bound the inner window's end.
func (w *sideWindow) finish(ctx context.Context, sample func()) (*Observation, error) {
	obs, err := w.Window.End(ctx)
	close(w.stop)
	<-w.done
	sample()
	return obs, err
}
