// Package firstpacket times each new connection of the load client in the
// kernel: from connect(2) setting the socket to SYN_SENT to the SYN being
// handed to the egress device (raw tracepoints inet_sock_set_state and
// net_dev_queue; firstpacket.bpf.c states the span). That span holds
// routing and netfilter's LOCAL_OUT and POST_ROUTING hooks, where
// kube-proxy's Service lookup runs for a client on the node, and nothing
// of the scheduler, the peer or the way back: the dataplane's own cost per
// connection, without the noise of a userspace connect time.
//
// A Probe is opened once (one load of the BPF objects, two attachments)
// and read per window: Take returns the spans of one process's
// connections whose SYN_SENT fell inside a window, so that other
// processes connecting from the same network namespace are not counted.
package firstpacket

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Span names what a probe times, for run.json and the report.
const Span = "kernel time to first packet: connect(2) SYN_SENT → the SYN at net_dev_queue (eBPF raw tracepoints)"

// ErrUnavailable wraps every reason the probe cannot run here (not root,
// no BTF, a verifier or attach failure): a caller records the reason and
// measures on without it.
var ErrUnavailable = errors.New("kernel probe unavailable")

// Options configure a probe.
type Options struct {
	// Netns is the path of the network namespace whose connections are
	// timed (/proc/PID/ns/net, /run/netns/NAME); empty times every
	// namespace's.
	Netns string
}

// Probe is a loaded and attached kernel probe.
type Probe struct {
	objs  firstpacketObjects
	links []link.Link
	rd    *ringbuf.Reader
	// stats keeps the kernel's BPF run-time statistics on while the probe
	// is open (nil where they could not be enabled), so that the probe's
	// own CPU is measured, not assumed.
	stats io.Closer
	// events holds what was drained from the ring and not yet taken.
	events []Event
}

// Event is one timed connection.
type Event struct {
	// Start is when the socket entered SYN_SENT (wall clock).
	Start time.Time
	Span  time.Duration
	TGID  int
}

// Counters are the probe's own totals since it was opened.
type Counters struct {
	// Starts counts SYN_SENT transitions in the namespace, Timed those
	// that reached net_dev_queue and were written out, Lost those the
	// ring buffer had no room for, Unreadable sockets whose fields the
	// probe could not read.
	Starts, Timed, Lost, Unreadable uint64
}

// Open loads the probe and attaches it. Every failure wraps ErrUnavailable.
func Open(opts Options) (*Probe, error) {
	spec, err := loadFirstpacket()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if opts.Netns != "" {
		var st unix.Stat_t
		if err := unix.Stat(opts.Netns, &st); err != nil {
			return nil, fmt.Errorf("%w: network namespace %s: %v", ErrUnavailable, opts.Netns, err)
		}
		if err := spec.Variables[firstpacketVarNetnsInum].Set(uint32(st.Ino)); err != nil {
			return nil, fmt.Errorf("%w: setting the namespace filter: %v", ErrUnavailable, err)
		}
	}
	p := &Probe{}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("%w: the verifier refused the probe: %+v", ErrUnavailable, ve)
		}
		return nil, fmt.Errorf("%w: loading: %v", ErrUnavailable, err)
	}
	for _, a := range []struct {
		name string
		prog *ebpf.Program
	}{{"inet_sock_set_state", p.objs.SynSent}, {"net_dev_queue", p.objs.SynQueued}} {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: a.name, Program: a.prog})
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("%w: attaching to raw tracepoint %s: %v", ErrUnavailable, a.name, err)
		}
		p.links = append(p.links, l)
	}
	p.rd, err = ringbuf.NewReader(p.objs.Events)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%w: ring buffer: %v", ErrUnavailable, err)
	}
	// Best effort: without statistics the probe still times connections,
	// and Cost reports zero runs.
	p.stats, _ = ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	return p, nil
}

// Close detaches and unloads the probe.
func (p *Probe) Close() error {
	var errs []error
	if p.stats != nil {
		errs = append(errs, p.stats.Close())
		p.stats = nil
	}
	if p.rd != nil {
		errs = append(errs, p.rd.Close())
	}
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	errs = append(errs, p.objs.Close())
	return errors.Join(errs...)
}

// drain moves every record in the ring into p.events, without waiting.
func (p *Probe) drain() error {
	off, err := monoOffset()
	if err != nil {
		return err
	}
	p.rd.SetDeadline(time.Now())
	defer p.rd.SetDeadline(time.Time{})
	var rec ringbuf.Record
	for {
		err := p.rd.ReadInto(&rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the probe's ring buffer: %w", err)
		}
		e, err := decode(rec.RawSample, off)
		if err != nil {
			return err
		}
		p.events = append(p.events, e)
	}
}

// Discard forgets every connection timed so far (before a window opens).
func (p *Probe) Discard() error {
	if err := p.drain(); err != nil {
		return err
	}
	p.events = p.events[:0]
	return nil
}

// Take returns the connections of process tgid whose SYN_SENT time inside
// says is inside the window (the caller's window rule: collector.InWindow
// for kpbench's points), and forgets every connection timed so far.
func (p *Probe) Take(tgid int, inside func(time.Time) bool) ([]Event, error) {
	if err := p.drain(); err != nil {
		return nil, err
	}
	var out []Event
	for _, e := range p.events {
		if e.TGID == tgid && inside(e.Start) {
			out = append(out, e)
		}
	}
	p.events = p.events[:0]
	return out, nil
}

// Counters reads the probe's totals.
func (p *Probe) Counters() (Counters, error) {
	var c Counters
	for i, dst := range []*uint64{&c.Starts, &c.Timed, &c.Lost, &c.Unreadable} {
		var per []uint64
		if err := p.objs.Counters.Lookup(uint32(i), &per); err != nil {
			return c, fmt.Errorf("reading the probe's counters: %w", err)
		}
		for _, v := range per {
			*dst += v
		}
	}
	return c, nil
}

// Cost is the probe's own CPU: the run time and run count of its two BPF
// programs since it was opened, from the kernel's BPF statistics (zero
// where they are off).
type Cost struct {
	Runtime time.Duration
	Runs    uint64
}

// Cost reads the probe's own CPU so far.
func (p *Probe) Cost() (Cost, error) {
	var c Cost
	for _, prog := range []*ebpf.Program{p.objs.SynSent, p.objs.SynQueued} {
		st, err := prog.Stats()
		if err != nil {
			return c, fmt.Errorf("reading the probe's run time: %w", err)
		}
		c.Runtime += st.Runtime
		c.Runs += st.RunCount
	}
	return c, nil
}

// eventSize is the C struct event's size.
const eventSize = 16

// decode turns a ring record into an Event; off maps CLOCK_MONOTONIC
// (bpf_ktime_get_ns) to wall-clock nanoseconds.
func decode(b []byte, off int64) (Event, error) {
	if len(b) < eventSize {
		return Event{}, fmt.Errorf("probe record of %d bytes, want %d", len(b), eventSize)
	}
	start := le64(b[0:8])
	span := le32(b[8:12])
	tgid := le32(b[12:16])
	return Event{Start: time.Unix(0, int64(start)+off), Span: time.Duration(span), TGID: int(tgid)}, nil
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// monoOffset is wall-clock minus CLOCK_MONOTONIC, in nanoseconds.
func monoOffset() (int64, error) {
	var ts unix.Timespec
	wall := time.Now().UnixNano()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("reading CLOCK_MONOTONIC: %w", err)
	}
	return wall - ts.Nano(), nil
}

// Spans returns the events' spans, sorted.
func Spans(events []Event) []time.Duration {
	out := make([]time.Duration, len(events))
	for i, e := range events {
		out[i] = e.Span
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
