package report

import "fmt"

// kernelTable is the Summary's table of the kernel time to first packet:
// for every condition whose points the probe timed, the p01, median and
// p99 of the span (means of the windows' values with their 95% CIs over
// the valid repetitions), the rules walked to the target and the SYN
// path's share of the node CPU. It is descriptive: no row of it is in a
// tested family (a gate or a primary may name first-packet metrics).
// ok is false when no point has the kernel time.
func kernelTable(d *Data) (table, bool) {
	if !timesFirstPacket(d) {
		return table{}, false
	}
	label := ""
	if firstPacketEmulated(d) {
		label = " (emulated, TCG)"
	}
	t := table{
		header: []string{"mode", "targets", "req/conn", "Services", "n", "rules walked",
			"p01 µs" + label, "p50 µs" + label, "p99 µs" + label, "SYN path cores"},
		numeric: []bool{false, false, true, true, true, true, true, true, true, true},
	}
	fp := metric("first-packet")
	for _, g := range d.groups {
		if len(g.values(fp)) == 0 {
			continue
		}
		t.rows = append(t.rows, []string{
			string(g.Key.Mode), string(g.Key.Targets), fmt.Sprint(g.Key.RequestsPerConn), formatCount(g.Key.Services),
			fmt.Sprint(len(g.values(fp))), groupDepth(g),
			g.summary("first-packet-p01"), g.summary("first-packet"), g.summary("first-packet-p99"), g.summary("first-packet-cores"),
		})
	}
	return t, len(t.rows) > 0
}
