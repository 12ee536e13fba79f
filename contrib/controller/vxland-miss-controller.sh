#!/bin/sh
# vxland-miss-controller.sh: a minimal control plane for a vxland device
# running with --proxy --l2miss --l3miss (no flooding at all). It follows
# `vxlanctl monitor` and answers each miss from a directory file whose
# lines read
#
#     IP  MAC  VTEP        e.g.  203.0.113.21 02:00:5e:10:00:21 192.0.2.2
#
# l3miss IP  -> vxlanctl neigh replace IP lladdr MAC; fdb replace MAC dst VTEP
# l2miss MAC -> vxlanctl fdb replace MAC dst VTEP
#
# The kernel version of the same loop reads `ip monitor neigh` ("miss"
# lines) and runs ip neigh / bridge fdb. Usage:
#
#     vxland-miss-controller.sh DEV DIRECTORY-FILE
set -eu
dev=$1
dir=$2
vxlanctl monitor dev "$dev" | while read -r event what _; do
	case $event in
	l3miss)
		entry=$(awk -v ip="$what" '$1 == ip { print $2, $3; exit }' "$dir")
		[ -n "$entry" ] || continue
		set -- $entry
		vxlanctl fdb replace "$1" dev "$dev" dst "$2"
		vxlanctl neigh replace "$what" lladdr "$1" dev "$dev"
		echo "l3miss $what: $1 at $2"
		;;
	l2miss)
		vtep=$(awk -v mac="$what" 'tolower($2) == tolower(mac) { print $3; exit }' "$dir")
		[ -n "$vtep" ] || continue
		vxlanctl fdb replace "$what" dev "$dev" dst "$vtep"
		echo "l2miss $what: at $vtep"
		;;
	esac
done
