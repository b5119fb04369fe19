package collector

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/kpbench/kpbench/runs"
)

// This file is the one rule for what a point's figures cover, and the
// one sampling loop every sampler of the collector runs on.
//
// A point's observation opens before the load starts (a client pod being
// scheduled, the load's own warm-up) and closes after it exits; each
// figure of the point — node CPU, kube-proxy's CPU, a VM's host process,
// kind's cgroups — covers only the samples inside the load's measured
// window, by InWindow. A sample is the interval between two readings of
// a cumulative counter; the figure is the counters' delta over the kept
// samples divided by the time they span.

// Span is a stretch of wall-clock time.
type Span struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Load is what the load client reported of one point, for the observers
// to narrow their figures to: its measured window, the process that ran
// it and the connections it opened there.
type Load struct {
	Span
	// PID is the load process's, as the client node sees it (0: unknown).
	PID int
	// Connections counts the new connections the client opened in the
	// window.
	Connections int64
	// FirstPacket is the time to first packet the load client measured
	// itself, in its node's kernel (LoadTimesFirstPacket); nil otherwise.
	FirstPacket *runs.FirstPacket
}

// IsZero reports whether the span is unknown.
func (s Span) IsZero() bool { return s.Start.IsZero() }

// InWindow is the rule of "inside the load's window": a sample (the
// interval between two readings) counts when its midpoint lies in
// [load.Start, load.End]. A sample straddling an edge counts on the side
// where most of it lies, so the kept samples span the load's window to
// within half a sampling interval at each end, never systematically more
// or less. A zero load (the load did not say its window) keeps every
// sample.
func InWindow(sample, load Span) bool {
	if load.IsZero() {
		return true
	}
	mid := sample.Start.Add(sample.End.Sub(sample.Start) / 2)
	return !mid.Before(load.Start) && !mid.After(load.End)
}

// ErrNoSampleInWindow is the error of a figure no sample of which lies
// inside the load's window (InWindow).
var ErrNoSampleInWindow = errors.New("no CPU sample inside the load window")

func noSample(load Span, n int, have Span) error {
	return fmt.Errorf("%w %s – %s (%d samples from %s to %s)", ErrNoSampleInWindow,
		load.Start.UTC().Format(time.RFC3339Nano), load.End.UTC().Format(time.RFC3339Nano), n,
		have.Start.UTC().Format(time.RFC3339Nano), have.End.UTC().Format(time.RFC3339Nano))
}

// everyTick calls read every interval until ctx ends; the returned
// channel is closed when it has stopped. It is the sampling loop of every
// sampler (Sampler, counterSampler): the reading at the start and the one
// at the end are the sampler's own.
func everyTick(ctx context.Context, every time.Duration, read func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				read()
			}
		}
	}()
	return done
}

// Within summarizes the samples inside the load's window (InWindow), so
// that a window opened before the load began (an in-cluster client pod
// still starting, the load's own warm-up) reports the load's own seconds.
// Means are time-weighted over the kept samples; it fails when no sample
// falls inside.
func (s *Series) Within(load Span) (Summary, error) {
	var kept []Sample
	for _, smp := range s.Samples {
		if InWindow(Span{smp.Start, smp.End}, load) {
			kept = append(kept, smp)
		}
	}
	if len(kept) == 0 {
		return Summary{}, noSample(load, len(s.Samples), Span{s.Summary.Start, s.Summary.End})
	}
	sum := Summary{Start: kept[0].Start, End: kept[len(kept)-1].End, CPUs: s.CPUs}
	interval := s.IntervalSeconds
	full := func(smp Sample) bool { return interval <= 0 || smp.Seconds >= interval/2 }
	var secs float64
	var node Cores
	procs := map[int]*ProcessSummary{}
	var order []int
	for _, p := range s.Processes {
		procs[p.PID] = &ProcessSummary{Name: p.Name, PID: p.PID}
		order = append(order, p.PID)
	}
	procSecs := map[int]float64{}
	for _, smp := range kept {
		secs += smp.Seconds
		node = node.addScaled(smp.Node, smp.Seconds)
		if full(smp) && smp.Node.Total > sum.MaxTotal {
			sum.MaxTotal = smp.Node.Total
		}
		for _, pc := range smp.Processes {
			ps, ok := procs[pc.PID]
			if !ok {
				continue
			}
			ps.Mean.User += pc.User * smp.Seconds
			ps.Mean.System += pc.System * smp.Seconds
			ps.Mean.Total += pc.Total * smp.Seconds
			procSecs[pc.PID] += smp.Seconds
			if full(smp) && pc.Total > ps.Max {
				ps.Max = pc.Total
			}
		}
	}
	sum.Seconds = secs
	if secs > 0 {
		sum.Mean = node.scaled(1 / secs)
		// Samples in which no tick landed on a busy CPU add to Total
		// but not to the columns; the window's columns are scaled to
		// add up to its Total again, as reconcile does per sample.
		m := &sum.Mean
		if cols := m.User + m.Nice + m.System + m.IRQ + m.SoftIRQ + m.Steal; cols > 0 {
			f := m.Total / cols
			for _, v := range []*float64{&m.User, &m.Nice, &m.System, &m.IRQ, &m.SoftIRQ, &m.Steal} {
				*v *= f
			}
		}
	}
	for _, pid := range order {
		ps := procs[pid]
		if secs > 0 {
			ps.Mean = ps.Mean.scaled(1 / secs)
		}
		// A process missing from some kept samples exited (or was
		// replaced) inside the window.
		ps.Exited = procSecs[pid] < secs*0.999
		sum.Processes = append(sum.Processes, *ps)
	}
	return sum, nil
}

// addScaled returns c + o*f, column by column.
func (c Cores) addScaled(o Cores, f float64) Cores {
	return Cores{
		User: c.User + o.User*f, Nice: c.Nice + o.Nice*f, System: c.System + o.System*f,
		IRQ: c.IRQ + o.IRQ*f, SoftIRQ: c.SoftIRQ + o.SoftIRQ*f, Steal: c.Steal + o.Steal*f,
		Total: c.Total + o.Total*f, Idle: c.Idle + o.Idle*f, IOWait: c.IOWait + o.IOWait*f,
	}
}

// scaled returns c*f.
func (c Cores) scaled(f float64) Cores { return Cores{}.addScaled(c, f) }

// Coverage is the share of the load's window that the samples resolve:
// the union of the sampling intervals no longer than twice every (a
// longer one means the sampler was held up, and what it measured cannot
// be placed inside or outside the window), intersected with the window,
// divided by the window's length. A zero load is covered (the figure is
// the whole observation's). InWindow decides which samples make a figure;
// Coverage says whether they describe the window at all: a single long
// sample whose midpoint falls inside used to be the whole figure.
func Coverage(samples []Span, load Span, every time.Duration) float64 {
	if load.IsZero() {
		return 1
	}
	win := load.End.Sub(load.Start)
	if win <= 0 {
		return 0
	}
	var iv []Span
	for _, s := range samples {
		d := s.End.Sub(s.Start)
		if d <= 0 || (every > 0 && d > 2*every) {
			continue
		}
		a, b := s.Start, s.End
		if a.Before(load.Start) {
			a = load.Start
		}
		if b.After(load.End) {
			b = load.End
		}
		if b.After(a) {
			iv = append(iv, Span{a, b})
		}
	}
	sort.Slice(iv, func(i, j int) bool { return iv[i].Start.Before(iv[j].Start) })
	var covered time.Duration
	var end time.Time
	for _, s := range iv {
		if s.Start.Before(end) {
			if s.End.After(end) {
				covered += s.End.Sub(end)
				end = s.End
			}
			continue
		}
		covered += s.End.Sub(s.Start)
		end = s.End
	}
	return float64(covered) / float64(win)
}

// spans lists the series' sampling intervals.
func (s *Series) spans() []Span {
	out := make([]Span, len(s.Samples))
	for i, smp := range s.Samples {
		out[i] = Span{smp.Start, smp.End}
	}
	return out
}

// readingSpans lists the intervals between consecutive readings.
func readingSpans(rs []reading) []Span {
	var out []Span
	for i := 0; i+1 < len(rs); i++ {
		out = append(out, Span{rs[i].at, rs[i+1].at})
	}
	return out
}
