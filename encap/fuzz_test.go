package encap

import (
	"bytes"
	"testing"

	"github.com/vxland/vxland/inner"
)

func FuzzParse(f *testing.F) {
	in := tcp4(v4A, v4B, 40000, 443)
	for _, hdr := range [][]byte{
		{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0},
		{0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0},
		{0x00, 0, 0, 0, 0, 0, 1, 0},
		{0x88, 0x40, 0x01, 0x00, 0, 0, 1, 0},
		{0x0c, 0, 0, 0x03, 0, 0, 1, 0},
		{0x08, 0, 0, 0, 0, 0, 1, 0xff},
	} {
		f.Add(append(bytes.Clone(hdr), in...))
		f.Add(append(bytes.Clone(hdr), in[:14]...))
		f.Add(append(bytes.Clone(hdr), in[:13]...))
	}
	f.Add([]byte{})
	f.Add([]byte{0x08})
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		vni, frame, r := Parse(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("Parse modified its input")
		}
		if r >= NumReasons {
			t.Fatalf("reason %d out of range", r)
		}
		if r != ReasonOK {
			if frame != nil {
				t.Fatalf("%v with a frame", r)
			}
			return
		}
		if vni > MaxVNI {
			t.Fatalf("vni %#x > MaxVNI", vni)
		}
		if len(frame) != len(b)-HeaderLen || len(frame) < EthHeaderLen || &frame[0] != &b[HeaderLen] {
			t.Fatal("frame does not alias b[HeaderLen:]")
		}
		var hdr [HeaderLen]byte
		PutHeader(hdr[:], vni)
		if !bytes.Equal(hdr[:], b[:HeaderLen]) {
			t.Fatalf("PutHeader(%#x) = % x, parsed % x", vni, hdr, b[:HeaderLen])
		}
	})
}

// frameSeeds are valid and broken inner frames for the frame fuzzers.
func frameSeeds() [][]byte {
	v4 := tcp4(v4A, v4B, 40000, 443)
	ihl15 := bytes.Clone(v4)
	ihl15[14] = 0x4f
	ihl3 := bytes.Clone(v4)
	ihl3[14] = 0x43
	v6 := eth(macB, macA, etherTypeIPv6, ipv6(0xb9, 0x12345, protoHopByHop, v6A, v6B,
		append([]byte{protoTCP, 0, 0, 0, 0, 0, 0, 0}, l4(1, 2)...)))
	return [][]byte{
		v4, v4[:14+19], v4[:14+20], ihl15, ihl3,
		v6, v6[:14+39], v6[:14+44],
		eth(macB, macA, etherTypeIPv4, ipv4(0x02, protoUDP, v4A, v4B, 0x2000, l4(1, 2)), etherTypeQinQ, etherTypeVLAN),
		eth(macB, macA, etherTypeIPv4, nil, etherTypeVLAN)[:17],
		eth(macB, macA, 0x0806, make([]byte, 28)),
		{}, {1, 2, 3},
	}
}

func FuzzDecapECN(f *testing.F) {
	for _, s := range frameSeeds() {
		for _, tos := range []uint8{0, 1, 2, 3, 0xff} {
			f.Add(s, tos)
		}
	}
	f.Fuzz(func(t *testing.T, frame []byte, outer uint8) {
		_ = outerTOS(frame, outer, true)
		_ = outerTOS(frame, outer, false)
		before := bytes.Clone(frame)
		var l inner.Layout
		l.Decode(frame)
		version, off := int(l.IPVersion), l.L3Off
		csumOK := version == 4 && ipv4ChecksumOK(frame[off:])
		ok := decapECN(frame, outer)
		if !ok && (version == 0 || outer&ecnMask != ecnCE) {
			t.Fatalf("dropped: version %d, outer %#x", version, outer)
		}
		for _, i := range changedBytes(before, frame) {
			if version == 0 || !ok || i != off+1 && (version != 4 || i != off+10 && i != off+11) {
				t.Fatalf("byte %d changed (version %d, ok %v)", i, version, ok)
			}
		}
		if csumOK && !ipv4ChecksumOK(frame[off:]) {
			t.Fatal("valid IPv4 checksum broken")
		}
	})
}

func FuzzFlowHash(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		before := bytes.Clone(frame)
		h := flowHash(frame)
		if !bytes.Equal(before, frame) {
			t.Fatal("FlowHash modified the frame")
		}
		if flowHash(before) != h {
			t.Fatal("FlowHash not deterministic")
		}
		_ = SourcePort(h, 49152, 65535)
		_ = CheckInner(frame, macA)
	})
}
