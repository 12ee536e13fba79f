package encap

import (
	"math/bits"

	"github.com/vxland/vxland/inner"
)

// Seeds keep the key sets of IPv4, IPv6 and Ethernet apart.
const (
	seedIPv4 = 0x9e3779b9
	seedIPv6 = 0x7f4a7c15
	seedEth  = 0x85ebca77
)

// IP protocol numbers whose first L4 bytes FlowHash uses.
const (
	protoTCP     = 6
	protoUDP     = 17
	protoDCCP    = 33
	protoESP     = 50
	protoAH      = 51
	protoSCTP    = 132
	protoUDPLite = 136
)

// FlowHash returns a hash of the inner frame's flow for choosing the outer
// UDP source port (see SourcePort); l is the frame's layout (inner.Decode).
// The keys are, after the VLAN tags the layout skipped (whose IDs are not
// hashed):
//
//   - IPv4: addresses, protocol and the L4 ports (TCP, UDP, UDP-Lite, DCCP,
//     SCTP) or SPI (ESP, AH). Fragments, first or not, hash without ports as
//     in the kernel's skb_get_hash, so all pieces of a datagram take the same
//     path.
//   - IPv6: addresses, flow label, protocol and ports or SPI, after the
//     hop-by-hop, routing and destination options headers the layout
//     skipped (up to three). Any other extension header, including a
//     fragment header, ends the keys.
//   - anything else, or an IP header too short or with IHL < 5: the
//     destination and source MAC addresses and the ethertype, as the kernel
//     falls back to when it finds no flow.
//
// The hash is deterministic (no per-boot secret, unlike the kernel's) and
// well mixed (murmur3 rounds and finalizer); it is not symmetric and may be 0.
func FlowHash(frame []byte, l *inner.Layout) uint32 {
	if len(frame) < EthHeaderLen {
		return fmix(seedEth ^ uint32(len(frame)))
	}
	switch {
	case l.IPVersion == 4 && l.IPHdrLen >= inner.IPv4MinHeaderLen:
		ip := frame[l.L3Off:]
		var ports uint32
		if !l.Frag {
			ports = l4Ports(frame, l)
		}
		h := mix(seedIPv4, be32(ip[12:]))
		h = mix(h, be32(ip[16:]))
		h = mix(h, ports)
		h = mix(h, uint32(l.Proto))
		return fmix(h)
	case l.IPVersion == 6:
		ip := frame[l.L3Off:]
		h := uint32(seedIPv6)
		for i := 8; i < inner.IPv6HeaderLen; i += 4 {
			h = mix(h, be32(ip[i:]))
		}
		h = mix(h, be32(ip[0:])&0x000fffff) // flow label
		h = mix(h, l4Ports(frame, l))
		h = mix(h, uint32(l.Proto))
		return fmix(h)
	}
	h := mix(seedEth, be32(frame[0:]))
	h = mix(h, be32(frame[4:]))
	h = mix(h, be32(frame[8:]))
	h = mix(h, uint32(l.EtherType))
	return fmix(h)
}

// l4Ports returns the four bytes that identify the flow within the L4 header
// at l.L4Off: the port pair, or the SPI of ESP and AH. It returns 0 for
// other protocols or when the bytes are missing.
func l4Ports(frame []byte, l *inner.Layout) uint32 {
	off := l.L4Off
	if off == 0 {
		return 0
	}
	switch l.Proto {
	case protoTCP, protoUDP, protoDCCP, protoSCTP, protoUDPLite, protoESP:
	case protoAH:
		off += 4
	default:
		return 0
	}
	if len(frame) < off+4 {
		return 0
	}
	return be32(frame[off:])
}

// mix adds the word k to the running hash h (a murmur3 round).
func mix(h, k uint32) uint32 {
	k *= 0xcc9e2d51
	k = bits.RotateLeft32(k, 15)
	k *= 0x1b873593
	h ^= k
	h = bits.RotateLeft32(h, 13)
	return h*5 + 0xe6546b64
}

// fmix is murmur3's finalizer: every input bit affects every output bit.
func fmix(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// SourcePort maps a flow hash to an outer UDP source port in [lo, hi) with
// the kernel's udp_flow_src_port arithmetic: the hash is folded with
// h ^= h<<16 and scaled by (h * (hi-lo)) >> 32. The kernel substitutes the
// local port range when lo >= hi ("srcport 0 0"); the caller must do that
// before calling, and SourcePort returns lo for such a range.
func SourcePort(hash uint32, lo, hi uint16) uint16 {
	if lo >= hi {
		return lo
	}
	hash ^= hash << 16
	return uint16(uint64(hash)*uint64(hi-lo)>>32) + lo
}
