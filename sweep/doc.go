// Package sweep is the engine of `kpbench run`: it walks a scenario over a
// cluster — for each mode, set and verify it; for each Service step, scale
// and wait until programmed; for each connection variant and repetition,
// run the load (its warm-up inside the same process) while the client
// node is observed — and appends every point to the results directory as
// soon as it is measured. With the scenario's order "steps" the two outer
// loops swap: each step is scaled once and every mode measured there.
// Resume (points already on disk are skipped) and validity (kube-proxy
// alive and in the mode) are the engine's too.
//
// What a point measures on the client node is the collector's
// (collector.Observer, collector.ForClient): the engine hands the
// observer the load's window and the point, and copies nothing.
//
// The engine talks to the rest of kpbench through small interfaces
// (interfaces.go: Scaler, LoadRunner, RuleCounter; collector.Observer), so
// it is tested with fakes:
//   - target.go: turns a provider into the engine's adapters by reading
//     its clusters.Features, never its name or type;
//   - local.go: the Service scaler adapter, `kpbench load` run on the
//     client node through ClientNode.Run, and rule counting;
//   - incluster.go: load clients as in-cluster Jobs (clusters.LoadRunner);
//   - env.go: what run.json records about the client node.
package sweep
