package churn

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// SyncCostProbe measures, once per (mode, Service step), what programming
// the node costs kube-proxy apart from any load: a cold full sync (restart
// on a node without its rules, to the first sync done) and incremental
// syncs after one API change each. The sweep runs it after a step's Scale
// and before the step's depth reads and points (the restart rewrites
// KUBE-SERVICES in a new order).
type SyncCostProbe struct {
	Mode scenarios.Mode
	// Restart restarts kube-proxy on a node without its rules and returns
	// once it runs (the lab: Provider.SetMode(ctx, mode), which stops it,
	// flushes the node's rules and starts it).
	Restart func(ctx context.Context) error
	// Scrape reads kube-proxy's /metrics: parsed, and the raw text
	// (collector.KubeProxyScraper.Scrape), whose process_start_time_seconds
	// tells the new process's start.
	Scrape func(ctx context.Context) (*collector.KubeProxyMetrics, []byte, error)
	// Change makes one API write kube-proxy programs incrementally (an
	// endpoint replaced in a Service the load does not use) and names the
	// Service it touched.
	Change func(ctx context.Context) (*runs.ChurnChange, ServiceRef, error)
	// Reader, when set, times each change's programming on the node's
	// rules.
	Reader RuleReader
	// Count counts the rule set (the sweep's RuleCounter).
	Count func(ctx context.Context, mode scenarios.Mode) (runs.Rules, error)
	// Samples is the number of incremental syncs (5 when 0).
	Samples int
	// Poll is the interval of the metric and rule reads (100 ms when 0).
	Poll time.Duration
	// Timeout bounds the wait for the cold sync
	// (scenarios.DefaultSyncTimeout when 0).
	Timeout time.Duration
	// SampleTimeout bounds the wait for each incremental sample's sync
	// and programming (when 0: 10 times the cold restart-to-synced time,
	// at least 1 min and at most Timeout).
	SampleTimeout time.Duration
	// Now and Sleep are the clock (tests pass a fake one).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// ErrSyncTimeout is wrapped when kube-proxy did not sync within the
// probe's Timeout.
var ErrSyncTimeout = errors.New("kube-proxy did not sync in time")

func (p *SyncCostProbe) defaults() {
	if p.Samples <= 0 {
		p.Samples = 5
	}
	if p.Poll <= 0 {
		p.Poll = 100 * time.Millisecond
	}
	if p.Timeout <= 0 {
		p.Timeout = scenarios.DefaultSyncTimeout
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Sleep == nil {
		p.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
}

// Measure restarts kube-proxy, times its cold sync, then makes Samples
// changes one after the other and times the sync each one caused. A
// failure to restart or to see the cold sync is an error; a sample that
// cannot be timed is a Problem of the result.
func (p *SyncCostProbe) Measure(ctx context.Context, services int) (runs.SyncCost, error) {
	p.defaults()
	res := runs.SyncCost{Mode: p.Mode, Services: services, MeasuredAt: p.Now()}
	if p.Restart == nil || p.Scrape == nil {
		return res, fmt.Errorf("sync cost of %s at %d Services: no way to restart kube-proxy or read its metrics", p.Mode, services)
	}
	asked := p.Now()
	if err := p.Restart(ctx); err != nil {
		return res, fmt.Errorf("restarting kube-proxy for its cold sync: %w", err)
	}
	cold, err := p.waitFor(ctx, p.Timeout, "its first sync after the restart", func(m *collector.KubeProxyMetrics, _ []byte) bool {
		return m.SyncProxyRules != nil && m.SyncProxyRules.Count > 0 && !m.LastSync().IsZero() && !m.LastSync().Before(asked)
	}, nil)
	if err != nil {
		return res, err
	}
	m := cold.m
	if m.SyncProxyRules.Count > 1 {
		res.Problems = append(res.Problems, fmt.Sprintf("kube-proxy had made %d syncs when first seen synced: start to synced and restart run to the last one's end", m.SyncProxyRules.Count))
	}
	res.Cold.RestartSeconds = m.LastSync().Sub(asked).Seconds()
	if p.SampleTimeout <= 0 {
		p.SampleTimeout = min(p.Timeout, max(time.Minute, 10*m.LastSync().Sub(asked)))
	}
	h := m.SyncFullProxyRules
	if h == nil || h.Count == 0 {
		h = m.SyncProxyRules // ipvs: no full/partial split
	}
	res.Cold.FullSyncSeconds = h.Sum / float64(h.Count)
	if h.Count > 1 {
		res.Problems = append(res.Problems, fmt.Sprintf("kube-proxy made %d full syncs before the first scrape that saw one: the cold sync is their mean", h.Count))
	}
	if st, ok := ProcessStart(cold.body); ok {
		res.Cold.StartToSyncedSeconds = m.LastSync().Sub(st).Seconds()
	} else {
		res.Problems = append(res.Problems, "kube-proxy's metrics have no process_start_time_seconds: start to synced not measured")
	}
	if p.Count != nil {
		if res.Rules, err = p.Count(ctx, p.Mode); err != nil {
			res.Problems = append(res.Problems, "counting the rules: "+err.Error())
		}
	}
	if p.Change == nil {
		res.Problems = append(res.Problems, "no change to make: incremental syncs not measured")
		return res, nil
	}
	var syncs, progs []float64
	for i := 0; i < p.Samples; i++ {
		s, err := p.sample(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			res.Problems = append(res.Problems, fmt.Sprintf("incremental sample %d: %v", i+1, err))
			continue
		}
		res.Incremental = append(res.Incremental, s)
		if !s.Full {
			syncs = append(syncs, s.SyncSeconds)
		}
		if s.ProgrammingSeconds > 0 {
			progs = append(progs, s.ProgrammingSeconds)
		}
	}
	res.IncrementalMedianSeconds = median(syncs)
	res.ProgrammingMedianSeconds = median(progs)
	return res, nil
}

// sample makes one change and times the sync it causes: the first sync
// that starts after the write, alone between two scrapes.
func (p *SyncCostProbe) sample(ctx context.Context) (runs.IncrementalSync, error) {
	var s runs.IncrementalSync
	prev, _, err := p.Scrape(ctx)
	if err != nil {
		return s, fmt.Errorf("reading kube-proxy's metrics: %w", err)
	}
	if prev.SyncProxyRules == nil {
		return s, errors.New("kube-proxy's metrics have no sync histogram")
	}
	c, ref, err := p.Change(ctx)
	if err != nil {
		return s, fmt.Errorf("making the change: %w", err)
	}
	if c.Error != "" {
		return s, fmt.Errorf("the change's API write failed: %s", c.Error)
	}
	var tick func(context.Context)
	var w *Watcher
	if p.Reader != nil {
		w = NewWatcher(p.Mode, p.Reader, p.Poll, p.Now)
		w.Sleep = p.Sleep
		w.Add(c, ref)
		tick = func(ctx context.Context) {
			if w.Pending() > 0 {
				w.round(ctx)
			}
		}
	}
	for {
		seen := prev
		next, err := p.waitFor(ctx, p.SampleTimeout, "a sync after the change", func(m *collector.KubeProxyMetrics, _ []byte) bool {
			return m.SyncProxyRules != nil && m.SyncProxyRules.Count > seen.SyncProxyRules.Count && m.LastSync().After(seen.LastSync())
		}, tick)
		if err != nil {
			return s, err
		}
		d, err := next.m.SyncProxyRules.Sub(*prev.SyncProxyRules)
		if err != nil {
			return s, fmt.Errorf("kube-proxy's sync histogram: %w", err)
		}
		if d.Count != 1 {
			return s, fmt.Errorf("%d syncs between two scrapes %s apart: the change's own cannot be told apart", d.Count, next.m.Time.Sub(prev.Time).Round(time.Millisecond))
		}
		started := next.m.LastSync().Add(-time.Duration(d.Sum * float64(time.Second)))
		if started.Before(c.WrittenAt) {
			// kube-proxy's watch can deliver the write before the API
			// server's answer reaches the writer, so a sync that began
			// just before WrittenAt may carry the change: the node's
			// rules, read now, say whether it did. Else (or with no
			// reader) it is an earlier sync: wait for the next one.
			if w != nil {
				tick(ctx)
				if c.ProgrammedAt != nil {
					s.BeganBeforeAck = true
				}
			}
			if !s.BeganBeforeAck {
				prev = next.m
				continue
			}
		}
		s.SyncSeconds = d.Sum
		if next.m.SyncFullProxyRules != nil && prev.SyncFullProxyRules != nil {
			if df, err := next.m.SyncFullProxyRules.Sub(*prev.SyncFullProxyRules); err == nil && df.Count > 0 {
				s.Full = true
			}
		}
		break
	}
	if w != nil {
		w.Drain(ctx, p.SampleTimeout)
		if c.ProgrammedAt == nil {
			return s, fmt.Errorf("the node's rules never showed the change (last read error: %q)", w.Stats().LastError)
		}
		s.ProgrammingSeconds = c.ProgrammedAt.Sub(c.WrittenAt).Seconds()
	}
	return s, nil
}

type scraped struct {
	m    *collector.KubeProxyMetrics
	body []byte
}

// waitFor scrapes every Poll until done holds or Timeout passes, calling
// tick (when set) at every poll. Failed scrapes (kube-proxy starting) are
// retried.
func (p *SyncCostProbe) waitFor(ctx context.Context, timeout time.Duration, what string, done func(*collector.KubeProxyMetrics, []byte) bool, tick func(context.Context)) (scraped, error) {
	deadline := p.Now().Add(timeout)
	var lastErr error
	for {
		if tick != nil {
			tick(ctx)
		}
		m, body, err := p.Scrape(ctx)
		if err == nil && done(m, body) {
			return scraped{m, body}, nil
		}
		if err != nil {
			lastErr = err
		}
		if !p.Now().Before(deadline) {
			msg := fmt.Sprintf("waiting %s for %s", timeout, what)
			if lastErr != nil {
				msg += " (last scrape error: " + lastErr.Error() + ")"
			}
			return scraped{}, fmt.Errorf("%s: %w", msg, ErrSyncTimeout)
		}
		if err := p.Sleep(ctx, p.Poll); err != nil {
			return scraped{}, err
		}
	}
}

// ProcessStart reads process_start_time_seconds (Unix seconds) from
// kube-proxy's /metrics text.
func ProcessStart(body []byte) (time.Time, bool) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "process_start_time_seconds")
		if !ok || (rest != "" && rest[0] != ' ') {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil || v <= 0 || math.IsInf(v, 0) {
			return time.Time{}, false
		}
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(frac*1e9)), true
	}
	return time.Time{}, false
}

// median of values (0 without any).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return quantileSorted(s, 0.5)
}
