// Package kubeproxy is what kpbench knows about kube-proxy, in one place
// for the lab, kind, existing clusters and the collector:
//
//   - modes.go: a descriptor per mode (iptables, ipvs, nftables): the tools
//     and kernel and kube-proxy versions it needs, how to tell it is
//     available, the checks that its rules are in place, the command that
//     lists its rules (counted by the collector) and where a new
//     connection's target depth comes from;
//   - proxymode.go: the one reader of GET /proxyMode;
//   - metrics.go: kube-proxy's metric names and the one rule for "last
//     sync";
//   - version.go: the one kernel and kube-proxy version comparison;
//   - ipvs.go: whether a node's kernel can run IPVS;
//   - iptables.go: the iptables backend (nft or legacy);
//   - runner.go: running a command on the client node.
//
// Parsing the rule listings (counts, depth) stays in package collector,
// which measures; this package only says what to run and what it means.
package kubeproxy
