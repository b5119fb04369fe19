package report

import (
	"slices"
	"strings"

	"github.com/kpbench/kpbench/runs"
)

// legacyCovers is what a run's node CPU covers when its points do not say
// (runs measured before points recorded it): the client node's /proc/stat.
const legacyCovers = "the client node's CPUs (/proc/stat)"

// nodeCPUCovers says what the points' client-node CPU is the busy time of
// (runs.NodeCPU.Covers): the lab node's pinned CPUs, a kind node
// container's cgroup, the sum over several client nodes. Different labels
// within one run are all listed.
func nodeCPUCovers(points []runs.Point) string {
	var seen []string
	for _, p := range points {
		c := p.CPU.Node.Covers
		if c == "" {
			c = legacyCovers
		}
		if !slices.Contains(seen, c) {
			seen = append(seen, c)
		}
	}
	if len(seen) == 0 {
		return legacyCovers
	}
	return strings.Join(seen, "; ")
}
