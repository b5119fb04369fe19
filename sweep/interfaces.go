package sweep

import (
	"context"
	"time"

	"github.com/kpbench/kpbench/loadgen"
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
	// Tick is loadgen.Config.Tick: loadgen.TickAuto (what the engine asks
	// for unless the scenario sets spec.load.tick), 0 (each request at its
	// own due time) or a tick.
	Tick time.Duration
	// RawDir, when set, receives the client's raw data (histograms,
	// timeline).
	RawDir string
	// RequestsLog asks for a record of every request of the window
	// (LoadResult.RequestLog; `kpbench load --requests-log`), kept as
	// RawRequestsCSV under RawDir.
	RequestsLog bool
}

// LoadResult is the load client's account of one run.
type LoadResult struct {
	AchievedRate float64
	// TickSeconds is the tick the client sent in (0: each request at its
	// own due time; loadgen.Config.EffectiveTick).
	TickSeconds    float64
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
	// FirstPacket is the time to first packet the client timed in its
	// node's kernel (NodeLoad.FirstPacket), nil when it did not.
	FirstPacket *runs.FirstPacket
	// RequestLog is the window's requests by start time, when
	// LoadRequest.RequestsLog asked for them (nil otherwise).
	RequestLog []loadgen.RequestRecord
}

// LoadRunner runs the load client on the client node.
type LoadRunner interface {
	Run(ctx context.Context, req LoadRequest) (*LoadResult, error)
}

// RuleCounter counts the dataplane's rules of a mode on the client node.
type RuleCounter interface {
	Count(ctx context.Context, mode scenarios.Mode) (runs.Rules, error)
}

// EndpointChainCounter is a RuleCounter that also counts kube-proxy's
// per-endpoint chains (KUBE-SEP-*) in iptables mode, stale ones included:
// the engine waits after a step down until kube-proxy has deleted those of
// the removed Services (Engine.awaitCleanup).
type EndpointChainCounter interface {
	EndpointChains(ctx context.Context) (int, error)
}
