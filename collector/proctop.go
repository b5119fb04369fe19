package collector

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kpbench/kpbench/internal/cpuset"
	"github.com/kpbench/kpbench/runs"
)

// This file attributes the client node's CPU to its processes, kernel
// threads included (ksoftirqd/N, kworkers, the IPVS estimator ipvs-e:*):
// a ProcessSampler scans the node's /proc on the one sampling loop and
// keeps, per sample, the CPU each process used; ProcessSeries.Within
// narrows the samples to the load's window by InWindow, like the node's
// CPU, and TopProcesses ranks them.

// TopN is how many processes (or groups) a point's ProcessTop lists.
const TopN = runs.TopProcessesPerPoint

// ProcessInfo is one process a ProcessSeries saw use CPU.
type ProcessInfo struct {
	PID          int    `json:"pid"`
	Comm         string `json:"comm"`
	KernelThread bool   `json:"kernelThread,omitempty"`
	// Shared: the process may also run on CPUs that are not the node's.
	Shared bool `json:"shared,omitempty"`
	// Appeared is the last reading before the process existed (zero:
	// it was there at the first reading); Gone the first reading it was
	// missing from (zero: it lived to the last).
	Appeared time.Time `json:"appeared,omitzero"`
	Gone     time.Time `json:"gone,omitzero"`
}

// ProcessDelta is one process's CPU in one sample, in clock ticks
// (UserHZ).
type ProcessDelta struct {
	// ID indexes ProcessSeries.Processes.
	ID       int    `json:"i"`
	User     uint64 `json:"u,omitempty"`
	System   uint64 `json:"s,omitempty"`
	Children uint64 `json:"c,omitempty"`
}

// ProcessSample is the processes' CPU between two scans; processes that
// used none are left out.
type ProcessSample struct {
	Start  time.Time      `json:"start"`
	End    time.Time      `json:"end"`
	Deltas []ProcessDelta `json:"d,omitempty"`
}

// ProcessSeries is what a ProcessSampler recorded.
type ProcessSeries struct {
	// Covers says which processes are counted.
	Covers    string          `json:"covers"`
	Processes []ProcessInfo   `json:"processes"`
	Samples   []ProcessSample `json:"samples"`
	// Scans is how many scans were taken, ScanSeconds their summed
	// wall time: the sampler's own cost.
	Scans       int      `json:"scans"`
	ScanSeconds float64  `json:"scanSeconds"`
	Problems    []string `json:"problems,omitempty"`
}

// ProcessSampler scans a proc mount every interval (everyTick) and
// records each process's CPU per sample: the processes allowed on cpus
// (every process when empty).
type ProcessSampler struct {
	sc    *procScanner
	cpus  []int
	every time.Duration
	// now is the clock (time.Now; tests set their own).
	now func() time.Time

	mu     sync.Mutex
	prev   map[procKey]procStat
	cur    map[procKey]procStat
	prevAt time.Time
	// ids maps a process to its index in ser.Processes; -1: it is not
	// the node's (its CPUs are all elsewhere).
	ids     map[procKey]int
	ser     ProcessSeries
	kthread bool
	err     error
	cancel  context.CancelFunc
	done    <-chan struct{}
}

// NewProcessSampler samples the processes under root (a proc mount)
// allowed on cpus, every interval (1 s when zero).
func NewProcessSampler(root string, cpus []int, every time.Duration) *ProcessSampler {
	if every <= 0 {
		every = time.Second
	}
	return &ProcessSampler{sc: newProcScanner(root), cpus: cpus, every: every, now: time.Now,
		prev: map[procKey]procStat{}, cur: map[procKey]procStat{}, ids: map[procKey]int{}}
}

// Start takes the first scan (a failure is returned at once) and starts
// the loop.
func (s *ProcessSampler) Start(ctx context.Context) error {
	s.take()
	if s.err != nil {
		s.sc.close()
		return s.err
	}
	ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.done = everyTick(ctx, s.every, s.take)
	return nil
}

// Stop ends the loop with a last scan and returns the series.
func (s *ProcessSampler) Stop() *ProcessSeries {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	s.take()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sc.close()
	ser := s.ser
	ser.Covers = s.covers()
	if s.err != nil {
		ser.Problems = append(ser.Problems, s.err.Error())
	}
	return &ser
}

func (s *ProcessSampler) covers() string {
	what := "every process of the client node's PID namespace"
	if len(s.cpus) > 0 {
		what = "the processes allowed on CPUs " + cpuset.Format(s.cpus) + " of the client node (those also allowed elsewhere marked shared)"
	}
	what += " (/proc/PID/stat utime+stime, per thread group)"
	if !s.kthread {
		what += "; no kernel thread is visible there (not the host's PID namespace), so kernel threads and their softirq work are not attributed"
	}
	return what
}

// take scans once and records the sample since the previous scan.
func (s *ProcessSampler) take() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	t0 := s.now()
	if err := s.sc.scan(s.cur); err != nil {
		s.err = err
		return
	}
	at := s.now()
	s.ser.Scans++
	if !s.prevAt.IsZero() {
		smp := ProcessSample{Start: s.prevAt, End: at}
		for k, c := range s.cur {
			p, seen := s.prev[k]
			d := ProcessDelta{User: sub(c.UTime, p.UTime), System: sub(c.STime, p.STime),
				Children: sub(c.CUTime+c.CSTime, p.CUTime+p.CSTime)}
			if !seen {
				// Started since the last scan: all its CPU is in this
				// sample; its children's are too.
				d.Children = c.CUTime + c.CSTime
			}
			if d.User+d.System+d.Children == 0 {
				continue
			}
			var appeared time.Time
			if !seen {
				appeared = s.prevAt
			}
			id := s.id(c, appeared)
			if id < 0 {
				continue
			}
			d.ID = id
			smp.Deltas = append(smp.Deltas, d)
		}
		sort.Slice(smp.Deltas, func(i, j int) bool { return smp.Deltas[i].ID < smp.Deltas[j].ID })
		s.ser.Samples = append(s.ser.Samples, smp)
		for k := range s.prev {
			if _, ok := s.cur[k]; !ok {
				if id, ok := s.ids[k]; ok && id >= 0 && s.ser.Processes[id].Gone.IsZero() {
					s.ser.Processes[id].Gone = at
				}
			}
		}
	}
	for _, c := range s.cur {
		s.kthread = s.kthread || c.KernelThread
	}
	s.prev, s.cur = s.cur, s.prev
	s.prevAt = at
	s.ser.ScanSeconds += at.Sub(t0).Seconds()
}

// id is c's index in the series, registered on its first CPU use; -1
// when the process may not run on the node's CPUs.
func (s *ProcessSampler) id(c procStat, appeared time.Time) int {
	if id, ok := s.ids[c.Key]; ok {
		return id
	}
	info := ProcessInfo{PID: c.Key.PID, Comm: c.Comm, KernelThread: c.KernelThread, Appeared: appeared}
	if len(s.cpus) > 0 {
		allowed, err := s.sc.allowedCPUs(c.Key.PID)
		if err != nil {
			// Exited since the scan: where it last ran decides.
			allowed = []int{c.Processor}
		}
		in := 0
		for _, a := range allowed {
			if slices.Contains(s.cpus, a) {
				in++
			}
		}
		if in == 0 {
			s.ids[c.Key] = -1
			return -1
		}
		info.Shared = in < len(allowed)
	}
	s.ids[c.Key] = len(s.ser.Processes)
	s.ser.Processes = append(s.ser.Processes, info)
	return s.ids[c.Key]
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0 // a counter that went back: no CPU
	}
	return a - b
}

// Within is each process's CPU over the samples inside load (InWindow),
// busiest first. It fails with ErrNoSampleInWindow when no sample is
// inside.
func (ser *ProcessSeries) Within(load Span) ([]runs.ProcessShare, Span, error) {
	var kept []ProcessSample
	for _, smp := range ser.Samples {
		if InWindow(Span{smp.Start, smp.End}, load) {
			kept = append(kept, smp)
		}
	}
	if len(kept) == 0 {
		var have Span
		if n := len(ser.Samples); n > 0 {
			have = Span{ser.Samples[0].Start, ser.Samples[n-1].End}
		}
		return nil, Span{}, noSample(load, len(ser.Samples), have)
	}
	span := Span{kept[0].Start, kept[len(kept)-1].End}
	secs := span.End.Sub(span.Start).Seconds()
	if secs <= 0 {
		return nil, span, fmt.Errorf("the process samples span no time")
	}
	sums := map[int]*ProcessDelta{}
	for _, smp := range kept {
		for _, d := range smp.Deltas {
			a := sums[d.ID]
			if a == nil {
				a = &ProcessDelta{ID: d.ID}
				sums[d.ID] = a
			}
			a.User += d.User
			a.System += d.System
			a.Children += d.Children
		}
	}
	cores := func(ticks uint64) float64 { return float64(ticks) / UserHZ / secs }
	out := make([]runs.ProcessShare, 0, len(sums))
	for id, d := range sums {
		info := ser.Processes[id]
		out = append(out, runs.ProcessShare{
			Name: info.Comm, PID: info.PID, KernelThread: info.KernelThread, Shared: info.Shared,
			User: cores(d.User), System: cores(d.System), Cores: cores(d.User + d.System),
			Children: cores(d.Children),
			Started:  !info.Appeared.IsZero() && !info.Appeared.Before(span.Start),
			Exited:   !info.Gone.IsZero() && !info.Gone.After(span.End),
		})
	}
	sortShares(out)
	return out, span, nil
}

func sortShares(s []runs.ProcessShare) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Cores != s[j].Cores {
			return s[i].Cores > s[j].Cores
		}
		if s[i].Name != s[j].Name {
			return s[i].Name < s[j].Name
		}
		return s[i].PID < s[j].PID
	})
}

// GroupName is the group a process is counted in: the kworkers of one
// pool ("kworker/1:*", "kworker/u8:*", "kworker/R-*") whatever their
// number and the workqueue they run; any other process is its own.
func GroupName(comm string, kernelThread bool) (string, bool) {
	rest, ok := strings.CutPrefix(comm, "kworker/")
	if !kernelThread || !ok {
		return "", false
	}
	if strings.HasPrefix(rest, "R-") {
		return "kworker/R-*", true
	}
	rest, _, _ = strings.Cut(rest, "-") // the workqueue it runs now
	if pool, _, ok := strings.Cut(rest, ":"); ok {
		return "kworker/" + pool + ":*", true
	}
	return "kworker/*", true
}

// TopProcesses groups shares (GroupName), keeps the n busiest and sums
// the rest as Other.
func TopProcesses(shares []runs.ProcessShare, n int) runs.ProcessTop {
	var (
		list   []runs.ProcessShare
		groups = map[string]int{}
		top    runs.ProcessTop
	)
	for _, sh := range shares {
		top.Total += sh.Cores
		g, ok := GroupName(sh.Name, sh.KernelThread)
		if !ok {
			list = append(list, sh)
			continue
		}
		i, ok := groups[g]
		if !ok {
			i = len(list)
			groups[g] = i
			list = append(list, runs.ProcessShare{Name: g, KernelThread: true})
		}
		a := &list[i]
		a.Count++
		a.User += sh.User
		a.System += sh.System
		a.Cores += sh.Cores
		a.Children += sh.Children
		a.Shared = a.Shared || sh.Shared
		a.Exited = a.Exited || sh.Exited
		a.Started = a.Started || sh.Started
	}
	sortShares(list)
	if len(list) > n {
		for _, sh := range list[n:] {
			top.Other += sh.Cores
			top.OtherCount += max(sh.Count, 1)
		}
		list = list[:n]
	}
	top.Processes = list
	return top
}

// ProcessTopOf is a point's ProcessTop from ser over load: roles maps
// the PIDs kpbench knows (kube-proxy, the load client) to their names.
// A series that cannot cover load says why in Unavailable.
func ProcessTopOf(ser *ProcessSeries, load Span, roles map[int]string) *runs.ProcessTop {
	if ser == nil {
		return &runs.ProcessTop{Unavailable: "the client node's collector reported no per-process CPU"}
	}
	if len(ser.Samples) == 0 {
		why := "no process sample was taken"
		if len(ser.Problems) > 0 {
			why += ": " + strings.Join(ser.Problems, "; ")
		}
		return &runs.ProcessTop{Covers: ser.Covers, Unavailable: why}
	}
	shares, _, err := ser.Within(load)
	if err != nil {
		return &runs.ProcessTop{Covers: ser.Covers, Unavailable: err.Error()}
	}
	for i := range shares {
		shares[i].Role = roles[shares[i].PID]
	}
	top := TopProcesses(shares, TopN)
	top.Covers = ser.Covers
	if len(ser.Problems) > 0 {
		top.Covers += "; sampling stopped early: " + strings.Join(ser.Problems, "; ")
	}
	return &top
}
