package scaler

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Progress receives the scaler's progress: one phase at a time ("delete",
// then "create"), each with a known total of Services. Add is called from
// many goroutines at once. A terminal bar and plain log lines are two
// implementations; the scaler knows neither.
type Progress interface {
	// Start begins a phase of total units.
	Start(phase string, total int)
	// Add records n more finished units.
	Add(n int)
	// Finish ends the current phase (also when it failed part-way).
	Finish()
}

// NopProgress reports nothing.
type NopProgress struct{}

// Start implements Progress.
func (NopProgress) Start(string, int) {}

// Add implements Progress.
func (NopProgress) Add(int) {}

// Finish implements Progress.
func (NopProgress) Finish() {}

// LogProgress writes a log line every Interval while a phase runs (done,
// total, rate, ETA) and one when it ends: progress for logs and CI, where
// a redrawn bar would be noise.
type LogProgress struct {
	Logger   *slog.Logger
	Interval time.Duration // default 5 s

	mu      sync.Mutex
	phase   string
	total   int
	started time.Time
	done    atomic.Int64
	stop    chan struct{}
	stopped chan struct{}
}

// Start implements Progress.
func (p *LogProgress) Start(phase string, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.total, p.started = phase, total, time.Now()
	p.done.Store(0)
	every := p.Interval
	if every <= 0 {
		every = 5 * time.Second
	}
	p.stop, p.stopped = make(chan struct{}), make(chan struct{})
	go p.tick(every, p.stop, p.stopped)
}

func (p *LogProgress) tick(every time.Duration, stop, stopped chan struct{}) {
	defer close(stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.log("scaling")
		}
	}
}

func (p *LogProgress) log(msg string) {
	done := int(p.done.Load())
	elapsed := time.Since(p.started)
	rate := float64(done) / elapsed.Seconds()
	attrs := []any{"phase", p.phase, "done", done, "total", p.total,
		"perSecond", int(rate), "elapsed", elapsed.Round(100 * time.Millisecond)}
	if rate > 0 && done < p.total {
		eta := time.Duration(float64(p.total-done) / rate * float64(time.Second))
		attrs = append(attrs, "eta", eta.Round(time.Second))
	}
	p.Logger.Info(msg, attrs...)
}

// Add implements Progress.
func (p *LogProgress) Add(n int) { p.done.Add(int64(n)) }

// Finish implements Progress.
func (p *LogProgress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.stopped
	p.stop = nil
	p.log("scaled")
}
