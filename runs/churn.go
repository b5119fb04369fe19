package runs

import "time"

// Churn is what a point measured while the API changed under it
// (spec.churn): the writes made during its window, when each reached the
// client node's rules, kube-proxy's syncs, and what the traffic met.
// Absent on points without churn.
type Churn struct {
	// Asked is the rate of changes per second the scenario asked for, and
	// Achieved the rate of API writes that succeeded inside the window.
	AskedPerSecond    float64 `json:"askedPerSecond"`
	AchievedPerSecond float64 `json:"achievedPerSecond"`
	// Planned is the writes the schedule had for the window
	// (floor(rate × window)), and Written those that succeeded inside it.
	Planned int `json:"planned"`
	Written int `json:"written"`
	// Changes are the API writes made inside the window, in order.
	Changes []ChurnChange `json:"changes"`
	// Programming is the latency from each change's API write to the
	// first read of the node's rules that shows it, over the changes that
	// were programmed; Unprogrammed counts those that were not by the end
	// of the window plus its grace.
	Programming  DurationSummary `json:"programming"`
	Unprogrammed int             `json:"unprogrammed"`
	// Reads says how the node's rules were read, and so how precise
	// Programming is; nil when the rules were not read.
	Reads *ChurnReads `json:"reads,omitempty"`
	// KubeProxyProgrammingP50Seconds and ...P99Seconds are kube-proxy's
	// own network_programming_duration_seconds over the window, where it
	// reports it.
	KubeProxyProgrammingP50Seconds float64 `json:"kubeProxyProgrammingP50Seconds,omitempty"`
	KubeProxyProgrammingP99Seconds float64 `json:"kubeProxyProgrammingP99Seconds,omitempty"`
	// Syncs are kube-proxy's syncs that overlapped the window.
	Syncs []SyncSpan `json:"syncs"`
	// Traffic is what the load client's requests met during the churn.
	Traffic *ChurnTraffic `json:"traffic,omitempty"`
}

// ReasonChurnBehind: the writes that succeeded inside a churn point's
// window fell short of MinChurnAchieved of those its schedule planned (the
// writer or the API server could not keep the rate: the runner's fault).
const ReasonChurnBehind = "churn fell behind its schedule"

// MinChurnAchieved is the share of its planned writes a churn point's
// successful writes inside the window must reach.
const MinChurnAchieved = 0.95

// Kinds of churn change.
const (
	// ChurnEndpointReplace: one endpoint of a Service leaves and another
	// backend joins it, as one step of a rolling update.
	ChurnEndpointReplace = "endpoint-replace"
	// ChurnEndpointsToZero and ChurnEndpointsRestore: a Service's
	// endpoints go from all to none, and back.
	ChurnEndpointsToZero  = "endpoints-to-zero"
	ChurnEndpointsRestore = "endpoints-restore"
	// ChurnServiceCreate and ChurnServiceDelete: a Service (with its
	// EndpointSlice) is created or deleted.
	ChurnServiceCreate = "service-create"
	ChurnServiceDelete = "service-delete"
)

// ChurnChange is one API write made during a window.
type ChurnChange struct {
	Seq     int    `json:"seq"`
	Kind    string `json:"kind"`
	Service string `json:"service"` // namespace/name
	// ClusterIP of the Service, and the endpoint addresses the change
	// removed from it and added to it, as IP:port (the backend's port).
	ClusterIP string   `json:"clusterIP,omitempty"`
	Removed   []string `json:"removed,omitempty"`
	Added     []string `json:"added,omitempty"`
	// Target: the Service is the one the load client sends to.
	Target bool `json:"target,omitempty"`
	// PlannedAt is when the schedule had the write due; a WrittenAt long
	// after it says the writer fell behind.
	PlannedAt time.Time `json:"plannedAt"`
	// WrittenAt is when the API server acknowledged the write;
	// ProgrammedAt when a read of the node's rules first showed the
	// change (nil: not seen by the end of the window and its grace).
	WrittenAt    time.Time  `json:"writtenAt"`
	ProgrammedAt *time.Time `json:"programmedAt,omitempty"`
	// Error is the API error, when the write failed.
	Error string `json:"error,omitempty"`
}

// SyncSpan is one kube-proxy sync: when it ran and whether it was full.
type SyncSpan struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Full  bool      `json:"full"`
}

// DurationSummary is a distribution of durations, in seconds.
type DurationSummary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// ChurnTraffic is what the load client's requests met during churn.
type ChurnTraffic struct {
	Requests int64 `json:"requests"`
	// Errors by kind: refused, reset, timeout, other.
	Errors map[string]int64 `json:"errors,omitempty"`
	// StaleUnprogrammed counts requests answered by a backend after its
	// removal from the target Service was written but before the node's
	// rules showed it (the rules lag); StaleProgrammed those answered
	// after the rules showed it (a connection the rules no longer lead
	// there: conntrack or a kept-alive connection).
	StaleUnprogrammed int64 `json:"staleUnprogrammed"`
	StaleProgrammed   int64 `json:"staleProgrammed"`
	// ConnectInSync and ConnectOutOfSync are connect-time percentiles
	// (µs) of the connections that started inside a kube-proxy sync and
	// of those that started outside every sync.
	ConnectInSync    Percentiles `json:"connectInSync"`
	ConnectOutOfSync Percentiles `json:"connectOutOfSync"`
	// Timeline is the same traffic over time, in bins: what the point's
	// timeline plot draws.
	Timeline *TrafficTimeline `json:"timeline,omitempty"`
}

// Percentiles of a duration, in microseconds, with the count behind them.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
}

// ChurnReads is how a churn point read the node's rules: its rounds and
// reads, and the resolution of the programming latencies they gave.
type ChurnReads struct {
	Rounds     int `json:"rounds"`
	Reads      int `json:"reads"`
	ReadErrors int `json:"readErrors,omitempty"`
	// Window is each programmed change's uncertainty: from the later of
	// its write and the start of the last round that did not show it, to
	// the end of the read that did. Its ProgrammedAt is that read's end,
	// so its latency is an upper bound by at most this much.
	Window DurationSummary `json:"window"`
	// Commands are the commands the reads ran, by kind: count and mean
	// and maximum wall time (s).
	Commands map[string]ReadCommand `json:"commands,omitempty"`
}

// ReadCommand is what one kind of command cost a churn point's reads.
type ReadCommand struct {
	Count       int     `json:"count"`
	MeanSeconds float64 `json:"meanSeconds"`
	MaxSeconds  float64 `json:"maxSeconds"`
	Errors      int     `json:"errors,omitempty"`
}
