package sweep

import (
	"bytes"
	"context"
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
	// FirstPacket asks the load client to time its own connections in
	// the node's kernel (load --first-packet; collector.LoadTimesFirstPacket).
	FirstPacket bool
}

// Run implements LoadRunner.
func (l *NodeLoad) Run(ctx context.Context, req LoadRequest) (*LoadResult, error) {
	args := []string{l.Bin, "load", "--json", "-"}
	if l.FirstPacket {
		args = append(args, "--first-packet")
	}
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
	var requestsLog string
	if req.RequestsLog {
		if rawDir == "" {
			// In Scratch where the node has one; else in this machine's
			// temporary directory, which the netns node shares.
			dir, err := os.MkdirTemp(l.Scratch, "kpbench-requests-")
			if err != nil {
				return nil, fmt.Errorf("requests log directory: %w", err)
			}
			defer os.RemoveAll(dir)
			rawDir = dir
		}
		requestsLog = filepath.Join(rawDir, RawRequestsCSV)
		args = append(args, "--requests-log", requestsLog)
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
	res := loadResultOf(s)
	if requestsLog != "" {
		if res.RequestLog, err = readRequestsLog(requestsLog); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// RawRequestsCSV is the load client's requests log in a point's raw
// directory (LoadRequest.RequestsLog; loadgen.WriteRequestLog).
const RawRequestsCSV = "requests.csv"

func readRequestsLog(path string) ([]loadgen.RequestRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the load client's requests log: %w", err)
	}
	defer f.Close()
	recs, err := loadgen.ReadRequestLog(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return recs, nil
}

// Load is the load run the request asks for: what `kpbench load` runs,
// on the client node or in each client pod.
func (req LoadRequest) Load() loadgen.Config {
	return loadgen.Config{URLs: req.URLs, Rate: req.Rate, Duration: req.Duration, Warmup: req.Warmup,
		RequestsPerConn: req.RequestsPerConn, Timeout: req.Timeout, MaxInflight: req.MaxInflight,
		Tick: req.Tick}
}

// loadResultOf maps a load summary onto the engine's LoadResult.
func loadResultOf(s *loadgen.Summary) *LoadResult {
	start, end := s.Window()
	return &LoadResult{
		AchievedRate: s.AchievedRate, TickSeconds: s.TickSeconds, Requests: s.Requests,
		Latency: s.Latency, ServiceTime: s.ServiceTime, Connect: s.Connect, Lag: s.Lag, Errors: s.Errors,
		ClientCPUCores: s.ClientCPUCores, TargetConnects: s.TargetConnects, Valid: s.Valid, InvalidReasons: s.InvalidReasons,
		WindowStart: start, WindowEnd: end,
		PID: s.PID, FirstPacket: s.FirstPacket,
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

// EndpointChains implements EndpointChainCounter.
func (r NodeRules) EndpointChains(ctx context.Context) (int, error) {
	rc, err := collector.CountRules(ctx, scenarios.ModeIPTables, kubeproxy.NodeRunner(r.Node.Run))
	if err != nil {
		return 0, err
	}
	return rc.IPTables.EndpointChains, nil
}
