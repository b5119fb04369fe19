package sweep

import (
	"context"
	"time"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// Scaler brings the synthetic Services to a count.
type Scaler interface {
	// Scale brings the number of synthetic Services to exactly n and
	// returns once kube-proxy has programmed them (also when nothing had
	// to change, e.g. right after a mode switch).
	Scale(ctx context.Context, n int) (ScaleResult, error)
	// TargetURLs returns the URLs the load client may send to, in the
	// Services' creation order: the first Service for targets "one",
	// every synthetic Service otherwise (the engine picks among them by
	// depth for deepest, shallowest and median).
	TargetURLs(ctx context.Context, targets scenarios.Targets) ([]string, error)
}

// ScaleResult is what a Scale call reports.
type ScaleResult struct {
	Created, Deleted int
	// TimeToProgrammed runs from the last API write to the rules being
	// active; zero when nothing was written.
	TimeToProgrammed time.Duration
	// SyncDuration is kube-proxy's own duration of its last sync.
	SyncDuration time.Duration
}

// LoadRequest is one run of the load client.
type LoadRequest struct {
	// ID names the run: the point's id.
	ID   string
	URLs []string
	Rate float64
	// Warmup runs in the same load process before the measured window
	// (excluded from every figure); Duration is the measured window.
	Warmup          time.Duration
	Duration        time.Duration
	RequestsPerConn int
	Timeout         time.Duration
	MaxInflight     int
	// RawDir, when set, receives the client's raw data (histograms,
	// timeline).
	RawDir string
}

// LoadResult is the load client's account of one run.
type LoadResult struct {
	AchievedRate   float64
	Requests       int64
	Latency        runs.Latency
	ServiceTime    runs.Latency
	Connect        runs.Connect
	Lag            runs.Lag
	Errors         runs.Errors
	ClientCPUCores float64
	// TargetConnects counts the connections opened to each URL in the
	// window (several URLs only).
	TargetConnects []int64
	Valid          bool
	InvalidReasons []string
	// WindowStart and WindowEnd bound the measured window as the client
	// saw it (zero when unknown).
	WindowStart, WindowEnd time.Time
	// PID is the load process's, as its node sees it (0 when unknown).
	PID int
}

// LoadRunner runs the load client on the client node.
type LoadRunner interface {
	Run(ctx context.Context, req LoadRequest) (*LoadResult, error)
}

// Observer watches the client node over a measured window.
type Observer interface {
	// Begin starts observing: CPU sampling, conntrack and kube-proxy
	// metrics before. rawDir receives raw samples.
	Begin(ctx context.Context, rawDir string) (Window, error)
}

// Window is an observation in progress.
type Window interface {
	// End stops observing and returns what the node spent.
	End(ctx context.Context) (*Observation, error)
}

// ConntrackFlusher is implemented by client nodes whose connection
// tracking table kpbench owns and may empty (the lab's: a network
// namespace or VM it created). The engine flushes it before each point, so
// that repetitions start alike instead of each inheriting the entries of
// the ones before; kind and existing nodes are shared with the rest of the
// cluster and are left alone.
type ConntrackFlusher interface {
	FlushConntrack(ctx context.Context) error
}

// Trimmer is implemented by windows that can narrow their CPU figures to
// the load's own measured window, for observers that must open the window
// well before the load starts (an in-cluster client pod being scheduled).
// The engine calls Trim before End when the load reported its window.
type Trimmer interface {
	Trim(start, end time.Time)
}

// Observation is what the node spent over a window.
type Observation struct {
	NodeCPU   runs.NodeCPU
	KubeProxy float64 // cores
	Conntrack runs.Conntrack
	Sync      runs.Sync
	// HostProcess is the CPU, in cores, of the process on this machine
	// that runs a VM client node (qemu); zero for other nodes.
	HostProcess float64
	// FirstPacket is the kernel's time to first packet of the client's
	// connections, where a probe observed the window.
	FirstPacket *runs.FirstPacket
	// Invalid lists why the observation makes the point invalid (its
	// figures are kept, but they do not cover the load's window).
	Invalid []string
}

// RuleCounter counts the dataplane's rules of a mode on the client node.
type RuleCounter interface {
	Count(ctx context.Context, mode scenarios.Mode) (runs.Rules, error)
}
