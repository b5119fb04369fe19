#!/usr/bin/env bash
# Side-by-side comparison of kpbench load with fortio and wrk on loopback
# (make perf calls it). Installs the pinned fortio from the Go module proxy
# and wrk from Debian when they are missing. Extra arguments go to the Go
# program (e.g. --reps 1 --duration 2s).
set -euo pipefail
cd "$(dirname "$0")/.."
FORTIO_VERSION=v1.66.0 # newer versions do not install from the module proxy
gobin="$(go env GOPATH)/bin"
if ! command -v fortio >/dev/null && [ ! -x "$gobin/fortio" ]; then
  echo "perf-loadgen: installing fortio $FORTIO_VERSION" >&2
  go install "fortio.org/fortio@$FORTIO_VERSION"
fi
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "perf-loadgen: wrk is missing (apt-get install wrk)" >&2
    exit 1
  fi
fi
[ -x bin/kpbench ] || CGO_ENABLED=0 go build -trimpath -o bin/kpbench ./cmd/kpbench
exec go run ./hack/perf-loadgen --kpbench bin/kpbench "$@"
