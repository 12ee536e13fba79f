package encap

import "github.com/vxland/vxland/inner"

// ECN codepoints: the low two bits of the IPv4 TOS byte and of the IPv6
// traffic class.
const (
	ecnNotECT = 0
	ecnECT1   = 1
	ecnECT0   = 2
	ecnCE     = 3
	ecnMask   = 3
)

// dsField returns the DS byte (IPv4 TOS, IPv6 traffic class) of the IP
// header at frame[off:].
func dsField(frame []byte, version, off int) uint8 {
	if version == 4 {
		return frame[off+1]
	}
	return frame[off]<<4 | frame[off+1]>>4
}

// OuterTOS returns the TOS byte of the outer IP header for the inner frame.
// Its DSCP is the inner DS field when inherit is set ("tos inherit"; 0 when
// the inner frame is not IP), else tos. Its ECN field follows the kernel's
// INET_ECN_encapsulate: a copy of the inner ECN field, except that inner CE
// leaves as ECT(0) (RFC 3168 full functionality; RFC 6040 normal mode would
// copy CE, and decapsulation ends with CE either way). A non-IP inner frame
// leaves as Not-ECT. VLAN-tagged inner frames are looked through; l is
// the frame's layout.
func OuterTOS(frame []byte, l *inner.Layout, tos uint8, inherit bool) uint8 {
	var ds uint8
	if l.IPVersion != 0 {
		ds = dsField(frame, int(l.IPVersion), l.L3Off)
	}
	if inherit {
		tos = ds
	}
	tos &^= ecnMask
	if ds&ecnMask == ecnCE {
		return tos | ecnECT0
	}
	return tos | ds&ecnMask
}

// DecapECN combines the ECN field of the outer header, whose TOS or traffic
// class byte is outerTOS, into the inner frame in place, as the kernel's
// INET_ECN_decapsulate does (RFC 6040 section 4.2):
//
//	inner \ outer  Not-ECT  ECT(0)   ECT(1)   CE
//	Not-ECT        Not-ECT  Not-ECT  Not-ECT  drop
//	ECT(0)         ECT(0)   ECT(0)   ECT(1)   CE
//	ECT(1)         ECT(1)   ECT(1)   ECT(1)   CE
//	CE             CE       CE       CE       CE
//
// It returns false when the frame must be dropped (count ReasonECN). An IPv4
// header checksum is updated incrementally with the kernel's arithmetic; an
// IPv6 header has none. Frames that are not IPv4 or IPv6 with a complete
// fixed header, after the VLAN tags the layout l skipped, are left alone and
// accepted. Rewriting the ECN field leaves l valid.
func DecapECN(frame []byte, l *inner.Layout, outerTOS uint8) bool {
	version, off := int(l.IPVersion), l.L3Off
	if version == 0 {
		return true
	}
	outer := outerTOS & ecnMask
	in := dsField(frame, version, off) & ecnMask
	switch {
	case in == ecnNotECT:
		return outer != ecnCE
	case outer == ecnCE && in != ecnCE:
		setECN(frame, version, off, ecnCE)
	case outer == ecnECT1 && in == ecnECT0:
		setECN(frame, version, off, ecnECT1)
	}
	return true
}

// setECN rewrites the ECN field of the IP header at frame[off:].
func setECN(frame []byte, version, off int, ecn uint8) {
	if version == 6 {
		// The traffic class straddles bytes 0 and 1: ECN is 0x30 of byte 1.
		frame[off+1] = frame[off+1]&^(ecnMask<<4) | ecn<<4
		return
	}
	old := frame[off+1]
	tos := old&^ecnMask | ecn
	frame[off+1] = tos
	// The header word holding the TOS byte changed by d, so the checksum
	// changes by -d in ones' complement arithmetic (RFC 1624). Adding the
	// same constant as IP_ECN_set_ce / IP_ECN_set_ect1 (csum16_add) keeps
	// the result identical to the kernel's, including 0xffff versus 0.
	d := int(tos) - int(old)
	var add uint16
	if d >= 0 {
		add = ^uint16(d)
	} else {
		add = uint16(-d)
	}
	c := be16(frame[off+10:]) + add
	if c < add {
		c++ // end-around carry
	}
	frame[off+10] = byte(c >> 8)
	frame[off+11] = byte(c)
}

// InnerTTL returns the TTL of an inner IPv4 packet or the hop limit of an
// inner IPv6 one ("ttl inherit"), looking through the VLAN tags the layout
// l skipped; 0 when the frame carries neither.
func InnerTTL(frame []byte, l *inner.Layout) uint8 {
	switch l.IPVersion {
	case 4:
		return frame[l.L3Off+8]
	case 6:
		return frame[l.L3Off+7]
	}
	return 0
}
