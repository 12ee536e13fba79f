package encap

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

func tcp4(src, dst netip.Addr, sport, dport uint16) []byte {
	return eth(macB, macA, etherTypeIPv4, ipv4(0, protoTCP, src, dst, 0, l4(sport, dport)))
}

func TestFlowHashDeterministic(t *testing.T) {
	frames := [][]byte{
		tcp4(v4A, v4B, 40000, 443),
		eth(macB, macA, etherTypeIPv6, ipv6(0, 0, protoUDP, v6A, v6B, l4(5353, 53))),
		eth(macB, macA, 0x0806, make([]byte, 28)),
		{1, 2, 3},
	}
	for i, f := range frames {
		h := flowHash(f)
		c := bytes.Clone(f)
		if flowHash(c) != h || flowHash(f) != h {
			t.Errorf("frame %d: hash not stable", i)
		}
		if !bytes.Equal(c, f) {
			t.Errorf("frame %d: FlowHash modified the frame", i)
		}
	}
	// Payload and TTL are not part of the flow.
	a := tcp4(v4A, v4B, 40000, 443)
	b := append(bytes.Clone(a), "payload"...)
	b[14+8] = 1
	if flowHash(a) != flowHash(b) {
		t.Error("payload or TTL changed the hash")
	}
}

// spread hashes n flows into a range of 64 source ports and checks that they
// are all distinct and cover the range evenly.
func spread(t *testing.T, name string, n int, frame func(i int) []byte) {
	t.Helper()
	const lo, hi = 49152, 49152 + 64
	seen := make(map[uint32]int)
	var bins [hi - lo]int
	for i := range n {
		h := flowHash(frame(i))
		if j, dup := seen[h]; dup {
			t.Errorf("%s: flows %d and %d share hash %#x", name, j, i, h)
		}
		seen[h] = i
		bins[SourcePort(h, lo, hi)-lo]++
	}
	empty, most := 0, 0
	for _, c := range bins {
		if c == 0 {
			empty++
		}
		most = max(most, c)
	}
	// 1000 flows over 64 ports: about 15.6 per port; an empty port has
	// probability ~1e-5, more than 40 on one port far less.
	if empty > 2 || most > 40 {
		t.Errorf("%s: %d of 64 ports unused, busiest has %d flows: %v", name, empty, most, bins)
	}
}

func TestFlowHashSpread(t *testing.T) {
	spread(t, "ipv4 source port", 1000, func(i int) []byte { return tcp4(v4A, v4B, uint16(32768+i), 443) })
	spread(t, "ipv4 destination port", 1000, func(i int) []byte { return tcp4(v4A, v4B, 40000, uint16(1+i)) })
	spread(t, "ipv4 source address", 1000, func(i int) []byte {
		src := netip.AddrFrom4([4]byte{203, 0, 113, byte(i)})
		return tcp4(src, v4B, 40000, uint16(80+i/256))
	})
	spread(t, "ipv6 source port", 1000, func(i int) []byte {
		return eth(macB, macA, etherTypeIPv6, ipv6(0, 0, protoUDP, v6A, v6B, l4(uint16(32768+i), 4789)))
	})
	spread(t, "ipv6 flow label", 1000, func(i int) []byte {
		return eth(macB, macA, etherTypeIPv6, ipv6(0, uint32(i), protoTCP, v6A, v6B, l4(40000, 443)))
	})
	spread(t, "mac", 1000, func(i int) []byte {
		src := macA
		binary.BigEndian.PutUint16(src[4:], uint16(i))
		return eth(macB, src, 0x0806, make([]byte, 28))
	})
}

func TestFlowHashKeys(t *testing.T) {
	base := flowHash(tcp4(v4A, v4B, 40000, 443))
	for name, f := range map[string][]byte{
		"source address": tcp4(v4B, v4B, 40000, 443),
		"dest address":   tcp4(v4A, v4A, 40000, 443),
		"swapped":        tcp4(v4B, v4A, 443, 40000),
		"source port":    tcp4(v4A, v4B, 40001, 443),
		"dest port":      tcp4(v4A, v4B, 40000, 444),
		"protocol":       eth(macB, macA, etherTypeIPv4, ipv4(0, protoUDP, v4A, v4B, 0, l4(40000, 443))),
	} {
		if flowHash(f) == base {
			t.Errorf("changing the %s does not change the hash", name)
		}
	}
	for _, proto := range []uint8{protoUDP, protoSCTP, protoUDPLite, protoDCCP, protoESP} {
		a := eth(macB, macA, etherTypeIPv4, ipv4(0, proto, v4A, v4B, 0, l4(1, 2)))
		b := eth(macB, macA, etherTypeIPv4, ipv4(0, proto, v4A, v4B, 0, l4(1, 3)))
		if flowHash(a) == flowHash(b) {
			t.Errorf("protocol %d: ports not hashed", proto)
		}
	}
	// AH: the SPI is at offset 4.
	ah := func(spi uint32) []byte {
		p := binary.BigEndian.AppendUint32([]byte{protoTCP, 4, 0, 0}, spi)
		return eth(macB, macA, etherTypeIPv4, ipv4(0, protoAH, v4A, v4B, 0, p))
	}
	if flowHash(ah(1)) == flowHash(ah(2)) {
		t.Error("AH: SPI not hashed")
	}
	// ICMP and other protocols: addresses only.
	ic := func(id uint16) []byte {
		return eth(macB, macA, etherTypeIPv4, ipv4(0, 1, v4A, v4B, 0, l4(0x0800, id)))
	}
	if flowHash(ic(1)) != flowHash(ic(2)) {
		t.Error("ICMP: bytes beyond the IP header hashed")
	}
	// A truncated L4 header hashes as having no ports.
	full := tcp4(v4A, v4B, 0, 0)
	if flowHash(full[:36]) != flowHash(full) {
		t.Error("truncated ports hash differently from zero ports")
	}
}

func TestFlowHashVLAN(t *testing.T) {
	for _, tpids := range [][]uint16{{etherTypeVLAN}, {etherTypeQinQ}, {etherTypeQinQ, etherTypeVLAN}, {etherTypeVLAN, etherTypeVLAN}} {
		tagged := func(sport uint16) []byte {
			return eth(macB, macA, etherTypeIPv4, ipv4(0, protoTCP, v4A, v4B, 0, l4(sport, 443)), tpids...)
		}
		// VLAN tags are skipped: the L3/L4 keys decide.
		if flowHash(tagged(40000)) != flowHash(tcp4(v4A, v4B, 40000, 443)) {
			t.Errorf("tags %#x: tagged frame hashes differently from untagged", tpids)
		}
		if flowHash(tagged(40000)) == flowHash(tagged(40001)) {
			t.Errorf("tags %#x: ports not hashed", tpids)
		}
		v6 := func(sport uint16) []byte {
			return eth(macB, macA, etherTypeIPv6, ipv6(0, 0, protoUDP, v6A, v6B, l4(sport, 53)), tpids...)
		}
		if flowHash(v6(1)) == flowHash(v6(2)) {
			t.Errorf("tags %#x: IPv6 ports not hashed", tpids)
		}
	}
	// A third tag is not looked through: the frame hashes by its MACs.
	three := func(sport uint16) []byte {
		return eth(macB, macA, etherTypeIPv4, ipv4(0, protoTCP, v4A, v4B, 0, l4(sport, 443)), etherTypeQinQ, etherTypeVLAN, etherTypeVLAN)
	}
	if flowHash(three(1)) != flowHash(three(2)) {
		t.Error("third VLAN tag looked through")
	}
}

func TestFlowHashNonIP(t *testing.T) {
	arp := func(dst, src [6]byte, body byte) []byte {
		return eth(dst, src, 0x0806, bytes.Repeat([]byte{body}, 28))
	}
	base := flowHash(arp(macB, macA, 0))
	if flowHash(arp(macB, macA, 1)) != base {
		t.Error("non-IP payload hashed")
	}
	if flowHash(arp(macA, macA, 0)) == base || flowHash(arp(macB, macB, 0)) == base {
		t.Error("MAC addresses not hashed")
	}
	if flowHash(eth(macB, macA, 0x88cc, make([]byte, 28))) == base {
		t.Error("ethertype not hashed")
	}
	// Broken IP headers fall back to the Ethernet keys, like the kernel.
	good := tcp4(v4A, v4B, 1, 2)
	for name, f := range map[string][]byte{
		"ipv4 truncated": good[:14+19],
		"ipv4 ihl 4":     func() []byte { b := bytes.Clone(good); b[14] = 0x44; return b }(),
		"ipv6 truncated": eth(macB, macA, etherTypeIPv6, make([]byte, 39)),
	} {
		other := bytes.Clone(f)
		other[len(other)-1] ^= 0xff // differs in what would be the IP keys
		if flowHash(f) != flowHash(other) {
			t.Errorf("%s: IP bytes hashed", name)
		}
		src := bytes.Clone(f)
		src[11] ^= 1
		if flowHash(f) == flowHash(src) {
			t.Errorf("%s: source MAC not hashed", name)
		}
	}
}

func TestFlowHashFragments(t *testing.T) {
	frag := func(off uint16, sport uint16) []byte {
		return eth(macB, macA, etherTypeIPv4, ipv4(0, protoUDP, v4A, v4B, off, l4(sport, 53)))
	}
	const mf, df = 0x2000, 0x4000
	first, later, last := frag(mf, 1), frag(mf|185, 2), frag(370, 3)
	if flowHash(first) != flowHash(later) || flowHash(first) != flowHash(last) {
		t.Error("fragments of one datagram hash differently")
	}
	if flowHash(frag(df, 1)) == flowHash(frag(df, 2)) {
		t.Error("DF set: ports not hashed")
	}
	// IPv6: a fragment header ends the keys, for every fragment.
	fh := func(off uint16, sport uint16) []byte {
		p := append([]byte{protoUDP, 0, byte(off >> 8), byte(off), 0, 0, 0, 1}, l4(sport, 53)...)
		return eth(macB, macA, etherTypeIPv6, ipv6(0, 0, 44, v6A, v6B, p))
	}
	if flowHash(fh(1, 1)) != flowHash(fh(185<<3, 2)) {
		t.Error("IPv6 fragments of one datagram hash differently")
	}
}

func TestFlowHashIPv6Extensions(t *testing.T) {
	ext := func(next uint8, words int) []byte { // an option header of (words+1)*8 bytes
		b := make([]byte, (words+1)*8)
		b[0], b[1] = next, byte(words)
		return b
	}
	chain := func(sport uint16, hdrs ...[]byte) []byte {
		var p []byte
		for _, h := range hdrs {
			p = append(p, h...)
		}
		return eth(macB, macA, etherTypeIPv6, ipv6(0, 0, protoHopByHop, v6A, v6B, append(p, l4(sport, 80)...)))
	}
	two := func(sport uint16) []byte { return chain(sport, ext(protoDestOpts, 0), ext(protoTCP, 2)) }
	if flowHash(two(1)) == flowHash(two(2)) {
		t.Error("ports after hop-by-hop and destination options not hashed")
	}
	three := func(sport uint16) []byte {
		return chain(sport, ext(protoRouting, 1), ext(protoDestOpts, 0), ext(protoUDP, 0))
	}
	if flowHash(three(1)) == flowHash(three(2)) {
		t.Error("ports after three extension headers not hashed")
	}
	four := func(sport uint16) []byte {
		return chain(sport, ext(protoDestOpts, 0), ext(protoDestOpts, 0), ext(protoDestOpts, 0), ext(protoUDP, 0))
	}
	if flowHash(four(1)) != flowHash(four(2)) {
		t.Error("more than three extension headers followed")
	}
	// Truncated in an extension header: no ports, no panic.
	cut := two(1)
	if h := flowHash(cut[:14+40+4]); h != flowHash(two(2)[:14+40+4]) {
		t.Error("truncated extension header chain hashed past its end")
	}
}

func TestSourcePort(t *testing.T) {
	// Exact values of the kernel formula.
	for _, tc := range []struct {
		hash    uint32
		lo, hi  uint16
		want    uint16
		comment string
	}{
		{0, 1000, 2000, 1000, "zero"},
		{0x80000000, 1000, 2000, 1500, "h<<16 is 0: half way"},
		{0xffffffff, 1000, 2000, 1000, "folds to 0x0000ffff"},
		{0x00008000, 0, 65535, 0x7fff, "low half moves to the top"},
		{0x12345678, 49152, 65535, 49152 + uint16(uint64(0x12345678^0x56780000)*16383>>32), "mixed"},
		{0x12345678, 0, 1, 0, "single port"},
		{0xffff0000, 65534, 65535, 65534, "single port at the top"},
		{0x12345678, 5000, 5000, 5000, "empty range: lo"},
		{0x12345678, 6000, 5000, 6000, "inverted range: lo"},
	} {
		if got := SourcePort(tc.hash, tc.lo, tc.hi); got != tc.want {
			t.Errorf("%s: SourcePort(%#x, %d, %d) = %d, want %d", tc.comment, tc.hash, tc.lo, tc.hi, got, tc.want)
		}
	}
	// Range: [lo, hi) for every hash pattern, and each end reachable.
	for _, r := range [][2]uint16{{0, 1}, {0, 2}, {0, 65535}, {1, 65535}, {65534, 65535}, {32768, 61000}, {49152, 49216}} {
		lo, hi := r[0], r[1]
		sawLo, sawTop := false, false
		for k := uint32(0); k < 1<<16; k++ {
			for _, h := range []uint32{k << 16, k<<16 | 0xffff, k * 0x9e3779b1} {
				p := SourcePort(h, lo, hi)
				if p < lo || p >= hi {
					t.Fatalf("SourcePort(%#x, %d, %d) = %d out of range", h, lo, hi, p)
				}
				sawLo = sawLo || p == lo
				sawTop = sawTop || p == hi-1
			}
		}
		if !sawLo || !sawTop {
			t.Errorf("[%d, %d): lowest port seen %v, highest seen %v", lo, hi, sawLo, sawTop)
		}
	}
}
