package report

import (
	"strings"
	"testing"

	"github.com/kpbench/kpbench/runs"
	"github.com/kpbench/kpbench/scenarios"
)

// TestPrimaryFixedStep: a primary declared at 10,000 Services whose
// nftables points there are lost is "not tested", where it used to move
// silently to the largest step every mode reached (1 Service).
func TestPrimaryFixedStep(t *testing.T) {
	base := load(t, "compare-base")
	primary := func(r *runs.Run) {
		r.Scenario.Spec.Order = scenarios.OrderSteps
		r.Scenario.Spec.Primary = &scenarios.Primary{Metric: "connect", RequestsPerConn: 1, Services: 10000}
	}
	whole := derive(t, base, primary, nil)
	partial := derive(t, base, primary, func(p *runs.Point) bool {
		return p.Mode != scenarios.ModeNFTables || p.Services != 10000
	})
	count := func(fs []Finding) (tested int, notTested bool) {
		for _, f := range fs {
			if !f.Primary {
				continue
			}
			if strings.HasPrefix(f.Text, "Primary comparison not tested") {
				notTested = true
			} else {
				tested++
			}
		}
		return tested, notTested
	}
	if n, nt := count(Findings(whole)); n != 1 || nt {
		t.Errorf("all steps measured: %d primary findings, not tested %v", n, nt)
	}
	if n, nt := count(Findings(partial)); n != 0 || !nt {
		t.Errorf("primary step lost: %d primary findings, not tested %v", n, nt)
	}
}
