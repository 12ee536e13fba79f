package offload

import (
	"encoding/binary"

	"github.com/vxland/vxland/checksum"
)

const (
	ethHdrLen  = 14
	vlanHdrLen = 4

	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100 // 802.1Q C-tag
	etherTypeQinQ = 0x88a8 // 802.1ad S-tag

	protoTCP = 6
	protoUDP = 17

	ipv4MinHdrLen = 20
	ipv6HdrLen    = 40
	tcpMinHdrLen  = 20
	udpHdrLen     = 8

	tcpCsumOffset = 16
	udpCsumOffset = 6

	tcpFlagFIN = 0x01
	tcpFlagSYN = 0x02
	tcpFlagRST = 0x04
	tcpFlagPSH = 0x08
	tcpFlagACK = 0x10
	tcpFlagURG = 0x20
	tcpFlagECE = 0x40
	tcpFlagCWR = 0x80

	// maxIPLen is the largest IPv4 total length (and the largest IPv6
	// payload length without a jumbogram option).
	maxIPLen = 65535
)

// L4Info describes the layout of an Ethernet frame carrying IPv4 or IPv6 and
// TCP or UDP. All offsets count from the start of the Ethernet header.
type L4Info struct {
	// L3Off is the offset of the IP header: 14, or 18 behind one VLAN tag.
	L3Off int
	// VLAN reports whether one 802.1Q (0x8100) or 802.1ad (0x88a8) tag was
	// skipped.
	VLAN bool
	// EtherType is the ethertype of the IP packet (0x0800 or 0x86dd),
	// behind the VLAN tag if there is one.
	EtherType uint16
	// IPVersion is 4 or 6.
	IPVersion int
	// IPHdrLen is the IP header length: 20..60 for IPv4, 40 for IPv6.
	IPHdrLen int
	// IPLen is the IP packet length from the IP header: the IPv4 total
	// length, or 40 plus the IPv6 payload length. Bytes of the frame past
	// L3Off+IPLen (Ethernet padding) are not part of the packet.
	IPLen int
	// Proto is the transport protocol: 6 (TCP) or 17 (UDP).
	Proto uint8
	// L4Off is the offset of the TCP/UDP header (virtio csum_start).
	L4Off int
	// L4HdrLen is the TCP header length with options (data offset * 4), or
	// 8 for UDP.
	L4HdrLen int
}

// End returns the offset just past the IP packet: L3Off + IPLen.
func (i *L4Info) End() int { return i.L3Off + i.IPLen }

// L4Len returns the length of the transport header plus payload, the length
// that enters the pseudo-header.
func (i *L4Info) L4Len() int { return i.L3Off + i.IPLen - i.L4Off }

// PayloadOff returns the offset of the transport payload, i.e. the length of
// all headers (what a virtio-net header's HdrLen describes).
func (i *L4Info) PayloadOff() int { return i.L4Off + i.L4HdrLen }

// CsumOffset returns the position of the checksum field within the transport
// header: 16 for TCP, 6 for UDP (virtio csum_offset).
func (i *L4Info) CsumOffset() int {
	if i.Proto == protoTCP {
		return tcpCsumOffset
	}
	return udpCsumOffset
}

// pseudo returns the unfolded pseudo-header sum for a transport length of
// l4len bytes. frame must be the frame info describes.
func (i *L4Info) pseudo(frame []byte, l4len int) uint64 {
	if i.IPVersion == 4 {
		ip := frame[i.L3Off:]
		return checksum.PseudoV4(ip[12:16], ip[16:20], i.Proto, l4len)
	}
	ip := frame[i.L3Off:]
	return checksum.PseudoV6(ip[8:24], ip[24:40], i.Proto, l4len)
}

// seed returns the pseudo-header seed for the frame's own transport length:
// the value a CHECKSUM_PARTIAL sender leaves in the checksum field.
func (i *L4Info) seed(frame []byte) uint16 {
	return checksum.Fold(i.pseudo(frame, i.L4Len()))
}

// ParseL4 locates the IP and TCP/UDP headers of an Ethernet frame. It skips at
// most one VLAN tag (0x8100 or 0x88a8) and accepts:
//
//   - IPv4 with any header length, that is not a fragment (MF clear, offset
//     zero); the IPv4 header checksum is not verified;
//   - IPv6 whose fixed header is followed directly by TCP or UDP: extension
//     headers and jumbograms (payload length 0) are not supported;
//   - TCP with a data offset of 5..15 words within the packet, or UDP whose
//     length field equals the IP payload length.
//
// The IP length must fit in the frame; trailing bytes (padding) are allowed.
// ok is false for anything else. ParseL4 never reads out of bounds.
func ParseL4(frame []byte) (info L4Info, ok bool) {
	if len(frame) < ethHdrLen {
		return info, false
	}
	l3 := ethHdrLen
	et := binary.BigEndian.Uint16(frame[12:14])
	if et == etherTypeVLAN || et == etherTypeQinQ {
		if len(frame) < ethHdrLen+vlanHdrLen {
			return info, false
		}
		info.VLAN = true
		l3 += vlanHdrLen
		et = binary.BigEndian.Uint16(frame[16:18])
	}
	info.L3Off = l3
	info.EtherType = et
	switch et {
	case etherTypeIPv4:
		if len(frame) < l3+ipv4MinHdrLen {
			return info, false
		}
		ip := frame[l3:]
		if ip[0]>>4 != 4 {
			return info, false
		}
		hl := int(ip[0]&0x0f) * 4
		tot := int(binary.BigEndian.Uint16(ip[2:4]))
		if hl < ipv4MinHdrLen || tot < hl || l3+tot > len(frame) {
			return info, false
		}
		// MF set or a non-zero fragment offset: a fragment.
		if binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
			return info, false
		}
		info.IPVersion = 4
		info.IPHdrLen = hl
		info.IPLen = tot
		info.Proto = ip[9]
	case etherTypeIPv6:
		if len(frame) < l3+ipv6HdrLen {
			return info, false
		}
		ip := frame[l3:]
		if ip[0]>>4 != 6 {
			return info, false
		}
		pl := int(binary.BigEndian.Uint16(ip[4:6]))
		if pl == 0 || l3+ipv6HdrLen+pl > len(frame) {
			return info, false
		}
		info.IPVersion = 6
		info.IPHdrLen = ipv6HdrLen
		info.IPLen = ipv6HdrLen + pl
		info.Proto = ip[6]
	default:
		return info, false
	}
	info.L4Off = l3 + info.IPHdrLen
	l4len := info.IPLen - info.IPHdrLen
	switch info.Proto {
	case protoTCP:
		if l4len < tcpMinHdrLen {
			return info, false
		}
		thl := int(frame[info.L4Off+12]>>4) * 4
		if thl < tcpMinHdrLen || thl > l4len {
			return info, false
		}
		info.L4HdrLen = thl
	case protoUDP:
		if l4len < udpHdrLen {
			return info, false
		}
		if int(binary.BigEndian.Uint16(frame[info.L4Off+4:info.L4Off+6])) != l4len {
			return info, false
		}
		info.L4HdrLen = udpHdrLen
	default:
		return info, false
	}
	return info, true
}
