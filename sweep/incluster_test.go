package sweep

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/loadgen/loadgentest"
	"github.com/kpbench/kpbench/runs"
)

func TestJobID(t *testing.T) {
	for in, want := range map[string]string{
		"iptables-s00001-rpc1-r1":    "iptables-s00001-rpc1-r1",
		"nftables-s10000-rpc100-r3":  "nftables-s10000-rpc100-r3",
		"IPVS-s00001-rpc0-r2-warmup": "ipvs-s00001-rpc0-r2-warmup",
		"a_b.c":                      "a-b-c",
		"":                           "load",
		"external-s10000-rpc100-r12-warmup-and-a-long-suffix": "",
	} {
		got := JobID(in)
		if len(got) > 40 || strings.HasPrefix(got, "-") || strings.HasSuffix(got, "-") {
			t.Errorf("JobID(%q) = %q is not a DNS label of ≤ 40 characters", in, got)
		}
		if len(in) <= 40 && got != want {
			t.Errorf("JobID(%q) = %q, want %q", in, got, want)
		}
	}
	// Long ids keep their distinguishing end.
	a, b := JobID(strings.Repeat("x", 50)+"-r1"), JobID(strings.Repeat("x", 50)+"-r2")
	if a == b {
		t.Errorf("long ids differing in the repetition collide: %q", a)
	}
}

// serveLoopback starts kpbench's backend on 127.0.0.1.
func serveLoopback(t *testing.T) string {
	_, url := loadgentest.Serve(t, loadgen.ServerConfig{BodyBytes: loadgen.DefaultBodyBytes})
	return url
}

// jobRunner is a clusters.LoadRunner whose "Jobs" run the load generator
// in this process with the flags the request carries.
type jobRunner struct {
	mu   sync.Mutex
	reqs []clusters.LoadRequest
	fail error
	// mangle edits client i's summary before it is "logged".
	mangle func(i int, s *loadgen.Summary)
}

func (j *jobRunner) RunLoad(ctx context.Context, req clusters.LoadRequest) ([]clusters.LoadResult, error) {
	j.mu.Lock()
	j.reqs = append(j.reqs, req)
	j.mu.Unlock()
	if j.fail != nil {
		return nil, j.fail
	}
	cfg, err := loadgen.ParseArgs(req.Args)
	if err != nil {
		return nil, err
	}
	out := make([]clusters.LoadResult, req.Clients)
	errs := make([]error, req.Clients)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := loadgen.Run(ctx, cfg)
			if err != nil {
				errs[i] = err
				return
			}
			if res.Summary.Histograms, err = res.Histograms.Encode(); err != nil {
				errs[i] = err
				return
			}
			if j.mangle != nil {
				j.mangle(i, &res.Summary)
			}
			var b bytes.Buffer
			if err := res.Summary.WriteJSON(&b); err != nil {
				errs[i] = err
				return
			}
			out[i] = clusters.LoadResult{Client: i, Pod: "load-" + strconv.Itoa(i), Node: "client", Summary: b.Bytes()}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func TestClusterLoadOneClient(t *testing.T) {
	url := serveLoopback(t)
	runner := &jobRunner{}
	l := &ClusterLoad{Runner: runner, Clients: 1, StartMargin: time.Minute}
	raw := t.TempDir()
	req := LoadRequest{ID: "iptables-s00001-rpc1-r1", URLs: []string{url}, Rate: 200, Duration: 500 * time.Millisecond,
		RequestsPerConn: 1, Timeout: time.Second, MaxInflight: 100, RawDir: raw}
	before := time.Now()
	res, err := l.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	got := runner.reqs[0]
	if got.ID != "iptables-s00001-rpc1-r1" || got.Clients != 1 || got.Deadline != req.Duration+req.Timeout+time.Minute {
		t.Errorf("load request = %+v", got)
	}
	if got.Args[len(got.Args)-1] != url || !slices.Contains(got.Args, "--requests-per-conn=1") {
		t.Errorf("args %q do not end with the URL or lack the connection variant", got.Args)
	}
	if res.Requests < 90 || res.Requests > 110 || res.Connect.Count != res.Requests {
		t.Errorf("200 req/s for 0.5 s with a connection each: %+v", res)
	}
	// Valid, unless other load on this machine stalled the client: then
	// the client's own reason must come through, and nothing else.
	for _, r := range res.InvalidReasons {
		if !strings.HasPrefix(r, runs.ReasonScheduleBehind) {
			t.Errorf("invalid for another reason than the machine's load: %q", r)
		}
	}
	if !res.Valid && len(res.InvalidReasons) == 0 {
		t.Error("invalid without a reason")
	}
	// The window the client reports lies inside the call, and is the
	// measured half second.
	if res.WindowStart.Before(before.Add(-time.Second)) || res.WindowEnd.After(time.Now()) || res.WindowEnd.Sub(res.WindowStart) != req.Duration {
		t.Errorf("window %s – %s, call %s – %s", res.WindowStart, res.WindowEnd, before, time.Now())
	}
	for _, f := range []string{"load-client-0.json", "load.json"} {
		b, err := os.ReadFile(filepath.Join(raw, f))
		if err != nil {
			t.Fatal(err)
		}
		s, err := loadgen.ReadSummary(bytes.NewReader(b))
		if err != nil || s.Requests != res.Requests {
			t.Errorf("%s: %v, %+v", f, err, s)
		}
	}
}

func TestClusterLoadMergesClients(t *testing.T) {
	url := serveLoopback(t)
	req := LoadRequest{ID: "nftables-s00010-rpc0-r2", URLs: []string{url}, Rate: 600, Duration: 500 * time.Millisecond,
		RequestsPerConn: 0, Timeout: time.Second, MaxInflight: 100, RawDir: t.TempDir()}
	runner := &jobRunner{}
	res, err := (&ClusterLoad{Runner: runner, Clients: 3}).Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if runner.reqs[0].Clients != 3 {
		t.Errorf("clients asked: %d", runner.reqs[0].Clients)
	}
	var (
		sum      int64
		achieved float64
		allValid = true
	)
	for i := 0; i < 3; i++ {
		b, err := os.ReadFile(filepath.Join(req.RawDir, "load-client-"+strconv.Itoa(i)+".json"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := loadgen.ReadSummary(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		sum += s.Requests
		achieved += s.AchievedRate
		allValid = allValid && s.Valid
		if s.TargetRate != 200 {
			t.Errorf("client %d sent at %g req/s, want a third of the point's 600", i, s.TargetRate)
		}
	}
	// Three clients share the point's 600 req/s: 200 each. Their requests
	// add up, the achieved rate is the sum (about the point's target, not
	// three times it), and the merged histogram counted every request.
	// The point is valid exactly when every client was (on a busy machine
	// a client of so short a window can fall 1% behind).
	if res.Requests != sum || res.Requests < 270 || math.Abs(res.AchievedRate-achieved) > 1e-6*achieved || achieved < 540 || achieved > 606 {
		t.Errorf("merged %+v; clients' requests %d, rates %.1f", res, sum, achieved)
	}
	if res.Valid != allValid {
		t.Errorf("merged valid = %v, clients all valid = %v: %v", res.Valid, allValid, res.InvalidReasons)
	}
	b, _ := os.ReadFile(filepath.Join(req.RawDir, "load.json"))
	m, err := loadgen.ReadSummary(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.Histograms.Decode()
	if err != nil || h.Latency.TotalCount() != sum {
		t.Errorf("merged latency histogram holds %v requests (%v), want %d", h.Latency.TotalCount(), err, sum)
	}

	// One client that fell behind makes the point invalid even when the
	// merged rate still passes.
	runner = &jobRunner{mangle: func(i int, s *loadgen.Summary) {
		if i == 1 {
			s.Valid, s.InvalidReasons = false, []string{"achieved rate below 99% of target: 190.0 of 200 req/s"}
		}
	}}
	res, err = (&ClusterLoad{Runner: runner, Clients: 3}).Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid || !slices.Contains(res.InvalidReasons, "client 1: achieved rate below 99% of target: 190.0 of 200 req/s") {
		t.Errorf("one client behind: valid %v, reasons %q", res.Valid, res.InvalidReasons)
	}
}

func TestClusterLoadErrors(t *testing.T) {
	url := serveLoopback(t)
	req := LoadRequest{ID: "x", URLs: []string{url}, Rate: 100, Duration: 100 * time.Millisecond, RequestsPerConn: 0, Timeout: time.Second, MaxInflight: 10}
	boom := errors.New("job failed: ImagePullBackOff")
	if _, err := (&ClusterLoad{Runner: &jobRunner{fail: boom}}).Run(context.Background(), req); !errors.Is(err, boom) {
		t.Errorf("runner failure: %v", err)
	}
	// Two clients merge exactly only with their histograms.
	bare := &jobRunner{mangle: func(i int, s *loadgen.Summary) {
		if i == 1 {
			s.Histograms = nil
		}
	}}
	if _, err := (&ClusterLoad{Runner: bare, Clients: 2}).Run(context.Background(), req); err == nil || !strings.Contains(err.Error(), "client 1") || !strings.Contains(err.Error(), "--embed-histograms") {
		t.Errorf("a client without histograms: %v", err)
	}
}

// fakeAgentNode is a client node whose `kpbench cluster agent point` runs
// the collector's remote point in this process, with this process as
// kube-proxy.
type fakeAgentNode struct {
	args []string
}

func (f *fakeAgentNode) Run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	f.args = args
	if len(args) < 4 || strings.Join(args[:4], " ") != "kpbench cluster agent point" {
		return errors.New("unexpected command " + strings.Join(args, " "))
	}
	fs, err := collector.NewFS("/proc")
	if err != nil {
		return err
	}
	interval := time.Second
	if i := slices.Index(args, "--interval"); i > 0 {
		interval, _ = time.ParseDuration(args[i+1])
	}
	return collector.ServeRemotePoint(ctx, fs, collector.PointConfig{KubeProxyPID: os.Getpid(), Interval: interval}, stdin, stdout, time.Minute)
}
func (f *fakeAgentNode) CPUs() []int                               { return nil }
func (f *fakeAgentNode) ProcRoot() string                          { return "/host/proc" }
func (f *fakeAgentNode) KubeProxyPID(context.Context) (int, error) { return os.Getpid(), nil }
func (f *fakeAgentNode) KubeProxyGet(context.Context, string) ([]byte, error) {
	return nil, errors.New("no metrics")
}

// spin burns cpu of this process's CPU time, however long that takes on
// a machine others are loading (a wall-clock spin can be starved there,
// and then the window it marks holds no CPU at all).
func spin(t *testing.T, cpu time.Duration) {
	t.Helper()
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for end := used() + cpu; used() < end; {
	}
}

// catNode answers the agent's cat of the node's /proc and iptables --version.
type catNode struct {
	fakeAgentNode
	files map[string]string
	cmds  [][]string
}

func (c *catNode) Run(_ context.Context, _ io.Reader, stdout, _ io.Writer, args ...string) error {
	c.cmds = append(c.cmds, args)
	switch {
	case len(args) == 5 && strings.Join(args[:4], " ") == "kpbench cluster agent cat":
		s, ok := c.files[args[4]]
		if !ok {
			return errors.New("exit status 1: no such file")
		}
		_, err := io.WriteString(stdout, s)
		return err
	case strings.Join(args, " ") == "iptables --version":
		_, err := io.WriteString(stdout, "iptables v1.8.10 (nf_tables)\n")
		return err
	}
	return errors.New("unexpected command " + strings.Join(args, " "))
}

func TestNodeEnvironmentReadsTheNodeThroughTheAgent(t *testing.T) {
	n := &catNode{files: map[string]string{
		"/host/proc/sys/kernel/osrelease": "6.8.0-1015-gcp\n",
		"/host/proc/sys/kernel/hostname":  "kind-worker\n",
		"/host/proc/cpuinfo":              "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 2\nmodel name\t: AMD EPYC 7B13\n",
		"/host/proc/meminfo":              "MemTotal:       16384000 kB\nMemFree: 1 kB\n",
	}}
	env, err := NodeEnvironmentWith(context.Background(), n, "kpbench", "cluster", "agent", "cat")
	if err != nil {
		t.Fatal(err)
	}
	if env.Kernel != "6.8.0-1015-gcp" || env.Hostname != "kind-worker" || env.CPUModel != "AMD EPYC 7B13" || env.Cores != 3 ||
		env.MemoryBytes != 16384000*1024 || env.IPTablesBackend != "nft" || env.GoVersion == "" {
		t.Errorf("environment %+v", env)
	}
	// A file the agent cannot read is reported, the rest still filled.
	delete(n.files, "/host/proc/meminfo")
	env, err = NodeEnvironmentWith(context.Background(), n, "kpbench", "cluster", "agent", "cat")
	if err == nil || !strings.Contains(err.Error(), "meminfo") || env.Kernel == "" {
		t.Errorf("missing meminfo: %+v, %v", env, err)
	}
}
