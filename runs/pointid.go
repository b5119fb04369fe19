package runs

// Point identity: the condition a point measures (Key) and the ID that
// names it in points.jsonl and under raw/.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kpbench/kpbench/scenarios"
)

// Key identifies the condition a point measures, repetitions aside.
type Key struct {
	Mode            scenarios.Mode
	Services        int
	RequestsPerConn int
	Targets         scenarios.Targets
}

// Key returns the condition p measures.
func (p *Point) Key() Key {
	return Key{Mode: p.Mode, Services: p.Services, RequestsPerConn: p.RequestsPerConn, Targets: p.Targets}
}

func (k Key) String() string {
	return fmt.Sprintf("%s/services=%d/rpc=%d/targets=%s", k.Mode, k.Services, k.RequestsPerConn, k.Targets)
}

// PointID names a point of a run with one placement; it is also its
// directory under raw/.
func PointID(mode scenarios.Mode, services, requestsPerConn, repetition int) string {
	return fmt.Sprintf("%s-s%05d-rpc%d-r%d", mode, services, requestsPerConn, repetition)
}

// PlacementPointID names a point of a run with several placements: its
// placement goes between the connection variant and the repetition
// (iptables-s02000-rpc1-deepest-r3).
func PlacementPointID(mode scenarios.Mode, services, requestsPerConn int, placement scenarios.Targets, repetition int) string {
	return fmt.Sprintf("%s-s%05d-rpc%d-%s-r%d", mode, services, requestsPerConn, placement, repetition)
}

// SpecPointID names a point of a run of sp: with the placement when
// spec.load.targets lists more than one, as PointID otherwise (so that
// single-placement runs keep the IDs older kpbench versions gave them).
func SpecPointID(sp *scenarios.Spec, mode scenarios.Mode, services, requestsPerConn int, placement scenarios.Targets, repetition int) string {
	if len(sp.Load.Targets) > 1 {
		return PlacementPointID(mode, services, requestsPerConn, placement, repetition)
	}
	return PointID(mode, services, requestsPerConn, repetition)
}

// PointRef is what a point ID says. Placement is empty for the IDs of
// single-placement runs.
type PointRef struct {
	Mode            scenarios.Mode
	Services        int
	RequestsPerConn int
	Placement       scenarios.Targets
	Repetition      int
}

// ParsePointID reads an ID written by PointID or PlacementPointID.
func ParsePointID(id string) (PointRef, error) {
	var r PointRef
	parts := strings.Split(id, "-")
	if len(parts) != 4 && len(parts) != 5 {
		return r, fmt.Errorf("point ID %q: want mode-sNNNNN-rpcN[-placement]-rN", id)
	}
	r.Mode = scenarios.Mode(parts[0])
	var err error
	num := func(s, prefix string) int {
		if err != nil {
			return 0
		}
		v, e := strconv.Atoi(strings.TrimPrefix(s, prefix))
		if !strings.HasPrefix(s, prefix) || e != nil || v < 0 {
			err = fmt.Errorf("point ID %q: %q is not %sN", id, s, prefix)
		}
		return v
	}
	r.Services = num(parts[1], "s")
	r.RequestsPerConn = num(parts[2], "rpc")
	r.Repetition = num(parts[len(parts)-1], "r")
	if len(parts) == 5 {
		r.Placement = scenarios.Targets(parts[3])
		if !r.Placement.Valid() {
			err = errors.Join(err, fmt.Errorf("point ID %q: unknown placement %q", id, parts[3]))
		}
	}
	if !r.Mode.Valid() {
		err = errors.Join(err, fmt.Errorf("point ID %q: unknown mode %q", id, parts[0]))
	}
	return r, err
}

// PlanIDs lists the IDs of every point a run of sp plans in mode: each
// Service step, connection variant, placement and repetition.
func PlanIDs(sp *scenarios.Spec, mode scenarios.Mode) []string {
	var ids []string
	for _, n := range sp.Services {
		for _, rpc := range sp.Load.RequestsPerConn {
			for _, pl := range sp.Load.Targets {
				for rep := 1; rep <= sp.Repetitions; rep++ {
					ids = append(ids, SpecPointID(sp, mode, n, rpc, pl, rep))
				}
			}
		}
	}
	return ids
}
