package inner

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// Frame builders. Addresses come from the documentation ranges.

var macs = []byte{0x02, 0, 0x5e, 0, 0, 0x0b, 0x02, 0, 0x5e, 0, 0, 0x0a}

// eth builds an Ethernet frame; tpids, outermost first, add VLAN tags.
func eth(etherType uint16, payload []byte, tpids ...uint16) []byte {
	b := bytes.Clone(macs)
	for i, tpid := range tpids {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, uint16(100+i))
	}
	b = binary.BigEndian.AppendUint16(b, etherType)
	return append(b, payload...)
}

// ipv4 builds an IPv4 header with ihl words, protocol proto and fragment
// field frag, then payload; the total length covers the payload.
func ipv4(ihl int, proto uint8, frag uint16, payload []byte) []byte {
	h := make([]byte, ihl*4)
	h[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(h[2:], uint16(len(h)+len(payload)))
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8], h[9] = 64, proto
	copy(h[12:], []byte{192, 0, 2, 1, 198, 51, 100, 2})
	return append(h, payload...)
}

// ipv6 builds an IPv6 header with next header next, then payload.
func ipv6(next uint8, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6], h[7] = next, 64
	h[8], h[9], h[10], h[11] = 0x20, 0x01, 0x0d, 0xb8
	h[24], h[25], h[26], h[27] = 0x20, 0x01, 0x0d, 0xb8
	return append(h, payload...)
}

// tcp builds a TCP header of thl words, then payload.
func tcp(thl int, payload []byte) []byte {
	h := make([]byte, thl*4)
	binary.BigEndian.PutUint16(h[0:], 40000)
	binary.BigEndian.PutUint16(h[2:], 443)
	h[12] = byte(thl << 4)
	h[13] = 0x10
	return append(h, payload...)
}

// udp builds a UDP header with a correct length field, then payload.
func udp(payload []byte) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

func TestDecode(t *testing.T) {
	pay := make([]byte, 100)
	hbh := append([]byte{ProtoTCP, 0, 0, 0, 0, 0, 0, 0}, tcp(5, pay)...)
	for _, c := range []struct {
		name  string
		frame []byte
		want  Layout
	}{
		{"short", macs, Layout{}},
		{"arp", eth(0x0806, make([]byte, 28)), Layout{EtherType: 0x0806, L3Off: 14}},
		{"ipv4 tcp", eth(EtherTypeIPv4, ipv4(5, ProtoTCP, 0, tcp(8, pay))),
			Layout{EtherType: EtherTypeIPv4, IPVersion: 4, Proto: ProtoTCP, Transport: true, L3Off: 14, IPHdrLen: 20, IPLen: 152, L4Off: 34, L4HdrLen: 32}},
		{"ipv4 options udp 802.1Q", eth(EtherTypeIPv4, ipv4(6, ProtoUDP, 0, udp(pay)), EtherTypeVLAN),
			Layout{EtherType: EtherTypeIPv4, VLANs: 1, IPVersion: 4, Proto: ProtoUDP, Transport: true, L3Off: 18, IPHdrLen: 24, IPLen: 132, L4Off: 42, L4HdrLen: 8}},
		{"ipv6 tcp QinQ", eth(EtherTypeIPv6, ipv6(ProtoTCP, tcp(5, pay)), EtherTypeQinQ, EtherTypeVLAN),
			Layout{EtherType: EtherTypeIPv6, VLANs: 2, IPVersion: 6, Proto: ProtoTCP, Transport: true, L3Off: 22, IPHdrLen: 40, IPLen: 160, L4Off: 62, L4HdrLen: 20}},
		{"two 802.1Q tags", eth(EtherTypeIPv4, ipv4(5, ProtoTCP, 0, tcp(5, nil)), EtherTypeVLAN, EtherTypeVLAN),
			Layout{EtherType: EtherTypeIPv4, VLANs: 2, IPVersion: 4, Proto: ProtoTCP, Transport: true, L3Off: 22, IPHdrLen: 20, IPLen: 40, L4Off: 42, L4HdrLen: 20}},
		{"three tags: not looked through", eth(EtherTypeIPv4, ipv4(5, ProtoTCP, 0, tcp(5, nil)), EtherTypeQinQ, EtherTypeVLAN, EtherTypeVLAN),
			Layout{EtherType: EtherTypeVLAN, VLANs: 2, L3Off: 22}},
		{"cut in tag", eth(EtherTypeIPv4, nil, EtherTypeVLAN)[:17], Layout{EtherType: EtherTypeVLAN, L3Off: 14}},
		{"ipv4 fragment", eth(EtherTypeIPv4, ipv4(5, ProtoUDP, 0x2000, udp(pay))),
			Layout{EtherType: EtherTypeIPv4, IPVersion: 4, Proto: ProtoUDP, Frag: true, L3Off: 14, IPHdrLen: 20, IPLen: 128, L4Off: 34}},
		{"ipv4 ihl 3", eth(EtherTypeIPv4, append(ipv4(3, ProtoTCP, 0, nil), make([]byte, 30)...)),
			Layout{EtherType: EtherTypeIPv4, IPVersion: 4, Proto: ProtoTCP, L3Off: 14, IPHdrLen: 12, IPLen: 12}},
		{"ipv4 version 5", func() []byte {
			f := eth(EtherTypeIPv4, ipv4(5, ProtoTCP, 0, tcp(5, nil)))
			f[14] = 0x55
			return f
		}(), Layout{EtherType: EtherTypeIPv4, IPVersion: 4, Proto: ProtoTCP, L3Off: 14, IPHdrLen: 20, IPLen: 40, L4Off: 34}},
		{"ipv4 truncated", eth(EtherTypeIPv4, ipv4(5, ProtoTCP, 0, nil))[:33], Layout{EtherType: EtherTypeIPv4, L3Off: 14}},
		{"ipv4 length beyond frame", eth(EtherTypeIPv4, ipv4(5, ProtoTCP, 0, tcp(5, pay)))[:100],
			Layout{EtherType: EtherTypeIPv4, IPVersion: 4, Proto: ProtoTCP, L3Off: 14, IPHdrLen: 20, IPLen: 140, L4Off: 34}},
		{"ipv6 hop-by-hop", eth(EtherTypeIPv6, ipv6(0, hbh)),
			Layout{EtherType: EtherTypeIPv6, IPVersion: 6, Proto: ProtoTCP, L3Off: 14, IPHdrLen: 48, IPLen: 168, L4Off: 62}},
		{"ipv6 fragment header", eth(EtherTypeIPv6, ipv6(44, make([]byte, 16))),
			Layout{EtherType: EtherTypeIPv6, IPVersion: 6, Proto: 44, L3Off: 14, IPHdrLen: 40, IPLen: 56, L4Off: 54}},
		{"ipv6 extension beyond frame", eth(EtherTypeIPv6, ipv6(0, []byte{ProtoTCP, 200, 0, 0, 0, 0, 0, 0})),
			Layout{EtherType: EtherTypeIPv6, IPVersion: 6, Proto: ProtoTCP, L3Off: 14, IPHdrLen: 40 + 201*8, IPLen: 48}},
		{"udp length mismatch", func() []byte {
			f := eth(EtherTypeIPv4, ipv4(5, ProtoUDP, 0, udp(pay)))
			f[38]++
			return f
		}(), Layout{EtherType: EtherTypeIPv4, IPVersion: 4, Proto: ProtoUDP, L3Off: 14, IPHdrLen: 20, IPLen: 128, L4Off: 34}},
	} {
		var l Layout
		l.Decode(c.frame)
		if l != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, l, c.want)
		}
		// Ethernet padding changes nothing.
		var p Layout
		p.Decode(append(bytes.Clone(c.frame), make([]byte, 20)...))
		if c.want.Transport && p != l {
			t.Errorf("%s: padding changed the layout: %+v", c.name, p)
		}
	}
}

func TestLayoutLengths(t *testing.T) {
	f := eth(EtherTypeIPv4, ipv4(5, ProtoTCP, 0, tcp(8, make([]byte, 100))), EtherTypeVLAN)
	var l Layout
	l.Decode(f)
	if l.End() != len(f) || l.PayloadOff() != 18+20+32 || l.L4Len() != 132 || l.CsumOffset() != 16 {
		t.Fatalf("End %d PayloadOff %d L4Len %d CsumOffset %d", l.End(), l.PayloadOff(), l.L4Len(), l.CsumOffset())
	}
	l.Decode(eth(EtherTypeIPv6, ipv6(ProtoUDP, udp(nil))))
	if l.CsumOffset() != 6 || l.L4Len() != 8 {
		t.Fatalf("UDP: CsumOffset %d L4Len %d", l.CsumOffset(), l.L4Len())
	}
}

func TestTruncatedIP(t *testing.T) {
	v4 := eth(EtherTypeIPv4, ipv4(5, ProtoTCP, 0, tcp(5, nil)))
	v6 := eth(EtherTypeIPv6, ipv6(ProtoTCP, tcp(5, nil)))
	tagged := eth(EtherTypeIPv4, ipv4(5, ProtoTCP, 0, nil), EtherTypeVLAN)
	for _, c := range []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"ipv4 whole", v4, false},
		{"ipv4 header cut", v4[:33], true},
		{"ipv4 header only", v4[:34], false},
		{"ipv6 header cut", v6[:53], true},
		{"ipv6 header only", v6[:54], false},
		{"tagged ipv4 cut (the kernel does not look)", tagged[:30], false},
		{"arp", eth(0x0806, nil), false},
	} {
		var l Layout
		l.Decode(c.frame)
		if got := l.TruncatedIP(); got != c.want {
			t.Errorf("%s: TruncatedIP = %v", c.name, got)
		}
	}
}

func TestDecodeZeroAlloc(t *testing.T) {
	f := eth(EtherTypeIPv6, ipv6(ProtoTCP, tcp(5, make([]byte, 1400))), EtherTypeVLAN)
	var l Layout
	if a := testing.AllocsPerRun(100, func() { l.Decode(f) }); a != 0 {
		t.Fatalf("%v allocs per Decode", a)
	}
}

func FuzzDecode(f *testing.F) {
	pay := make([]byte, 40)
	for _, s := range [][]byte{
		eth(EtherTypeIPv4, ipv4(5, ProtoTCP, 0, tcp(5, pay))),
		eth(EtherTypeIPv4, ipv4(15, ProtoUDP, 0, udp(pay)), EtherTypeVLAN),
		eth(EtherTypeIPv4, ipv4(5, ProtoTCP, 0x2000, pay), EtherTypeQinQ, EtherTypeVLAN),
		eth(EtherTypeIPv6, ipv6(ProtoUDP, udp(pay)), EtherTypeQinQ),
		eth(EtherTypeIPv6, ipv6(0, append([]byte{43, 0, 0, 0, 0, 0, 0, 0, ProtoTCP, 0, 0, 0, 0, 0, 0, 0}, tcp(5, nil)...))),
		eth(EtherTypeIPv4, nil, EtherTypeVLAN)[:17],
		{}, {1, 2, 3},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		before := bytes.Clone(frame)
		var l Layout
		l.Decode(frame)
		if !bytes.Equal(frame, before) {
			t.Fatal("Decode modified the frame")
		}
		n := len(frame)
		if n < EthHeaderLen {
			if l != (Layout{}) {
				t.Fatalf("short frame: %+v", l)
			}
			return
		}
		if l.L3Off < EthHeaderLen || l.L3Off > n || l.L3Off != EthHeaderLen+int(l.VLANs)*VLANTagLen || l.VLANs > MaxVLANTags {
			t.Fatalf("L3Off %d with %d tags in %d bytes", l.L3Off, l.VLANs, n)
		}
		if l.IPVersion != 0 {
			fixed := IPv4MinHeaderLen
			if l.IPVersion == 6 {
				fixed = IPv6HeaderLen
			}
			if l.L3Off+fixed > n {
				t.Fatalf("IPv%d header beyond the frame: %+v", l.IPVersion, l)
			}
		}
		if l.L4Off != 0 && (l.L4Off != l.L3Off+l.IPHdrLen || l.L4Off > n || l.IPVersion == 0) {
			t.Fatalf("L4Off %d outside the frame or inconsistent: %+v", l.L4Off, l)
		}
		if l.Transport {
			if l.L4Off == 0 || l.PayloadOff() > l.End() || l.End() > n || l.L4HdrLen == 0 {
				t.Fatalf("Transport with offsets outside the packet: %+v (len %d)", l, n)
			}
			if l.Proto != ProtoTCP && l.Proto != ProtoUDP || l.Frag {
				t.Fatalf("Transport for protocol %d frag %v", l.Proto, l.Frag)
			}
		}
		var again Layout
		again.Decode(frame)
		if again != l {
			t.Fatal("Decode not deterministic")
		}
	})
}

var sink int

func BenchmarkDecode(b *testing.B) {
	for _, c := range []struct {
		name  string
		frame []byte
	}{
		{"ipv4-tcp", eth(EtherTypeIPv4, ipv4(5, ProtoTCP, 0, tcp(8, make([]byte, 1400))))},
		{"qinq-ipv6-udp", eth(EtherTypeIPv6, ipv6(ProtoUDP, udp(make([]byte, 1400))), EtherTypeQinQ, EtherTypeVLAN)},
		{"arp", eth(0x0806, make([]byte, 28))},
	} {
		b.Run(c.name, func(b *testing.B) {
			var l Layout
			b.ReportAllocs()
			for b.Loop() {
				l.Decode(c.frame)
				sink += l.L4Off
			}
		})
	}
}
