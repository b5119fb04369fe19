package churn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// fakeProxy is a kube-proxy on the fake clock: the syncs it makes, and
// its process start.
type fakeProxy struct {
	c     *fakeClock
	start time.Time
	syncs []fakeSync
}

type fakeSync struct {
	end  time.Time
	dur  float64
	full bool
}

func (p *fakeProxy) scrape(t *testing.T) func(context.Context) (*collector.KubeProxyMetrics, []byte, error) {
	return func(context.Context) (*collector.KubeProxyMetrics, []byte, error) {
		k := kp{at: p.c.t.Sub(t0)}
		for _, s := range p.syncs {
			if s.end.After(p.c.t) {
				continue
			}
			k.count++
			k.sum += s.dur
			if s.full {
				k.full++
				k.fullSum += s.dur
			} else {
				k.partial++
				k.partialSum += s.dur
			}
			if l := s.end.Sub(t0).Seconds(); l > k.last {
				k.last = l
			}
		}
		body := fmt.Sprintf("# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n", float64(p.start.UnixMilli())/1e3)
		return k.metrics(t), []byte(body), nil
	}
}

func TestSyncCostProbe(t *testing.T) {
	c := &fakeClock{t: t0}
	kp := &fakeProxy{c: c}
	var flips []time.Time
	node := &scripted{c: c, rules: func(_ ServiceRef, at time.Time) ServiceRules {
		v := 1
		for _, f := range flips {
			if !at.Before(f) {
				v++
			}
		}
		return eps(fmt.Sprintf("198.18.1.%d:80", v))
	}}
	sample := 0
	p := &SyncCostProbe{
		Mode: scenarios.ModeNFTables,
		Restart: func(context.Context) error {
			// Stop, clear the rules, start at 1.5 s; the first sync (full,
			// 1.2 s) ends at 3.2 s; the provider returns at 2 s.
			c.t = c.t.Add(2 * time.Second)
			kp.start = at(1500 * time.Millisecond)
			kp.syncs = []fakeSync{{end: at(3200 * time.Millisecond), dur: 1.2, full: true}}
			return nil
		},
		Scrape: kp.scrape(t),
		Change: func(context.Context) (*runs.ChurnChange, ServiceRef, error) {
			sample++
			w := c.t
			switch sample {
			case 1: // synced 0.3 s after the write, in 50 ms
				kp.syncs = append(kp.syncs, fakeSync{end: w.Add(ms(350)), dur: 0.05})
				flips = append(flips, w.Add(ms(350)))
			case 2: // a periodic sync that began before the write, then the change's own
				kp.syncs = append(kp.syncs, fakeSync{end: w.Add(ms(50)), dur: 0.2}, fakeSync{end: w.Add(ms(1050)), dur: 0.06})
				flips = append(flips, w.Add(ms(1050)))
			case 3: // two syncs between two scrapes
				kp.syncs = append(kp.syncs, fakeSync{end: w.Add(ms(310)), dur: 0.01}, fakeSync{end: w.Add(ms(330)), dur: 0.01})
				flips = append(flips, w.Add(ms(330)))
			case 4: // kube-proxy's watch saw the write 5 ms before its answer reached the writer: the sync that carries it began before WrittenAt, and no other sync follows
				kp.syncs = append(kp.syncs, fakeSync{end: w.Add(ms(45)), dur: 0.05})
				flips = append(flips, w.Add(ms(45)))
			case 5: // a sync that began before the write and did not carry it, and no other sync: the sample times out
				kp.syncs = append(kp.syncs, fakeSync{end: w.Add(ms(45)), dur: 0.05})
			}
			v := len(flips)
			if sample == 5 {
				// Not on the node: the rules keep showing the last flip's endpoint.
				return &runs.ChurnChange{Seq: sample, Kind: runs.ChurnEndpointReplace, WrittenAt: w,
					Removed: []string{fmt.Sprintf("198.18.1.%d:80", v+1)}, Added: []string{"198.18.1.99:80"}}, svcA, nil
			}
			return &runs.ChurnChange{Seq: sample, Kind: runs.ChurnEndpointReplace, WrittenAt: w,
				Removed: []string{fmt.Sprintf("198.18.1.%d:80", v)}, Added: []string{fmt.Sprintf("198.18.1.%d:80", v+1)}}, svcA, nil
		},
		Reader:  node,
		Count:   func(context.Context, scenarios.Mode) (runs.Rules, error) { return runs.Rules{Total: 1234}, nil },
		Samples: 5,
		Poll:    ms(100),
		Timeout: 20 * time.Minute,
		Now:     c.now,
		Sleep:   c.sleep,
	}
	res, err := p.Measure(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if res.Mode != scenarios.ModeNFTables || res.Services != 1000 || res.Rules.Total != 1234 || !res.MeasuredAt.Equal(t0) {
		t.Errorf("result %+v", res)
	}
	// Timestamps go through kube-proxy's float Unix seconds: within 10 µs.
	us := func(a, b float64) bool { return math.Abs(a-b) < 1e-5 }
	if !near(res.Cold.FullSyncSeconds, 1.2) || !us(res.Cold.StartToSyncedSeconds, 1.7) || !us(res.Cold.RestartSeconds, 3.2) {
		t.Errorf("cold %+v, want full 1.2, start to synced 1.7, restart 3.2", res.Cold)
	}
	if len(res.Incremental) != 3 {
		t.Fatalf("incremental %+v, problems %q", res.Incremental, res.Problems)
	}
	// Sample 1: a 50 ms partial sync; the rules read on the 100 ms poll
	// after it ended (0.35 s) show it at 0.4 s.
	if s := res.Incremental[0]; !near(s.SyncSeconds, 0.05) || s.Full || !near(s.ProgrammingSeconds, 0.4) {
		t.Errorf("sample 1 %+v", s)
	}
	// Sample 2: the sync that began before the write is not the change's;
	// the change's ends at 1.05 s, read at 1.1 s.
	if s := res.Incremental[1]; !near(s.SyncSeconds, 0.06) || !near(s.ProgrammingSeconds, 1.1) {
		t.Errorf("sample 2 %+v", s)
	}
	// Sample 4: the sync began 5 ms before the write's answer, and the
	// rules, read on the next poll (0.1 s), show the change: it is the
	// change's sync.
	if s := res.Incremental[2]; !near(s.SyncSeconds, 0.05) || !s.BeganBeforeAck || !near(s.ProgrammingSeconds, 0.1) {
		t.Errorf("sample 4 %+v", s)
	}
	if res.Incremental[0].BeganBeforeAck || res.Incremental[1].BeganBeforeAck {
		t.Errorf("samples 1 and 2 began after the write: %+v", res.Incremental)
	}
	if !near(res.IncrementalMedianSeconds, 0.05) || !near(res.ProgrammingMedianSeconds, 0.4) {
		t.Errorf("medians %v, %v", res.IncrementalMedianSeconds, res.ProgrammingMedianSeconds)
	}
	// Sample 5 waits 10 × the cold restart-to-synced time (32 s), at
	// least 1 min, not the cold sync's 20 min.
	if len(res.Problems) != 2 || !strings.Contains(res.Problems[0], "sample 3: 2 syncs between two scrapes 400ms apart") ||
		!strings.Contains(res.Problems[1], "sample 5: waiting 1m0s for a sync after the change") {
		t.Errorf("problems %q", res.Problems)
	}
}

func TestSyncCostProbeTimeout(t *testing.T) {
	c := &fakeClock{t: t0}
	kp := &fakeProxy{c: c, start: t0}
	p := &SyncCostProbe{
		Mode:    scenarios.ModeIPTables,
		Restart: func(context.Context) error { return nil }, // kube-proxy never syncs
		Scrape:  kp.scrape(t),
		Timeout: time.Second, Poll: ms(100), Now: c.now, Sleep: c.sleep,
	}
	if _, err := p.Measure(context.Background(), 10); !errors.Is(err, ErrSyncTimeout) {
		t.Errorf("err %v, want ErrSyncTimeout", err)
	}
	if c.t.Before(at(time.Second)) || c.t.After(at(ms(1100))) {
		t.Errorf("gave up at %v", c.t.Sub(t0))
	}
	p.Restart = func(context.Context) error { return errors.New("lab is not up") }
	if _, err := p.Measure(context.Background(), 10); err == nil || !strings.Contains(err.Error(), "lab is not up") {
		t.Errorf("restart failure: %v", err)
	}
}

func TestProcessStart(t *testing.T) {
	st, ok := ProcessStart(labFixture(t, "kube-proxy-metrics-nftables-20svc.txt"))
	if !ok || math.Abs(float64(st.UnixNano())/1e9-1.79531442684e9) > 1e-6 {
		t.Errorf("process start %v, %v; want 1.79531442684e+09", st, ok)
	}
	if _, ok := ProcessStart([]byte("process_start_time_seconds_total 3\n")); ok {
		t.Error("read another metric's value")
	}
}
