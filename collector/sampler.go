package collector

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/kpbench/kpbench/runs"
)

// ProcessKubeProxy is the name under which a point's sampler tracks
// kube-proxy; Summary.ProcessesCPU picks it out. (The load client's CPU
// is its own account, in the load summary.)
const ProcessKubeProxy = "kube-proxy"

// Cores is CPU use over an interval in cores: CPU-seconds per wall-clock
// second, split like /proc/stat. Total is the busy time: the wall time the
// CPUs were not idle (see reconcile). The busy columns (user, nice, system,
// irq, softirq, steal) are its split, from tick samples scaled to add up
// to Total; in an interval so short or so aliased that no tick found a CPU
// busy they are zero while Total is not. Idle and IOWait are reported for
// completeness and are not part of Total.
type Cores struct {
	User    float64 `json:"user"`
	Nice    float64 `json:"nice"`
	System  float64 `json:"system"`
	IRQ     float64 `json:"irq"`
	SoftIRQ float64 `json:"softirq"`
	Steal   float64 `json:"steal"`
	Total   float64 `json:"total"`
	Idle    float64 `json:"idle"`
	IOWait  float64 `json:"iowait"`
}

// coresOf divides a CPU-time delta, busy for busy seconds, by the wall
// time it spans.
func coresOf(d CPUTimes, busy, wall float64) Cores {
	if wall <= 0 {
		return Cores{}
	}
	return Cores{
		User:    d.User / wall,
		Nice:    d.Nice / wall,
		System:  d.System / wall,
		IRQ:     d.IRQ / wall,
		SoftIRQ: d.SoftIRQ / wall,
		Steal:   d.Steal / wall,
		Total:   busy / wall,
		Idle:    d.Idle / wall,
		IOWait:  d.IOWait / wall,
	}
}

// Process names a process to sample.
type Process struct {
	// Name labels the process in results (ProcessKubeProxy or anything
	// else).
	Name string `json:"name"`
	PID  int    `json:"pid"`
}

// ProcessCores is one process's CPU over an interval, in cores.
type ProcessCores struct {
	Name   string  `json:"name"`
	PID    int     `json:"pid"`
	User   float64 `json:"user"`
	System float64 `json:"system"`
	Total  float64 `json:"total"`
}

// Sample is CPU use over one sampling interval.
type Sample struct {
	// Start and End bound the interval (the times of the two readings).
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Seconds is End - Start.
	Seconds float64 `json:"seconds"`
	// Node sums the sampled CPUs; in cores, so with 2 CPUs it ranges 0-2.
	Node Cores `json:"node"`
	// PerCPU is each sampled CPU's share, keyed by CPU number.
	PerCPU map[int]Cores `json:"perCPU"`
	// Processes are the sampled processes that existed at both readings.
	Processes []ProcessCores `json:"processes,omitempty"`
}

// Delta computes the sample between two snapshots: the CPUs of cpus (every
// CPU in both snapshots when empty) and the processes of procs present in
// both with the same start time.
func Delta(prev, cur Snapshot, cpus []int, procs []Process) Sample {
	wall := cur.Time.Sub(prev.Time).Seconds()
	s := Sample{Start: prev.Time, End: cur.Time, Seconds: wall, PerCPU: map[int]Cores{}}
	if len(cpus) == 0 {
		for c := range cur.CPUs {
			if _, ok := prev.CPUs[c]; ok {
				cpus = append(cpus, c)
			}
		}
		sort.Ints(cpus)
	}
	var sum CPUTimes
	var busy float64
	for _, c := range cpus {
		p, ok1 := prev.CPUs[c]
		n, ok2 := cur.CPUs[c]
		if !ok1 || !ok2 {
			continue
		}
		d, b := reconcile(clampCPU(n.Sub(p)), wall)
		sum = sum.Add(d)
		busy += b
		s.PerCPU[c] = coresOf(d, b, wall)
	}
	s.Node = coresOf(sum, busy, wall)
	for _, pr := range procs {
		p, ok1 := prev.Procs[pr.PID]
		n, ok2 := cur.Procs[pr.PID]
		if !ok1 || !ok2 || p.StartTicks != n.StartTicks || wall <= 0 {
			continue
		}
		u := max(n.UserSeconds-p.UserSeconds, 0)
		sy := max(n.SystemSeconds-p.SystemSeconds, 0)
		s.Processes = append(s.Processes, ProcessCores{
			Name: pr.Name, PID: pr.PID,
			User: u / wall, System: sy / wall, Total: (u + sy) / wall,
		})
	}
	return s
}

// reconcile scales one CPU's busy columns so that they add up to the time
// the CPU was not idle: wall - idle - iowait.
//
// /proc/stat's busy columns are tick samples: every tick that finds the CPU
// busy charges a whole tick to one column. On a tickless kernel idle and
// iowait are instead measured from the idle loop itself, precisely. Work
// that wakes the CPU at a fixed rate — a load client at 1,000 req/s on a
// 250 Hz kernel is exactly that — runs in step with the tick, and the
// samples alias: the busy columns then read anywhere from a third to three
// times the truth, depending on the phase, and busy + idle drifts far from
// the wall time (seen on the lab: 0.12 to 0.99 cores for the same load,
// while wall - idle stayed at 0.23-0.41). The columns keep their
// proportions (the best estimate of the split), scaled to the precise busy
// time. Where idle is tick-sampled too, the columns already add up to the
// wall time and this changes nothing but rounding.
//
// It returns the busy seconds as well. An interval in which no tick found
// the CPU busy has no columns to scale, yet the idle loop says the CPU was
// busy for part of it: at 250 ms intervals and a few hundred wake-ups a
// second that is one sample in eight on the lab, and with aliasing far
// more. Dropping those would under-report every sum of samples (a load
// window cut out of a longer series read a third of the truth); the busy
// time counts, unattributed to any column.
func reconcile(d CPUTimes, wall float64) (CPUTimes, float64) {
	if wall <= 0 {
		return d, d.Busy()
	}
	ticks := d.Busy()
	if ticks <= 0 && d.Idle+d.IOWait <= 0 {
		// Nothing moved at all (an interval shorter than a tick, or a
		// frozen tree): no evidence of busy time.
		return d, 0
	}
	busy := min(max(wall-d.Idle-d.IOWait, 0), wall)
	if ticks <= 0 {
		return d, busy
	}
	f := busy / ticks
	for _, v := range []*float64{&d.User, &d.Nice, &d.System, &d.IRQ, &d.SoftIRQ, &d.Steal, &d.Guest, &d.GuestNice} {
		*v *= f
	}
	return d, busy
}

// clampCPU zeroes negative deltas: /proc/stat's idle and iowait can step
// backwards by a tick on some kernels (NO_HZ accounting).
func clampCPU(d CPUTimes) CPUTimes {
	for _, f := range []*float64{&d.User, &d.Nice, &d.System, &d.Idle, &d.IOWait, &d.IRQ, &d.SoftIRQ, &d.Steal, &d.Guest, &d.GuestNice} {
		if *f < 0 {
			*f = 0
		}
	}
	return d
}

// Summary is CPU use over a whole window.
type Summary struct {
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Seconds float64   `json:"seconds"`
	// CPUs are the CPUs the node figures cover.
	CPUs []int `json:"cpus"`
	// Mean is the window's busy time divided by its wall time (from the
	// first and last readings, not an average of averages).
	Mean Cores `json:"mean"`
	// MaxTotal is the busiest full interval's Node.Total; intervals shorter
	// than half the sampling interval (the last one, cut short by Stop)
	// are left out, since 10 ms ticks make them noisy.
	MaxTotal float64 `json:"maxTotal"`
	// Processes are mean and max cores per sampled process.
	Processes []ProcessSummary `json:"processes,omitempty"`
}

// ProcessSummary is one process's CPU over the window.
type ProcessSummary struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	// Mean is (CPU seconds at the end - at the start) / wall seconds.
	Mean Cores `json:"mean"`
	// Max is the busiest full interval's total.
	Max float64 `json:"max"`
	// Exited is set when the process was gone (or its PID reused) before
	// the end of the window; Mean then covers the time it was seen.
	Exited bool `json:"exited,omitempty"`
}

// NodeCPU maps the summary onto the results schema.
func (s Summary) NodeCPU() runs.NodeCPU {
	return runs.NodeCPU{
		User: s.Mean.User, Nice: s.Mean.Nice, System: s.Mean.System, IRQ: s.Mean.IRQ,
		SoftIRQ: s.Mean.SoftIRQ, Steal: s.Mean.Steal, Total: s.Mean.Total, MaxTotal: s.MaxTotal,
	}
}

// ProcessesCPU maps the process named ProcessKubeProxy onto the results
// schema (0 when it was not sampled).
func (s Summary) ProcessesCPU() runs.ProcessesCPU {
	var out runs.ProcessesCPU
	for _, p := range s.Processes {
		if p.Name == ProcessKubeProxy {
			out.KubeProxy += p.Mean.Total
		}
	}
	return out
}

// CPU maps the summary onto the results schema's CPU block.
func (s Summary) CPU() runs.CPU {
	return runs.CPU{Node: s.NodeCPU(), Processes: s.ProcessesCPU()}
}

// Summarize derives the window summary from the first and last snapshots
// and the samples between them.
func Summarize(first, last Snapshot, samples []Sample, cpus []int, procs []Process, interval time.Duration) Summary {
	whole := Delta(first, last, cpus, procs)
	sum := Summary{Start: first.Time, End: last.Time, Seconds: whole.Seconds, Mean: whole.Node}
	for c := range whole.PerCPU {
		sum.CPUs = append(sum.CPUs, c)
	}
	sort.Ints(sum.CPUs)
	full := func(s Sample) bool { return interval <= 0 || s.Seconds >= interval.Seconds()/2 }
	for _, s := range samples {
		if full(s) && s.Node.Total > sum.MaxTotal {
			sum.MaxTotal = s.Node.Total
		}
	}
	for _, pr := range procs {
		ps := ProcessSummary{Name: pr.Name, PID: pr.PID}
		// A process that exits mid-window: its mean runs from the first
		// reading to the last one that saw it.
		p0, ok0 := first.Procs[pr.PID]
		pN, okN := last.Procs[pr.PID]
		if !okN || (ok0 && p0.StartTicks != pN.StartTicks) {
			ps.Exited = true
		}
		var cpuSecU, cpuSecS float64
		for _, s := range samples {
			for _, pc := range s.Processes {
				if pc.PID == pr.PID {
					cpuSecU += pc.User * s.Seconds
					cpuSecS += pc.System * s.Seconds
					if full(s) && pc.Total > ps.Max {
						ps.Max = pc.Total
					}
				}
			}
		}
		if !ps.Exited && ok0 {
			// Exact over the window, independent of how samples fell.
			cpuSecU = pN.UserSeconds - p0.UserSeconds
			cpuSecS = pN.SystemSeconds - p0.SystemSeconds
		}
		if whole.Seconds > 0 {
			ps.Mean = Cores{User: cpuSecU / whole.Seconds, System: cpuSecS / whole.Seconds, Total: (cpuSecU + cpuSecS) / whole.Seconds}
		}
		sum.Processes = append(sum.Processes, ps)
	}
	return sum
}

// SamplerConfig says what a Sampler reads and how often.
type SamplerConfig struct {
	// CPUs are the CPUs whose /proc/stat lines make the node figure; empty
	// means every CPU.
	CPUs []int
	// Processes are sampled from /proc/PID/stat.
	Processes []Process
	// Interval between readings; 1s when zero.
	Interval time.Duration
	// OnSample, if set, is called from the sampling goroutine with each
	// sample as it is taken (for live output). It must not block long.
	OnSample func(Sample)
}

// Series is what a Sampler measured.
type Series struct {
	// CPUs are the CPUs the node figures cover.
	CPUs      []int     `json:"cpus"`
	Processes []Process `json:"processes,omitempty"`
	// IntervalSeconds is the configured sampling interval.
	IntervalSeconds float64  `json:"intervalSeconds"`
	Samples         []Sample `json:"samples"`
	Summary         Summary  `json:"summary"`
	// Problems are readings that failed mid-window (the window goes on).
	Problems []string `json:"problems,omitempty"`
}

// ErrNotStarted is returned by Stop on a sampler that was not started.
var ErrNotStarted = errors.New("sampler not started")

// Sampler reads the node's CPUs and chosen processes on an interval. Use
// it as a measurement with a start/gather lifecycle: Start takes the first
// reading (so a bad CPU or PID fails at once), Stop takes the last one and
// returns the series; the summary spans exactly Start to Stop.
type Sampler struct {
	fs  FS
	cfg SamplerConfig
	pid []int

	mu       sync.Mutex
	first    Snapshot
	prev     Snapshot
	samples  []Sample
	problems []string
	cancel   context.CancelFunc
	done     <-chan struct{}
	stopped  bool
}

// NewSampler returns a sampler reading fs. It checks the CPUs exist.
func (fs FS) NewSampler(cfg SamplerConfig) (*Sampler, error) {
	if cfg.Interval < 0 {
		return nil, fmt.Errorf("sampling interval %s is negative", cfg.Interval)
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if len(cfg.CPUs) == 0 {
		ids, err := fs.CPUIDs()
		if err != nil {
			return nil, err
		}
		cfg.CPUs = ids
	}
	s := &Sampler{fs: fs, cfg: cfg}
	for _, p := range cfg.Processes {
		s.pid = append(s.pid, p.PID)
	}
	return s, nil
}

// Start takes the first reading and starts sampling until ctx ends or Stop
// is called. A process that does not exist at Start is an error.
func (s *Sampler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done != nil {
		return errors.New("sampler already started")
	}
	snap, err := s.fs.Snapshot(s.cfg.CPUs, s.pid)
	if err != nil {
		return err
	}
	for _, p := range s.cfg.Processes {
		if _, ok := snap.Procs[p.PID]; !ok {
			return fmt.Errorf("process %s (pid %d) under %s: %w", p.Name, p.PID, s.fs.root, ErrNoSuchProcess)
		}
	}
	s.first, s.prev = snap, snap
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = everyTick(ctx, s.cfg.Interval, s.take)
	return nil
}

// take reads once and appends the sample since the previous reading.
func (s *Sampler) take() {
	snap, err := s.fs.Snapshot(s.cfg.CPUs, s.pid)
	s.mu.Lock()
	if err != nil {
		s.problems = append(s.problems, fmt.Sprintf("%s: %v", time.Now().Format(time.RFC3339), err))
		s.mu.Unlock()
		return
	}
	smp := Delta(s.prev, snap, s.cfg.CPUs, s.cfg.Processes)
	s.samples = append(s.samples, smp)
	s.prev = snap
	cb := s.cfg.OnSample
	s.mu.Unlock()
	if cb != nil {
		cb(smp)
	}
}

// Stop takes the last reading, stops sampling and returns the series.
func (s *Sampler) Stop() (*Series, error) {
	s.mu.Lock()
	if s.done == nil {
		s.mu.Unlock()
		return nil, ErrNotStarted
	}
	if s.stopped {
		s.mu.Unlock()
		return nil, errors.New("sampler already stopped")
	}
	s.stopped = true
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	cancel()
	<-done
	// The final reading closes the window exactly at Stop, unless the
	// loop's last tick was a moment ago.
	s.mu.Lock()
	since := time.Since(s.prev.Time)
	s.mu.Unlock()
	if since >= 10*time.Millisecond {
		s.take()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ser := &Series{
		CPUs:            append([]int(nil), s.cfg.CPUs...),
		Processes:       append([]Process(nil), s.cfg.Processes...),
		IntervalSeconds: s.cfg.Interval.Seconds(),
		Samples:         s.samples,
		Problems:        s.problems,
	}
	ser.Summary = Summarize(s.first, s.prev, s.samples, s.cfg.CPUs, s.cfg.Processes, s.cfg.Interval)
	return ser, nil
}

// CSVHeader is the header WriteCSV writes for the given processes.
func CSVHeader(procs []Process) []string {
	h := []string{"time", "seconds", "user", "nice", "system", "irq", "softirq", "steal", "total", "idle", "iowait"}
	for _, p := range procs {
		h = append(h, fmt.Sprintf("proc_%s_%d", p.Name, p.PID))
	}
	return h
}

// WriteCSV writes one row per sample: the interval's end time (RFC 3339,
// nanoseconds), its length in seconds, the node's cores by kind, then
// each process's total cores (empty when it was not seen). It is the
// format of raw/<point>/cpu.csv.
func (ser *Series) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader(ser.Processes)); err != nil {
		return fmt.Errorf("writing CPU CSV: %w", err)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 6, 64) }
	for _, s := range ser.Samples {
		n := s.Node
		row := []string{s.End.UTC().Format(time.RFC3339Nano), f(s.Seconds),
			f(n.User), f(n.Nice), f(n.System), f(n.IRQ), f(n.SoftIRQ), f(n.Steal), f(n.Total), f(n.Idle), f(n.IOWait)}
		for _, p := range ser.Processes {
			cell := ""
			for _, pc := range s.Processes {
				if pc.PID == p.PID {
					cell = f(pc.Total)
				}
			}
			row = append(row, cell)
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("writing CPU CSV: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing CPU CSV: %w", err)
	}
	return nil
}
