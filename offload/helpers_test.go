package offload

import (
	"encoding/binary"
	"fmt"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/vxland/vxland/inner"
)

// naiveSum is the from-scratch RFC 1071 loop the tests trust: big-endian
// 16-bit words, odd byte padded, end-around carry after every step.
func naiveSum(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
		s = s&0xffff + s>>16
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
		s = s&0xffff + s>>16
	}
	return s
}

// naivePseudo builds the pseudo-header bytes and sums them naively.
func naivePseudo(frame []byte, l3 int, v6 bool, proto uint8, l4len int) uint32 {
	var ph []byte
	if v6 {
		ph = append(ph, frame[l3+8:l3+40]...)
		ph = binary.BigEndian.AppendUint32(ph, uint32(l4len))
		ph = append(ph, 0, 0, 0, proto)
	} else {
		ph = append(ph, frame[l3+12:l3+20]...)
		ph = append(ph, 0, proto)
		ph = binary.BigEndian.AppendUint16(ph, uint16(l4len))
	}
	return naiveSum(ph, 0)
}

// naiveL4Valid checks the L4 checksum of frame (Ethernet, IP at l3) naively.
func naiveL4Valid(frame []byte, l3, l4, end int, v6 bool, proto uint8) bool {
	s := naiveSum(frame[l4:end], naivePseudo(frame, l3, v6, proto, end-l4))
	return s == 0xffff
}

// naiveSeed is the pseudo-header seed computed naively.
func naiveSeed(frame []byte, l3 int, v6 bool, proto uint8, l4len int) uint16 {
	return uint16(naivePseudo(frame, l3, v6, proto, l4len))
}

type pktSpec struct {
	v6      bool
	vlan    bool
	udp     bool
	payload []byte
	seq     uint32
	ack     uint32
	flags   string // subset of "FSRPAUEC"
	opts    bool   // TCP options: MSS-less timestamp + NOPs (12 bytes)
	ipID    uint16
	ttl     uint8
	tos     uint8
	window  uint16
	sport   uint16
	dport   uint16
	srcLast byte
}

// build serializes an Ethernet frame with gopacket, checksums computed.
func build(t testing.TB, s pktSpec) []byte {
	t.Helper()
	eth := &layers.Ethernet{
		SrcMAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 1},
		DstMAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 2},
	}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	ipType := layers.EthernetTypeIPv4
	if s.v6 {
		ipType = layers.EthernetTypeIPv6
	}
	if s.vlan {
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: 42, Type: ipType})
	} else {
		eth.EthernetType = ipType
	}
	proto := layers.IPProtocolTCP
	if s.udp {
		proto = layers.IPProtocolUDP
	}
	ttl := s.ttl
	if ttl == 0 {
		ttl = 64
	}
	var nl gopacket.NetworkLayer
	if s.v6 {
		ip := &layers.IPv6{
			Version: 6, TrafficClass: s.tos, FlowLabel: 0x12345, NextHeader: proto, HopLimit: ttl,
			SrcIP: net.ParseIP(fmt.Sprintf("2001:db8::%x", 0x100+int(s.srcLast))),
			DstIP: net.ParseIP("2001:db8:ffff::2"),
		}
		nl = ip
		ls = append(ls, ip)
	} else {
		ip := &layers.IPv4{
			Version: 4, TOS: s.tos, Id: s.ipID, Flags: layers.IPv4DontFragment, TTL: ttl, Protocol: proto,
			SrcIP: net.IPv4(192, 0, 2, 1+s.srcLast).To4(),
			DstIP: net.IPv4(198, 51, 100, 7).To4(),
		}
		nl = ip
		ls = append(ls, ip)
	}
	sport, dport := s.sport, s.dport
	if sport == 0 {
		sport = 40000
	}
	if dport == 0 {
		dport = 5201
	}
	if s.udp {
		u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		if err := u.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, u)
	} else {
		win := s.window
		if win == 0 {
			win = 501
		}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: s.seq, Ack: s.ack, Window: win}
		for _, f := range s.flags {
			switch f {
			case 'F':
				tcp.FIN = true
			case 'S':
				tcp.SYN = true
			case 'R':
				tcp.RST = true
			case 'P':
				tcp.PSH = true
			case 'A':
				tcp.ACK = true
			case 'U':
				tcp.URG = true
			case 'E':
				tcp.ECE = true
			case 'C':
				tcp.CWR = true
			}
		}
		if s.opts {
			tcp.Options = []layers.TCPOption{
				{OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindNop},
				{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 1, 2, 0, 0, 3, 4}},
			}
		}
		if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, tcp)
	}
	ls = append(ls, gopacket.Payload(s.payload))
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// seedIt replaces the frame's L4 checksum by the pseudo-header seed (what a
// CHECKSUM_PARTIAL sender hands over), computed naively.
func seedIt(t testing.TB, frame []byte) []byte {
	t.Helper()
	info, ok := parseL4(frame)
	if !ok {
		t.Fatal("seedIt: frame does not parse")
	}
	at := info.L4Off + info.CsumOffset()
	binary.BigEndian.PutUint16(frame[at:], naiveSeed(frame, info.L3Off, info.IPVersion == 6, info.Proto, info.L4Len()))
	return frame
}

func payloadOf(n int, salt byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*31) ^ salt ^ byte(i>>8)
	}
	return p
}

// decoded is what the tests check in an output frame, via gopacket.
type decoded struct {
	ip4     *layers.IPv4
	ip6     *layers.IPv6
	tcp     *layers.TCP
	udp     *layers.UDP
	vlan    *layers.Dot1Q
	payload []byte
}

// decodeValid decodes frame with gopacket and fails the test unless every
// checksum (IPv4 header, TCP or UDP) verifies, both with gopacket and with the
// naive loop.
func decodeValid(t testing.TB, frame []byte) decoded {
	t.Helper()
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if el := pkt.ErrorLayer(); el != nil {
		t.Fatalf("gopacket decode: %v", el.Error())
	}
	var d decoded
	var nl gopacket.NetworkLayer
	if l, ok := pkt.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); ok {
		d.vlan = l
	}
	if l, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		d.ip4, nl = l, l
		if err, res := l.VerifyChecksum(); err != nil || !res.Valid {
			t.Fatalf("IPv4 header checksum invalid: %+v %v", res, err)
		}
		if naiveSum(frame[len(frame)-len(l.Contents)-len(l.Payload):][:int(l.IHL)*4], 0) != 0xffff {
			t.Fatalf("IPv4 header checksum invalid (naive)")
		}
	}
	if l, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		d.ip6, nl = l, l
	}
	if nl == nil {
		t.Fatal("no IP layer")
	}
	l3 := 14
	if d.vlan != nil {
		l3 = 18
	}
	v6 := d.ip6 != nil
	end := len(frame)
	if l, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
		d.tcp = l
		_ = l.SetNetworkLayerForChecksum(nl)
		if err, res := l.VerifyChecksum(); err != nil || !res.Valid {
			t.Fatalf("TCP checksum invalid: %+v %v", res, err)
		}
		d.payload = l.Payload
		if !naiveL4Valid(frame, l3, end-len(l.Contents)-len(l.Payload), end, v6, 6) {
			t.Fatal("TCP checksum invalid (naive)")
		}
	}
	if l, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		d.udp = l
		_ = l.SetNetworkLayerForChecksum(nl)
		if err, res := l.VerifyChecksum(); err != nil || !res.Valid {
			t.Fatalf("UDP checksum invalid: %+v %v", res, err)
		}
		if l.Checksum == 0 {
			t.Fatal("UDP checksum 0")
		}
		d.payload = l.Payload
		if !naiveL4Valid(frame, l3, end-len(l.Contents)-len(l.Payload), end, v6, 17) {
			t.Fatal("UDP checksum invalid (naive)")
		}
	}
	return d
}

// outBufs returns n buffers of size bytes each, carved from one backing array
// with capacity-limited slices and a guard region after each one.
func outBufs(n, size int) (bufs [][]byte, backing []byte) {
	const guard = 16
	backing = make([]byte, n*(size+guard))
	for i := range backing {
		backing[i] = 0xa5
	}
	bufs = make([][]byte, n)
	for i := range bufs {
		o := i * (size + guard)
		bufs[i] = backing[o : o+size : o+size]
	}
	return bufs, backing
}

// guardsIntact checks the guard regions written by outBufs.
func guardsIntact(bufs [][]byte, backing []byte, size int) bool {
	const guard = 16
	for i := range bufs {
		o := i*(size+guard) + size
		for _, b := range backing[o : o+guard] {
			if b != 0xa5 {
				return false
			}
		}
	}
	return true
}

// lay decodes the layout of f, as the data plane does once per frame.
func lay(f []byte) *inner.Layout {
	l := new(inner.Layout)
	l.Decode(f)
	return l
}

// parseL4 decodes f and reports whether the offloads handle it.
func parseL4(f []byte) (inner.Layout, bool) {
	var l inner.Layout
	l.Decode(f)
	return l, l.Transport
}
