package report

import (
	"testing"
)

func TestWording(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{count(1, "point", "points"), "1 point"},
		{count(12, "point", "points"), "12 points"},
		{cpuList([]int{1}), "CPU 1"},
		{cpuList([]int{0, 2}), "CPUs 0,2"},
		{detailLabel("etcdVersion"), "etcd version"},
		{detailLabel("backends"), "Backends"},
		{detailLabel("clientNode"), "Client node"},
		{shortRPC(1), "new conn per request"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestLogTicksLabelANarrowRange: a log axis over less than a decade still
// gets at least two labelled ticks (the sync plot's time-to-programmed
// panel had one).
func TestLogTicksLabelANarrowRange(t *testing.T) {
	for _, r := range [][2]float64{{0.4, 0.9}, {0.21, 0.48}, {3, 9}, {0.001, 100}} {
		labelled := 0
		for _, tk := range (logTicks{}).Ticks(r[0], r[1]) {
			if tk.Label != "" {
				labelled++
			}
		}
		if labelled < 2 {
			t.Errorf("ticks over %v: %d labelled, want at least 2", r, labelled)
		}
	}
}
