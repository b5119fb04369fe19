package runs

import (
	"time"

	"github.com/kpbench/kpbench/scenarios"
)

// SyncCost is what programming the client node costs kube-proxy at one
// (mode, Service step), measured apart from the step's points: a cold
// full sync (kube-proxy restarted on a node without its rules) and
// incremental syncs after one API change each, with the rule set's size.
type SyncCost struct {
	Mode       scenarios.Mode `json:"mode"`
	Services   int            `json:"services"`
	MeasuredAt time.Time      `json:"measuredAt"`
	// Rules is the rule set after the cold sync.
	Rules Rules    `json:"rules"`
	Cold  ColdSync `json:"cold"`
	// Incremental are the samples, in order; the medians are over them.
	Incremental              []IncrementalSync `json:"incremental"`
	IncrementalMedianSeconds float64           `json:"incrementalMedianSeconds"`
	ProgrammingMedianSeconds float64           `json:"programmingMedianSeconds,omitempty"`
	// Problems say what could not be measured, and why.
	Problems []string `json:"problems,omitempty"`
}

// ColdSync is kube-proxy's first sync after a start on a node without
// its rules.
type ColdSync struct {
	// FullSyncSeconds is kube-proxy's own duration of that sync
	// (sync_full_proxy_rules_duration_seconds; sync_proxy_rules_duration_seconds
	// in ipvs mode, which does not split full and partial).
	FullSyncSeconds float64 `json:"fullSyncSeconds"`
	// StartToSyncedSeconds runs from the process's start
	// (process_start_time_seconds) to the end of that sync
	// (sync_proxy_rules_last_timestamp_seconds): the informers' initial
	// list of every Service and EndpointSlice, then the sync.
	StartToSyncedSeconds float64 `json:"startToSyncedSeconds"`
	// RestartSeconds runs from asking the provider for the restart to
	// seeing that sync done (stopping kube-proxy and clearing its rules
	// included).
	RestartSeconds float64 `json:"restartSeconds"`
}

// IncrementalSync is the sync kube-proxy made for one API change.
type IncrementalSync struct {
	// SyncSeconds is the sync's own duration (the histograms' sum delta).
	SyncSeconds float64 `json:"syncSeconds"`
	// Full is true when that sync was a full one (kube-proxy's periodic
	// full sync coincided).
	Full bool `json:"full,omitempty"`
	// ProgrammingSeconds runs from the API write to the first read of the
	// node's rules that showed it (0: not read).
	ProgrammingSeconds float64 `json:"programmingSeconds,omitempty"`
	// BeganBeforeAck is true when the sync began before the API server's
	// answer to the write reached kpbench (kube-proxy's watch saw the
	// write first) and the node's rules showed the change after it.
	BeganBeforeAck bool `json:"beganBeforeAck,omitempty"`
}

// RecordSyncCost adds c to the run, replacing an earlier measurement of
// the same mode and Service step (a resumed run measures it again).
func (r *Run) RecordSyncCost(c SyncCost) {
	for i := range r.SyncCosts {
		if r.SyncCosts[i].Mode == c.Mode && r.SyncCosts[i].Services == c.Services {
			r.SyncCosts[i] = c
			return
		}
	}
	r.SyncCosts = append(r.SyncCosts, c)
}
