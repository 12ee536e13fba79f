package encap

import "testing"

var sink uint32

func BenchmarkPutHeader(b *testing.B) {
	buf := make([]byte, 64)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		PutHeader(buf, uint32(i))
	}
}

func BenchmarkParse(b *testing.B) {
	frame := tcp4(v4A, v4B, 40000, 443)
	dgram := make([]byte, HeaderLen+len(frame))
	PutHeader(dgram, 42)
	copy(dgram[HeaderLen:], frame)
	b.ReportAllocs()
	for b.Loop() {
		vni, f, r := Parse(dgram)
		sink += vni + uint32(len(f)) + uint32(r)
	}
}

func BenchmarkFlowHash(b *testing.B) {
	for _, bc := range []struct {
		name  string
		frame []byte
	}{
		{"ipv4-tcp", tcp4(v4A, v4B, 40000, 443)},
		{"ipv6-udp", eth(macB, macA, etherTypeIPv6, ipv6(0, 0x12345, protoUDP, v6A, v6B, l4(1, 2)))},
		{"qinq-ipv4", eth(macB, macA, etherTypeIPv4, ipv4(0, protoTCP, v4A, v4B, 0, l4(1, 2)), etherTypeQinQ, etherTypeVLAN)},
		{"arp", eth(macB, macA, 0x0806, make([]byte, 28))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink += uint32(SourcePort(flowHash(bc.frame), 49152, 65535))
			}
		})
	}
}

func BenchmarkOuterTOS(b *testing.B) {
	frame := eth(macB, macA, etherTypeIPv6, ipv6(0xb8|ecnCE, 0, protoTCP, v6A, v6B, l4(1, 2)))
	b.ReportAllocs()
	for b.Loop() {
		sink += uint32(outerTOS(frame, 0, true))
	}
}

func BenchmarkDecapECN(b *testing.B) {
	b.Run("ipv4-mark-ce", func(b *testing.B) {
		frame := eth(macB, macA, etherTypeIPv4, ipv4(ecnECT0, protoTCP, v4A, v4B, 0, l4(1, 2)))
		tos, c0, c1 := frame[15], frame[24], frame[25]
		b.ReportAllocs()
		for b.Loop() {
			frame[15], frame[24], frame[25] = tos, c0, c1 // undo the last mark
			if !decapECN(frame, ecnCE) {
				b.Fatal("dropped")
			}
		}
	})
	b.Run("ipv4-unchanged", func(b *testing.B) {
		frame := eth(macB, macA, etherTypeIPv4, ipv4(ecnECT0, protoTCP, v4A, v4B, 0, l4(1, 2)))
		b.ReportAllocs()
		for b.Loop() {
			if !decapECN(frame, ecnECT0) {
				b.Fatal("dropped")
			}
		}
	})
}
