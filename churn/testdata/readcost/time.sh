#!/bin/bash
# Times the churn readers' commands against N Services x E endpoints in
# kube-proxy v1.36's layout (gen.py), in a scratch network namespace:
#   sudo /work/bin/q unshare -n churn/testdata/readcost/time.sh 10000 10
# Nothing outside the namespace is touched; files go to a temp directory.
set -e
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
read VIP SPN SVC NCH < <(python3 "$here/gen.py" "$1" "$2")
t() {
	local s e
	s=$(date +%s.%N)
	"$@" > out.txt 2>&1 || true
	e=$(date +%s.%N)
	printf "%-70s %8.1f ms %9d bytes\n" "$*" "$(echo "($e-$s)*1000" | bc)" "$(wc -c < out.txt)"
}
t nft -f nft.in
t iptables-restore ipt.in
for i in 1 2 3; do
	t nft list map ip kube-proxy service-ips
	t nft list chain ip kube-proxy "$NCH"
	t nft get element ip kube-proxy service-ips "{ $VIP . tcp . 80 }"
	t iptables -w -t nat -S KUBE-SERVICES
	t iptables -w -t nat -S "$SVC"
done
t nft list table ip kube-proxy
t iptables-save -t nat
