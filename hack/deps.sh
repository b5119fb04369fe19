#!/usr/bin/env bash
# Installs what kpbench's build and lab need on a Debian machine (what
# `make bench` needs, and nothing more, so that a fresh machine measures
# sooner). With --vm also what the lab's VM client node needs (qemu, a
# distribution kernel with IP_VS as modules, a static busybox, ipvsadm):
# `make test` and `make bench-vm` ask for it. With --test what only the tests
# need (chromium, for the report's browser tests, and what the kind provider
# needs on a machine without Docker or a registry: podman with runc and
# netavark, and mmdebstrap for `kpbench image node`; --kind asks for only
# those). Idempotent and quick when
# everything is present. With --bpf, only what `make generate` needs to
# rebuild the kernel probe's BPF objects (clang-16: the generated objects are
# committed, so `go build` needs no clang). Needs root for packages; as
# another user it only reports what is missing.
set -euo pipefail
vm=
bpf=
tests=
kind=
for arg in "$@"; do
  case "$arg" in
    --vm) vm=1 ;;
    --test) tests=1; kind=1 ;;
    --kind) kind=1 ;;
    --bpf) bpf=1 ;;
    *) echo "usage: $0 [--vm] [--test] [--kind] | --bpf" >&2; exit 2 ;;
  esac
done

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
  [git]=git
)
if [ -n "$tests" ]; then
  # The report's browser tests render report.html (make perf installs wrk
  # itself, in hack/perf-loadgen.sh).
  want[chromium]=chromium
fi
# Packages without a command on PATH, checked with dpkg.
want_pkgs=()
if [ -n "$kind" ]; then
  # kind's nodes through podman (KIND_EXPERIMENTAL_PROVIDER=podman) with
  # runc (crun refuses hybrid cgroups), netavark and aardvark-dns (the
  # nodes resolve each other's names), and mmdebstrap for the offline node
  # image's Debian root filesystem.
  want[podman]=podman
  want[runc]=runc
  want[mmdebstrap]=mmdebstrap
  want_pkgs+=(netavark aardvark-dns)
fi
if [ -n "$vm" ]; then
  # kpbench's IPVS checks and rule counts, run inside the guest.
  want[ipvsadm]=ipvsadm
  # The lab's VM client node (--node vm): qemu boots a guest kernel.
  want[qemu-system-x86_64]=qemu-system-x86
fi
if [ -n "$bpf" ]; then
  # The one clang the committed objects were generated with: another
  # version may emit other bytes, and `make verify` compares them.
  want=([clang-16]=clang-16 [llvm-strip-16]=llvm-16)
  want_pkgs=()
fi
missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
for pkg in "${want_pkgs[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$pkg")
done
if [ -n "$vm" ]; then
  # The VM client node's guest: a static busybox for its initramfs and a
  # distribution kernel with its modules (IP_VS among them).
  bb=$(LC_ALL=C ldd /bin/busybox 2>&1 || true)
  if [ ! -x /bin/busybox ] || [[ "$bb" != *"not a dynamic"* ]]; then
    missing+=(busybox-static)
  fi
  have_kernel=
  for k in /boot/vmlinuz-*; do
    [ -e "$k" ] && [ -e "/lib/modules/${k#/boot/vmlinuz-}/modules.dep" ] && have_kernel=1
  done
  [ -n "$have_kernel" ] || missing+=(linux-image-amd64)
fi
# de-duplicate
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages (install as root): ${missing[*]}" >&2
  else
    echo "deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # INITRD=No: the guest boots kpbench's own initramfs, so skip the
    # kernel package's (slow) update-initramfs.
    INITRD=No apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
go mod download
