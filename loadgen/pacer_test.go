package loadgen

import (
	"testing"
	"time"
)

func TestConstantPacerPace(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		pacer    ConstantPacer
		elapsed  time.Duration
		hits     uint64
		wantWait time.Duration
		wantStop bool
	}{
		{"first request is due at once", ConstantPacer{Rate: 1000, Total: time.Second}, 0, 0, 0, false},
		{"on schedule waits one interval", ConstantPacer{Rate: 1000, Total: time.Second}, 0, 1, ms, false},
		{"mid-interval waits the rest", ConstantPacer{Rate: 1000, Total: time.Second}, 1500 * time.Microsecond, 2, 500 * time.Microsecond, false},
		{"behind schedule returns how far behind", ConstantPacer{Rate: 1000, Total: time.Second}, 10 * ms, 5, -5 * ms, false},
		{"exactly due waits zero", ConstantPacer{Rate: 100, Total: time.Second}, 30 * ms, 3, 0, false},
		{"ahead of schedule waits longer", ConstantPacer{Rate: 10, Total: time.Second}, 0, 3, 300 * ms, false},
		{"last request inside the window", ConstantPacer{Rate: 1000, Total: time.Second}, 999 * ms, 999, 0, false},
		{"stops when the next is due at the end", ConstantPacer{Rate: 1000, Total: time.Second}, 999 * ms, 1000, 0, true},
		{"stops even when behind", ConstantPacer{Rate: 1000, Total: time.Second}, 2 * time.Second, 1500, 0, true},
		{"fractional rate keeps exact spacing", ConstantPacer{Rate: 3, Total: time.Second}, 0, 2, 666666667 * time.Nanosecond, false},
		{"no drift after many requests", ConstantPacer{Rate: 7, Total: 0}, 0, 7_000_000, 1_000_000 * time.Second, false},
		{"zero total never stops", ConstantPacer{Rate: 1e6, Total: 0}, time.Hour, 1 << 40, time.Duration(1<<40)*time.Microsecond - time.Hour, false},
		{"zero rate stops", ConstantPacer{Rate: 0, Total: time.Second}, 0, 0, 0, true},
		{"negative rate stops", ConstantPacer{Rate: -5, Total: time.Second}, 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait, stop := tt.pacer.Pace(tt.elapsed, tt.hits)
			if wait != tt.wantWait || stop != tt.wantStop {
				t.Errorf("Pace(%v, %d) = (%v, %v), want (%v, %v)", tt.elapsed, tt.hits, wait, stop, tt.wantWait, tt.wantStop)
			}
		})
	}
}

func TestConstantPacerCountsRequestsInWindow(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		total time.Duration
		want  uint64
	}{
		{"1k for 1s", 1000, time.Second, 1000},
		{"10k for 2.5s", 10000, 2500 * time.Millisecond, 25000},
		{"3 per second for 1s", 3, time.Second, 3},
		{"rate below one per window", 0.5, time.Second, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewConstantPacer(tt.rate, tt.total)
			if err != nil {
				t.Fatal(err)
			}
			var hits uint64
			for {
				// Drive the pacer as a perfectly punctual caller would.
				wait, stop := p.Pace(p.Due(hits), hits)
				if stop {
					break
				}
				if wait != 0 {
					t.Fatalf("punctual caller told to wait %v at hit %d", wait, hits)
				}
				hits++
			}
			if hits != tt.want {
				t.Errorf("sent %d requests, want %d", hits, tt.want)
			}
		})
	}
}

func TestNewConstantPacerRejectsBadInput(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		total time.Duration
	}{
		{"zero rate", 0, time.Second},
		{"negative rate", -1, time.Second},
		{"NaN rate", nan(), time.Second},
		{"infinite rate", inf(), time.Second},
		{"negative total", 10, -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewConstantPacer(tt.rate, tt.total); err == nil {
				t.Errorf("NewConstantPacer(%v, %v) accepted bad input", tt.rate, tt.total)
			}
		})
	}
}

func TestBatchStart(t *testing.T) {
	us := time.Microsecond
	ms := time.Millisecond
	tests := []struct {
		name      string
		due, tick time.Duration
		want      time.Duration
	}{
		{"no tick sends when due", 1234 * us, 0, 1234 * us},
		{"negative tick sends when due", 1234 * us, -ms, 1234 * us},
		{"due at a tick leaves at it", 3 * ms, ms, 3 * ms},
		{"due inside a tick leaves at its start", 3*ms + 999*us, ms, 3 * ms},
		{"first tick starts at zero", 999 * us, ms, 0},
		{"tick not dividing a second", 1000 * us, 300 * us, 900 * us},
		{"tick shorter than the interval changes nothing on the grid", 500 * us, 100 * us, 500 * us},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BatchStart(tt.due, tt.tick); got != tt.want {
				t.Errorf("BatchStart(%v, %v) = %v, want %v", tt.due, tt.tick, got, tt.want)
			}
		})
	}
}

// At 10,000 req/s with a 1 ms tick every batch holds ten requests and no
// request leaves late or more than a tick early.
func TestBatchStartGroupsTheSchedule(t *testing.T) {
	p := ConstantPacer{Rate: 10000, Total: time.Second}
	tick := time.Millisecond
	batches := map[time.Duration]int{}
	for n := uint64(0); n < 10000; n++ {
		due := p.Due(n)
		at := BatchStart(due, tick)
		if at > due || due-at >= tick {
			t.Fatalf("request %d due at %v leaves at %v", n, due, at)
		}
		batches[at]++
	}
	if len(batches) != 1000 {
		t.Errorf("%d batches, want 1000", len(batches))
	}
	for at, n := range batches {
		if n != 10 {
			t.Errorf("batch at %v holds %d requests, want 10", at, n)
		}
	}
}

func TestWakeAdvance(t *testing.T) {
	us := int64(time.Microsecond)
	feed := func(lates ...int64) *wakeAdvance {
		var a wakeAdvance
		for range 200 {
			for _, l := range lates {
				a.observe(l)
			}
		}
		return &a
	}
	tests := []struct {
		name     string
		a        *wakeAdvance
		interval time.Duration
		lo, hi   int64 // bounds on ahead(interval)
	}{
		{"a fresh estimate arms on time", &wakeAdvance{}, time.Millisecond, 0, 0},
		{"steady lateness is learned", feed(70 * us), time.Millisecond, 65 * us, 70 * us},
		{"follows the fast wake-ups, not the mean", feed(5*us, 70*us, 70*us, 70*us), time.Millisecond, 5 * us, 30 * us},
		{"early wake-ups count as on time", feed(-50 * us), time.Millisecond, 0, 0},
		{"bounded whatever the machine does", feed(10 * int64(time.Millisecond)), 10 * time.Millisecond, int64(maxWakeAdvance) - 5*us, int64(maxWakeAdvance)},
		{"at most half the interval", feed(70 * us), 100 * time.Microsecond, 50 * us, 50 * us},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.ahead(tt.interval); got < tt.lo || got > tt.hi {
				t.Errorf("ahead(%v) = %v, want %v..%v", tt.interval, time.Duration(got), time.Duration(tt.lo), time.Duration(tt.hi))
			}
		})
	}
}

// One slow wake-up moves the estimate a little; the next fast one brings
// it most of the way back.
func TestWakeAdvanceRecoversFromAStall(t *testing.T) {
	a := wakeAdvance{est: int64(20 * time.Microsecond)}
	a.observe(int64(maxWakeAdvance))
	if up := time.Duration(a.est); up > 26*time.Microsecond {
		t.Errorf("one 200 µs wake-up raised the estimate to %v", up)
	}
	for range 8 {
		a.observe(int64(20 * time.Microsecond))
	}
	if got := time.Duration(a.est); got > 21*time.Microsecond {
		t.Errorf("estimate %v after eight 20 µs wake-ups, want back near 20 µs", got)
	}
}

func TestCountBefore(t *testing.T) {
	tests := []struct {
		rate float64
		t    time.Duration
		want uint64
	}{
		{1000, 0, 0},
		{1000, time.Millisecond, 1},         // request 0 at 0
		{1000, time.Millisecond + 1, 2},     // and request 1 at 1 ms
		{1000, time.Second, 1000},           // 0 .. 999 ms
		{3, time.Second, 3},                 // 0, 333.3, 666.7 ms
		{1e7, time.Second, 10_000_000},      // a rate no client reaches
		{0.5, 3 * time.Second, 2},           // 0 s and 2 s
		{1e9 / 7, 7 * time.Nanosecond, 1},   // due times round to the nanosecond
		{1e9 / 7, 7*time.Nanosecond + 1, 2}, //
	}
	for _, tt := range tests {
		p := ConstantPacer{Rate: tt.rate}
		got := p.countBefore(tt.t)
		if got != tt.want {
			t.Errorf("rate %g: countBefore(%v) = %d, want %d", tt.rate, tt.t, got, tt.want)
		}
		// The definition: Due(n) < t for exactly the first got requests.
		if got > 0 && p.Due(got-1) >= tt.t || p.Due(got) < tt.t {
			t.Errorf("rate %g: countBefore(%v) = %d is not the boundary", tt.rate, tt.t, got)
		}
	}
}
