// Package inner decodes the layout of an inner Ethernet frame (the frame a
// TAP hands over for encapsulation, or the one a VXLAN datagram carries):
// where its L3 and L4 headers start, its VLAN tags, IP version, protocol and
// lengths. The data plane decodes each frame once into a Layout and hands it
// to every consumer (flow hash, outer TOS/TTL, ECN, segmentation,
// coalescing), so that no other package walks the headers again.
//
// Decode works in place on the caller's frame, never allocates and never
// reads outside the frame.
package inner

// Ethernet, IP and transport constants the layout is decoded with.
const (
	// EthHeaderLen is the length of an untagged Ethernet header.
	EthHeaderLen = 14
	// VLANTagLen is the length of one 802.1Q or 802.1ad tag.
	VLANTagLen = 4
	// MaxVLANTags is the number of VLAN tags Decode looks through.
	MaxVLANTags = 2

	// EtherTypeIPv4 is the ethertype of IPv4.
	EtherTypeIPv4 = 0x0800
	// EtherTypeIPv6 is the ethertype of IPv6.
	EtherTypeIPv6 = 0x86dd
	// EtherTypeVLAN is the TPID of an 802.1Q (C-)tag.
	EtherTypeVLAN = 0x8100
	// EtherTypeQinQ is the TPID of an 802.1ad (S-)tag.
	EtherTypeQinQ = 0x88a8

	// IPv4MinHeaderLen is the length of an IPv4 header without options.
	IPv4MinHeaderLen = 20
	// IPv6HeaderLen is the length of the fixed IPv6 header.
	IPv6HeaderLen = 40
	// TCPMinHeaderLen is the length of a TCP header without options.
	TCPMinHeaderLen = 20
	// UDPHeaderLen is the length of a UDP header.
	UDPHeaderLen = 8

	// ProtoTCP is the IP protocol number of TCP.
	ProtoTCP = 6
	// ProtoUDP is the IP protocol number of UDP.
	ProtoUDP = 17

	// MaxIPLen is the largest IPv4 total length (and the largest IPv6
	// payload length without a jumbogram option).
	MaxIPLen = 65535
)

// IPv6 extension headers Decode skips on the way to the upper-layer header.
const (
	protoHopByHop = 0
	protoRouting  = 43
	protoDestOpts = 60
	// maxIPv6Ext bounds the IPv6 extension headers Decode skips.
	maxIPv6Ext = 3
)

// Layout is the decoded layout of an Ethernet frame. All offsets count from
// the first byte of the Ethernet header and, when non-zero, are at most
// len(frame) of the frame it was decoded from. The zero Layout describes a
// frame shorter than an Ethernet header. A Layout is only meaningful with
// the frame it was decoded from; rewriting addresses, TOS/ECN or checksums
// in place does not change it.
type Layout struct {
	// EtherType is the ethertype behind the VLAN tags that were skipped
	// (for a frame cut inside a tag, that tag's TPID).
	EtherType uint16
	// VLANs is the number of VLAN tags skipped: 0 to MaxVLANTags.
	VLANs uint8
	// IPVersion is 4 or 6 when EtherType is IPv4 or IPv6 and the fixed IP
	// header (20 or 40 bytes) is in the frame, else 0. Like the kernel's
	// ECN helpers it trusts the ethertype: the version field is checked
	// only for Transport.
	IPVersion uint8
	// Proto is the upper-layer protocol when IPVersion != 0: the IPv4
	// protocol, or the IPv6 next header after skipping up to three
	// hop-by-hop, routing and destination options headers (when a walk
	// stops early, the extension header it stopped at).
	Proto uint8
	// Frag reports an IPv4 fragment (MF set or a non-zero offset).
	Frag bool
	// Transport reports a frame the offloads can work on: IPv4 with a valid
	// version and header length, not a fragment, or IPv6 with the
	// transport header right behind the fixed header and a non-zero
	// payload length; an IP length that fits in the frame (trailing
	// padding allowed); and TCP with a data offset within the packet or
	// UDP whose length field equals the IP payload length.
	Transport bool
	// L3Off is the offset of the header the ethertype announces: 14, 18
	// or 22 behind zero, one or two tags (0 in the zero Layout).
	L3Off int
	// IPHdrLen is, when IPVersion != 0, the IPv4 header length from the
	// IHL field (possibly below 20 in a bad header), or 40 plus the IPv6
	// extension headers skipped.
	IPHdrLen int
	// IPLen is, when IPVersion != 0, the IP packet length the header
	// claims: the IPv4 total length, or 40 plus the IPv6 payload length.
	// It fits in the frame when Transport is set.
	IPLen int
	// L4Off is L3Off + IPHdrLen when that is within the frame (and, for
	// IPv4, IHL >= 5), else 0.
	L4Off int
	// L4HdrLen is, when Transport is set, the TCP header length with
	// options or 8 for UDP.
	L4HdrLen int
}

// Decode fills l with the layout of frame. It looks through up to
// MaxVLANTags VLAN tags, 802.1Q (0x8100) or 802.1ad (0x88a8) in any order:
// the two tags the kernel's flow dissector keys on (VLAN and CVLAN), the
// depth a QinQ frame has. A third tag is not looked through: such a frame is
// not IP to any consumer. Decode never allocates and never reads outside
// frame.
func (l *Layout) Decode(frame []byte) {
	*l = Layout{}
	if len(frame) < EthHeaderLen {
		return
	}
	et := be16(frame[12:])
	off := 12
	for l.VLANs < MaxVLANTags && (et == EtherTypeVLAN || et == EtherTypeQinQ) {
		if len(frame) < off+VLANTagLen+2 {
			break
		}
		off += VLANTagLen
		et = be16(frame[off:])
		l.VLANs++
	}
	l.EtherType = et
	l3 := off + 2
	l.L3Off = l3
	switch et {
	case EtherTypeIPv4:
		if !l.decodeIPv4(frame) {
			return
		}
	case EtherTypeIPv6:
		if !l.decodeIPv6(frame) {
			return
		}
	default:
		return
	}
	l4len := l.IPLen - l.IPHdrLen
	switch l.Proto {
	case ProtoTCP:
		if l4len < TCPMinHeaderLen {
			return
		}
		thl := int(frame[l.L4Off+12]>>4) * 4
		if thl < TCPMinHeaderLen || thl > l4len {
			return
		}
		l.L4HdrLen = thl
	case ProtoUDP:
		if l4len < UDPHeaderLen || int(be16(frame[l.L4Off+4:])) != l4len {
			return
		}
		l.L4HdrLen = UDPHeaderLen
	default:
		return
	}
	l.Transport = true
}

// decodeIPv4 decodes the IPv4 header at L3Off. It reports whether the
// packet may carry a transport header the offloads accept.
func (l *Layout) decodeIPv4(frame []byte) bool {
	l3 := l.L3Off
	if len(frame) < l3+IPv4MinHeaderLen {
		return false
	}
	ip := frame[l3:]
	l.IPVersion = 4
	l.IPHdrLen = int(ip[0]&0x0f) * 4
	l.IPLen = int(be16(ip[2:]))
	l.Proto = ip[9]
	l.Frag = be16(ip[6:])&0x3fff != 0
	if l.IPHdrLen < IPv4MinHeaderLen || l3+l.IPHdrLen > len(frame) {
		return false
	}
	l.L4Off = l3 + l.IPHdrLen
	return ip[0]>>4 == 4 && l.IPLen >= l.IPHdrLen && l3+l.IPLen <= len(frame) && !l.Frag
}

// decodeIPv6 decodes the IPv6 header at L3Off and skips extension headers.
// It reports whether the packet may carry a transport header the offloads
// accept (none skipped).
func (l *Layout) decodeIPv6(frame []byte) bool {
	l3 := l.L3Off
	if len(frame) < l3+IPv6HeaderLen {
		return false
	}
	ip := frame[l3:]
	l.IPVersion = 6
	pl := int(be16(ip[4:]))
	l.IPLen = IPv6HeaderLen + pl
	proto, off := ip[6], IPv6HeaderLen
	for i := 0; i < maxIPv6Ext && (proto == protoHopByHop || proto == protoRouting || proto == protoDestOpts); i++ {
		if len(ip) < off+8 { // extension headers are at least 8 bytes long
			break
		}
		proto, off = ip[off], off+(int(ip[off+1])+1)*8
	}
	l.Proto = proto
	l.IPHdrLen = off
	if l3+off > len(frame) {
		return false
	}
	l.L4Off = l3 + off
	return ip[0]>>4 == 6 && pl != 0 && off == IPv6HeaderLen && l3+l.IPLen <= len(frame)
}

// End returns the offset just past the IP packet: L3Off + IPLen.
func (l *Layout) End() int { return l.L3Off + l.IPLen }

// L4Len returns the length of the transport header plus payload, the length
// that enters the pseudo-header.
func (l *Layout) L4Len() int { return l.L3Off + l.IPLen - l.L4Off }

// PayloadOff returns the offset of the transport payload, i.e. the length of
// all headers (what a virtio-net header's HdrLen describes). Meaningful when
// Transport is set.
func (l *Layout) PayloadOff() int { return l.L4Off + l.L4HdrLen }

// CsumOffset returns the position of the checksum field within the transport
// header: 16 for TCP, 6 for UDP (virtio csum_offset).
func (l *Layout) CsumOffset() int {
	if l.Proto == ProtoTCP {
		return 16
	}
	return 6
}

// TruncatedIP reports an untagged IPv4 or IPv6 frame too short for its fixed
// IP header. The kernel's vxlan receive path drops those
// (pskb_inet_may_pull on the protocol eth_type_trans found, which does not
// look through VLAN tags) before it looks at ECN.
func (l *Layout) TruncatedIP() bool {
	return l.VLANs == 0 && l.IPVersion == 0 && (l.EtherType == EtherTypeIPv4 || l.EtherType == EtherTypeIPv6)
}

func be16(b []byte) uint16 {
	_ = b[1]
	return uint16(b[0])<<8 | uint16(b[1])
}
