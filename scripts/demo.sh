#!/usr/bin/env bash
# A self-contained vxland demo: two network namespaces joined by a veth
# "underlay"; vxland serves VNI 40 in one, the kernel's own vxlan driver in
# the other. Pings and a TCP transfer cross the overlay in both directions,
# then everything is removed. Usage: scripts/demo.sh [BINDIR]  (as root)
set -euo pipefail
bin=${1:-bin}
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces)"; exit 1; }
"$(dirname "$0")/deps.sh"
[ -x "$bin/vxland" ] || { echo "demo: $bin/vxland not built (make build)"; exit 1; }

a=vxdemo-$$-a b=vxdemo-$$-b
run=$(mktemp -d)
export VXLAND_RUNDIR=$run
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  rm -rf "$run"
}
trap cleanup EXIT INT TERM
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "underlay: $a 192.0.2.1 <-> $b 192.0.2.2 (veth)"
ip netns add "$a"; ip netns add "$b"
ip -n "$a" link add ul0 type veth peer ul0 netns "$b"
ip -n "$a" addr add 192.0.2.1/24 dev ul0; ip -n "$a" link set ul0 up; ip -n "$a" link set lo up
ip -n "$b" addr add 192.0.2.2/24 dev ul0; ip -n "$b" link set ul0 up; ip -n "$b" link set lo up

step "$b: kernel vxlan   ip link add vxlan0 type vxlan id 40 remote 192.0.2.1 dstport 4789"
ip -n "$b" link add vxlan0 type vxlan id 40 remote 192.0.2.1 local 192.0.2.2 dstport 4789 dev ul0
ip -n "$b" addr add 203.0.113.2/24 dev vxlan0; ip -n "$b" link set vxlan0 up

step "$a: vxland         vxland --vni 40 --remote 192.0.2.2 --addr 203.0.113.1/24 --up"
ip netns exec "$a" "$bin/vxland" --vni 40 --remote 192.0.2.2 --addr 203.0.113.1/24 --up &
pid=$!
for _ in $(seq 50); do
  ip -n "$a" link show vxland0 2>/dev/null | grep -q 'UP' && break; sleep 0.1
done

step "ping vxland -> kernel, then kernel -> vxland"
ip netns exec "$a" ping -c 3 -i 0.2 -W 2 203.0.113.2
ip netns exec "$b" ping -c 3 -i 0.2 -W 2 203.0.113.1

step "TCP: 200 MB each way with iperf3"
ip netns exec "$b" iperf3 -s -1 -D -B 203.0.113.2 >/dev/null; sleep 0.3
ip netns exec "$a" iperf3 -c 203.0.113.2 -n 200M -f g | grep -E 'sender|receiver'
ip netns exec "$b" iperf3 -s -1 -D -B 203.0.113.2 >/dev/null; sleep 0.3
ip netns exec "$a" iperf3 -c 203.0.113.2 -n 200M -f g -R | grep -E 'sender|receiver'

step "vxlanctl fdb show dev vxland0   (bridge fdb show dev vxlan0)"
ip netns exec "$a" "$bin/vxlanctl" fdb show dev vxland0
step "vxlanctl stats dev vxland0"
ip netns exec "$a" "$bin/vxlanctl" stats dev vxland0 | grep -v ' 0$' || true

step "done: stopping vxland and removing the namespaces"
