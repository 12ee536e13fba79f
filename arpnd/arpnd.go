// Package arpnd recognises ARP requests and IPv6 Neighbor Solicitations in
// Ethernet frames and builds the replies a VXLAN device with `proxy` answers
// them with, byte for byte as the Linux vxlan driver does (arp_reduce,
// neigh_reduce and vxlan_na_create in drivers/net/vxlan/vxlan_core.c).
//
// Parse decodes a frame once, in place, into a Request held by the caller;
// Reply writes the answer into a buffer the caller owns. Nothing here
// allocates.
package arpnd

import (
	"encoding/binary"
	"net/netip"

	"github.com/vxland/vxland/checksum"
)

// Frame layout constants.
const (
	ethLen      = 14
	etherARP    = 0x0806
	etherIPv6   = 0x86dd
	arpLen      = 28
	ipv6Len     = 40
	icmpv6Proto = 58
	nsLen       = 24 // ICMPv6 header (4), reserved (4), target (16)
	optSLLA     = 1  // source link-layer address option
	optTLLA     = 2  // target link-layer address option
	typeNS      = 135
	typeNA      = 136
)

// Reply sizes: what Reply writes.
const (
	// ARPReplyLen is the length of an ARP reply frame: Ethernet header
	// and the 28-byte ARP payload, not padded (the kernel's arp_create
	// does not pad either).
	ARPReplyLen = ethLen + arpLen
	// NAReplyLen is the length of a Neighbor Advertisement frame:
	// Ethernet, IPv6, the 24-byte NA and an 8-byte target link-layer
	// address option.
	NAReplyLen = ethLen + ipv6Len + nsLen + 8
	// MaxReplyLen is the largest reply Reply writes.
	MaxReplyLen = NAReplyLen
)

// Verdict is what a proxying device does with a frame.
type Verdict uint8

const (
	// Forward: neither ARP nor a Neighbor Solicitation; the frame goes on
	// as usual. The zero value.
	Forward Verdict = iota
	// Answer: a well-formed ARP request or Neighbor Solicitation; look
	// Request.Target up and answer it (unless Request.DAD), or consume it.
	Answer
	// Consume: ARP that is not a request for a unicast address (a reply,
	// a gratuitous announcement, a loopback or multicast target): taken
	// off the wire without an answer, as the kernel does.
	Consume
	// Invalid: a malformed ARP frame or Neighbor Solicitation (short,
	// wrong hardware or protocol length, bad ICMPv6 checksum or hop
	// limit, bad options): consumed, never answered.
	Invalid
)

// String names the verdict.
func (v Verdict) String() string {
	switch v {
	case Forward:
		return "forward"
	case Answer:
		return "answer"
	case Consume:
		return "consume"
	case Invalid:
		return "invalid"
	}
	return "verdict?"
}

// Request is a parsed ARP request or Neighbor Solicitation: what a reply
// needs, copied out of the frame so that the frame's buffer may be reused.
type Request struct {
	// V6 is set for a Neighbor Solicitation, clear for ARP.
	V6 bool
	// Target is the address asked for (ARP tip, NS target).
	Target netip.Addr
	// Sender is the asker's address (ARP sip, the NS's IPv6 source).
	Sender netip.Addr
	// ReplyTo is the Ethernet address the reply goes to: the ARP sender
	// hardware address, the NS's source link-layer address option, or
	// else the NS frame's Ethernet source.
	ReplyTo [6]byte
	// DAD marks a solicitation for duplicate address detection (source
	// ::). The kernel looks its target up as any other (an l3miss when
	// there is no entry) and answers to ::, which no host accepts; Reply
	// writes nothing for it.
	DAD bool
	// prio is the top four bits of the NS's traffic class, which the
	// kernel copies into the NA ("priority" in struct ipv6hdr).
	prio uint8
}

// IsCandidate reports cheaply whether frame may be ARP or a Neighbor
// Solicitation, so that the transmit path parses only those: an
// untagged ARP frame, or an untagged IPv6 frame whose next header is
// ICMPv6 with type 135.
func IsCandidate(frame []byte) bool {
	if len(frame) < ethLen {
		return false
	}
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherARP:
		return true
	case etherIPv6:
		return len(frame) >= ethLen+ipv6Len+1 && frame[ethLen+6] == icmpv6Proto && frame[ethLen+ipv6Len] == typeNS
	}
	return false
}

// Parse classifies frame and, for Answer, fills r. It reads frame only.
//
// ARP: every ARP frame is taken off the wire (Consume or Invalid) unless
// it is a request (hardware type Ethernet or IEEE 802, protocol IPv4,
// lengths 6 and 4) for a unicast address other than the sender's own.
// IPv6: an untagged frame whose IPv6 header is followed directly by an
// ICMPv6 Neighbor Solicitation (type 135, code 0) is checked as RFC 4861
// section 7.1.1 asks (hop limit 255, ICMPv6 length at least 24, a correct
// checksum, options of non-zero length inside the packet, a target that is
// not multicast); every other IPv6 frame is Forward, as in the kernel.
func Parse(frame []byte, r *Request) Verdict {
	if len(frame) < ethLen {
		return Forward
	}
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherARP:
		return parseARP(frame, r)
	case etherIPv6:
		return parseNS(frame, r)
	}
	return Forward
}

func parseARP(frame []byte, r *Request) Verdict {
	if len(frame) < ethLen+arpLen {
		return Invalid
	}
	a := frame[ethLen:]
	hrd := binary.BigEndian.Uint16(a[0:2])
	if (hrd != 1 && hrd != 6) || binary.BigEndian.Uint16(a[2:4]) != 0x0800 || a[4] != 6 || a[5] != 4 {
		return Invalid
	}
	if binary.BigEndian.Uint16(a[6:8]) != 1 { // ARPOP_REQUEST
		return Consume
	}
	sip := netip.AddrFrom4([4]byte(a[14:18]))
	tip := netip.AddrFrom4([4]byte(a[24:28]))
	if tip.IsLoopback() || tip.IsMulticast() || tip.IsUnspecified() || tip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || tip == sip {
		return Consume // gratuitous ARP announces sip; nothing to answer
	}
	*r = Request{Target: tip, Sender: sip, ReplyTo: [6]byte(a[8:14])}
	return Answer
}

func parseNS(frame []byte, r *Request) Verdict {
	if len(frame) < ethLen+ipv6Len+nsLen {
		return Forward // the kernel only looks at frames this long
	}
	ip := frame[ethLen:]
	icmp := ip[ipv6Len:]
	if ip[6] != icmpv6Proto || icmp[0] != typeNS || icmp[1] != 0 {
		return Forward
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if ip[0]>>4 != 6 || plen < nsLen || plen > len(icmp) || ip[7] != 255 {
		return Invalid
	}
	icmp = icmp[:plen]
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	dst := netip.AddrFrom16([16]byte(ip[24:40]))
	target := netip.AddrFrom16([16]byte(icmp[8:24]))
	sum := checksum.PseudoV6(ip[8:24], ip[24:40], icmpv6Proto, plen)
	if checksum.Fold(checksum.Sum(icmp, sum)) != 0xffff {
		return Invalid
	}
	if target.IsMulticast() || dst.IsLoopback() {
		return Invalid
	}
	replyTo := [6]byte(frame[6:12])
	sawSLLA := false
	for opts := icmp[nsLen:]; len(opts) > 0; {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return Invalid
		}
		n := int(opts[1]) * 8
		if opts[0] == optSLLA && !sawSLLA {
			replyTo = [6]byte(opts[2:8])
			sawSLLA = true
		}
		opts = opts[n:]
	}
	dad := src.IsUnspecified()
	if dad && sawSLLA {
		return Invalid // RFC 4861 forbids the option in duplicate address detection
	}
	*r = Request{V6: true, Target: target, Sender: src, ReplyTo: replyTo, DAD: dad, prio: ip[0] & 0x0f}
	return Answer
}

// Reply writes the answer to r into b, saying that r.Target is at mac, and
// returns its length (ARPReplyLen or NAReplyLen); b must hold MaxReplyLen
// bytes. A Neighbor Advertisement has the solicited and override flags
// set, and the router flag when router is, as the kernel's
// vxlan_na_create sets them. A DAD request gets no reply: Reply returns 0.
func (r *Request) Reply(b []byte, mac [6]byte, router bool) int {
	if r.DAD {
		return 0
	}
	if r.V6 {
		return r.replyNA(b, mac, router)
	}
	return r.replyARP(b, mac)
}

// replyARP is the kernel's arp_create(ARPOP_REPLY, ETH_P_ARP, sip, dev,
// tip, sha, mac, sha).
func (r *Request) replyARP(b []byte, mac [6]byte) int {
	b = b[:ARPReplyLen]
	copy(b[0:6], r.ReplyTo[:])
	copy(b[6:12], mac[:])
	binary.BigEndian.PutUint16(b[12:14], etherARP)
	a := b[ethLen:]
	binary.BigEndian.PutUint16(a[0:2], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(a[2:4], 0x0800)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], 2) // ARPOP_REPLY
	copy(a[8:14], mac[:])
	t4 := r.Target.As4()
	copy(a[14:18], t4[:])
	copy(a[18:24], r.ReplyTo[:])
	s4 := r.Sender.As4()
	copy(a[24:28], s4[:])
	return ARPReplyLen
}

// replyNA is the kernel's vxlan_na_create.
func (r *Request) replyNA(b []byte, mac [6]byte, router bool) int {
	b = b[:NAReplyLen]
	clear(b)
	copy(b[0:6], r.ReplyTo[:])
	copy(b[6:12], mac[:])
	binary.BigEndian.PutUint16(b[12:14], etherIPv6)
	ip := b[ethLen:]
	ip[0] = 0x60 | r.prio
	binary.BigEndian.PutUint16(ip[4:6], nsLen+8)
	ip[6] = icmpv6Proto
	ip[7] = 255
	t16 := r.Target.As16()
	copy(ip[8:24], t16[:]) // from the target itself
	s16 := r.Sender.As16()
	copy(ip[24:40], s16[:])
	na := ip[ipv6Len:]
	na[0] = typeNA
	na[4] = 0x60 // solicited, override
	if router {
		na[4] |= 0x80
	}
	copy(na[8:24], t16[:])
	na[24], na[25] = optTLLA, 1
	copy(na[26:32], mac[:])
	sum := checksum.PseudoV6(ip[8:24], ip[24:40], icmpv6Proto, len(na))
	binary.BigEndian.PutUint16(na[2:4], ^checksum.Fold(checksum.Sum(na, sum)))
	return NAReplyLen
}
