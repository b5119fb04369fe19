package collector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/procfs"

	"github.com/kpbench/kpbench/runs"
)

// HostProcessObserver measures the CPU of a process of this machine over
// the point: the qemu process of a VM client node, whose guest reports its
// own CPU but not what emulating it cost the host. It fills
// runs.ProcessesCPU.VMHost.
type HostProcessObserver struct {
	// PID is the process on this machine (under /proc).
	PID int
	// Every is the sampling interval (default 250 ms).
	Every time.Duration
}

// hostProcessFor observes a VM client node's hypervisor process.
func hostProcessFor(_ context.Context, s Setup) Observer {
	if s.Client.VM == nil || s.Client.VM.HostPID == 0 {
		return nil
	}
	return &HostProcessObserver{PID: s.Client.VM.HostPID}
}

type hostProcWindow struct {
	c *counterSampler
}

// Begin implements Observer.
func (o *HostProcessObserver) Begin(ctx context.Context, _ string) (Window, error) {
	p, err := procfs.NewProc(o.PID)
	if err != nil {
		return nil, fmt.Errorf("host process %d: %w", o.PID, err)
	}
	c := newCounterSampler(o.Every, func() ([]float64, error) {
		st, err := p.Stat()
		if err != nil {
			return nil, err
		}
		return []float64{st.CPUTime()}, nil
	})
	if err := c.Start(ctx); err != nil {
		return nil, fmt.Errorf("host process %d: %w", o.PID, err)
	}
	return &hostProcWindow{c: c}, nil
}

// End implements Window.
func (w *hostProcWindow) End(_ context.Context, load Load, p *runs.Point) error {
	rs, err := w.c.Stop()
	if err != nil {
		return fmt.Errorf("host process CPU: %w", err)
	}
	r, err := ratesWithin(rs, load.Span, w.c.every, nil)
	if errors.Is(err, ErrNoSampleInWindow) {
		Invalidate(p, fmt.Sprintf("%s: host process: %v", runs.ReasonNoCPUSample, err))
		r, err = ratesWithin(rs, Span{}, w.c.every, nil)
	}
	if err != nil {
		return fmt.Errorf("host process CPU: %w", err)
	}
	p.CPU.Processes.VMHost = r.Mean[0]
	return nil
}
