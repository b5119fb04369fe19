package loadgen

import "time"

// Deferred answers: a worker that has sent its request raises its socket's
// receive mark (SO_RCVLOWAT) above any answer, so that the answer's arrival
// does not wake the process; the dispatcher lowers the marks of every such
// socket when it wakes anyway, to send the next request, and the answers
// are read then. Every figure stays what it was: a response's arrival is
// the kernel's receive timestamp of its last byte (see worker.arrived),
// not when it is read, and errors and the peer's close wake the reader
// whatever the mark. What changes is the client's cost: one wake-up per
// request (the dispatcher's) instead of two, the answer's own wake-up
// being the larger part of a paced client's CPU (each costs about as much
// as the request's system calls together). A response is read up to one
// interval between sends after it arrived, so a worker stays busy that
// long, and the dispatcher uses another idle connection meanwhile: two
// persistent connections carry a steady load instead of one.
//
// Answers are deferred only when the dispatcher will wake well within the
// request timeout (deferMaxInterval), and never while it waits for
// anything but its next send: at the inflight bound and after the last
// send every mark is lowered and no new one raised (deferring is closed).

// deferMaxInterval is the longest interval between sends (or batch tick)
// at which answers are deferred: at lower rates the wake-ups are few and a
// deferred answer would hold its connection long.
const deferMaxInterval = 10 * time.Millisecond

// deferMark is the receive mark of a socket whose answer is deferred; the
// kernel caps it at half the receive buffer, so a larger answer wakes its
// reader as usual.
const deferMark = 1 << 30

// deferAnswer raises fd's receive mark and registers it for the
// dispatcher's next wake-up, when deferring is open. It reports whether
// the answer is deferred.
func (r *runner) deferAnswer(fd uintptr) bool {
	if !r.deferOn {
		return false
	}
	// Raised before the registration: once registered, the dispatcher's
	// lowering always comes after it. If deferring closed meanwhile the
	// mark is lowered here.
	setRcvLowat(fd, deferMark)
	r.idleMu.Lock()
	open := r.deferOpen
	if open {
		r.deferred = append(r.deferred, fd)
	}
	r.idleMu.Unlock()
	if !open {
		setRcvLowat(fd, 1)
	}
	return open
}

// wakeDeferred lowers the receive mark of every deferred socket, waking
// the workers whose answers are in; open says whether workers may defer
// again afterwards.
func (r *runner) wakeDeferred(open bool) {
	if !r.deferOn {
		return
	}
	r.idleMu.Lock()
	fds := r.deferred
	r.deferred = r.deferredSpare[:0]
	r.deferOpen = open
	r.idleMu.Unlock()
	for _, fd := range fds {
		// A socket closed and its descriptor reused meanwhile gets the
		// default mark, which changes nothing.
		setRcvLowat(fd, 1)
	}
	r.idleMu.Lock()
	r.deferredSpare = fds[:0]
	r.idleMu.Unlock()
}
