package collector

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// counterSampler reads cumulative counters (CPU-seconds of a process or a
// cgroup) on the one sampling loop, everyTick: once at Start, every
// interval, once at Stop. Its figures over the load's window follow
// InWindow, like the node's CPU samples.
type counterSampler struct {
	read  func() ([]float64, error)
	every time.Duration

	mu       sync.Mutex
	readings []reading
	err      error
	cancel   context.CancelFunc
	done     <-chan struct{}
}

// reading is the counters at one instant.
type reading struct {
	at     time.Time
	values []float64
}

func newCounterSampler(every time.Duration, read func() ([]float64, error)) *counterSampler {
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	return &counterSampler{read: read, every: every}
}

// Start takes the first reading (a failure is returned at once) and
// starts the loop.
func (c *counterSampler) Start(ctx context.Context) error {
	c.take()
	if c.err != nil {
		return c.err
	}
	ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.done = everyTick(ctx, c.every, c.take)
	return nil
}

func (c *counterSampler) take() {
	v, err := c.read()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if c.err == nil {
			c.err = err
		}
		return
	}
	c.readings = append(c.readings, reading{at: time.Now(), values: v})
}

// Stop ends the loop with a last reading and returns the readings.
func (c *counterSampler) Stop() ([]reading, error) {
	c.cancel()
	<-c.done
	c.take()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readings, c.err
}

// counterRates are counters' rates over the samples InWindow keeps.
type counterRates struct {
	// Span is what the kept samples cover.
	Span Span
	// Mean is each counter's delta per wall second over Span.
	Mean []float64
	// Max is each counter's rate in its busiest full sample (one at
	// least half an interval long); MaxSum is the busiest full sample
	// of the sum of the counters picked by sumOf.
	Max    []float64
	MaxSum float64
}

// ratesWithin computes the counters' rates over the samples — intervals
// between consecutive readings — inside load (InWindow). sumOf picks the
// counters whose sum's busiest sample is MaxSum (nil: none). It fails
// with ErrNoSampleInWindow when no sample is inside, and with fewer than
// two readings.
func ratesWithin(rs []reading, load Span, every time.Duration, sumOf func(i int) bool) (counterRates, error) {
	if len(rs) < 2 {
		return counterRates{}, fmt.Errorf("%d readings", len(rs))
	}
	first, last := -1, -1
	for i := 0; i+1 < len(rs); i++ {
		if InWindow(Span{rs[i].at, rs[i+1].at}, load) {
			if first < 0 {
				first = i
			}
			last = i + 1
		}
	}
	if first < 0 {
		return counterRates{}, noSample(load, len(rs)-1, Span{rs[0].at, rs[len(rs)-1].at})
	}
	a, b := rs[first], rs[last]
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return counterRates{}, fmt.Errorf("empty window")
	}
	n := len(a.values)
	out := counterRates{Span: Span{a.at, b.at}, Mean: make([]float64, n), Max: make([]float64, n)}
	for k := range n {
		out.Mean[k] = (b.values[k] - a.values[k]) / secs
	}
	for i := first; i < last; i++ {
		dt := rs[i+1].at.Sub(rs[i].at)
		if dt < every/2 || dt <= 0 {
			continue
		}
		var sum float64
		for k := range n {
			r := (rs[i+1].values[k] - rs[i].values[k]) / dt.Seconds()
			out.Max[k] = max(out.Max[k], r)
			if sumOf != nil && sumOf(k) {
				sum += r
			}
		}
		out.MaxSum = max(out.MaxSum, sum)
	}
	return out, nil
}
