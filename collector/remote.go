package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// A remote point is a point measurement run by another process — the CPU
// agent pod on an in-cluster client node, reached by exec — over a pipe:
//
//	agent:  StartPoint, then writes the ready line `{"ready":true}` and waits
//	        for a byte or the end of its stdin (or a deadline);
//	caller: writes "stop\n" and closes the agent's stdin to end the window;
//	agent:  Stop, then writes the PointResult as one JSON document.
//
// The ready line makes the caller's Begin return only once sampling runs,
// so the window never misses the start of the load.

// remoteReady is the agent's first line.
type remoteReady struct {
	Ready bool `json:"ready"`
}

// ServeRemotePoint is the agent's side: it measures from now until stop
// reaches EOF (or maxDuration passes, or ctx ends), writing the ready line
// and then the result to out.
func ServeRemotePoint(ctx context.Context, fs FS, cfg PointConfig, stop io.Reader, out io.Writer, maxDuration time.Duration) error {
	m, err := fs.StartPoint(ctx, cfg)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(out).Encode(remoteReady{Ready: true}); err != nil {
		_, _ = m.Stop(ctx)
		return fmt.Errorf("writing the ready line: %w", err)
	}
	if f, ok := out.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	eof := make(chan struct{})
	go func() {
		// Any byte or the end of input ends the window: exec streams
		// that cannot half-close stdin (websocket before v5) still
		// deliver the caller's stop line.
		b := make([]byte, 1)
		for {
			n, err := stop.Read(b)
			if n > 0 || err != nil {
				break
			}
		}
		close(eof)
	}()
	var deadline <-chan time.Time
	if maxDuration > 0 {
		t := time.NewTimer(maxDuration)
		defer t.Stop()
		deadline = t.C
	}
	timedOut := false
	select {
	case <-eof:
	case <-ctx.Done():
	case <-deadline:
		timedOut = true
	}
	res, err := m.Stop(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	if timedOut {
		res.Problems = append(res.Problems, fmt.Sprintf("window ended by the agent's limit of %s, not by the caller", maxDuration))
	}
	if err := json.NewEncoder(out).Encode(res); err != nil {
		return fmt.Errorf("writing the point result: %w", err)
	}
	return nil
}

// RunFunc runs a command somewhere (a client node) with the given stdio,
// like clusters.ClientNode's Run.
type RunFunc func(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error

// RemotePoint is the caller's side of a remote point in progress.
type RemotePoint struct {
	stop   *io.PipeWriter
	stdout *bufio.Reader
	done   chan struct{}
	err    error
	stderr *lockedBuffer
}

// StartRemotePoint runs args (a command that calls ServeRemotePoint, e.g.
// `kpbench cluster agent point ...`) with run and returns once the remote
// side reports that sampling runs.
func StartRemotePoint(ctx context.Context, run RunFunc, args ...string) (*RemotePoint, error) {
	stopR, stopW := io.Pipe()
	outR, outW := io.Pipe()
	p := &RemotePoint{stop: stopW, stdout: bufio.NewReader(outR), done: make(chan struct{}), stderr: &lockedBuffer{}}
	go func() {
		p.err = run(ctx, stopR, outW, p.stderr, args...)
		_ = stopR.Close()
		_ = outW.CloseWithError(io.EOF)
		close(p.done)
	}()
	line, err := p.stdout.ReadBytes('\n')
	var ready remoteReady
	if err == nil {
		err = json.Unmarshal(line, &ready)
	}
	if err != nil || !ready.Ready {
		_ = stopW.Close()
		<-p.done
		return nil, p.failure("starting the remote point", err, line)
	}
	return p, nil
}

// Stop ends the window and returns the remote side's result.
func (p *RemotePoint) Stop(ctx context.Context) (*PointResult, error) {
	go func() {
		// The stop line, then EOF; either one ends the window. Writing
		// fails at once if the remote side is gone already.
		_, _ = p.stop.Write([]byte("stop\n"))
		_ = p.stop.Close()
	}()
	var (
		res  PointResult
		derr error
		read = make(chan struct{})
	)
	go func() {
		derr = json.NewDecoder(p.stdout).Decode(&res)
		_, _ = io.Copy(io.Discard, p.stdout)
		close(read)
	}()
	select {
	case <-read:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	<-p.done
	if derr != nil || p.err != nil {
		return nil, p.failure("ending the remote point", errors.Join(derr, p.err), nil)
	}
	return &res, nil
}

func (p *RemotePoint) failure(what string, err error, got []byte) error {
	msg := what
	if err != nil {
		msg += ": " + err.Error()
	} else {
		msg += ": the remote side did not report ready"
	}
	if s := strings.TrimSpace(string(got)); s != "" {
		msg += fmt.Sprintf(" (it printed %q)", truncate(s, 200))
	}
	if s := strings.TrimSpace(p.stderr.String()); s != "" {
		msg += "; stderr: " + truncate(s, 800)
	}
	return errors.New(msg)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 64<<10 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ErrNoSampleInWindow is Within's error when no sample falls inside the
// window.
var ErrNoSampleInWindow = errors.New("no CPU sample inside the load window")

// Within summarizes the samples that fall inside [start, end] — those
// whose midpoint lies in it — so that a window opened before the load
// began (an in-cluster client pod still starting) reports the load's own
// seconds. Means are time-weighted over the kept samples; it fails when
// no sample falls inside.
func (s *Series) Within(start, end time.Time) (Summary, error) {
	var kept []Sample
	for _, smp := range s.Samples {
		mid := smp.Start.Add(smp.End.Sub(smp.Start) / 2)
		if !mid.Before(start) && !mid.After(end) {
			kept = append(kept, smp)
		}
	}
	if len(kept) == 0 {
		return Summary{}, fmt.Errorf("%w %s – %s (%d samples from %s to %s)", ErrNoSampleInWindow,
			start.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano), len(s.Samples), s.Summary.Start.UTC().Format(time.RFC3339Nano), s.Summary.End.UTC().Format(time.RFC3339Nano))
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
