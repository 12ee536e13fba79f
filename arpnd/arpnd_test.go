package arpnd

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/vxland/vxland/checksum"
)

var (
	macAsker  = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	macTarget = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	macOpt    = [6]byte{0x02, 0, 0, 0, 0, 0x03}
	ip4Asker  = netip.MustParseAddr("203.0.113.1")
	ip4Target = netip.MustParseAddr("203.0.113.2")
	ip6Asker  = netip.MustParseAddr("2001:db8::1")
	ip6Target = netip.MustParseAddr("2001:db8::2")
)

// arpFrame builds an ARP frame field by field.
func arpFrame(op uint16, sha [6]byte, sip netip.Addr, tip netip.Addr) []byte {
	b := make([]byte, 42)
	copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:12], sha[:])
	binary.BigEndian.PutUint16(b[12:], 0x0806)
	a := b[14:]
	binary.BigEndian.PutUint16(a[0:], 1)
	binary.BigEndian.PutUint16(a[2:], 0x0800)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], op)
	copy(a[8:14], sha[:])
	s, t := sip.As4(), tip.As4()
	copy(a[14:18], s[:])
	copy(a[24:28], t[:])
	return b
}

// solicitedNode is the solicited-node multicast address of a.
func solicitedNode(a netip.Addr) netip.Addr {
	b := netip.MustParseAddr("ff02::1:ff00:0").As16()
	t := a.As16()
	copy(b[13:], t[13:])
	return netip.AddrFrom16(b)
}

// nsFrame builds a Neighbor Solicitation with gopacket, options as given.
func nsFrame(t testing.TB, ethSrc [6]byte, src, target netip.Addr, tc uint8, opts layers.ICMPv6Options) []byte {
	eth := &layers.Ethernet{SrcMAC: ethSrc[:], DstMAC: net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv6}
	ip := &layers.IPv6{Version: 6, TrafficClass: tc, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255,
		SrcIP: src.AsSlice(), DstIP: solicitedNode(target).AsSlice()}
	icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	if err := icmp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	ns := &layers.ICMPv6NeighborSolicitation{TargetAddress: target.AsSlice(), Options: opts}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, icmp, ns); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

func slla(m [6]byte) layers.ICMPv6Options {
	return layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: m[:]}}
}

// fixICMPv6 recomputes the checksum of a hand-edited NS.
func fixICMPv6(b []byte) {
	ip := b[14:]
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	icmp := ip[40 : 40+plen]
	icmp[2], icmp[3] = 0, 0
	s := checksum.PseudoV6(ip[8:24], ip[24:40], 58, plen)
	binary.BigEndian.PutUint16(icmp[2:], ^checksum.Fold(checksum.Sum(icmp, s)))
}

func TestARPReplyBytes(t *testing.T) {
	req := arpFrame(1, macAsker, ip4Asker, ip4Target)
	var r Request
	if v := Parse(req, &r); v != Answer {
		t.Fatalf("verdict %v, want answer", v)
	}
	if r.Target != ip4Target || r.Sender != ip4Asker || r.ReplyTo != macAsker || r.V6 {
		t.Fatalf("parsed %+v", r)
	}
	b := make([]byte, MaxReplyLen)
	n := r.Reply(b, macTarget, false)
	// What the kernel's arp_create(ARPOP_REPLY, ...) builds, written out.
	want := []byte{
		0x02, 0, 0, 0, 0, 0x01, // to the asker
		0x02, 0, 0, 0, 0, 0x02, // from the target's MAC
		0x08, 0x06,
		0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02,
		0x02, 0, 0, 0, 0, 0x02, 203, 0, 113, 2, // sha, sip: the target
		0x02, 0, 0, 0, 0, 0x01, 203, 0, 113, 1, // tha, tip: the asker
	}
	if !bytes.Equal(b[:n], want) {
		t.Fatalf("reply\n% x\nwant\n% x", b[:n], want)
	}
	var again Request
	if v := Parse(b[:n], &again); v != Consume {
		t.Errorf("our reply parses as %v, want consume (a reply is never answered)", v)
	}
}

func TestNAReplyBytes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   layers.ICMPv6Options
		router bool
		to     [6]byte
	}{
		{"source link-layer option", slla(macOpt), false, macOpt},
		{"no option: to the Ethernet source", nil, false, macAsker},
		{"router", slla(macOpt), true, macOpt},
		{"nonce option first", layers.ICMPv6Options{{Type: 14, Data: []byte{1, 2, 3, 4, 5, 6}}, slla(macOpt)[0]}, false, macOpt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := nsFrame(t, macAsker, ip6Asker, ip6Target, 0xb8, tc.opts)
			var r Request
			if v := Parse(req, &r); v != Answer {
				t.Fatalf("verdict %v, want answer", v)
			}
			b := make([]byte, MaxReplyLen)
			n := r.Reply(b, macTarget, tc.router)
			if n != NAReplyLen {
				t.Fatalf("length %d", n)
			}
			p := gopacket.NewPacket(b[:n], layers.LayerTypeEthernet, gopacket.Default)
			if el := p.ErrorLayer(); el != nil {
				t.Fatalf("reply does not decode: %v", el.Error())
			}
			eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
			if [6]byte(eth.DstMAC) != tc.to || [6]byte(eth.SrcMAC) != macTarget {
				t.Errorf("ethernet %s -> %s", eth.SrcMAC, eth.DstMAC)
			}
			ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			// The kernel copies the top four bits of the traffic class only.
			if ip.TrafficClass != 0xb0 || ip.FlowLabel != 0 || ip.HopLimit != 255 || ip.Length != 32 {
				t.Errorf("ipv6 tc %#x flow %#x hlim %d len %d", ip.TrafficClass, ip.FlowLabel, ip.HopLimit, ip.Length)
			}
			if !ip.SrcIP.Equal(ip6Target.AsSlice()) || !ip.DstIP.Equal(ip6Asker.AsSlice()) {
				t.Errorf("ipv6 %s -> %s", ip.SrcIP, ip.DstIP)
			}
			na, ok := p.Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
			if !ok {
				t.Fatal("no neighbor advertisement")
			}
			if na.Router() != tc.router || !na.Solicited() || !na.Override() {
				t.Errorf("flags %#x (router %v)", na.Flags, tc.router)
			}
			if !na.TargetAddress.Equal(ip6Target.AsSlice()) || len(na.Options) != 1 ||
				na.Options[0].Type != layers.ICMPv6OptTargetAddress || !bytes.Equal(na.Options[0].Data, macTarget[:]) {
				t.Errorf("target %s options %v", na.TargetAddress, na.Options)
			}
			icmp := b[14+40 : n]
			s := checksum.PseudoV6(b[14+8:14+24], b[14+24:14+40], 58, len(icmp))
			if checksum.Fold(checksum.Sum(icmp, s)) != 0xffff {
				t.Error("bad ICMPv6 checksum")
			}
		})
	}
}

func TestVerdicts(t *testing.T) {
	good := arpFrame(1, macAsker, ip4Asker, ip4Target)
	arp := func(edit func(b []byte)) []byte {
		b := bytes.Clone(good)
		edit(b)
		return b
	}
	ns := nsFrame(t, macAsker, ip6Asker, ip6Target, 0, slla(macOpt))
	nsEdit := func(edit func(b []byte), fix bool) []byte {
		b := bytes.Clone(ns)
		edit(b)
		if fix {
			fixICMPv6(b)
		}
		return b
	}
	ipv4 := bytes.Clone(good)
	binary.BigEndian.PutUint16(ipv4[12:], 0x0800)
	vlanARP := append(append(bytes.Clone(good[:12]), 0x81, 0, 0, 5), good[12:]...)
	for _, tc := range []struct {
		name  string
		frame []byte
		want  Verdict
	}{
		{"arp request", good, Answer},
		{"arp request padded to 60", append(bytes.Clone(good), make([]byte, 18)...), Answer},
		{"arp ieee802 hardware", arp(func(b []byte) { b[15] = 6 }), Answer},
		{"arp short", good[:41], Invalid},
		{"arp only ethernet", good[:14], Invalid},
		{"arp hardware length 8", arp(func(b []byte) { b[18] = 8 }), Invalid},
		{"arp protocol length 16", arp(func(b []byte) { b[19] = 16 }), Invalid},
		{"arp hardware type 7", arp(func(b []byte) { b[15] = 7 }), Invalid},
		{"arp protocol ipv6", arp(func(b []byte) { b[16], b[17] = 0x86, 0xdd }), Invalid},
		{"arp reply", arpFrame(2, macAsker, ip4Asker, ip4Target), Consume},
		{"arp op 3", arp(func(b []byte) { b[21] = 3 }), Consume},
		{"gratuitous arp", arpFrame(1, macAsker, ip4Target, ip4Target), Consume},
		{"arp for loopback", arpFrame(1, macAsker, ip4Asker, netip.MustParseAddr("127.0.0.1")), Consume},
		{"arp for multicast", arpFrame(1, macAsker, ip4Asker, netip.MustParseAddr("239.1.1.1")), Consume},
		{"arp for broadcast", arpFrame(1, macAsker, ip4Asker, netip.MustParseAddr("255.255.255.255")), Consume},
		{"arp probe (sender 0.0.0.0)", arpFrame(1, macAsker, netip.MustParseAddr("0.0.0.0"), ip4Target), Answer},
		{"vlan-tagged arp", vlanARP, Forward},
		{"ipv4", ipv4, Forward},
		{"runt", good[:13], Forward},
		{"ns", ns, Answer},
		{"ns without options", nsFrame(t, macAsker, ip6Asker, ip6Target, 0, nil), Answer},
		{"ns code 1", nsEdit(func(b []byte) { b[55] = 1 }, true), Forward},
		{"ns truncated below the kernel's minimum", ns[:14+40+23], Forward},
		{"ns bad checksum", nsEdit(func(b []byte) { b[56] ^= 1 }, false), Invalid},
		{"ns hop limit 64", nsEdit(func(b []byte) { b[21] = 64 }, false), Invalid},
		{"ns payload length beyond the frame", nsEdit(func(b []byte) { b[19] += 8 }, false), Invalid},
		{"ns payload length below 24", nsEdit(func(b []byte) { b[18], b[19] = 0, 16 }, false), Invalid},
		{"ns option length 0", nsEdit(func(b []byte) { b[14+40+25] = 0 }, true), Invalid},
		{"ns option past the end", nsEdit(func(b []byte) { b[14+40+25] = 2 }, true), Invalid},
		{"ns multicast target", nsEdit(func(b []byte) { b[14+40+8] = 0xff }, true), Invalid},
		{"ns to loopback", nsEdit(func(b []byte) { copy(b[14+24:14+40], netip.IPv6Loopback().AsSlice()) }, true), Invalid},
		{"ns ipv6 version 4", nsEdit(func(b []byte) { b[14] = 0x40 }, false), Invalid},
		{"dad ns", nsFrame(t, macAsker, netip.IPv6Unspecified(), ip6Target, 0, nil), Answer},
		{"dad ns with a source option", nsFrame(t, macAsker, netip.IPv6Unspecified(), ip6Target, 0, slla(macOpt)), Invalid},
		{"neighbor advertisement", nsEdit(func(b []byte) { b[54] = 136 }, true), Forward},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			if got := Parse(tc.frame, &r); got != tc.want {
				t.Errorf("verdict %v, want %v", got, tc.want)
			}
			if IsCandidate(tc.frame) != (tc.want != Forward) && tc.name != "ns code 1" && tc.name != "ns truncated below the kernel's minimum" && tc.name != "runt" {
				t.Errorf("IsCandidate %v for a %v frame", IsCandidate(tc.frame), tc.want)
			}
		})
	}
}

// TestDAD: a duplicate address detection solicitation is looked up like
// any other, but never answered.
func TestDAD(t *testing.T) {
	var r Request
	if v := Parse(nsFrame(t, macAsker, netip.IPv6Unspecified(), ip6Target, 0, nil), &r); v != Answer || !r.DAD || r.Target != ip6Target {
		t.Fatalf("verdict %v, request %+v", v, r)
	}
	if n := r.Reply(make([]byte, MaxReplyLen), macTarget, false); n != 0 {
		t.Errorf("a DAD solicitation got a %d-byte reply", n)
	}
}

func TestNoAllocation(t *testing.T) {
	arp := arpFrame(1, macAsker, ip4Asker, ip4Target)
	ns := nsFrame(t, macAsker, ip6Asker, ip6Target, 0, slla(macOpt))
	b := make([]byte, MaxReplyLen)
	var r Request
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range [][]byte{arp, ns} {
			if IsCandidate(f) && Parse(f, &r) == Answer {
				r.Reply(b, macTarget, true)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per parse and reply", allocs)
	}
}

func BenchmarkParseReplyNS(b *testing.B) {
	ns := nsFrame(b, macAsker, ip6Asker, ip6Target, 0, slla(macOpt))
	out := make([]byte, MaxReplyLen)
	var r Request
	b.ReportAllocs()
	for b.Loop() {
		if Parse(ns, &r) == Answer {
			r.Reply(out, macTarget, false)
		}
	}
}
