// Package firstpacket times each new connection of the load client in the
// kernel: from connect(2) setting the socket to SYN_SENT to the SYN being
// handed to the egress device (raw tracepoints inet_sock_set_state and
// net_dev_queue; firstpacket.bpf.c states the span). That span holds
// routing and netfilter's LOCAL_OUT and POST_ROUTING hooks, where
// kube-proxy's Service lookup runs for a client on the node, and nothing
// of the scheduler, the peer or the way back: the dataplane's own cost per
// connection, without the noise of a userspace connect time.
//
// The same probe also times the way back (ReturnSpan): the SYN-ACK from
// its arrival on a device of the client's namespace (raw tracepoint
// netif_receive_skb) to the socket becoming ESTABLISHED: the receive
// path, conntrack and the reverse NAT, routing, INPUT and TCP's SYN-ACK
// processing, where kube-proxy's Service rules do not run.
//
// A Probe is opened once (one load of the BPF objects, four attachments)
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
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Span names what a probe times, for run.json and the report.
const Span = "kernel time to first packet: connect(2) SYN_SENT → the SYN at net_dev_queue (eBPF raw tracepoints)"

// ReturnSpan names the way back the probe times.
const ReturnSpan = "kernel time of the SYN-ACK's way back: its netif_receive_skb on a device of the client's namespace → the socket ESTABLISHED (eBPF raw tracepoints)"

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

// firstPrograms time the first packet; returnPrograms the way back. They
// load separately, so that a kernel that refuses the way back still times
// the first packet.
type firstPrograms struct {
	SynSent   *ebpf.Program `ebpf:"syn_sent"`
	SynQueued *ebpf.Program `ebpf:"syn_queued"`
}

type returnPrograms struct {
	SynackArrived *ebpf.Program `ebpf:"synack_arrived"`
	Established   *ebpf.Program `ebpf:"established"`
}

// Probe is a loaded and attached kernel probe.
type Probe struct {
	maps  firstpacketMaps
	first firstPrograms
	ret   returnPrograms
	links []link.Link
	// returnUnavailable says why the way back is not timed ("" when it
	// is).
	returnUnavailable string
	rd                *ringbuf.Reader
	// stats keeps the kernel's BPF run-time statistics on while the probe
	// is open (nil where they could not be enabled), so that the probe's
	// own CPU is measured, not assumed.
	stats io.Closer
	// events holds what was drained from the ring and not yet taken.
	events []Event
}

// Kind says which span an Event is.
type Kind uint32

const (
	// First is the time to first packet: SYN_SENT → the SYN's
	// net_dev_queue (Span).
	First Kind = 0
	// Return is the way back: the SYN-ACK's netif_receive_skb →
	// ESTABLISHED (ReturnSpan).
	Return Kind = 1
)

// Event is one timed span of a connection.
type Event struct {
	// Start is when the socket entered SYN_SENT (wall clock), for both
	// kinds: one window rule counts a connection's two spans alike.
	Start time.Time
	Span  time.Duration
	TGID  int
	Kind  Kind
}

// Counters are the probe's own totals since it was opened.
type Counters struct {
	// Starts counts SYN_SENT transitions in the namespace, Timed those
	// that reached net_dev_queue and were written out, Lost spans the
	// ring buffer had no room for, Unreadable sockets or packets whose
	// fields the probe could not read.
	Starts, Timed, Lost, Unreadable uint64
	// Arrived counts timed connections whose SYN-ACK reached their
	// namespace, Returned those that then became ESTABLISHED and were
	// written out; Unparsed outgoing SYNs and received IP packets of the
	// namespace whose headers were not in the skb's linear data.
	Arrived, Returned, Unparsed uint64
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
	if err := spec.LoadAndAssign(&p.maps, nil); err != nil {
		return nil, fmt.Errorf("%w: creating the maps: %v", ErrUnavailable, err)
	}
	// Both halves share the maps, and one parse of the kernel's BTF.
	copts := &ebpf.CollectionOptions{Cache: btf.NewCache(), MapReplacements: map[string]*ebpf.Map{
		firstpacketMapStarts: p.maps.Starts, firstpacketMapEvents: p.maps.Events, firstpacketMapCounters: p.maps.Counters,
		firstpacketMapTuples: p.maps.Tuples, firstpacketMapArrivals: p.maps.Arrivals,
	}}
	if err := spec.LoadAndAssign(&p.first, copts); err != nil {
		p.Close()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, loadError(err))
	}
	if err := p.attach([]attachment{{"inet_sock_set_state", p.first.SynSent}, {"net_dev_queue", p.first.SynQueued}}); err != nil {
		p.Close()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// The way back is timed where the kernel lets it: a refusal is
	// recorded, and the first packet is timed all the same.
	if err := spec.LoadAndAssign(&p.ret, copts); err != nil {
		p.returnUnavailable = loadError(err).Error()
	} else if err := p.attach([]attachment{{"netif_receive_skb", p.ret.SynackArrived}, {"inet_sock_set_state", p.ret.Established}}); err != nil {
		p.returnUnavailable = err.Error()
	}
	if p.returnUnavailable != "" {
		p.closeReturn()
	}
	p.rd, err = ringbuf.NewReader(p.maps.Events)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%w: ring buffer: %v", ErrUnavailable, err)
	}
	// Best effort: without statistics the probe still times connections,
	// and Cost reports zero runs.
	p.stats, _ = ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	return p, nil
}

type attachment struct {
	tracepoint string
	prog       *ebpf.Program
}

// attach attaches each program to its raw tracepoint, keeping the links
// in p.links.
func (p *Probe) attach(as []attachment) error {
	for _, a := range as {
		l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: a.tracepoint, Program: a.prog})
		if err != nil {
			return fmt.Errorf("attaching to raw tracepoint %s: %v", a.tracepoint, err)
		}
		p.links = append(p.links, l)
	}
	return nil
}

// loadError words a load failure, the verifier's log in full.
func loadError(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("the verifier refused the probe: %+v", ve)
	}
	return fmt.Errorf("loading: %v", err)
}

// closeReturn unloads the way back's programs and detaches their links
// (the last ones attached).
func (p *Probe) closeReturn() {
	for len(p.links) > 2 {
		p.links[len(p.links)-1].Close()
		p.links = p.links[:len(p.links)-1]
	}
	closeAll(p.ret.SynackArrived, p.ret.Established)
	p.ret = returnPrograms{}
}

// ReturnUnavailable says why the probe does not time the way back ("" when
// it does).
func (p *Probe) ReturnUnavailable() string { return p.returnUnavailable }

func closeAll(progs ...*ebpf.Program) []error {
	var errs []error
	for _, prog := range progs {
		if prog != nil {
			errs = append(errs, prog.Close())
		}
	}
	return errs
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
	errs = append(errs, closeAll(p.first.SynSent, p.first.SynQueued, p.ret.SynackArrived, p.ret.Established)...)
	p.first, p.ret = firstPrograms{}, returnPrograms{}
	for _, m := range []*ebpf.Map{p.maps.Starts, p.maps.Events, p.maps.Counters, p.maps.Tuples, p.maps.Arrivals} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	p.maps = firstpacketMaps{}
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

// Take returns the spans of process tgid's connections whose SYN_SENT
// time inside says is inside the window (the caller's window rule:
// collector.InWindow for kpbench's points), of both kinds, and forgets
// every span timed so far.
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
	// In the order of the C enum.
	for i, dst := range []*uint64{&c.Starts, &c.Timed, &c.Lost, &c.Unreadable, &c.Arrived, &c.Returned, &c.Unparsed} {
		var per []uint64
		if err := p.maps.Counters.Lookup(uint32(i), &per); err != nil {
			return c, fmt.Errorf("reading the probe's counters: %w", err)
		}
		for _, v := range per {
			*dst += v
		}
	}
	return c, nil
}

// Cost is the probe's own CPU: the run time and run count of its BPF
// programs since it was opened, from the kernel's BPF statistics (zero
// where they are off).
type Cost struct {
	Runtime time.Duration
	Runs    uint64
}

// Cost reads the probe's own CPU so far.
func (p *Probe) Cost() (Cost, error) {
	var c Cost
	for _, prog := range []*ebpf.Program{p.first.SynSent, p.first.SynQueued, p.ret.SynackArrived, p.ret.Established} {
		if prog == nil {
			continue
		}
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
const eventSize = 24

// decode turns a ring record into an Event; off maps CLOCK_MONOTONIC
// (bpf_ktime_get_ns) to wall-clock nanoseconds.
func decode(b []byte, off int64) (Event, error) {
	if len(b) < eventSize {
		return Event{}, fmt.Errorf("probe record of %d bytes, want %d", len(b), eventSize)
	}
	start := le64(b[0:8])
	span := le32(b[8:12])
	tgid := le32(b[12:16])
	kind := Kind(le32(b[16:20]))
	if kind != First && kind != Return {
		return Event{}, fmt.Errorf("probe record of unknown kind %d", kind)
	}
	return Event{Start: time.Unix(0, int64(start)+off), Span: time.Duration(span), TGID: int(tgid), Kind: kind}, nil
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

// Spans returns the spans of the events of kind k, sorted.
func Spans(events []Event, k Kind) []time.Duration {
	var out []time.Duration
	for _, e := range events {
		if e.Kind == k {
			out = append(out, e.Span)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
