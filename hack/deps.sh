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
  # kpbench's IPVS checks and rule counts.
  [ipvsadm]=ipvsadm
  # The lab's VM client node (--node vm): qemu boots a guest kernel.
  [qemu-system-x86_64]=qemu-system-x86
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
