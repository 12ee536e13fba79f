package offload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestVirtioNetHdrRoundTrip(t *testing.T) {
	h := VirtioNetHdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4 | GSOECN, HdrLen: 66, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	b := make([]byte, VirtioNetHdrLen)
	h.Encode(b)
	want := []byte{1, 0x81, 66, 0, 0xa8, 0x05, 34, 0, 16, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("Encode = %x, want %x", b, want)
	}
	var g VirtioNetHdr
	if err := g.Decode(b); err != nil || g != h {
		t.Fatalf("Decode = %v, %v; want %v", g, err, h)
	}
	if err := g.Decode(b[:9]); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("Decode short: %v", err)
	}
}

func TestParseL4(t *testing.T) {
	cases := []struct {
		name string
		spec pktSpec
		l3   int
		l4   int
		thl  int
	}{
		{"tcp4", pktSpec{payload: payloadOf(100, 1), flags: "A"}, 14, 34, 20},
		{"tcp4opts", pktSpec{payload: payloadOf(100, 1), flags: "A", opts: true}, 14, 34, 32},
		{"tcp6vlan", pktSpec{v6: true, vlan: true, payload: payloadOf(7, 1), flags: "A"}, 18, 58, 20},
		{"udp4", pktSpec{udp: true, payload: payloadOf(9, 1)}, 14, 34, 8},
		{"udp6", pktSpec{udp: true, v6: true, payload: payloadOf(9, 1)}, 14, 54, 8},
	}
	for _, c := range cases {
		f := build(t, c.spec)
		info, ok := parseL4(f)
		if !ok || info.L3Off != c.l3 || info.L4Off != c.l4 || info.L4HdrLen != c.thl || info.End() > len(f) {
			t.Errorf("%s: %+v ok=%v", c.name, info, ok)
		}
		if (info.VLANs > 0) != c.spec.vlan {
			t.Errorf("%s: VLANs=%d", c.name, info.VLANs)
		}
		// Every truncation must be rejected without panicking.
		for n := 0; n < info.End(); n++ {
			if _, ok := parseL4(f[:n]); ok {
				t.Fatalf("%s: truncated to %d accepted", c.name, n)
			}
		}
		// Padding after the IP packet is fine.
		padded := append(append([]byte(nil), f...), 0, 0, 0, 0)
		if info2, ok := parseL4(padded); !ok || info2 != info {
			t.Errorf("%s: padded: %+v %v", c.name, info2, ok)
		}
	}

	f := build(t, pktSpec{payload: payloadOf(100, 1), flags: "A"})
	frag := append([]byte(nil), f...)
	frag[14+6] |= 0x20 // MF
	if _, ok := parseL4(frag); ok {
		t.Error("IPv4 fragment (MF) accepted")
	}
	frag = append([]byte(nil), f...)
	frag[14+7] = 1 // offset
	if _, ok := parseL4(frag); ok {
		t.Error("IPv4 fragment (offset) accepted")
	}
	f6 := build(t, pktSpec{v6: true, payload: payloadOf(100, 1), flags: "A"})
	f6[14+6] = 0 // hop-by-hop extension header
	if _, ok := parseL4(f6); ok {
		t.Error("IPv6 extension header accepted")
	}
	u := build(t, pktSpec{udp: true, payload: payloadOf(9, 1)})
	binary.BigEndian.PutUint16(u[34+4:], 12)
	if _, ok := parseL4(u); ok {
		t.Error("UDP length mismatch accepted")
	}
}

func TestPartialAndComplete(t *testing.T) {
	specs := map[string]pktSpec{
		"tcp4":     {payload: payloadOf(1400, 3), flags: "PA", opts: true},
		"tcp4odd":  {payload: payloadOf(1401, 3), flags: "A"},
		"tcp6":     {v6: true, payload: payloadOf(1000, 4), flags: "A"},
		"tcp6vlan": {v6: true, vlan: true, payload: payloadOf(333, 4), flags: "A"},
		"udp4":     {udp: true, payload: payloadOf(517, 5)},
		"udp6vlan": {udp: true, v6: true, vlan: true, payload: payloadOf(64, 5)},
	}
	for name, s := range specs {
		good := build(t, s)
		decodeValid(t, good)
		info, _ := parseL4(good)

		// A complete checksum is not a seed and is left alone.
		if _, _, ok := PartialChecksum(good, lay(good)); ok {
			t.Errorf("%s: complete checksum reported partial", name)
		}
		g := append([]byte(nil), good...)
		if CompleteChecksum(g, lay(g)) || !bytes.Equal(g, good) {
			t.Errorf("%s: CompleteChecksum touched a complete checksum", name)
		}

		// A seed is recognised and completed to the exact checksum.
		seededFrame := seedIt(t, append([]byte(nil), good...))
		start, off, ok := PartialChecksum(seededFrame, lay(seededFrame))
		if !ok || start != info.L4Off || off != info.CsumOffset() {
			t.Errorf("%s: PartialChecksum = %d %d %v", name, start, off, ok)
		}
		if !CompleteChecksum(seededFrame, lay(seededFrame)) {
			t.Errorf("%s: CompleteChecksum(seeded, lay(seeded)) = false", name)
		}
		decodeValid(t, seededFrame)
		if !bytes.Equal(seededFrame, good) {
			t.Errorf("%s: completed frame differs from gopacket's", name)
		}

		// A wrong checksum is neither partial nor touched.
		bad := append([]byte(nil), good...)
		bad[len(bad)-1] ^= 0x40
		b2 := append([]byte(nil), bad...)
		if _, _, ok := PartialChecksum(bad, lay(bad)); ok {
			t.Errorf("%s: bad checksum reported partial", name)
		}
		if CompleteChecksum(bad, lay(bad)) || !bytes.Equal(bad, b2) {
			t.Errorf("%s: CompleteChecksum touched a bad checksum", name)
		}
	}
}

// TestSeedFFFF covers the 0/0xffff corner: a pseudo-header sum that folds to
// 0xffff is a seed the kernel writes as 0xffff (never 0), and a UDP checksum
// that computes to 0 is written as 0xffff.
func TestSeedFFFF(t *testing.T) {
	f := build(t, pktSpec{udp: true, payload: payloadOf(40, 9)})
	info, _ := parseL4(f)
	// Choose the low half of the source address so that the pseudo-header
	// sums to a ones'-complement zero, then fix both checksums naively.
	f[14+14], f[14+15] = 0, 0
	rest := naivePseudo(f, 14, false, 17, info.L4Len())
	binary.BigEndian.PutUint16(f[14+14:], ^uint16(rest))
	f[14+10], f[14+11] = 0, 0
	binary.BigEndian.PutUint16(f[14+10:], ^uint16(naiveSum(f[14:34], 0)))
	f[34+6], f[34+7] = 0, 0
	c := ^uint16(naiveSum(f[34:], naivePseudo(f, 14, false, 17, info.L4Len())))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(f[34+6:], c)
	decodeValid(t, f)
	if naiveSeed(f, 14, false, 17, info.L4Len()) != 0xffff {
		t.Fatal("test setup: seed is not 0xffff")
	}
	good := append([]byte(nil), f...)
	seedIt(t, f)
	if binary.BigEndian.Uint16(f[info.L4Off+6:]) != 0xffff {
		t.Fatal("seed not 0xffff")
	}
	if _, _, ok := PartialChecksum(f, lay(f)); !ok {
		t.Fatal("seed 0xffff not recognised")
	}
	if !CompleteChecksum(f, lay(f)) {
		t.Fatal("seed 0xffff not completed")
	}
	decodeValid(t, f)
	if !bytes.Equal(f, good) {
		t.Fatal("completed differs")
	}

	// UDP checksum 0 ("none") is never a seed.
	f = build(t, pktSpec{udp: true, payload: payloadOf(40, 1)})
	f[34+6], f[34+7] = 0, 0
	if _, _, ok := PartialChecksum(f, lay(f)); ok || CompleteChecksum(f, lay(f)) {
		t.Fatal("UDP checksum 0 treated as a seed")
	}

	// Force a UDP datagram whose checksum computes to 0: completion must
	// store 0xffff.
	f = build(t, pktSpec{udp: true, payload: payloadOf(40, 1)})
	info, _ = parseL4(f)
	f[len(f)-2], f[len(f)-1] = 0, 0
	f[34+6], f[34+7] = 0, 0
	s := naiveSum(f[info.L4Off:], naivePseudo(f, 14, false, 17, info.L4Len()))
	// Make the data sum to 0xffff overall: add the complement as last word.
	binary.BigEndian.PutUint16(f[len(f)-2:], ^uint16(s))
	seedIt(t, f)
	if !CompleteChecksum(f, lay(f)) {
		t.Fatal("not completed")
	}
	if got := binary.BigEndian.Uint16(f[34+6:]); got != 0xffff {
		t.Fatalf("checksum computing to 0 stored as %#04x, want 0xffff", got)
	}
	decodeValid(t, f)
}

func BenchmarkCompleteChecksum(b *testing.B) {
	f := seedIt(b, build(b, pktSpec{payload: payloadOf(1448, 1), flags: "A", opts: true}))
	info, _ := parseL4(f)
	at := info.L4Off + 16
	seed := binary.BigEndian.Uint16(f[at:])
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	for b.Loop() {
		binary.BigEndian.PutUint16(f[at:], seed)
		if !CompleteChecksum(f, lay(f)) {
			b.Fatal("not completed")
		}
	}
}

func BenchmarkPartialChecksum(b *testing.B) {
	f := seedIt(b, build(b, pktSpec{payload: payloadOf(1448, 1), flags: "A", opts: true}))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := PartialChecksum(f, lay(f)); !ok {
			b.Fatal("not partial")
		}
	}
}
