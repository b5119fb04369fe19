#!/usr/bin/env bash
# Installs what kpbench's build, tests and lab need on a Debian machine.
# Idempotent and quick when everything is present. Needs root for packages;
# as another user it only reports what is missing.
set -euo pipefail

# command -> Debian package
declare -A want=(
  [ip]=iproute2
  [iptables]=iptables
  [iptables-save]=iptables
  [nft]=nftables
  [conntrack]=conntrack
  # kube-proxy's ipvs mode needs ipset (and a kernel with IP_VS).
  [ipset]=ipset
  [taskset]=util-linux
  [nsenter]=util-linux
  [pgrep]=procps
  [wrk]=wrk
  [chromium]=chromium
  [git]=git
)
missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
# de-duplicate
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages (install as root): ${missing[*]}" >&2
  else
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
go mod download
