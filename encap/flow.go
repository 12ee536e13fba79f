package encap

import "math/bits"

// Seeds keep the key sets of IPv4, IPv6 and Ethernet apart.
const (
	seedIPv4 = 0x9e3779b9
	seedIPv6 = 0x7f4a7c15
	seedEth  = 0x85ebca77
)

// IP protocol numbers whose first L4 bytes FlowHash uses.
const (
	protoHopByHop = 0
	protoTCP      = 6
	protoUDP      = 17
	protoDCCP     = 33
	protoRouting  = 43
	protoESP      = 50
	protoAH       = 51
	protoDestOpts = 60
	protoSCTP     = 132
	protoUDPLite  = 136
)

// maxIPv6Ext bounds the IPv6 extension headers FlowHash skips.
const maxIPv6Ext = 3

// FlowHash returns a hash of the inner frame's flow for choosing the outer
// UDP source port (see SourcePort). The keys are, after up to two VLAN tags
// (whose IDs are not hashed):
//
//   - IPv4: addresses, protocol and the L4 ports (TCP, UDP, UDP-Lite, DCCP,
//     SCTP) or SPI (ESP, AH). Fragments, first or not, hash without ports as
//     in the kernel's skb_get_hash, so all pieces of a datagram take the same
//     path.
//   - IPv6: addresses, flow label, protocol and ports or SPI, after skipping
//     up to three hop-by-hop, routing and destination options headers. Any
//     other extension header, including a fragment header, ends the keys.
//   - anything else, or an IP header too short or with IHL < 5: the
//     destination and source MAC addresses and the ethertype, as the kernel
//     falls back to when it finds no flow.
//
// The hash is deterministic (no per-boot secret, unlike the kernel's) and
// well mixed (murmur3 rounds and finalizer); it is not symmetric and may be 0.
func FlowHash(frame []byte) uint32 {
	if len(frame) < EthHeaderLen {
		return fmix(seedEth ^ uint32(len(frame)))
	}
	etherType, off := l3(frame)
	switch etherType {
	case etherTypeIPv4:
		if h, ok := hashIPv4(frame[off:]); ok {
			return h
		}
	case etherTypeIPv6:
		if h, ok := hashIPv6(frame[off:]); ok {
			return h
		}
	}
	h := mix(seedEth, be32(frame[0:]))
	h = mix(h, be32(frame[4:]))
	h = mix(h, be32(frame[8:]))
	h = mix(h, uint32(etherType))
	return fmix(h)
}

func hashIPv4(ip []byte) (uint32, bool) {
	if len(ip) < ipv4HeaderLen {
		return 0, false
	}
	ihl := int(ip[0]&0x0f) * 4
	if ihl < ipv4HeaderLen {
		return 0, false
	}
	proto := ip[9]
	var ports uint32
	if be16(ip[6:])&0x3fff == 0 { // MF clear and offset 0: not a fragment
		ports = l4Ports(ip, ihl, proto)
	}
	h := mix(seedIPv4, be32(ip[12:]))
	h = mix(h, be32(ip[16:]))
	h = mix(h, ports)
	h = mix(h, uint32(proto))
	return fmix(h), true
}

func hashIPv6(ip []byte) (uint32, bool) {
	if len(ip) < ipv6HeaderLen {
		return 0, false
	}
	h := uint32(seedIPv6)
	for i := 8; i < ipv6HeaderLen; i += 4 {
		h = mix(h, be32(ip[i:]))
	}
	h = mix(h, be32(ip[0:])&0x000fffff) // flow label
	proto, off := ip[6], ipv6HeaderLen
	for i := 0; i < maxIPv6Ext && (proto == protoHopByHop || proto == protoRouting || proto == protoDestOpts); i++ {
		if len(ip) < off+8 { // extension headers are at least 8 bytes long
			break
		}
		proto, off = ip[off], off+(int(ip[off+1])+1)*8
	}
	h = mix(h, l4Ports(ip, off, proto))
	h = mix(h, uint32(proto))
	return fmix(h), true
}

// l4Ports returns the four bytes that identify the flow within the L4 header
// of protocol proto at b[off:]: the port pair, or the SPI of ESP and AH.
// It returns 0 for other protocols or when the bytes are missing.
func l4Ports(b []byte, off int, proto uint8) uint32 {
	switch proto {
	case protoTCP, protoUDP, protoDCCP, protoSCTP, protoUDPLite, protoESP:
	case protoAH:
		off += 4
	default:
		return 0
	}
	if len(b) < off+4 {
		return 0
	}
	return be32(b[off:])
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
