package offload

import (
	"encoding/binary"

	"github.com/vxland/vxland/checksum"
	"github.com/vxland/vxland/inner"
)

// A note on seeds. A sender using checksum offload (CHECKSUM_PARTIAL) stores
// the folded, uncomplemented pseudo-header sum in the transport checksum
// field: th->check = ~tcp_v4_check(len, saddr, daddr, 0) for TCP and
// uh->check = ~csum_tcpudp_magic(saddr, daddr, len, IPPROTO_UDP, 0) in
// udp4_hwcsum (and the csum_ipv6_magic equivalents). The device then sums
// from csum_start to the end, the field included, and stores the complement
// of the folded sum, replacing a result of 0 by 0xffff (CSUM_MANGLED_0, see
// skb_checksum_help).
//
// The pseudo-header contains a non-zero protocol number, so its folded sum is
// never 0: a seed is always in 1..0xffff, and 0xffff is a possible seed. A UDP
// checksum of 0 ("no checksum" over IPv4) is therefore never taken for a seed.
//
// If the field F equals the seed S, summing the L4 bytes with F in place is
// the same as summing them with the field zeroed and adding the
// pseudo-header, so ^Fold(Sum(l4)) is the correct checksum. This holds even
// when F happens to be a complete checksum that equals S by coincidence (it is
// then recomputed to the same value), so recognising a seed needs no pass over
// the payload and completing it needs exactly one.

// seeded reports whether the frame's L4 checksum field holds the
// pseudo-header seed. info must describe frame and have Transport set.
func seeded(frame []byte, info *inner.Layout) bool {
	at := info.L4Off + info.CsumOffset()
	f := binary.BigEndian.Uint16(frame[at : at+2])
	if f == 0 {
		return false
	}
	return f == seed(frame, info)
}

// verifyL4 reports whether the frame's TCP/UDP checksum verifies (one pass
// over the transport header and payload). A UDP checksum of 0 (none) over
// IPv4 counts as valid.
func verifyL4(frame []byte, info *inner.Layout) bool {
	if info.Proto == protoUDP && info.IPVersion == 4 {
		at := info.L4Off + udpCsumOffset
		if frame[at] == 0 && frame[at+1] == 0 {
			return true
		}
	}
	s := checksum.Sum(frame[info.L4Off:info.End()], pseudo(frame, info, info.L4Len()))
	return checksum.Fold(s) == 0xffff
}

// putCsum stores the complemented fold of s at b[0:2], as a device does:
// a result of 0 is written as 0xffff (required for UDP, harmless for TCP).
func putCsum(b []byte, s uint64) {
	c := ^checksum.Fold(s)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b, c)
}

// CompleteAt completes a checksum its sender left partial (NEEDS_CSUM):
// the ones' complement sum from start to the end of the frame, seed
// included, stored at start+offset. It reports false, changing nothing,
// when the offsets lie outside the frame.
func CompleteAt(frame []byte, start, offset int) bool {
	if !csumInFrame(len(frame), start, offset) {
		return false
	}
	at := start + offset
	putCsum(frame[at:at+2], checksum.Sum(frame[start:], 0))
	return true
}

// csumInFrame reports whether a checksum at start+offset, summed from
// start, lies inside a frame of n bytes.
func csumInFrame(n, start, offset int) bool {
	return start >= 0 && offset >= 0 && start < n && start+offset+2 <= n
}

// ipv4HdrCsum recomputes the IPv4 header checksum of ip[:hl] in place.
func ipv4HdrCsum(ip []byte, hl int) {
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:12], ^checksum.Fold(checksum.Sum(ip[:hl], 0)))
}

// PartialChecksum reports whether frame, whose layout is l, is an IPv4/IPv6
// TCP or UDP frame the offloads handle (l.Transport) whose checksum field holds exactly the pseudo-header seed, the
// CHECKSUM_PARTIAL state a same-host kernel sender leaves behind. When ok,
// csumStart (the offset of the L4 header from the start of the Ethernet
// frame) and csumOffset (16 for TCP, 6 for UDP) are the values for a
// virtio-net header with FlagNeedsCsum, which hands the frame to a TAP in the
// state the sender had it.
//
// The test reads only the headers. A UDP checksum of 0 is never a seed (a
// seed cannot be 0); a seed of 0xffff is recognised. A complete checksum that
// equals the seed by coincidence is reported as a seed, which is harmless:
// completing it (in software or by the kernel) yields the same value.
func PartialChecksum(frame []byte, l *inner.Layout) (csumStart, csumOffset int, ok bool) {
	if !l.Transport || !seeded(frame, l) {
		return 0, 0, false
	}
	return l.L4Off, l.CsumOffset(), true
}

// CompleteChecksum fills in a seeded TCP/UDP checksum in software. If the
// frame's layout l has Transport set and its checksum field holds the pseudo-header seed,
// it sums the L4 header and payload once, with the seed in place (which
// stands in for the pseudo-header), and stores the complemented result (0
// written as 0xffff); it then returns true. Otherwise the frame is left
// untouched and it returns false: a checksum that is not a seed is either
// already complete or wrong, and neither case is improved by rewriting it.
//
// A frame whose checksum already verifies is never changed: if it is not a
// seed it is left alone, and if it also equals the seed the recomputed value
// is the same.
func CompleteChecksum(frame []byte, l *inner.Layout) bool {
	if !l.Transport || !seeded(frame, l) {
		return false
	}
	at := l.L4Off + l.CsumOffset()
	putCsum(frame[at:at+2], checksum.Sum(frame[l.L4Off:l.End()], 0))
	return true
}
