#!/usr/bin/env bash
# Installs the Debian packages vxland's demo, tests and benchmarks use, when
# they are missing: iproute2 (ip, bridge), iputils-ping, iperf3, tcpdump,
# ethtool, setpriv (util-linux), make, etcd (etcd-server: cluster and flannel
# tests start their own), frr (the EVPN tests run zebra and bgpd). Needs root
# only when something must be installed.
set -euo pipefail
need=()
for pair in ip:iproute2 bridge:iproute2 ping:iputils-ping iperf3:iperf3 tcpdump:tcpdump ethtool:ethtool setpriv:util-linux make:make etcd:etcd-server etcdctl:etcd-client vtysh:frr; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root to install them)" >&2
  exit 1
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
