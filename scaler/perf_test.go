package scaler

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kpbench/kpbench/scaler/scaletest"
)

// perfRun is one way of creating the same objects, measured.
type perfRun struct {
	Method         string  `json:"method"`
	Services       int     `json:"services"`
	Objects        int     `json:"objects"`
	WallSeconds    float64 `json:"wallSeconds"`
	ObjectsPerSec  float64 `json:"objectsPerSecond"`
	APIServerCores float64 `json:"apiserverCores"`
	EtcdCores      float64 `json:"etcdCores"`
	ClientCores    float64 `json:"clientCores"`
	// OtherCores is the rest of the machine's busy CPU (other work on a
	// shared host): /proc/stat busy time minus the three processes.
	OtherCores float64 `json:"otherCores"`
	// Mean latencies from the servers' own histograms over the window:
	// apiserver request handling (POST/PATCH of services and
	// endpointslices), its etcd calls, and etcd's WAL fsync.
	APIServerRequestMs float64 `json:"apiserverRequestMs"`
	EtcdRequestMs      float64 `json:"etcdRequestMs"`
	WALFsyncMs         float64 `json:"walFsyncMs"`
	WALFsyncs          float64 `json:"walFsyncs"`
	DeleteSeconds      float64 `json:"deleteSeconds,omitempty"`
	Retries            int     `json:"retries,omitempty"`
	ClientCPUSource    string  `json:"clientCpuSource"`
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// TestScaleVsKubectl is the scaler's performance measurement: create N
// Services × 10 endpoints with kpbench, and the same objects with
// `kubectl apply --server-side` in chunks, each on a fresh etcd +
// kube-apiserver on loopback, recording wall time and the CPU (in cores)
// of kube-apiserver, etcd and the client from /proc. It runs only with
// KPBENCH_SCALE_PERF=1 (minutes, and it loads the machine);
// KPBENCH_SCALE_PERF_SERVICES (10000), _CHUNK (objects per kubectl file,
// 1000), _KUBECTL_PARALLEL (kubectl processes at once, 1 and 4; 0: none),
// _CONCURRENCY (32; a list like 8,32,128 measures each) tune it; _OUT writes the runs as JSON.
func TestScaleVsKubectl(t *testing.T) {
	if os.Getenv("KPBENCH_SCALE_PERF") != "1" {
		t.Skip("performance measurement: set KPBENCH_SCALE_PERF=1")
	}
	scaletest.SkipUnlessAvailable(t)
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl not found")
	}
	n := envInt(t, "KPBENCH_SCALE_PERF_SERVICES", 10000)
	chunk := envInt(t, "KPBENCH_SCALE_PERF_CHUNK", 1000)
	var concurrencies []int
	for _, c := range strings.Split(cmp.Or(os.Getenv("KPBENCH_SCALE_PERF_CONCURRENCY"), "32"), ",") {
		v, err := strconv.Atoi(c)
		if err != nil || v < 1 {
			t.Fatalf("KPBENCH_SCALE_PERF_CONCURRENCY=%q: want a list of positive integers", c)
		}
		concurrencies = append(concurrencies, v)
	}
	parallels := []int{1, 4}
	if p := os.Getenv("KPBENCH_SCALE_PERF_KUBECTL_PARALLEL"); p != "" {
		parallels = []int{envInt(t, "KPBENCH_SCALE_PERF_KUBECTL_PARALLEL", 1)}
	}

	var runs []perfRun
	for _, c := range concurrencies {
		runs = append(runs, measureScaler(t, n, c))
	}
	for _, p := range parallels {
		if p > 0 { // 0: kpbench only
			runs = append(runs, measureKubectl(t, n, chunk, p))
		}
	}
	t.Logf("%-50s %7s %7s %8s | cores: %9s %5s %6s %5s | ms: %7s %5s %5s", "method", "objects", "wall s", "objects/s",
		"apiserver", "etcd", "client", "other", "api req", "etcd", "fsync")
	for _, r := range runs {
		t.Logf("%-50s %7d %7.1f %8.0f | cores: %9.2f %5.2f %6.2f %5.2f | ms: %7.1f %5.1f %5.1f", r.Method, r.Objects, r.WallSeconds, r.ObjectsPerSec,
			r.APIServerCores, r.EtcdCores, r.ClientCores, r.OtherCores, r.APIServerRequestMs, r.EtcdRequestMs, r.WALFsyncMs)
	}
	k := len(concurrencies)
	for _, r := range runs[k:] {
		for _, own := range runs[:k] {
			t.Logf("%s is %.1fx faster than %s", own.Method, r.WallSeconds/own.WallSeconds, r.Method)
		}
	}
	if out := os.Getenv("KPBENCH_SCALE_PERF_OUT"); out != "" {
		b, _ := json.MarshalIndent(map[string]any{"schemaVersion": 1, "runs": runs}, "", "  ")
		if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// cpuWindow records CPU seconds of the apiserver, etcd and this process,
// the machine's busy seconds, and the servers' latency histograms.
type cpuWindow struct {
	api, etcd, self, busy  float64
	apiReq, etcdReq, fsync histo
	at                     time.Time
}

type histo struct{ sum, count float64 }

func (h histo) meanMs(since histo) float64 {
	if h.count == since.count {
		return 0
	}
	return 1000 * (h.sum - since.sum) / (h.count - since.count)
}

func readCPU(t *testing.T, s *scaletest.APIServer) cpuWindow {
	t.Helper()
	w := cpuWindow{
		api:  scaletest.CPUSeconds(t, s.APIServer.Process.Pid),
		etcd: scaletest.CPUSeconds(t, s.Etcd.Process.Pid),
		self: scaletest.CPUSeconds(t, os.Getpid()),
		busy: machineBusySeconds(t),
		at:   time.Now(),
	}
	writes := func(l map[string]string) bool {
		return (l["verb"] == "POST" || l["verb"] == "PATCH" || l["verb"] == "APPLY" || l["verb"] == "DELETE") &&
			(l["resource"] == "services" || l["resource"] == "endpointslices")
	}
	api := mustParse(t, s.Metrics(t, s.URL+"/metrics"))
	w.apiReq = histogram(api, "apiserver_request_duration_seconds", writes)
	w.etcdReq = histogram(api, "etcd_request_duration_seconds", func(l map[string]string) bool {
		return l["operation"] == "create" || l["operation"] == "delete" || l["operation"] == "update"
	})
	w.fsync = histogram(mustParse(t, s.Metrics(t, s.EtcdURL+"/metrics")), "etcd_disk_wal_fsync_duration_seconds", func(map[string]string) bool { return true })
	return w
}

func histogram(samples []sample, name string, match func(map[string]string) bool) histo {
	var h histo
	for _, x := range samples {
		switch x.name {
		case name + "_sum":
			if match(x.labels) {
				h.sum += x.value
			}
		case name + "_count":
			if match(x.labels) {
				h.count += x.value
			}
		}
	}
	return h
}

// machineBusySeconds is the whole machine's non-idle CPU time from
// /proc/stat.
func machineBusySeconds(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)[1:]
	var busy float64
	for i, v := range f {
		x, _ := strconv.ParseFloat(v, 64)
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is inside user
			continue
		}
		busy += x
	}
	return busy / 100
}

func (w cpuWindow) fill(r *perfRun, before cpuWindow, client float64) {
	wall := w.at.Sub(before.at).Seconds()
	r.WallSeconds = wall
	r.ObjectsPerSec = float64(r.Objects) / wall
	r.APIServerCores = (w.api - before.api) / wall
	r.EtcdCores = (w.etcd - before.etcd) / wall
	r.ClientCores = client / wall
	r.OtherCores = (w.busy-before.busy)/wall - r.APIServerCores - r.EtcdCores - r.ClientCores
	r.APIServerRequestMs = w.apiReq.meanMs(before.apiReq)
	r.EtcdRequestMs = w.etcdReq.meanMs(before.etcdReq)
	r.WALFsyncMs = w.fsync.meanMs(before.fsync)
	r.WALFsyncs = w.fsync.count - before.fsync.count
}

func measureScaler(t *testing.T, n, concurrency int) perfRun {
	api := scaletest.Start(t)
	s, err := New(api.Client(t, 5000), Config{Namespace: "kpbt-perf", EndpointIPs: tenBackends(),
		EndpointsPerService: 10, Concurrency: concurrency})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before := readCPU(t, api)
	res, err := s.Scale(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	after := readCPU(t, api)
	del, err := s.Scale(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := perfRun{
		Method:          fmt.Sprintf("kpbench scale (concurrency %d)", concurrency),
		Services:        n,
		Objects:         res.Created,
		DeleteSeconds:   del.Duration.Seconds(),
		Retries:         res.Retries,
		ClientCPUSource: "/proc/self/stat of the test process",
	}
	after.fill(&r, before, after.self-before.self)
	return r
}

// measureKubectl writes the same Services and EndpointSlices as YAML files
// of chunk objects and applies them server-side, parallel files at once.
// The slices carry no owner reference (a manifest cannot know the UID).
func measureKubectl(t *testing.T, n, chunk, parallel int) perfRun {
	api := scaletest.Start(t)
	dir := t.TempDir()
	tmpl := Template{Namespace: "kpbt-perf", Port: 80, TargetPort: 80, EndpointIPs: tenBackends(), EndpointsPerService: 10}
	var files []string
	var buf []byte
	objects, inFile := 0, 0
	flush := func() {
		if inFile == 0 {
			return
		}
		f := filepath.Join(dir, fmt.Sprintf("chunk-%05d.yaml", len(files)))
		if err := os.WriteFile(f, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		buf, inFile = buf[:0], 0
	}
	add := func(obj any) {
		b, err := yaml.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		buf = append(append(buf, "---\n"...), b...)
		objects++
		if inFile++; inFile == chunk {
			flush()
		}
	}
	for i := range n {
		add(tmpl.Service(i))
		add(tmpl.EndpointSlice(i, ""))
	}
	flush()
	ctx := context.Background()
	if _, err := api.Kubectl(ctx, "create", "namespace", "kpbt-perf"); err != nil {
		t.Fatal(err)
	}

	before := readCPU(t, api)
	var (
		mu        sync.Mutex
		clientCPU float64
		firstErr  error
		wg        sync.WaitGroup
	)
	work := make(chan string)
	for range parallel {
		wg.Go(func() {
			for f := range work {
				cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", api.Kubeconfig, "apply", "--server-side", "--field-manager", "kpbench-perf", "-f", f)
				out, err := cmd.CombinedOutput()
				mu.Lock()
				if cmd.ProcessState != nil {
					clientCPU += (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
				}
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("kubectl apply -f %s: %w: %.2000s", f, err, out)
				}
				mu.Unlock()
			}
		})
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	after := readCPU(t, api)
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	r := perfRun{
		Method:          fmt.Sprintf("kubectl apply --server-side (%d/file, %d at once)", chunk, parallel),
		Services:        n,
		Objects:         objects,
		ClientCPUSource: "rusage of the kubectl processes",
	}
	// The test process idles meanwhile; count only kubectl as client.
	after.fill(&r, before, clientCPU)
	r.OtherCores -= (after.self - before.self) / r.WallSeconds
	return r
}

func mustParse(t *testing.T, b []byte) []sample {
	t.Helper()
	s, err := parseText(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
