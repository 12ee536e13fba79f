package encap

import (
	"bytes"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestPutHeader(t *testing.T) {
	for _, tc := range []struct {
		vni  uint32
		want [8]byte
	}{
		{0, [8]byte{0x08, 0, 0, 0, 0, 0, 0, 0}},
		{1, [8]byte{0x08, 0, 0, 0, 0, 0, 1, 0}},
		{0x123456, [8]byte{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}},
		{MaxVNI, [8]byte{0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0}},
		{0xab123456, [8]byte{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}}, // high bits ignored
	} {
		b := bytes.Repeat([]byte{0xee}, 12)
		PutHeader(b, tc.vni)
		if !bytes.Equal(b[:8], tc.want[:]) {
			t.Errorf("PutHeader(%#x) = % x, want % x", tc.vni, b[:8], tc.want)
		}
		if !bytes.Equal(b[8:], []byte{0xee, 0xee, 0xee, 0xee}) {
			t.Errorf("PutHeader(%#x) wrote past the header: % x", tc.vni, b)
		}
	}
}

func TestParse(t *testing.T) {
	inner := eth(macB, macA, etherTypeIPv4, ipv4(0, protoUDP, v4A, v4B, 0, l4(1, 2)))
	dgram := func(hdr ...byte) []byte { return append(hdr, inner...) }
	for _, tc := range []struct {
		name    string
		b       []byte
		wantVNI uint32
		want    Reason
	}{
		{"ok", dgram(0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0), 0x123456, ReasonOK},
		{"ok vni 0", dgram(0x08, 0, 0, 0, 0, 0, 0, 0), 0, ReasonOK},
		{"ok max vni", dgram(0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0), MaxVNI, ReasonOK},
		{"ok minimal", append([]byte{0x08, 0, 0, 0, 0, 0, 7, 0}, inner[:14]...), 7, ReasonOK},
		{"empty", nil, 0, ReasonShort},
		{"header only", []byte{0x08, 0, 0, 0, 0, 0, 1, 0}, 0, ReasonShort},
		{"one byte short", append([]byte{0x08, 0, 0, 0, 0, 0, 1, 0}, inner[:13]...), 0, ReasonShort},
		{"short beats flags", []byte{0xff, 0xff, 0xff, 0xff}, 0, ReasonShort},
		{"no I flag", dgram(0, 0, 0, 0, 0, 0, 1, 0), 0, ReasonNoIFlag},
		{"no I flag, others set", dgram(0xf7, 0xff, 0xff, 0xff, 0, 0, 1, 0xff), 0, ReasonNoIFlag},
		{"reserved flag 0x01", dgram(0x09, 0, 0, 0, 0, 0, 1, 0), 1, ReasonReserved},
		{"reserved flag 0x80 (GBP G)", dgram(0x88, 0, 0, 0, 0, 0, 1, 0), 1, ReasonReserved},
		{"reserved flag 0x04 (GPE P)", dgram(0x0c, 0, 0, 0, 0, 0, 1, 0), 1, ReasonReserved},
		{"reserved byte 1", dgram(0x08, 0x40, 0, 0, 0, 0, 1, 0), 1, ReasonReserved},
		{"reserved byte 2", dgram(0x08, 0, 0x01, 0, 0, 0, 1, 0), 1, ReasonReserved},
		{"reserved byte 3 (GPE next protocol)", dgram(0x08, 0, 0, 0x03, 0, 0, 1, 0), 1, ReasonReserved},
		{"reserved byte 7", dgram(0x08, 0, 0, 0, 0, 0, 1, 0x80), 1, ReasonReserved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vni, frame, r := Parse(tc.b)
			if r != tc.want || vni != tc.wantVNI {
				t.Fatalf("Parse = vni %#x, %v; want vni %#x, %v", vni, r, tc.wantVNI, tc.want)
			}
			if r != ReasonOK {
				if frame != nil {
					t.Errorf("frame = % x on drop, want nil", frame)
				}
				return
			}
			if len(frame) != len(tc.b)-HeaderLen || &frame[0] != &tc.b[HeaderLen] {
				t.Errorf("frame does not alias b[%d:]", HeaderLen)
			}
		})
	}
}

func TestReasonString(t *testing.T) {
	want := map[Reason]string{
		ReasonOK:            "rx_ok",
		ReasonShort:         "rx_short",
		ReasonNoIFlag:       "rx_no_i_flag",
		ReasonReserved:      "rx_reserved_bits",
		ReasonUnknownVNI:    "rx_unknown_vni",
		ReasonOwnMAC:        "rx_own_mac",
		ReasonECN:           "rx_ecn_drop",
		ReasonLearnConflict: "rx_learn_conflict",
		ReasonInnerShort:    "rx_inner_short",
		NumReasons:          "rx_invalid_reason",
		255:                 "rx_invalid_reason",
	}
	if len(want) != int(NumReasons)+2 {
		t.Fatalf("test covers %d reasons, package has %d", len(want)-2, NumReasons)
	}
	for r, s := range want {
		if got := r.String(); got != s {
			t.Errorf("Reason(%d).String() = %q, want %q", r, got, s)
		}
	}
}

func TestCheckInner(t *testing.T) {
	own := [6]byte{0x02, 0, 0x5e, 0, 0x53, 0x01}
	frame := eth(macB, macA, etherTypeIPv4, ipv4(0, protoUDP, v4A, v4B, 0, l4(1, 2)))
	looped := eth(macB, own, etherTypeIPv4, nil)
	toUs := eth(own, macA, 0x0806, nil)
	for _, tc := range []struct {
		name  string
		frame []byte
		want  Reason
	}{
		{"ok", frame, ReasonOK},
		{"addressed to us", toUs, ReasonOK},
		{"header only", frame[:14], ReasonOK},
		{"empty", nil, ReasonInnerShort},
		{"13 bytes", frame[:13], ReasonInnerShort},
		{"own source MAC", looped, ReasonOwnMAC},
	} {
		if got := CheckInner(tc.frame, own); got != tc.want {
			t.Errorf("%s: CheckInner = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// outerPacket serializes Ethernet/IPv4/UDP(dport 4789) around the UDP
// payload with gopacket.
func outerPacket(t testing.TB, udpPayload ...gopacket.SerializableLayer) []byte {
	t.Helper()
	ip := &layers.IPv4{
		Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP(v4A.AsSlice()), DstIP: net.IP(v4B.AsSlice()),
	}
	udp := &layers.UDP{SrcPort: 49152, DstPort: 4789}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	all := []gopacket.SerializableLayer{
		&layers.Ethernet{SrcMAC: net.HardwareAddr(macA[:]), DstMAC: net.HardwareAddr(macB[:]), EthernetType: layers.EthernetTypeIPv4},
		ip, udp,
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, append(all, udpPayload...)...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Our header, decoded by gopacket.
func TestGopacketDecodesPutHeader(t *testing.T) {
	inner := eth(macB, macA, etherTypeIPv4, ipv4(0, protoUDP, v4A, v4B, 0, l4(1000, 2000)))
	for _, vni := range []uint32{0, 1, 4096, 0x123456, MaxVNI} {
		payload := make([]byte, HeaderLen+len(inner))
		PutHeader(payload, vni)
		copy(payload[HeaderLen:], inner)

		pkt := gopacket.NewPacket(outerPacket(t, gopacket.Payload(payload)), layers.LayerTypeEthernet, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("vni %#x: gopacket: %v", vni, el.Error())
		}
		vx, ok := pkt.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
		if !ok {
			t.Fatalf("vni %#x: no VXLAN layer in %v", vni, pkt)
		}
		if !vx.ValidIDFlag || vx.VNI != vni || vx.GBPExtension || vx.GBPDontLearn || vx.GBPApplied || vx.GBPGroupPolicyID != 0 {
			t.Errorf("vni %#x: gopacket decoded %+v", vni, vx)
		}
		if !bytes.Equal(vx.Payload, inner) {
			t.Errorf("vni %#x: VXLAN payload differs from the inner frame", vni)
		}
		var eths []*layers.Ethernet
		for _, l := range pkt.Layers() {
			if e, ok := l.(*layers.Ethernet); ok {
				eths = append(eths, e)
			}
		}
		if len(eths) != 2 || !bytes.Equal(eths[1].SrcMAC, macA[:]) || eths[1].EthernetType != layers.EthernetTypeIPv4 {
			t.Errorf("vni %#x: inner Ethernet not decoded: %v", vni, pkt)
		}

		// And back: our Parse on the UDP payload gopacket found.
		udp := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		gotVNI, frame, r := Parse(udp.Payload)
		if r != ReasonOK || gotVNI != vni || !bytes.Equal(frame, inner) {
			t.Errorf("vni %#x: Parse = %#x, %v, frame equal %v", vni, gotVNI, r, bytes.Equal(frame, inner))
		}
	}
}

// gopacket's header, parsed by us.
func TestParseGopacketHeader(t *testing.T) {
	innerEth := &layers.Ethernet{SrcMAC: net.HardwareAddr(macA[:]), DstMAC: net.HardwareAddr(macB[:]), EthernetType: layers.EthernetTypeIPv4}
	innerIP := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP,
		SrcIP: net.IP(v4B.AsSlice()), DstIP: net.IP(v4A.AsSlice())}
	innerUDP := &layers.UDP{SrcPort: 5000, DstPort: 6000}
	if err := innerUDP.SetNetworkLayerForChecksum(innerIP); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		vx   layers.VXLAN
		want Reason
	}{
		{"plain", layers.VXLAN{ValidIDFlag: true, VNI: 0xabcdef}, ReasonOK},
		{"vni 0", layers.VXLAN{ValidIDFlag: true}, ReasonOK},
		{"max vni", layers.VXLAN{ValidIDFlag: true, VNI: MaxVNI}, ReasonOK},
		{"no I flag", layers.VXLAN{VNI: 5}, ReasonNoIFlag},
		{"GBP G bit", layers.VXLAN{ValidIDFlag: true, VNI: 5, GBPExtension: true}, ReasonReserved},
		{"GBP D bit", layers.VXLAN{ValidIDFlag: true, VNI: 5, GBPDontLearn: true}, ReasonReserved},
		{"GBP A bit", layers.VXLAN{ValidIDFlag: true, VNI: 5, GBPApplied: true}, ReasonReserved},
		{"GBP policy ID", layers.VXLAN{ValidIDFlag: true, VNI: 5, GBPGroupPolicyID: 0x100}, ReasonReserved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vx := tc.vx
			raw := outerPacket(t, &vx, innerEth, innerIP, innerUDP, gopacket.Payload("hello"))
			pkt := gopacket.NewPacket(raw, layers.LayerTypeEthernet, gopacket.Default)
			udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if !ok {
				t.Fatal("no UDP layer")
			}
			vni, frame, r := Parse(udp.Payload)
			if r != tc.want {
				t.Fatalf("Parse = %v, want %v", r, tc.want)
			}
			if r != ReasonOK {
				return
			}
			if vni != tc.vx.VNI {
				t.Errorf("vni = %#x, want %#x", vni, tc.vx.VNI)
			}
			// The inner frame decodes as what gopacket encoded.
			in := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
			u, ok := in.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if !ok || u.SrcPort != 5000 || u.DstPort != 6000 || string(u.Payload) != "hello" {
				t.Errorf("inner frame decodes as %v", in)
			}
			// PutHeader reproduces the header gopacket wrote.
			var hdr [HeaderLen]byte
			PutHeader(hdr[:], vni)
			if !bytes.Equal(hdr[:], udp.Payload[:HeaderLen]) {
				t.Errorf("PutHeader = % x, gopacket wrote % x", hdr, udp.Payload[:HeaderLen])
			}
		})
	}
}

func TestNoAllocs(t *testing.T) {
	frame := eth(macB, macA, etherTypeIPv4, ipv4(0x02, protoTCP, v4A, v4B, 0, l4(1, 2)))
	dgram := make([]byte, HeaderLen+len(frame))
	copy(dgram[HeaderLen:], frame)
	var sink uint32
	for name, f := range map[string]func(){
		"PutHeader":  func() { PutHeader(dgram, 42) },
		"Parse":      func() { v, _, _ := Parse(dgram); sink += v },
		"CheckInner": func() { sink += uint32(CheckInner(frame, macB)) },
		"FlowHash":   func() { sink += flowHash(frame) },
		"SourcePort": func() { sink += uint32(SourcePort(sink, 49152, 65535)) },
		"OuterTOS":   func() { sink += uint32(outerTOS(frame, 0, true)) },
		"DecapECN":   func() { frame[15] = 0x02; decapECN(frame, ecnCE) },
		"String":     func() { sink += uint32(len(Reason(sink % 9).String())) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times per call", name, n)
		}
	}
}
