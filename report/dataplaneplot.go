package report

import "fmt"

// dataplaneFigure is the SYN path's CPU (kernel time to first packet ×
// new connections per second) against Services, beside the client
// node's CPU of the same points: Tigera's CPU figure, of the walk alone.
// ok is false when no point of the run was timed by the probe.
func dataplaneFigure(d *Data, services []int) (f *figure, caption string, ok bool) {
	if !timesFirstPacket(d) {
		return nil, "", false
	}
	rpc, found := connectVariant(d.groups)
	if !found {
		return nil, "", false
	}
	groups := filterGroups(d.groups, func(g *group) bool { return g.Key.RequestsPerConn == rpc })
	of := func(name string) func(g *group) (Summary, bool) {
		m := metric(name)
		return func(g *group) (Summary, bool) {
			vs := g.values(m)
			return Summarize(vs), len(vs) > 0
		}
	}
	f = &figure{title: "The SYN path's CPU beside the client node's — " + describeRPC(rpc), services: services, cols: 2, panels: []panel{
		{title: "client-node CPU", ylabel: "CPU (cores)", series: seriesBy(groups, false, of("cpu"))},
		{title: "SYN path: kernel time to first packet × new connections/s", ylabel: "CPU (cores)", series: seriesBy(groups, false, of("first-packet-cores"))},
	}}
	caption = fmt.Sprintf("Left: busy time of %s. Right: the mean kernel time to first packet (SYN_SENT to the SYN's device queue: routing and netfilter's LOCAL_OUT and POST_ROUTING hooks, where the Service lookup runs) times the timed new connections per second, in cores: "+
		"the dataplane's own share of the node CPU, spent in the load client's connect(2). It excludes the client's own work, the reply's path (SYN-ACK, ACK) and the backend. "+
		"Points are means over valid repetitions; error bars are 95%% confidence intervals of the mean.", nodeCPUCovers(d.Points))
	return f, caption, true
}
