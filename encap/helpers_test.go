package encap

import (
	"encoding/binary"
	"net/netip"

	"github.com/vxland/vxland/inner"
)

// Frame builders for the tests. Addresses come from the documentation ranges.

var (
	macA = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0a}
	macB = [6]byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x0b}
	v4A  = netip.MustParseAddr("192.0.2.1")
	v4B  = netip.MustParseAddr("198.51.100.2")
	v6A  = netip.MustParseAddr("2001:db8::1")
	v6B  = netip.MustParseAddr("2001:db8:1::2")
)

// eth builds an Ethernet frame. tpids, outermost first, add VLAN tags.
func eth(dst, src [6]byte, etherType uint16, payload []byte, tpids ...uint16) []byte {
	b := append(dst[:0:0], dst[:]...)
	b = append(b, src[:]...)
	for i, tpid := range tpids {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, uint16(100+i)) // TCI: VLAN 100, 101
	}
	b = binary.BigEndian.AppendUint16(b, etherType)
	return append(b, payload...)
}

// l4 builds the first 8 bytes of a TCP/UDP-like header: ports then filler.
func l4(sport, dport uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	return append(b, 0, 8, 0, 0)
}

// ipv4 builds an IPv4 header (IHL 5) with a valid checksum, then payload.
// frag is the flags+fragment offset field.
func ipv4(tos, proto uint8, src, dst netip.Addr, frag uint16, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0] = 0x45
	h[1] = tos
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	binary.BigEndian.PutUint16(h[4:], 0x1234)
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8] = 64
	h[9] = proto
	s, d := src.As4(), dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	binary.BigEndian.PutUint16(h[10:], ^onesSum(h))
	return append(h, payload...)
}

// ipv6 builds an IPv6 header, then payload.
func ipv6(tc uint8, flow uint32, next uint8, src, dst netip.Addr, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	binary.BigEndian.PutUint32(h, 6<<28|uint32(tc)<<20|flow&0xfffff)
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6] = next
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// onesSum is the folded ones' complement sum of b, computed from scratch.
func onesSum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// ipv4ChecksumOK reports whether the IPv4 header at b is complete and its
// checksum verifies.
func ipv4ChecksumOK(b []byte) bool {
	ihl := int(b[0]&0x0f) * 4
	return ihl >= 20 && len(b) >= ihl && onesSum(b[:ihl]) == 0xffff
}

// Constants of the inner frame the tests build with.
const (
	etherTypeIPv4 = inner.EtherTypeIPv4
	etherTypeIPv6 = inner.EtherTypeIPv6
	etherTypeVLAN = inner.EtherTypeVLAN
	etherTypeQinQ = inner.EtherTypeQinQ
	ipv4HeaderLen = inner.IPv4MinHeaderLen
	ipv6HeaderLen = inner.IPv6HeaderLen
	protoHopByHop = 0
	protoRouting  = 43
	protoDestOpts = 60
)

// The tests call the per-frame functions the way the data plane does: the
// layout decoded once, then handed over.

func flowHash(frame []byte) uint32 {
	var l inner.Layout
	l.Decode(frame)
	return FlowHash(frame, &l)
}

func outerTOS(frame []byte, tos uint8, inherit bool) uint8 {
	var l inner.Layout
	l.Decode(frame)
	return OuterTOS(frame, &l, tos, inherit)
}

func decapECN(frame []byte, outerTOS uint8) bool {
	var l inner.Layout
	l.Decode(frame)
	return DecapECN(frame, &l, outerTOS)
}

func innerTTL(frame []byte) uint8 {
	var l inner.Layout
	l.Decode(frame)
	return InnerTTL(frame, &l)
}
