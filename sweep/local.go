package sweep

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kpbench/kpbench/clusters"
	"github.com/kpbench/kpbench/clusters/kubeproxy"
	"github.com/kpbench/kpbench/collector"
	"github.com/kpbench/kpbench/loadgen"
	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scaler"
	"github.com/kpbench/kpbench/scenarios"
)

// ServiceScaler adapts the synthetic Service scaler and kube-proxy's
// "programmed" wait to the engine's Scaler.
type ServiceScaler struct {
	Scaler *scaler.Scaler
	Client kubernetes.Interface
	Node   clusters.ClientNode
	// WaitTimeout bounds the wait for kube-proxy to program a step.
	WaitTimeout time.Duration
	// ProbeOnly waits for the last Service to answer, without kube-proxy's
	// metrics: for a kube-proxy replacement (mode external).
	ProbeOnly bool
}

// Scale brings the Services to n and waits until kube-proxy programmed them.
func (s *ServiceScaler) Scale(ctx context.Context, n int) (ScaleResult, error) {
	node := scaler.ClientNode{Node: s.Node}
	var base *scaler.SyncState
	if !s.ProbeOnly {
		if b, err := scaler.Scrape(ctx, node); err == nil {
			base = &b
		}
	}
	res, err := s.Scaler.Scale(ctx, n)
	if err != nil {
		return ScaleResult{}, err
	}
	wcfg := scaler.WaitConfig{Baseline: base, LastWrite: res.LastWrite, ProbeOnly: s.ProbeOnly}
	if res.Last != nil {
		ip, err := netip.ParseAddr(res.Last.ClusterIP)
		if err != nil {
			return ScaleResult{}, fmt.Errorf("service %s has no usable ClusterIP %q", res.Last.Name, res.Last.ClusterIP)
		}
		wcfg.Probe = netip.AddrPortFrom(ip, uint16(s.Scaler.Config().Port))
	}
	timeout := s.WaitTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p, err := scaler.Wait(wctx, node, wcfg)
	if err != nil {
		return ScaleResult{}, fmt.Errorf("waiting for kube-proxy to program %d services: %w", n, err)
	}
	out := ScaleResult{Created: res.Created, Deleted: res.Deleted, SyncDuration: p.LastSyncDuration}
	if res.Writes() > 0 {
		out.TimeToProgrammed = p.TimeToProgrammed
	}
	return out, nil
}

// TargetURLs lists the synthetic Services' ClusterIP URLs in creation
// order: the first for targets "one", all of them otherwise.
func (s *ServiceScaler) TargetURLs(ctx context.Context, targets scenarios.Targets) ([]string, error) {
	cfg := s.Scaler.Config()
	type svc struct {
		name, ip string
	}
	var all []svc
	opts := metav1.ListOptions{LabelSelector: scaler.Selector, Limit: 1000}
	for {
		list, err := s.Client.CoreV1().Services(cfg.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("listing services: %w", err)
		}
		for _, it := range list.Items {
			if it.Spec.ClusterIP != "" && it.Spec.ClusterIP != "None" {
				all = append(all, svc{it.Name, it.Spec.ClusterIP})
			}
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("no synthetic services in namespace %s", cfg.Namespace)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	if targets == scenarios.TargetsOne {
		all = all[:1]
	}
	urls := make([]string, len(all))
	for i, v := range all {
		urls[i] = "http://" + v.ip + ":" + strconv.Itoa(int(cfg.Port)) + "/"
	}
	return urls, nil
}

// NodeLoad runs `kpbench load` on the client node (in the lab: inside its
// network namespace, pinned to its CPUs) and reads its JSON summary.
type NodeLoad struct {
	Node clusters.ClientNode
	// Bin is the kpbench executable as the node sees it.
	Bin string
	// Scratch, when set, is a directory at the same path on this machine
	// and on the node, writable by both (a VM node's shared lab
	// directory): the client writes its raw files there, and they are
	// moved to the point's raw directory.
	Scratch string
}

// Run implements LoadRunner.
func (l *NodeLoad) Run(ctx context.Context, req LoadRequest) (*LoadResult, error) {
	args := []string{l.Bin, "load", "--json", "-"}
	rawDir := req.RawDir
	if rawDir != "" && l.Scratch != "" {
		dir, err := os.MkdirTemp(l.Scratch, "load-")
		if err != nil {
			return nil, fmt.Errorf("load client scratch directory: %w", err)
		}
		defer os.RemoveAll(dir)
		defer moveFiles(dir, req.RawDir)
		rawDir = dir
	}
	if rawDir != "" {
		args = append(args,
			"--timeline", filepath.Join(rawDir, "timeline.csv"),
			"--histograms", filepath.Join(rawDir, "histograms.json"))
	}
	args = append(args, req.Load().Args()...)
	var stdout, stderr bytes.Buffer
	if err := l.Node.Run(ctx, nil, &stdout, &stderr, args...); err != nil {
		return nil, fmt.Errorf("kpbench load on the client node: %w: %s", err, tail(stderr.Bytes(), 800))
	}
	summary := stdout.Bytes()
	s, err := loadgen.ReadSummary(bytes.NewReader(summary))
	if err != nil {
		return nil, fmt.Errorf("reading the load summary: %w (stderr: %s)", err, tail(stderr.Bytes(), 800))
	}
	if req.RawDir != "" {
		// The client's own account (its start, warm-up, measured window)
		// beside the node's samples, as the in-cluster path keeps it.
		if err := writeJSON(filepath.Join(req.RawDir, RawLoadJSON), summary); err != nil {
			return nil, fmt.Errorf("keeping the load summary: %w", err)
		}
	}
	return loadResultOf(s), nil
}

// Load is the load run the request asks for: what `kpbench load` runs,
// on the client node or in each client pod.
func (req LoadRequest) Load() loadgen.Config {
	return loadgen.Config{URLs: req.URLs, Rate: req.Rate, Duration: req.Duration, Warmup: req.Warmup,
		RequestsPerConn: req.RequestsPerConn, Timeout: req.Timeout, MaxInflight: req.MaxInflight}
}

// loadResultOf maps a load summary onto the engine's LoadResult.
func loadResultOf(s *loadgen.Summary) *LoadResult {
	start := s.StartedAt.Add(time.Duration(s.Warmup.Seconds * float64(time.Second)))
	return &LoadResult{
		AchievedRate: s.AchievedRate, Requests: s.Requests,
		Latency: s.Latency, ServiceTime: s.ServiceTime, Connect: s.Connect, Lag: s.Lag, Errors: s.Errors,
		ClientCPUCores: s.ClientCPUCores, TargetConnects: s.TargetConnects, Valid: s.Valid, InvalidReasons: s.InvalidReasons,
		WindowStart: start, WindowEnd: start.Add(time.Duration(s.DurationSeconds * float64(time.Second))),
	}
}

// moveFiles copies the files of dir into dst (another filesystem, maybe).
func moveFiles(dir, dst string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil {
			_ = os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644)
		}
	}
}

func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// NodeObserver samples the client node's CPUs, kube-proxy's CPU,
// conntrack and kube-proxy's metrics over a window with the collector.
type NodeObserver struct {
	Node     clusters.ClientNode
	Interval time.Duration
}

type nodeWindow struct {
	m      *collector.PointMeasurement
	raw    string
	covers string
	// start and end are the load's measured window (Trim).
	start, end time.Time
}

var _ Trimmer = (*nodeWindow)(nil)

// Trim implements Trimmer: the window opens before the load process
// starts (and its warm-up), and closes after it exits; the CPU figures
// cover the load's measured window only.
func (w *nodeWindow) Trim(start, end time.Time) { w.start, w.end = start, end }

// observation is what both windows (this node's and the agent's) make of
// the collector's result: CPU figures trimmed to the load's measured window
// [start, end] when the load reported it and labelled with what they
// cover, raw data kept under raw, and the point's observed numbers. A number the collector adds to PointResult
// reaches the engine here.
func observation(res *collector.PointResult, start, end time.Time, raw, covers string) (*Observation, error) {
	var invalid []string
	if err := trimToLoad(res, start, end); err != nil {
		if !errors.Is(err, collector.ErrNoSampleInWindow) {
			return nil, err
		}
		// A sampler held up for longer than the window (seen once at
		// 10,000 Services, while kube-proxy resynced nftables): the
		// point keeps the whole observation's figures, is invalid, and
		// the run goes on.
		invalid = append(invalid, fmt.Sprintf("%s: %v", runs.ReasonNoCPUSample, err))
		covers += " (whole observation, not trimmed to the load's window)"
	}
	res.CPU.Node.Covers = covers
	if raw != "" {
		if err := res.WriteRaw(raw); err != nil {
			return nil, err
		}
	}
	return &Observation{NodeCPU: res.CPU.Node, KubeProxy: res.CPU.Processes.KubeProxy, Conntrack: res.Conntrack, Sync: res.Sync, Invalid: invalid}, nil
}

// trimToLoad narrows res's CPU figures to the samples inside [start, end]
// when the load reported its window.
func trimToLoad(res *collector.PointResult, start, end time.Time) error {
	if start.IsZero() || res.Series == nil {
		return nil
	}
	sum, err := res.Series.Within(start, end)
	if err != nil {
		return err
	}
	res.CPU = sum.CPU()
	res.CPUWindow = &collector.Span{Start: sum.Start, End: sum.End}
	return nil
}

// Begin implements Observer.
func (o *NodeObserver) Begin(ctx context.Context, rawDir string) (Window, error) {
	fs, err := collector.NewFS(o.Node.ProcRoot())
	if err != nil {
		return nil, err
	}
	kp, err := o.Node.KubeProxyPID(ctx)
	if err != nil {
		return nil, fmt.Errorf("finding kube-proxy: %w", err)
	}
	m, err := fs.StartPoint(ctx, collector.PointConfig{
		CPUs: o.Node.CPUs(), KubeProxyPID: kp, NetnsPID: kp, Interval: o.Interval,
		KubeProxy: &collector.KubeProxyScraper{Fetch: o.Node.KubeProxyGet, IPFamily: "IPv4"},
	})
	if err != nil {
		return nil, err
	}
	return &nodeWindow{m: m, raw: rawDir, covers: procStatCovers(o.Node.CPUs())}, nil
}

// End implements Window.
func (w *nodeWindow) End(ctx context.Context) (*Observation, error) {
	res, err := w.m.Stop(ctx)
	if err != nil {
		return nil, err
	}
	return observation(res, w.start, w.end, w.raw, w.covers)
}

// NodeRules counts rules on the client node with the collector.
type NodeRules struct {
	Node clusters.ClientNode
}

// Count implements RuleCounter.
func (r NodeRules) Count(ctx context.Context, mode scenarios.Mode) (runs.Rules, error) {
	rc, err := collector.CountRules(ctx, mode, kubeproxy.NodeRunner(r.Node.Run))
	if err != nil {
		return runs.Rules{}, err
	}
	return rc.RunsRules(), nil
}
