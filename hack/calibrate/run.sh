#!/usr/bin/env bash
# A/A calibration of `kpbench compare` on the lab: RUNS runs of one build
# with one scenario (default: hack/calibrate/nightly-aa.yaml), then
# `kpbench calibrate` over them. Needs root (the lab), bin/kpbench built.
# Usage: hack/calibrate/run.sh [RUNS] [SCENARIO] [OUT]
set -euo pipefail
runs=${1:-3}
scenario=${2:-hack/calibrate/nightly-aa.yaml}
out=${3:-results/calibration}
mkdir -p "$out"
for i in $(seq 1 "$runs"); do
  echo "calibration run $i of $runs" >&2
  bin/kpbench run -f "$scenario" --out "$out"
done
bin/kpbench calibrate "$out"/*/
