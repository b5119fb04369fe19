// Package collector measures what the client node spends while kpbench
// drives load: CPU from /proc (per CPU of the node, per process), the
// network namespace's conntrack and softnet counters, kube-proxy's own
// metrics, and the size of the dataplane's rules in each proxy mode.
//
// Readers follow procfs: an FS value is made from a proc mount point
// (/proc on the machine, /host/proc in a cluster agent, a fixture tree in
// tests) and every reading hangs off it. Counters in /proc are cumulative;
// the collector reports deltas over a window and converts units at the
// edge: CPU in cores (busy CPU-seconds per wall-clock second), times in
// seconds.
//
// Parsers of command output (iptables-save, nft, ipvsadm) and of
// kube-proxy's metrics text are pure functions of the text; the counters
// that produce the text take a Runner or a FetchFunc, so the same code
// runs locally, inside a network namespace, or through a cluster agent.
//
// It is also kpbench's one home for what a point measures. The engine
// begins one Observer (observe.go) before the load and ends it after,
// with the load's window and the point; each observer fills the groups
// of runs.Point it owns. ForClient assembles a provider's observer from
// its clusters.Features: the node's own (nodeobserver.go: in process, or
// the agent over ClientNode.Run), kind's cgroups and the sum over several
// client nodes (nodecpu.go), a VM's host process (hostproc.go). Every
// figure covers the samples inside the load's window by one rule,
// InWindow, and every sampler runs on one loop (window.go).
package collector
