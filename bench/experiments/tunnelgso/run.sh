#!/bin/bash
# Interleaved single-stream TCP forward (A -> B) comparison:
#   K  kernel vxlan on both sides
#   VK vxland on A, kernel vxlan on B
#   P  the tunnel-GSO prototype on A (inner TAP + underlay TAP bridged with
#      the underlay veth), kernel vxlan on B
#   P2 the same with reads and writes in two goroutines (--pipeline 8)
#   PR the prototype writing to the underlay TAP as an IPv4 router port: the
#      host forwards the outer packets (ip_forward, accept_local, rp_filter 0)
#      and resolves the next hop itself
# Usage: run.sh VXLAND_BIN PROTO_BIN ROUNDS SECONDS OUTDIR [SYSTEMS...]
set -u
VXLAND=$1 PROTO=$2 ROUNDS=$3 SECS=$4 OUT=$5
shift 5
SYSTEMS=${*:-K VK P}
A=tgso-$$-a B=tgso-$$-b
mkdir -p "$OUT"

cleanup() {
	for ns in $A $B; do
		for p in $(ip netns pids $ns 2>/dev/null); do kill -9 $p 2>/dev/null; done
		ip netns del $ns 2>/dev/null
	done
}
trap cleanup EXIT

cpu_of() { # utime+stime in clock ticks
	awk '{print $14+$15}' /proc/$1/stat 2>/dev/null || echo 0
}

setup() { # $1 system
	cleanup
	ip netns add $A && ip netns add $B
	ip link add ula netns $A mtu 1500 type veth peer name ulb netns $B mtu 1500
	ip -n $A link set lo up; ip -n $B link set lo up
	ip -n $B addr add 192.0.2.2/24 dev ulb; ip -n $B link set ulb up
	# B's ACKs leave with complete checksums (a veth would otherwise hand the
	# prototype's plain UDP socket seeded ones); the same for every system.
	ip netns exec $B ethtool -K ulb tx off >/dev/null
	ip -n $B link add vx0 type vxlan id 40 remote 192.0.2.1 local 192.0.2.2 dstport 4789 dev ulb
	ip -n $B link set vx0 mtu 1450; ip -n $B addr add 203.0.113.2/24 dev vx0; ip -n $B link set vx0 up
	PID=
	case $1 in
	K)
		ip -n $A addr add 192.0.2.1/24 dev ula; ip -n $A link set ula up
		ip -n $A link add vx0 type vxlan id 40 remote 192.0.2.2 local 192.0.2.1 dstport 4789 dev ula
		ip -n $A link set vx0 mtu 1450; ip -n $A addr add 203.0.113.1/24 dev vx0; ip -n $A link set vx0 up
		;;
	VK)
		ip -n $A addr add 192.0.2.1/24 dev ula; ip -n $A link set ula up
		ip netns exec $A "$VXLAND" --vni 40 --remote 192.0.2.2 --local 192.0.2.1 --dstport 4789 \
			--tap tgsv$$ --mtu 1450 >"$OUT/vxland.log" 2>&1 &
		PID=$!
		for _ in $(seq 100); do ip -n $A link show tgsv$$ >/dev/null 2>&1 && break; sleep 0.05; done
		ip -n $A addr add 203.0.113.1/24 dev tgsv$$; ip -n $A link set tgsv$$ up
		;;
	P|P2)
		extra=; [ $1 = P2 ] && extra="--pipeline 8"
		# The underlay address moves to a bridge that holds the veth and the underlay TAP.
		ip -n $A link add br0 type bridge
		ip -n $A link set br0 address "$(cat /sys/class/net/ula/address 2>/dev/null || ip netns exec $A cat /sys/class/net/ula/address)"
		ip -n $A link set ula master br0; ip -n $A link set ula up
		ip -n $A addr add 192.0.2.1/24 dev br0; ip -n $A link set br0 up
		ip netns exec $A ping -c1 -W1 192.0.2.2 >/dev/null || ip netns exec $A ping -c1 -W1 192.0.2.2 >/dev/null
		MAC=$(ip -n $A neigh show 192.0.2.2 dev br0 | awk '{print $3}')
		ip netns exec $A "$PROTO" --inner tgi$$ --underlay tgu$$ --local 192.0.2.1 --remote 192.0.2.2 \
			--dst-mac "$MAC" $extra >"$OUT/proto.log" 2>&1 &
		PID=$!
		for _ in $(seq 100); do ip -n $A link show tgu$$ >/dev/null 2>&1 && break; sleep 0.05; done
		ip -n $A link set tgu$$ master br0
		ip -n $A link set tgu$$ up
		bridge -n $A link set dev tgu$$ flood off mcast_flood off bcast_flood off 2>/dev/null
		ip -n $A link set tgi$$ mtu 1450; ip -n $A addr add 203.0.113.1/24 dev tgi$$; ip -n $A link set tgi$$ up
		;;
	PR)
		ip -n $A addr add 192.0.2.1/24 dev ula; ip -n $A link set ula up
		ip netns exec $A "$PROTO" --inner tgi$$ --underlay tgu$$ --local 192.0.2.1 --remote 192.0.2.2 \
			>"$OUT/proto.log" 2>&1 &
		PID=$!
		for _ in $(seq 100); do ip -n $A link show tgu$$ >/dev/null 2>&1 && break; sleep 0.05; done
		# Forwarding is enabled on the TAP alone (what IPv4 checks is the input
		# device's); PR_SYSCTLS overrides for experiments (TAP = the underlay TAP).
		sc=${PR_SYSCTLS:-"conf.TAP.forwarding=1 conf.TAP.accept_local=1 conf.all.rp_filter=0 conf.TAP.rp_filter=0"}
		for kv in $sc; do ip netns exec $A sysctl -qw "net.ipv4.${kv//TAP/tgu$$}"; done
		ip -n $A link set tgu$$ up
		ip -n $A link set tgi$$ mtu 1450; ip -n $A addr add 203.0.113.1/24 dev tgi$$; ip -n $A link set tgi$$ up
		;;
	esac
	ip netns exec $B iperf3 -s -B 203.0.113.2 -D --rcv-timeout 10000 >/dev/null 2>&1
	for _ in $(seq 50); do ip netns exec $A ping -c1 -W1 203.0.113.2 >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "$1: overlay ping failed" >&2
	return 1
}

if [ -n "${HOLD:-}" ]; then # debugging: set up $SYSTEMS once and wait
	setup $SYSTEMS; echo "A=$A B=$B PID=$PID"; touch "$OUT/hold"
	while [ -e "$OUT/hold" ]; do sleep 1; done
	exit 0
fi

echo "round system gbps bytes retrans cpu_s cpu_s_per_GB iperf_snd_cpu% iperf_rcv_cpu%"
for r in $(seq "$ROUNDS"); do
	for s in $SYSTEMS; do
		setup $s || continue
		c0=0; [ -n "$PID" ] && c0=$(cpu_of $PID)
		ip netns exec $A iperf3 -c 203.0.113.2 -t "$SECS" -J --connect-timeout 5000 >"$OUT/r$r-$s.json" 2>&1
		c1=0; [ -n "$PID" ] && c1=$(cpu_of $PID)
		log=vxland; case $s in P*) log=proto;; esac
		[ -n "$PID" ] && kill -INT $PID && sleep 0.3 && cp "$OUT/$log.log" "$OUT/r$r-$s.log"
		tck=$(getconf CLK_TCK)
		jq -r --arg r $r --arg s $s --argjson c "$(( c1 - c0 ))" --argjson t $tck \
			'.end.sum_received as $x | .end.sum_sent as $y |
			 [$r, $s, ($x.bits_per_second/1e9*1000|round/1000), $x.bytes, $y.retransmits,
			  ($c/$t), (if $c > 0 then (($c/$t)/($x.bytes/1e9)*1000|round/1000) else 0 end),
			  (.end.cpu_utilization_percent.host_total|round), (.end.cpu_utilization_percent.remote_total|round)] | @tsv' \
			"$OUT/r$r-$s.json" || echo "$r $s failed: $(head -c 300 $OUT/r$r-$s.json)"
	done
done
