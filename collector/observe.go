package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/internal/cpuset"
	"github.com/kpbench/kpbench/runs"
)

// This file is the seam between the engine (package sweep) and what a
// point measures on the client node. The engine begins one Observer
// before the load and ends its Window after it, handing it the load's
// measured window and the point; each observer fills the groups of
// runs.Point it owns. ForClient assembles the observer of a provider's
// client node from its clusters.Features; a new per-point measurement is
// one file here with an Observer and one entry in perPoint.

// Observer watches the client node over one point.
type Observer interface {
	// Begin starts observing; rawDir (may be "") receives raw samples.
	Begin(ctx context.Context, rawDir string) (Window, error)
}

// Window is an observation in progress.
type Window interface {
	// End stops observing and fills the point's groups this observer
	// owns with its figures over load, the load's measured window
	// (InWindow; zero: the whole observation). A figure that cannot cover
	// load keeps the whole observation's value and makes the point
	// invalid (Invalidate).
	End(ctx context.Context, load Load, p *runs.Point) error
}

// Invalidate marks p invalid for reason, keeping its figures.
func Invalidate(p *runs.Point, reason string) {
	p.Valid = false
	p.InvalidReasons = append(p.InvalidReasons, reason)
}

// Observers observes with each of them: Begin in order, End in reverse
// order, so that an observer listed earlier brackets the later ones (its
// samples start before and end after theirs) and has the last word on a
// group they both fill.
type Observers []Observer

// Begin implements Observer.
func (os Observers) Begin(ctx context.Context, rawDir string) (Window, error) {
	var ws windows
	for _, o := range os {
		w, err := o.Begin(ctx, rawDir)
		if err != nil {
			_ = ws.End(ctx, Load{}, &runs.Point{})
			return nil, err
		}
		ws = append(ws, w)
	}
	return ws, nil
}

type windows []Window

// End implements Window: every window ends, even after one fails.
func (ws windows) End(ctx context.Context, load Load, p *runs.Point) error {
	var errs []error
	for i := len(ws) - 1; i >= 0; i-- {
		errs = append(errs, ws[i].End(ctx, load, p))
	}
	return errors.Join(errs...)
}

// Setup is what an observer of a client node is made from.
type Setup struct {
	// Client is the provider's client node as its Features say.
	Client clusters.Client
	// Node is the measured client node.
	Node clusters.ClientNode
	// Interval is the scenario's sampling interval.
	Interval time.Duration
	// NoKubeProxy observes a node whose kube-proxy is replaced (mode
	// external): node CPU and conntrack only.
	NoKubeProxy bool
	// FirstPacket asks for the kernel probe (spec.sampling.firstPacket).
	FirstPacket bool
	Log         *slog.Logger
}

// perPoint are the measurements of a point besides the client node's own
// (node CPU, kube-proxy's CPU, conntrack, syncs): each returns nil where
// it does not apply. They begin before the node's observer and end after
// it.
var perPoint = []func(ctx context.Context, s Setup) Observer{
	hostProcessFor, // the process that runs a VM client node
	firstPacketFor, // the kernel's time to first packet (eBPF)
}

// ForClient is the observer of a point on s's client node: the node's
// own observer (in this process when the node shares this machine's
// /proc, else the agent through ClientNode.Run), its node CPU from the
// containers' cgroups or summed over several client nodes when the
// provider says so, and every measurement of perPoint that applies.
func ForClient(ctx context.Context, s Setup) Observer {
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	var all Observers
	for _, f := range perPoint {
		if o := f(ctx, s); o != nil {
			all = append(all, o)
		}
	}
	all = append(all, nodeCPUFor(ctx, s)...)
	if len(all) == 1 {
		return all[0]
	}
	return all
}

// nodeObserverFor observes one client node: kube-proxy, conntrack,
// syncs and the node's /proc/stat.
func nodeObserverFor(s Setup, node clusters.ClientNode, noKubeProxy bool) Observer {
	if s.Client.Bin == "" {
		return &NodeObserver{Node: node, Interval: s.Interval}
	}
	return &AgentObserver{Node: node, Bin: s.Client.Bin, Interval: s.Interval, NoKubeProxy: noKubeProxy}
}

// procStatCovers labels a node CPU figure read from the node's /proc/stat.
func procStatCovers(cpus []int) string {
	if len(cpus) > 0 {
		return "CPUs " + cpuset.Format(cpus) + " of the client node (/proc/stat)"
	}
	return "all CPUs of the client node (/proc/stat)"
}

// fill puts a node's point result on p: its CPU figures narrowed to load
// (Series.Within) and labelled with what they cover, kube-proxy's CPU,
// conntrack and syncs; the raw data goes under raw. A number the
// collector adds to PointResult reaches the point here.
func (r *PointResult) fill(load Span, raw, covers string, p *runs.Point) error {
	if err := r.narrow(load); err != nil {
		if !errors.Is(err, ErrNoSampleInWindow) {
			return err
		}
		// A sampler held up for longer than the window (seen once at
		// 10,000 Services, while kube-proxy resynced nftables): the
		// point keeps the whole observation's figures, is invalid, and
		// the run goes on.
		Invalidate(p, fmt.Sprintf("%s: %v", runs.ReasonNoCPUSample, err))
		covers += " (whole observation, not trimmed to the load's window)"
	}
	r.CPU.Node.Covers = covers
	if r.Series != nil {
		// The ceiling is the CPUs the figure sums (/proc/stat lines: the
		// pinned ones, or all of the node's; in a VM, the guest's vCPUs).
		r.CPU.Node.CPUs = float64(len(r.Series.CPUs))
		every := time.Duration(r.Series.IntervalSeconds * float64(time.Second))
		r.CPU.Node.Coverage = Coverage(r.Series.spans(), load, every)
	}
	if raw != "" {
		if err := r.WriteRaw(raw); err != nil {
			return err
		}
	}
	p.CPU.Node = r.CPU.Node
	p.CPU.Processes.KubeProxy = r.CPU.Processes.KubeProxy
	p.Conntrack = r.Conntrack
	p.Sync = r.syncsWithin(load)
	return nil
}

// syncsWithin is kube-proxy's syncs narrowed to the load's window where
// its metrics say when they ran: they are counted from before the load's
// warm-up to after its end, and kube-proxy stamps the end of its last
// successful sync. When that stamp precedes the window, every sync
// counted ran before it (in the warm-up); when the one sync counted
// started after the window ended, it ran after. Otherwise they count as
// inside: a sync the window may have seen is not left out.
func (r *PointResult) syncsWithin(load Span) runs.Sync {
	s := r.Sync
	if load.IsZero() || r.KubeProxy == nil || r.KubeProxy.LastSyncTimestamp <= 0 || s.FullSyncs+s.PartialSyncs == 0 {
		return s
	}
	last := unixSeconds(r.KubeProxy.LastSyncTimestamp)
	began := last.Add(-time.Duration(r.KubeProxy.LastSyncSeconds * float64(time.Second)))
	if last.Before(load.Start) || (s.FullSyncs+s.PartialSyncs == 1 && began.After(load.End)) {
		s.FullSyncs, s.FullSyncMeanSeconds, s.PartialSyncs, s.PartialMeanSeconds = 0, 0, 0, 0
	}
	return s
}

// unixSeconds converts a Unix time in seconds to a time.
func unixSeconds(sec float64) time.Time {
	whole := int64(sec)
	return time.Unix(whole, int64((sec-float64(whole))*1e9))
}

// narrow narrows r's CPU figures to the samples inside load when the load
// reported its window.
func (r *PointResult) narrow(load Span) error {
	if load.IsZero() || r.Series == nil {
		return nil
	}
	sum, err := r.Series.Within(load)
	if err != nil {
		return err
	}
	r.CPU = sum.CPU()
	r.CPUWindow = &Span{Start: sum.Start, End: sum.End}
	return nil
}

// processTop is the node's CPU per process over load, the processes
// kpbench knows named by their role.
func (r *PointResult) processTop(load Load) *runs.ProcessTop {
	roles := map[int]string{}
	if r.Series != nil {
		for _, pr := range r.Series.Processes {
			if pr.Name == ProcessKubeProxy {
				roles[pr.PID] = ProcessKubeProxy
			}
		}
	}
	if load.PID > 0 {
		roles[load.PID] = "load client"
	}
	if r.Processes == nil {
		why := "the client node's collector reported no per-process CPU"
		for _, pr := range r.Problems {
			if strings.HasPrefix(pr, "per-process CPU") {
				why = pr
			}
		}
		return &runs.ProcessTop{Unavailable: why}
	}
	return ProcessTopOf(r.Processes, load.Span, roles)
}
