package runs

import "time"

// TrafficTimeline is the traffic during churn over time: consecutive bins
// of BinSeconds from Start (the first request's start), each counting the
// requests that started in it.
type TrafficTimeline struct {
	Start      time.Time    `json:"start"`
	BinSeconds float64      `json:"binSeconds"`
	Bins       []TrafficBin `json:"bins"`
}

// TrafficBin is one bin of a TrafficTimeline.
type TrafficBin struct {
	Requests int64 `json:"requests"`
	// Errors by kind (ChurnTraffic.Errors).
	Refused int64 `json:"refused,omitempty"`
	Reset   int64 `json:"reset,omitempty"`
	Timeout int64 `json:"timeout,omitempty"`
	Other   int64 `json:"other,omitempty"`
	// Stale hits (ChurnTraffic.StaleUnprogrammed, StaleProgrammed).
	StaleUnprogrammed int64 `json:"staleUnprogrammed,omitempty"`
	StaleProgrammed   int64 `json:"staleProgrammed,omitempty"`
	// Connects counts the connections opened (and connected) in the bin;
	// ConnectP50Us and ConnectMaxUs are their connect times' median and
	// maximum (µs).
	Connects     int64   `json:"connects,omitempty"`
	ConnectP50Us float64 `json:"connectP50Us,omitempty"`
	ConnectMaxUs float64 `json:"connectMaxUs,omitempty"`
}
