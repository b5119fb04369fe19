// Package sweep is the engine of `kpbench run`: it plans a scenario's
// points from the seed of the run's design (plan.go: under order steps,
// repetitions as blocks with the steps, the modes at each step and the
// connection variants and placements in a seeded random order; under order
// modes, one mode at every step after the other), then walks the plan over
// a cluster — setting and verifying a mode when the next point needs
// another, scaling and waiting until programmed when it needs another
// step, running the load (its warm-up inside the same process) at the
// point's placement while the client node is observed — and appends every
// point to the results directory as soon as it is measured. Resume (the
// same plan from the recorded seed, points already on disk skipped) and
// validity (kube-proxy alive and in the mode) are the engine's too.
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
