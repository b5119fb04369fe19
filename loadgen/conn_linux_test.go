//go:build linux

package loadgen

import (
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func timespecBytes(ns int64) []byte {
	ts := unix.NsecToTimespec(ns)
	return unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts))
}

func TestRxTimestamp(t *testing.T) {
	const ns = 1_764_464_000_123_456_789
	stamp := cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(ns))
	other := cmsg(unix.SOL_IP, unix.IP_TOS, []byte{0x10})
	truncated := cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespecBytes(ns))
	(*unix.Cmsghdr)(unsafe.Pointer(&truncated[0])).SetLen(len(truncated) + 8)
	tests := []struct {
		name string
		oob  []byte
		want int64
	}{
		{"no control messages", nil, 0},
		{"the timestamp alone", stamp, ns},
		{"after another message", append(append([]byte{}, other...), stamp...), ns},
		{"another message alone", other, 0},
		{"a timestamp of the wrong level", cmsg(unix.SOL_IP, unix.SCM_TIMESTAMPNS, timespecBytes(ns)), 0},
		{"a length past the buffer", truncated, 0},
		{"a header cut short", stamp[:4], 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rxTimestamp(tt.oob); got != tt.want {
				t.Errorf("rxTimestamp = %d, want %d", got, tt.want)
			}
		})
	}
}

// A response read late still reports when it arrived: the kernel's receive
// timestamp, not the read.
func TestRawConnArrivalIsTheKernelsReceiveTime(t *testing.T) {
	skipIntegration(t)
	_, url := startServer(t, ServerConfig{})
	tg, err := ParseTarget(url)
	if err != nil {
		t.Fatal(err)
	}
	d := newDialer()
	defer d.close()
	if err := d.prepare(&tg); err != nil {
		t.Fatal(err)
	}
	c, _, err := d.dial(&tg, time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if _, err := c.Write(tg.req); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the answer waits in the socket
	buf := make([]byte, 4096)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	read := time.Now()
	at, ok := c.(arriver).arrival()
	if !ok {
		t.Fatal("no receive timestamp")
	}
	if at.Before(sent) || read.Sub(at) < 40*time.Millisecond {
		t.Errorf("sent at +0, arrived at %v, read at %v: want arrival after the send and at least 40 ms before the read",
			at.Sub(sent), read.Sub(sent))
	}
}

// The dialer holds a socket that asks for receive timestamps from its
// creation to its close, so that the kernel's timestamping (on while any
// socket on the machine asks for it) stays on between two of its
// connections, and closes it with the rest.
func TestDialerKeepsReceiveTimestampsOn(t *testing.T) {
	d := newDialer().(*rawDialer)
	fd := d.stamp
	if fd < 0 {
		d.close()
		t.Fatal("the dialer holds no socket asking for receive timestamps")
	}
	on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS)
	if err != nil || on != 1 {
		t.Errorf("the keeper's SO_TIMESTAMPNS = %d (%v), want 1", on, err)
	}
	var before, after unix.Stat_t
	if err := unix.Fstat(fd, &before); err != nil {
		t.Fatal(err)
	}
	d.close()
	if d.stamp != -1 {
		t.Errorf("after close the dialer still names a keeper (%d)", d.stamp)
	}
	// Closed: the descriptor is gone, or already reused for another file.
	if err := unix.Fstat(fd, &after); err == nil && after.Ino == before.Ino && after.Dev == before.Dev {
		t.Errorf("the keeper (fd %d) is still open after close", fd)
	}
}
