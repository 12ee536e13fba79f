package encap

import (
	"bytes"
	"fmt"
	"testing"
)

var ecnNames = [4]string{"Not-ECT", "ECT(1)", "ECT(0)", "CE"}

// innerFrames returns an IP frame of each kind whose DS byte is ds, with the
// offset of its IP header.
func innerFrames(ds uint8) []struct {
	name  string
	frame []byte
	off   int
} {
	v4 := ipv4(ds, protoTCP, v4A, v4B, 0, l4(1, 2))
	v6 := ipv6(ds, 0xabcde, protoTCP, v6A, v6B, l4(1, 2))
	return []struct {
		name  string
		frame []byte
		off   int
	}{
		{"ipv4", eth(macB, macA, etherTypeIPv4, v4), 14},
		{"ipv6", eth(macB, macA, etherTypeIPv6, v6), 14},
		{"ipv4 802.1Q", eth(macB, macA, etherTypeIPv4, v4, etherTypeVLAN), 18},
		{"ipv6 802.1Q", eth(macB, macA, etherTypeIPv6, v6, etherTypeVLAN), 18},
		{"ipv4 QinQ", eth(macB, macA, etherTypeIPv4, v4, etherTypeQinQ, etherTypeVLAN), 22},
		{"ipv6 QinQ", eth(macB, macA, etherTypeIPv6, v6, etherTypeQinQ, etherTypeVLAN), 22},
	}
}

// RFC 3168 9.1.1 / kernel INET_ECN_encapsulate: copy, but CE leaves as ECT(0).
var encapECN = [4]uint8{ecnNotECT, ecnECT1, ecnECT0, ecnECT0}

func TestOuterTOS(t *testing.T) {
	const dscpEF, dscpAF41 = 46 << 2, 34 << 2
	for innerECN := uint8(0); innerECN < 4; innerECN++ {
		for _, f := range innerFrames(dscpAF41 | innerECN) {
			name := fmt.Sprintf("%s inner %s", f.name, ecnNames[innerECN])
			for _, cfg := range []uint8{0, dscpEF, dscpEF | ecnCE} {
				want := cfg&^ecnMask | encapECN[innerECN]
				if got := outerTOS(f.frame, cfg, false); got != want {
					t.Errorf("%s: outerTOS(tos %#x) = %#x, want %#x", name, cfg, got, want)
				}
			}
			want := uint8(dscpAF41) | encapECN[innerECN]
			if got := outerTOS(f.frame, dscpEF, true); got != want {
				t.Errorf("%s: outerTOS(inherit) = %#x, want %#x", name, got, want)
			}
		}
	}
}

func TestOuterTOSNonIP(t *testing.T) {
	ipHdr := ipv4(0xb8|ecnCE, protoTCP, v4A, v4B, 0, nil)
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"arp", eth(macB, macA, 0x0806, make([]byte, 28))},
		{"short ipv4", eth(macB, macA, etherTypeIPv4, ipHdr[:19])},
		{"short ipv6", eth(macB, macA, etherTypeIPv6, make([]byte, 39))},
		{"three VLAN tags", eth(macB, macA, etherTypeIPv4, ipHdr, etherTypeQinQ, etherTypeVLAN, etherTypeVLAN)},
		{"cut in VLAN tag", eth(macB, macA, etherTypeIPv4, nil, etherTypeVLAN)[:16]},
		{"runt", []byte{1, 2, 3}},
		{"nil", nil},
	} {
		if got := outerTOS(tc.frame, 0xb8|ecnECT0, false); got != 0xb8 {
			t.Errorf("%s: OuterTOS = %#x, want 0xb8 (configured DSCP, Not-ECT)", tc.name, got)
		}
		if got := outerTOS(tc.frame, 0xb8, true); got != 0 {
			t.Errorf("%s: outerTOS(inherit) = %#x, want 0", tc.name, got)
		}
	}
}

// RFC 6040 Figure 4, indexed [inner][outer]; -1 is drop.
var decapTable = [4][4]int{
	ecnNotECT: {ecnNotECT: ecnNotECT, ecnECT0: ecnNotECT, ecnECT1: ecnNotECT, ecnCE: -1},
	ecnECT0:   {ecnNotECT: ecnECT0, ecnECT0: ecnECT0, ecnECT1: ecnECT1, ecnCE: ecnCE},
	ecnECT1:   {ecnNotECT: ecnECT1, ecnECT0: ecnECT1, ecnECT1: ecnECT1, ecnCE: ecnCE},
	ecnCE:     {ecnNotECT: ecnCE, ecnECT0: ecnCE, ecnECT1: ecnCE, ecnCE: ecnCE},
}

func TestDecapECN(t *testing.T) {
	const dscp = 46 << 2 // EF: IPv6 traffic class 0xb8 spans both nibbles
	for inner := uint8(0); inner < 4; inner++ {
		for outer := uint8(0); outer < 4; outer++ {
			for _, f := range innerFrames(dscp | inner) {
				name := fmt.Sprintf("%s inner %s outer %s", f.name, ecnNames[inner], ecnNames[outer])
				want := decapTable[inner][outer]
				before := bytes.Clone(f.frame)
				ok := decapECN(f.frame, 0xfc|outer) // outer DSCP must not matter
				if ok != (want >= 0) {
					t.Errorf("%s: DecapECN = %v, want %v", name, ok, want >= 0)
					continue
				}
				if want < 0 {
					want = int(inner) // dropped frames are left alone
				}
				ip := f.frame[f.off:]
				if got := dsField(f.frame, versionOf(f.name), f.off); got != dscp|uint8(want) {
					t.Errorf("%s: inner DS = %#x, want %#x", name, got, dscp|want)
				}
				// Only the ECN bits (and the IPv4 checksum) may change.
				diff := changedBytes(before, f.frame)
				switch {
				case versionOf(f.name) == 6:
					if flow := be32(ip) & 0xfffff; flow != 0xabcde {
						t.Errorf("%s: flow label = %#x, want 0xabcde", name, flow)
					}
					if ip[0]>>4 != 6 {
						t.Errorf("%s: version nibble = %d", name, ip[0]>>4)
					}
					if len(diff) > 1 || len(diff) == 1 && diff[0] != f.off+1 {
						t.Errorf("%s: changed bytes %v", name, diff)
					}
				default:
					if !ipv4ChecksumOK(ip) {
						t.Errorf("%s: IPv4 header checksum invalid after DecapECN: % x", name, ip[:20])
					}
					for _, i := range diff {
						if i != f.off+1 && i != f.off+10 && i != f.off+11 {
							t.Errorf("%s: changed byte %d", name, i)
						}
					}
				}
			}
		}
	}
}

func versionOf(name string) int {
	if name[:4] == "ipv6" {
		return 6
	}
	return 4
}

func changedBytes(a, b []byte) []int {
	var d []int
	for i := range a {
		if a[i] != b[i] {
			d = append(d, i)
		}
	}
	return d
}

// IPv4 checksum update matches a full recomputation (up to the two forms of
// zero) and, where they differ, gives the kernel's csum16_add form.
func TestDecapECNChecksum(t *testing.T) {
	corners := 0
	for id := 0; id < 1<<16; id++ {
		for _, tc := range []struct{ inner, outer uint8 }{
			{ecnECT0, ecnCE}, {ecnECT1, ecnCE}, {ecnECT0, ecnECT1},
		} {
			frame := eth(macB, macA, etherTypeIPv4, ipv4(0x28|tc.inner, protoUDP, v4A, v4B, 0, nil))
			ip := frame[14:34]
			ip[4], ip[5] = byte(id>>8), byte(id)
			ip[10], ip[11] = 0, 0
			sum := ^onesSum(ip)
			ip[10], ip[11] = byte(sum>>8), byte(sum)
			decapECN(frame, tc.outer)
			got := be16(ip[10:])
			ip[10], ip[11] = 0, 0
			want := ^onesSum(ip)
			if want == 0 {
				want = 0xffff // csum16_add with a nonzero addend never yields 0
				corners++
			}
			if got != want {
				t.Fatalf("id %#x inner %s outer %s: checksum %#04x, want %#04x",
					id, ecnNames[tc.inner], ecnNames[tc.outer], got, want)
			}
		}
	}
	if corners == 0 {
		t.Error("no header hit the 0x0000/0xffff corner")
	}
}

// The IPv6 traffic class straddles the version nibble and the flow label.
func TestDecapECNIPv6Nibbles(t *testing.T) {
	for _, tc := range []uint8{0x01, 0x02, 0x0e, 0x12, 0xfe, 0xb9, 0x8a} {
		frame := eth(macB, macA, etherTypeIPv6, ipv6(tc, 0xfffff, protoUDP, v6A, v6B, nil))
		if !decapECN(frame, ecnCE) {
			t.Fatalf("tc %#x: dropped", tc)
		}
		word := be32(frame[14:])
		if want := 6<<28 | uint32(tc|ecnCE)<<20 | 0xfffff; word != want {
			t.Errorf("tc %#x: first word %#08x, want %#08x", tc, word, want)
		}
	}
}

func TestDecapECNNonIP(t *testing.T) {
	ipHdr := ipv4(ecnNotECT, protoTCP, v4A, v4B, 0, nil)
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"arp", eth(macB, macA, 0x0806, make([]byte, 28))},
		{"short ipv4", eth(macB, macA, etherTypeIPv4, ipHdr[:19])},
		{"short ipv6", eth(macB, macA, etherTypeIPv6, make([]byte, 39))},
		{"three VLAN tags", eth(macB, macA, etherTypeIPv4, ipHdr, etherTypeQinQ, etherTypeVLAN, etherTypeVLAN)},
		{"runt", []byte{1, 2, 3}},
		{"nil", nil},
	} {
		before := bytes.Clone(tc.frame)
		if !decapECN(tc.frame, ecnCE) {
			t.Errorf("%s: dropped", tc.name)
		}
		if !bytes.Equal(before, tc.frame) {
			t.Errorf("%s: frame modified", tc.name)
		}
	}
}

func TestInnerTTL(t *testing.T) {
	v4 := make([]byte, 14+20)
	v4[12], v4[13], v4[14], v4[14+8] = 0x08, 0x00, 0x45, 33
	v6 := make([]byte, 14+40)
	v6[12], v6[13], v6[14], v6[14+7] = 0x86, 0xdd, 0x60, 7
	tagged := append([]byte{}, v4[:12]...)
	tagged = append(tagged, 0x81, 0x00, 0, 5)
	tagged = append(tagged, v4[12:]...)
	arp := make([]byte, 60)
	arp[12], arp[13] = 0x08, 0x06
	for _, tc := range []struct {
		name  string
		frame []byte
		want  uint8
	}{
		{"ipv4", v4, 33}, {"ipv6", v6, 7}, {"vlan ipv4", tagged, 33}, {"arp", arp, 0},
		{"short ipv4", v4[:20], 0}, {"empty", nil, 0},
	} {
		if got := innerTTL(tc.frame); got != tc.want {
			t.Errorf("%s: InnerTTL = %d, want %d", tc.name, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { innerTTL(v4) }); n != 0 {
		t.Errorf("InnerTTL allocates %v times", n)
	}
}
