// Package sweep is the engine of `kpbench run`: it walks a scenario over a
// cluster — for each mode, set and verify it; for each Service step, scale
// and wait until programmed; for each connection variant and repetition,
// warm up, then load and observe the client node over the same window —
// and appends every point to the results directory as soon as it is
// measured. With the scenario's order "steps" the two outer loops swap:
// each step is scaled once and every mode measured there.
//
// The engine talks to the rest of kpbench through the small interfaces in
// interfaces.go (Scaler, LoadRunner, Observer, RuleCounter), so it is
// tested with fakes and each provider plugs in its own implementations:
//   - local.go: the client node is on this machine (the lab): the load
//     client runs in the node's network namespace and the node is observed
//     from /proc; also the Service scaler adapter every provider uses;
//   - incluster.go: the client node is elsewhere (kind, existing): load
//     clients run as Jobs and the node is observed by the CPU agent pod;
//   - env.go: what run.json records about this machine.
package sweep
