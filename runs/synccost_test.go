package runs

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kpbench/kpbench/scenarios"
)

func TestRecordSyncCost(t *testing.T) {
	var r Run
	r.RecordSyncCost(SyncCost{Mode: scenarios.ModeIPTables, Services: 1000, Cold: ColdSync{FullSyncSeconds: 0.4}})
	r.RecordSyncCost(SyncCost{Mode: scenarios.ModeNFTables, Services: 1000, Cold: ColdSync{FullSyncSeconds: 0.9}})
	// A resumed run measures the step again: the new figure replaces the old.
	r.RecordSyncCost(SyncCost{Mode: scenarios.ModeIPTables, Services: 1000, Cold: ColdSync{FullSyncSeconds: 0.5}})
	if len(r.SyncCosts) != 2 || r.SyncCosts[0].Cold.FullSyncSeconds != 0.5 || r.SyncCosts[1].Mode != scenarios.ModeNFTables {
		t.Errorf("sync costs %+v", r.SyncCosts)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"syncCosts":[{"mode":"iptables","services":1000`) {
		t.Errorf("run.json: %s", b)
	}
	var back Run
	if err := json.Unmarshal(b, &back); err != nil || len(back.SyncCosts) != 2 || back.SyncCosts[0].Cold.FullSyncSeconds != 0.5 {
		t.Errorf("round trip: %+v, %v", back.SyncCosts, err)
	}
	b, _ = json.Marshal(Run{})
	if strings.Contains(string(b), "syncCosts") {
		t.Error("a run without sync costs writes the field")
	}
}
