package report

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kpbench/kpbench/runs"
)

// The churn section: for points measured while the API changed under
// them (Point.Churn), per condition, what the traffic met and how fast
// the node's rules followed the writes, as means over the valid
// repetitions with their 95% intervals (the unit is the repetition, as
// in every other table of the report).

// ChurnStats summarizes one condition's valid churn points.
type ChurnStats struct {
	Key runs.Key
	// N counts the valid points with churn; Invalid the others.
	N, Invalid int
	// ErrorsPer10k is failed requests per 10,000 during churn, and
	// ErrorKindsPer10k the same by kind (means over the points).
	ErrorsPer10k     Summary
	ErrorKindsPer10k map[string]float64
	// ProgrammingP50Ms and ProgrammingP99Ms are the points' programming
	// latency percentiles (API write to the node's rules), in ms;
	// Changes counts the API writes of every point and Unprogrammed those
	// the rules never showed.
	ProgrammingP50Ms, ProgrammingP99Ms Summary
	Changes, Unprogrammed              int
	// ReadWindowP50Ms is the median resolution of the points' programming
	// latencies (runs.ChurnReads.Window: each is an upper bound by at
	// most its window), in ms; absent for points without a record of
	// their reads.
	ReadWindowP50Ms Summary
	// StaleUnprogrammedPer10k and StaleProgrammedPer10k are stale hits
	// per 10,000 requests, before and after the removal was programmed.
	StaleUnprogrammedPer10k, StaleProgrammedPer10k Summary
	// ConnectInSyncP50Us and ConnectOutOfSyncP50Us are the points' median
	// connect times of connections started inside a kube-proxy sync and
	// outside every sync (µs); SyncCostUs their difference within each
	// point (inside − outside), over the points that have both.
	ConnectInSyncP50Us, ConnectOutOfSyncP50Us, SyncCostUs Summary
}

// ChurnStatsOf summarizes the churn points of d by condition, in report
// order; conditions without churn are left out.
func ChurnStatsOf(d *Data) []ChurnStats {
	var out []ChurnStats
	for _, g := range d.groups {
		st := ChurnStats{Key: g.Key}
		var errs, p50, p99, window, staleU, staleP, in, outs, cost []float64
		kinds := map[string]float64{}
		for _, p := range g.Points {
			if p.Churn == nil {
				continue
			}
			if !p.Valid {
				st.Invalid++
				continue
			}
			st.N++
			c := p.Churn
			st.Changes += len(c.Changes)
			st.Unprogrammed += c.Unprogrammed
			if c.Programming.Count > 0 {
				p50 = append(p50, c.Programming.P50*1e3)
				p99 = append(p99, c.Programming.P99*1e3)
				if c.Reads != nil && c.Reads.Window.Count > 0 {
					window = append(window, c.Reads.Window.P50*1e3)
				}
			}
			tr := c.Traffic
			if tr == nil || tr.Requests == 0 {
				continue
			}
			per10k := func(n int64) float64 { return 1e4 * float64(n) / float64(tr.Requests) }
			var failed int64
			for k, n := range tr.Errors {
				failed += n
				kinds[k] += per10k(n)
			}
			errs = append(errs, per10k(failed))
			staleU = append(staleU, per10k(tr.StaleUnprogrammed))
			staleP = append(staleP, per10k(tr.StaleProgrammed))
			i, o := tr.ConnectInSync, tr.ConnectOutOfSync
			if i.Count > 0 {
				in = append(in, i.P50)
			}
			if o.Count > 0 {
				outs = append(outs, o.P50)
			}
			if i.Count > 0 && o.Count > 0 {
				cost = append(cost, i.P50-o.P50)
			}
		}
		if st.N == 0 && st.Invalid == 0 {
			continue
		}
		if len(errs) > 0 {
			st.ErrorKindsPer10k = map[string]float64{}
			for k, v := range kinds {
				st.ErrorKindsPer10k[k] = v / float64(len(errs))
			}
		}
		st.ErrorsPer10k = Summarize(errs)
		st.ProgrammingP50Ms, st.ProgrammingP99Ms = Summarize(p50), Summarize(p99)
		st.ReadWindowP50Ms = Summarize(window)
		st.StaleUnprogrammedPer10k, st.StaleProgrammedPer10k = Summarize(staleU), Summarize(staleP)
		st.ConnectInSyncP50Us, st.ConnectOutOfSyncP50Us, st.SyncCostUs = Summarize(in), Summarize(outs), Summarize(cost)
		out = append(out, st)
	}
	return out
}

// churn adds the churn section, when any point was measured under churn.
func (doc *document) churn(d *Data) {
	stats := ChurnStatsOf(d)
	if len(stats) == 0 {
		return
	}
	doc.h(2, "Traffic during churn")
	doc.p("%s", "Points measured while the API changed under them (spec.churn): for each condition, failed requests per 10,000 during churn, "+
		"the programming latency (from each API write to the first read of the node's rules that shows it), stale hits (requests "+
		"answered by a backend after its removal from the target Service was written: before the node's rules showed the removal, "+
		"or after, through conntrack or a kept-alive connection) and the median connect time of connections started inside a "+
		"kube-proxy sync against those started outside every sync, with the difference taken within each point. "+
		"Means over the valid repetitions with their 95% confidence intervals (Student's t; the unit is the repetition; none with one)."+
		blockNote(d.Run)+" What each figure means and its limits: docs/churn-traffic.md.")
	var items []string
	for _, st := range stats {
		items = append(items, churnSentence(st, multiTargets(stats)))
	}
	doc.list(items)
	doc.table(churnTable(stats))
	for _, st := range stats {
		if st.Invalid > 0 {
			doc.p("%s: %s measured under churn invalid, left out above (see Invalid points).", churnCondition(st.Key, multiTargets(stats)),
				count(st.Invalid, "point", "points"))
		}
	}
	if p := churnTimelinePoint(d); p != nil {
		doc.p("The timeline of one point (%s) is drawn under Plots: %s.", p.ID, churnTimelineTitle)
	}
}

func multiTargets(stats []ChurnStats) bool {
	for _, st := range stats[1:] {
		if st.Key.Targets != stats[0].Key.Targets {
			return true
		}
	}
	return false
}

// churnCondition names a condition: "iptables, 1,000 Services, a new
// connection per request".
func churnCondition(k runs.Key, withTargets bool) string {
	s := fmt.Sprintf("%s, %s Services, %s", k.Mode, formatCount(k.Services), describeRPC(k.RequestsPerConn))
	if withTargets {
		s += ", targets " + string(k.Targets)
	}
	return s
}

// ciPhrase is a mean with its interval for a sentence: "3.2 (95% CI 1.0
// to 5.4)", or the mean alone when there is no interval.
func ciPhrase(s Summary, digits int, unit string) string {
	v := fmt.Sprintf("%.*f%s", digits, s.Mean, unit)
	if !s.HasCI {
		return v
	}
	return fmt.Sprintf("%s (95%% CI %.*f to %.*f)", v, digits, s.CILo, digits, s.CIHi)
}

// churnSentence states one condition's churn figures.
func churnSentence(st ChurnStats, withTargets bool) string {
	var parts []string
	if st.ErrorsPer10k.N > 0 {
		s := ciPhrase(st.ErrorsPer10k, 1, "") + " failed requests per 10,000"
		if kinds := kindList(st.ErrorKindsPer10k); kinds != "" {
			s += " (" + kinds + ")"
		}
		parts = append(parts, s)
	}
	if st.ProgrammingP50Ms.N > 0 {
		s := "programming latency p50 " + ciPhrase(st.ProgrammingP50Ms, 0, " ms") + ", p99 " + ciPhrase(st.ProgrammingP99Ms, 0, " ms")
		if st.ReadWindowP50Ms.N > 0 {
			s += fmt.Sprintf(" (read from the node's rules to within %.0f ms, the median window of the reads: each latency is an upper bound by at most its window)", st.ReadWindowP50Ms.Mean)
		}
		parts = append(parts, s)
	}
	if st.Unprogrammed > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d changes never seen in the node's rules", st.Unprogrammed, st.Changes))
	}
	if st.StaleUnprogrammedPer10k.N > 0 {
		parts = append(parts, "stale hits per 10,000 requests "+ciPhrase(st.StaleUnprogrammedPer10k, 2, "")+
			" before the removal was programmed and "+ciPhrase(st.StaleProgrammedPer10k, 2, "")+" after")
	}
	switch {
	case st.SyncCostUs.N > 0:
		parts = append(parts, fmt.Sprintf("median connect time %.1f µs for connections started inside a sync vs %.1f µs outside, a difference of %s within the point",
			st.ConnectInSyncP50Us.Mean, st.ConnectOutOfSyncP50Us.Mean, ciPhrase(st.SyncCostUs, 1, " µs")))
	case st.ConnectOutOfSyncP50Us.N > 0:
		parts = append(parts, "no connection started inside a sync")
	}
	if len(parts) == 0 {
		parts = append(parts, "no traffic recorded")
	}
	return fmt.Sprintf("%s (n=%d): %s.", churnCondition(st.Key, withTargets), st.N, strings.Join(parts, "; "))
}

// kindList is "refused 2.9, timeout 0.3": kinds by decreasing rate.
func kindList(kinds map[string]float64) string {
	type kv struct {
		k string
		v float64
	}
	var list []kv
	for k, v := range kinds {
		if v > 0 {
			list = append(list, kv{k, v})
		}
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].v != list[j].v {
			return list[i].v > list[j].v
		}
		return list[i].k < list[j].k
	})
	parts := make([]string, len(list))
	for i, e := range list {
		parts[i] = fmt.Sprintf("%s %.1f", e.k, e.v)
	}
	return strings.Join(parts, ", ")
}

func churnTable(stats []ChurnStats) table {
	t := table{
		header: []string{"mode", "targets", "req/conn", "Services", "n", "failed /10k", "programming p50 ms", "programming p99 ms", "unprogrammed",
			"stale before programmed /10k", "stale after programmed /10k", "connect p50 in sync µs", "connect p50 outside µs", "in − out µs"},
		numeric: []bool{false, false, true, true, true, true, true, true, true, true, true, true, true, true},
	}
	for _, st := range stats {
		k := st.Key
		t.rows = append(t.rows, []string{string(k.Mode), string(k.Targets), fmt.Sprint(k.RequestsPerConn), formatCount(k.Services), fmt.Sprint(st.N),
			pm(st.ErrorsPer10k, 1), pm(st.ProgrammingP50Ms, 0), pm(st.ProgrammingP99Ms, 0), fmt.Sprintf("%d of %d", st.Unprogrammed, st.Changes),
			pm(st.StaleUnprogrammedPer10k, 2), pm(st.StaleProgrammedPer10k, 2),
			pm(st.ConnectInSyncP50Us, 1), pm(st.ConnectOutOfSyncP50Us, 1), pm(st.SyncCostUs, 1)})
	}
	return t
}
