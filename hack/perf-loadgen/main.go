// Command perf-loadgen compares kpbench load with fortio and wrk against
// kpbench serve on loopback, side by side in one run, and prints the table
// of docs/loadgen.md: client CPU per request at fixed rates, the highest
// rate one core sustains, p50 agreement, rate accuracy and schedule lag.
//
// The client is pinned to one CPU and the server to another (taskset).
// Each client's CPU is its own rusage (user+system) as its parent sees it,
// startup included; its wakes are its voluntary context switches from the
// same rusage. Traffic goes to 127.0.0.1 only.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	kpbench, fortio, wrk string
	clientCPU, serverCPU string
	duration             time.Duration
	reps                 int
	maxRates             string
	rt                   int
	rates                string
	cpuOnly              bool
	baseline             string
	pauseFile            string
	tmp                  string
}

func main() {
	var o options
	flag.StringVar(&o.kpbench, "kpbench", "bin/kpbench", "kpbench binary")
	flag.StringVar(&o.fortio, "fortio", "", "fortio binary (default: $PATH, then $(go env GOPATH)/bin)")
	flag.StringVar(&o.wrk, "wrk", "wrk", "wrk binary")
	flag.StringVar(&o.clientCPU, "client-cpu", "1", "CPU the clients run on")
	flag.StringVar(&o.serverCPU, "server-cpu", "0", "CPU kpbench serve runs on")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "length of each measurement")
	flag.IntVar(&o.reps, "reps", 3, "repetitions of each CPU measurement (the median is shown)")
	flag.IntVar(&o.rt, "rt", 0, "run the server and the fixed-rate clients with SCHED_FIFO at this priority (chrt), so that other load on a shared machine disturbs them less; the closed-loop maximum always runs at normal priority")
	flag.StringVar(&o.rates, "rates", "1000,2000,10000", "fixed rates for the CPU-per-request table")
	flag.BoolVar(&o.cpuOnly, "cpu-only", false, "measure only the CPU-per-request table (no one-core maximum, no p50 table)")
	flag.StringVar(&o.baseline, "baseline", "", "another kpbench binary (e.g. an older build) measured in the same rounds, for a before/after ratio against the same fortio runs")
	flag.StringVar(&o.pauseFile, "pause-file", "", "before each round wait while this file exists, and measure a round again if the file appeared during it (another job announces a measurement of its own)")
	flag.StringVar(&o.maxRates, "max-rates", "5000,10000,15000,20000,25000,30000,40000,50000", "rates tried for the one-core maximum, ascending")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "perf-loadgen:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	var err error
	if o.fortio == "" {
		o.fortio, err = exec.LookPath("fortio")
		if err != nil {
			gopath, _ := exec.Command("go", "env", "GOPATH").Output()
			o.fortio = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "fortio")
		}
	}
	for _, bin := range []string{o.kpbench, o.fortio, o.wrk, "taskset"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found (hack/perf-loadgen.sh installs fortio and wrk): %w", bin, err)
		}
	}
	o.tmp, err = os.MkdirTemp("", "kpbench-perf-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(o.tmp)

	url, pid, stop, err := startServer(o)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Printf("kpbench load vs fortio vs wrk against kpbench serve at %s (clients on CPU %s, server on CPU %s, %v per measurement, median of %d; load average %s)\n\n",
		url, o.clientCPU, o.serverCPU, o.duration, o.reps, loadavg())
	defer func() { fmt.Printf("load average at the end: %s\n", loadavg()) }()

	// (a) CPU per request at fixed rates.
	rates, err := parseRates(o.rates)
	if err != nil {
		return fmt.Errorf("--rates: %w", err)
	}
	fmt.Println("Client CPU per request (µs, whole process incl. startup; lower is better)")
	fmt.Println()
	fmt.Println("| rate/s | requests per conn | kpbench µs/req | kpbench --tick 0 µs/req | fortio µs/req | kpbench/fortio | --tick 0/fortio | wakes/req: kpbench, --tick 0, fortio | achieved: kpbench, --tick 0, fortio | kpbench lag p99 |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
	var p50k, p50t, p50f []clientRun // persistent connections, by rate
	var ratioRows []string
	for _, rate := range rates {
		for _, k := range []int{1, 0} {
			var ks, fs, ts, bs []clientRun
			for rep := 0; rep < o.reps; {
				waitPause(o)
				// Alternate the order so that drift in the machine's load
				// does not favour one client.
				runs := []func() clientRun{
					func() clientRun { return kpbenchRun(o, o.kpbench, true, url, rate, k, o.duration) },
					func() clientRun { return fortioRun(o, true, url, rate, k, o.duration) },
					func() clientRun { return kpbenchRun(o, o.kpbench, true, url, rate, k, o.duration, "--tick", "0") },
				}
				if o.baseline != "" {
					runs = append(runs, func() clientRun { return kpbenchRun(o, o.baseline, true, url, rate, k, o.duration) })
				}
				got := make([]clientRun, len(runs))
				disturbed := false
				for i := range runs {
					j := i
					if rep%2 == 1 {
						j = len(runs) - 1 - i
					}
					got[j] = runs[j]()
					disturbed = disturbed || paused(o)
				}
				if disturbed {
					fmt.Fprintf(os.Stderr, "perf-loadgen: %s appeared during a round; measuring it again\n", o.pauseFile)
					continue
				}
				ks, fs, ts = append(ks, got[0]), append(fs, got[1]), append(ts, got[2])
				if o.baseline != "" {
					bs = append(bs, got[3])
				}
				rep++
			}
			km, fm, tm := median(ks), median(fs), median(ts)
			if km.err != nil || fm.err != nil || tm.err != nil {
				fmt.Printf("| %.0f | %d | %v | %v | %v | | | | | |\n", rate, k, km.err, tm.err, fm.err)
				continue
			}
			fmt.Printf("| %.0f | %d | %.1f | %.1f | %.1f | %.2f | %.2f | %.2f, %.2f, %.2f | %.2f%%, %.2f%%, %.2f%% | %s |\n", rate, k,
				km.cpuPerReq(), tm.cpuPerReq(), fm.cpuPerReq(), km.cpuPerReq()/fm.cpuPerReq(), tm.cpuPerReq()/fm.cpuPerReq(),
				km.wakesPerReq(), tm.wakesPerReq(), fm.wakesPerReq(),
				100*km.achieved/rate, 100*tm.achieved/rate, 100*fm.achieved/rate, us(km.lagP99))
			row := fmt.Sprintf("| %.0f | %d | %s | %s |", rate, k, ratios(ks, fs), ratios(ts, fs))
			if o.baseline != "" {
				row += " " + ratios(bs, fs) + " |"
			}
			ratioRows = append(ratioRows, row)
			if k == 0 {
				p50k, p50t, p50f = append(p50k, km), append(p50t, tm), append(p50f, fm)
			}
		}
	}
	fmt.Println()
	fmt.Println("CPU per request as a ratio to fortio's in the same round: median (lowest–highest; rounds below 1) over the rounds")
	fmt.Println()
	if o.baseline != "" {
		fmt.Println("| rate/s | requests per conn | kpbench/fortio | --tick 0/fortio | baseline/fortio |")
		fmt.Println("|---:|---:|---|---|---|")
	} else {
		fmt.Println("| rate/s | requests per conn | kpbench/fortio | --tick 0/fortio |")
		fmt.Println("|---:|---:|---|---|")
	}
	for _, row := range ratioRows {
		fmt.Println(row)
	}
	fmt.Println()
	if o.cpuOnly {
		return nil
	}

	// (b) the highest rate one core sustains, at normal priority: at full
	// speed a real-time server or client would starve the machine's other
	// users.
	if o.rt > 0 {
		if out, err := exec.Command("chrt", "-a", "-o", "-p", "0", strconv.Itoa(pid)).CombinedOutput(); err != nil {
			return fmt.Errorf("resetting the server's priority: %w: %s", err, out)
		}
	}
	var best float64
	var bestRun clientRun
	for _, f := range strings.Split(o.maxRates, ",") {
		rate, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return fmt.Errorf("--max-rates: %w", err)
		}
		sustained := func(r clientRun) bool { return r.err == nil && r.achieved >= 0.99*rate }
		r := kpbenchRun(o, o.kpbench, false, url, rate, 0, 2*time.Second)
		if !sustained(r) {
			// One retry: a shared machine stalls now and then.
			if r = kpbenchRun(o, o.kpbench, false, url, rate, 0, 2*time.Second); !sustained(r) {
				break
			}
		}
		best, bestRun = rate, r
	}
	w := wrkRun(o, url, 16, o.duration)
	fm := fortioRun(o, false, url, 0, 0, o.duration)
	fmt.Println("Highest rate on one client core (persistent connections)")
	fmt.Println()
	fmt.Println("| client | req/s | how |")
	fmt.Println("|---|---:|---|")
	fmt.Printf("| kpbench load | %.0f | open loop, highest rate tried with achieved ≥ 99%% (%.1f µs CPU/req, lag p99 %s, %d sends waited at the inflight bound) |\n",
		best, bestRun.cpuPerReq(), us(bestRun.lagP99), bestRun.boundHits)
	fmt.Printf("| wrk | %.0f | closed loop, 1 thread, 16 connections |\n", w.achieved)
	fmt.Printf("| fortio | %.0f | closed loop (-qps 0), 16 connections |\n", fm.achieved)
	fmt.Println()

	// (c) p50 agreement, from the fixed-rate runs above plus wrk.
	w1 := wrkRun(o, url, 1, o.duration)
	fmt.Println("p50 latency, persistent connections (µs)")
	fmt.Println()
	head, sep := "| client |", "|---|"
	for _, rate := range rates {
		head += fmt.Sprintf(" %s req/s |", thousands(rate))
		sep += "---:|"
	}
	fmt.Println(head + " note |")
	fmt.Println(sep + "---|")
	if len(p50k) == len(rates) {
		p50Row("kpbench load", p50k, func(r clientRun) float64 { return r.p50 }, "default tick (1 ms batches above 1,000 req/s), from the intended send time")
		p50Row("kpbench load, service time", p50k, func(r clientRun) float64 { return r.serviceP50 }, "from the actual send")
		p50Row("kpbench load --tick 0", p50t, func(r clientRun) float64 { return r.p50 }, "every request at its own due time, from it")
		p50Row("fortio", p50f, func(r clientRun) float64 { return r.p50 }, "10 µs histogram resolution, from the actual send")
	}
	fmt.Printf("| wrk | %.1f |%s closed loop, 1 connection (%.0f req/s, never idle) |\n", w1.p50, strings.Repeat(" |", len(rates)-1), w1.achieved)
	fmt.Println()
	return nil
}

// usage is what the kernel accounted to a finished client process.
type usage struct {
	cpu time.Duration
	// wakes counts the process's voluntary context switches: each is a
	// sleep and a wake-up, which dominate a paced client's cost.
	wakes int64
}

type clientRun struct {
	cpu        time.Duration
	wakes      int64
	requests   int64
	achieved   float64
	p50        float64 // µs
	serviceP50 float64
	lagP99     float64
	boundHits  int64
	err        error
}

func (r clientRun) cpuPerReq() float64 {
	if r.requests == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(r.requests)
}

func (r clientRun) wakesPerReq() float64 {
	if r.requests == 0 {
		return 0
	}
	return float64(r.wakes) / float64(r.requests)
}

func median(rs []clientRun) clientRun {
	ok := rs[:0:0]
	for _, r := range rs {
		if r.err == nil {
			ok = append(ok, r)
		}
	}
	if len(ok) == 0 {
		return rs[0]
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i].cpuPerReq() < ok[j].cpuPerReq() })
	return ok[len(ok)/2]
}

// ratios returns the median and the range of a[i]/b[i], the CPU per
// request of two clients measured in the same round.
func ratios(a, b []clientRun) string {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if a[i].err == nil && b[i].err == nil && b[i].cpuPerReq() > 0 {
			rs = append(rs, a[i].cpuPerReq()/b[i].cpuPerReq())
		}
	}
	if len(rs) == 0 {
		return "no valid round"
	}
	sort.Float64s(rs)
	m := rs[len(rs)/2]
	if len(rs)%2 == 0 {
		m = (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
	}
	below := 0
	for _, r := range rs {
		if r < 1 {
			below++
		}
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f; %d of %d below 1)", m, rs[0], rs[len(rs)-1], below, len(rs))
}

func parseRates(s string) ([]float64, error) {
	var rates []float64
	for _, f := range strings.Split(s, ",") {
		rate, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(rate > 0) {
			return nil, fmt.Errorf("rate %q is not a positive number", f)
		}
		rates = append(rates, rate)
	}
	return rates, nil
}

func thousands(v float64) string {
	s := strconv.FormatFloat(v, 'f', 0, 64)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func p50Row(name string, rs []clientRun, v func(clientRun) float64, note string) {
	row := "| " + name + " |"
	for _, r := range rs {
		row += fmt.Sprintf(" %.1f |", v(r))
	}
	fmt.Println(row + " " + note + " |")
}

// waitPause waits while o.pauseFile exists.
func waitPause(o options) {
	for paused(o) {
		time.Sleep(5 * time.Second)
	}
}

func paused(o options) bool {
	if o.pauseFile == "" {
		return false
	}
	_, err := os.Stat(o.pauseFile)
	return err == nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func us(v float64) string { return fmt.Sprintf("%.0f µs", v) }

// execute runs argv pinned to the client CPU (with real-time priority when
// asked) and returns its output and CPU.
func execute(o options, rt bool, timeout time.Duration, argv ...string) ([]byte, usage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "taskset", prefix(o, rt, o.clientCPU, argv)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var cpu usage
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			cpu.wakes = ru.Nvcsw
		}
	}
	if err != nil {
		return out.Bytes(), cpu, fmt.Errorf("%s: %w: %s", argv[0], err, lastLine(errb.String()))
	}
	return out.Bytes(), cpu, nil
}

// prefix pins argv to cpu and, when rt and o.rt are set, runs it with
// SCHED_FIFO: the arguments for taskset.
func prefix(o options, rt bool, cpu string, argv []string) []string {
	args := []string{"-c", cpu}
	if rt && o.rt > 0 {
		args = append(args, "chrt", "-f", strconv.Itoa(o.rt))
	}
	return append(args, argv...)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func kpbenchRun(o options, bin string, rt bool, url string, rate float64, k int, d time.Duration, extra ...string) clientRun {
	args := []string{bin, "load", "--rate", fmt.Sprint(rate), "--duration", d.String(),
		"--warmup", "0s", "--requests-per-conn", strconv.Itoa(k), "--json", "-"}
	args = append(append(args, extra...), url)
	out, cpu, err := execute(o, rt, d+30*time.Second, args...)
	if err != nil {
		return clientRun{err: err}
	}
	var s struct {
		Requests          int64
		AchievedRate      float64
		InflightBoundHits int64
		Latency           struct{ P50Us float64 }
		ServiceTime       struct{ P50Us float64 }
		Lag               struct{ P99Us float64 }
	}
	if err := json.Unmarshal(out, &s); err != nil {
		return clientRun{err: fmt.Errorf("kpbench output: %w", err)}
	}
	return clientRun{cpu: cpu.cpu, wakes: cpu.wakes, requests: s.Requests, achieved: s.AchievedRate, p50: s.Latency.P50Us,
		serviceP50: s.ServiceTime.P50Us, lagP99: s.Lag.P99Us, boundHits: s.InflightBoundHits}
}

// fortioRun runs fortio at rate (0: as fast as it can) with enough
// connections for the rate.
func fortioRun(o options, rt bool, url string, rate float64, k int, d time.Duration) clientRun {
	conns := 16
	if rate > 0 {
		conns = max(4, int(rate/500))
	}
	file := filepath.Join(o.tmp, "fortio.json")
	args := []string{o.fortio, "load", "-qps", fmt.Sprint(rate), "-t", d.String(), "-c", strconv.Itoa(conns),
		"-r", "0.00001", "-json", file, "-loglevel", "Error"}
	if k == 1 {
		args = append(args, "-keepalive=false")
	}
	_, cpu, err := execute(o, rt, d+30*time.Second, append(args, url)...)
	if err != nil {
		return clientRun{err: err}
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return clientRun{err: err}
	}
	var f struct {
		ActualQPS         float64
		DurationHistogram struct {
			Count       int64
			Percentiles []struct{ Percentile, Value float64 }
		}
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return clientRun{err: fmt.Errorf("fortio output: %w", err)}
	}
	r := clientRun{cpu: cpu.cpu, wakes: cpu.wakes, requests: f.DurationHistogram.Count, achieved: f.ActualQPS}
	for _, p := range f.DurationHistogram.Percentiles {
		if p.Percentile == 50 {
			r.p50 = p.Value * 1e6
		}
	}
	return r
}

var (
	wrkRate = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkP50  = regexp.MustCompile(`\s50%\s+([0-9.]+)(us|ms|s)`)
)

func wrkRun(o options, url string, conns int, d time.Duration) clientRun {
	out, cpu, err := execute(o, false, d+30*time.Second, o.wrk, "-t1", "-c"+strconv.Itoa(conns), "-d"+d.String(), "--latency", url)
	if err != nil {
		return clientRun{err: err}
	}
	r := clientRun{cpu: cpu.cpu, wakes: cpu.wakes}
	if m := wrkRate.FindSubmatch(out); m != nil {
		r.achieved, _ = strconv.ParseFloat(string(m[1]), 64)
		r.requests = int64(r.achieved * d.Seconds())
	} else {
		r.err = errors.New("wrk: no Requests/sec in output")
	}
	if m := wrkP50.FindSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		switch string(m[2]) {
		case "ms":
			v *= 1e3
		case "s":
			v *= 1e6
		}
		r.p50 = v
	}
	return r
}

// startServer runs kpbench serve on a free loopback port, pinned to the
// server CPU, and waits until it accepts connections.
func startServer(o options) (string, int, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, nil, err
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command("taskset", prefix(o, true, o.serverCPU, []string{o.kpbench, "serve", "--listen", addr})...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return "", 0, nil, fmt.Errorf("starting kpbench serve: %w", err)
	}
	go func() { // drain the server's log
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
		}
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			// taskset and chrt exec the server: the PID is the server's.
			return "http://" + addr + "/", cmd.Process.Pid, stop, nil
		}
	}
	stop()
	return "", 0, nil, fmt.Errorf("kpbench serve did not listen on %s", addr)
}
