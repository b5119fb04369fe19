package sweep_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters/lab"
	"github.com/kpbench/kpbench/clusters/lab/labtest"
	"github.com/kpbench/kpbench/runs"
)

// TestChurnOnLab runs one churn point on a real lab (iptables, 300
// Services, 5 endpoint replacements per second on 3 Services, the target
// among them, so that the target loses an endpoint every 0.6 s) and stops
// kube-proxy (SIGSTOP) for 5 s in the middle of the window. It checks that
// (a) the API writes were made at the asked rate, (b) every change's
// programming was read from the node's rules: those written while
// kube-proxy was stopped reach the rules only after it resumed, and (c)
// requests that reach a backend whose removal was written but not yet
// programmed (stale hits) become more frequent while kube-proxy is stopped
// and fall again once it has resumed and re-programmed.
func TestChurnOnLab(t *testing.T) {
	labtest.SkipUnlessIntegration(t)
	bin := labtest.KpbenchBin(t)
	name := labtest.UniqueName()
	t.Cleanup(func() {
		if l, err := lab.Open(lab.Config{Name: name}); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_ = l.Down(ctx)
		}
	})
	const (
		rate    = 5
		window  = 16 * time.Second
		warmup  = 2 * time.Second
		stopAt  = 5 * time.Second // into the window
		stopFor = 5 * time.Second
	)
	spec := filepath.Join(t.TempDir(), "churn.yaml")
	if err := os.WriteFile(spec, []byte(fmt.Sprintf(`apiVersion: kpbench.io/v1alpha1
kind: Scenario
metadata:
  name: churn-lab
spec:
  modes: [iptables]
  services: [300]
  endpointsPerService: 10
  backends: 20
  load:
    rate: 500
    duration: %s
    warmup: %s
    requestsPerConn: [1]
    targets: one
  repetitions: 1
  churn:
    rate: %d
    kinds:
      endpointReplace: 1
    fraction: 0.01
    target: true
    grace: 20s
  sampling:
    interval: 1s
`, window, warmup, rate)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	out := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, "run", "-f", spec, "--lab-name", name, "--out", out, "--log-format", "text")
	cmd.Env = append(os.Environ(), "KPBENCH_CONFIG=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd.Stdout = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The point logs "churn" as its warm-up starts; kube-proxy is stopped
	// stopAt into the window, for stopFor.
	type pause struct {
		stop, cont time.Time
		err        error
	}
	paused := make(chan pause, 1)
	sc := bufio.NewScanner(stderr)
	started := false
	for sc.Scan() {
		line := sc.Text()
		logs.WriteString(line + "\n")
		if !started && strings.Contains(line, "msg=churn ") {
			started = true
			go func() { paused <- stopKubeProxy(ctx, name, warmup+stopAt, stopFor) }()
		}
	}
	_, _ = io.Copy(io.Discard, stderr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kpbench run: %v\n%s", err, logs.String())
	}
	if !started {
		t.Fatalf("no churn point started\n%s", logs.String())
	}
	p := <-paused
	if p.err != nil {
		t.Fatalf("stopping kube-proxy: %v", p.err)
	}
	dirs, _ := filepath.Glob(filepath.Join(out, "*_churn-lab"))
	if len(dirs) != 1 {
		t.Fatalf("want one run directory, got %v", dirs)
	}
	pts, err := runs.ReadPoints(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 1 || pts[0].Churn == nil || pts[0].Churn.Traffic == nil || pts[0].Churn.Traffic.Timeline == nil {
		t.Fatalf("want one churn point with its traffic and timeline, got %+v\n%s", pts, logs.String())
	}
	ch := pts[0].Churn

	// (a) The writes, at the asked rate.
	want := int(rate * window.Seconds())
	if ch.Planned != want || ch.Written != want {
		t.Errorf("planned %d, written %d; want %d", ch.Planned, ch.Written, want)
	}
	if ch.AchievedPerSecond < rate*0.98 || ch.AchievedPerSecond > rate*1.02 {
		t.Errorf("achieved %.3f writes/s, asked %d", ch.AchievedPerSecond, rate)
	}
	var gaps []float64
	for i := 1; i < len(ch.Changes); i++ {
		gaps = append(gaps, ch.Changes[i].WrittenAt.Sub(ch.Changes[i-1].WrittenAt).Seconds())
	}
	sort.Float64s(gaps)
	if len(gaps) == 0 || gaps[len(gaps)/2] < 0.19 || gaps[len(gaps)/2] > 0.21 {
		t.Errorf("median gap between writes %v s, want 0.2", gaps)
	}

	// (b) Programming, from the node's rules.
	var during, before int
	for _, c := range ch.Changes {
		if c.ProgrammedAt == nil {
			t.Errorf("change %d (%s, written %s) never seen on the node", c.Seq, c.Service, c.WrittenAt.Format(time.StampMilli))
			continue
		}
		lat := c.ProgrammedAt.Sub(c.WrittenAt)
		switch {
		case !c.WrittenAt.Before(p.stop) && c.WrittenAt.Before(p.cont):
			during++
			if !c.ProgrammedAt.After(p.cont) {
				t.Errorf("change %d written at %s while kube-proxy was stopped (until %s) is programmed at %s",
					c.Seq, c.WrittenAt.Format(time.StampMilli), p.cont.Format(time.StampMilli), c.ProgrammedAt.Format(time.StampMilli))
			}
		case c.WrittenAt.Before(p.stop.Add(-3 * time.Second)):
			before++
			if lat > 3*time.Second {
				t.Errorf("change %d written before the stop took %v to reach the rules", c.Seq, lat)
			}
		}
	}
	if during < int(rate*stopFor.Seconds())-2 || before < 5 {
		t.Errorf("%d changes written while kube-proxy was stopped, %d well before; want about %d and at least 5", during, before, int(rate*stopFor.Seconds()))
	}
	if ch.Programming.Count != want || ch.Unprogrammed != 0 || ch.Programming.Max < (stopFor-time.Second).Seconds() {
		t.Errorf("programming %+v, %d unprogrammed; want %d programmed, the slowest after most of the %v stop", ch.Programming, ch.Unprogrammed, want, stopFor)
	}

	// (c) Stale hits: their rate before the stop, in its last 2 s, and
	// from 3 s after kube-proxy resumed to the window's end.
	tl := ch.Traffic.Timeline
	rateIn := func(from, to time.Time) float64 {
		var n int64
		var secs float64
		for i, b := range tl.Bins {
			at := tl.Start.Add(time.Duration((float64(i) + 0.5) * tl.BinSeconds * float64(time.Second)))
			if !at.Before(from) && at.Before(to) {
				n += b.StaleUnprogrammed
				secs += tl.BinSeconds
			}
		}
		if secs == 0 {
			return -1
		}
		return float64(n) / secs
	}
	end := tl.Start.Add(time.Duration(float64(len(tl.Bins)) * tl.BinSeconds * float64(time.Second)))
	pre := rateIn(tl.Start.Add(time.Second), p.stop)
	stopped := rateIn(p.cont.Add(-2*time.Second), p.cont)
	post := rateIn(p.cont.Add(3*time.Second), end)
	t.Logf("stale hits per second: %.0f before the stop, %.0f in its last 2 s, %.0f from 3 s after it (500 req/s); %d in all; programming p50 %.2f s, max %.2f s",
		pre, stopped, post, ch.Traffic.StaleUnprogrammed, ch.Programming.P50, ch.Programming.Max)
	if pre < 0 || stopped < 0 || post < 0 {
		t.Fatalf("the timeline (%d bins from %s) does not cover the stop (%s to %s)", len(tl.Bins), tl.Start, p.stop, p.cont)
	}
	if stopped < 2*pre || stopped < 100 {
		t.Errorf("stale hits did not rise while kube-proxy was stopped: %.0f/s, %.0f/s before", stopped, pre)
	}
	if post > stopped/2 {
		t.Errorf("stale hits did not fall after kube-proxy resumed: %.0f/s, %.0f/s while stopped", post, stopped)
	}
	if ch.Traffic.StaleProgrammed > ch.Traffic.StaleUnprogrammed/10 {
		t.Errorf("%d requests reached a backend after its removal was programmed (%d before): the rules or the matcher are wrong",
			ch.Traffic.StaleProgrammed, ch.Traffic.StaleUnprogrammed)
	}
}

// stopKubeProxy waits after, then stops the lab's kube-proxy with SIGSTOP
// for d and resumes it (SIGCONT), returning when it stopped and resumed.
func stopKubeProxy(ctx context.Context, name string, after, d time.Duration) (p struct {
	stop, cont time.Time
	err        error
}) {
	l, err := lab.Open(lab.Config{Name: name})
	if err != nil {
		p.err = err
		return p
	}
	pid, err := l.ClientNode().KubeProxyPID(ctx)
	if err != nil || pid == 0 {
		p.err = fmt.Errorf("kube-proxy's PID: %d, %v", pid, err)
		return p
	}
	time.Sleep(after)
	p.stop = time.Now()
	if p.err = syscall.Kill(pid, syscall.SIGSTOP); p.err != nil {
		return p
	}
	time.Sleep(d)
	p.err = syscall.Kill(pid, syscall.SIGCONT)
	p.cont = time.Now()
	return p
}
