package offload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

// superFrame builds a TSO/USO super-frame as a TAP hands it over: headers
// with the full lengths, checksum field holding the seed, and its header.
func superFrame(t testing.TB, s pktSpec, mss int) (VirtioNetHdr, []byte) {
	t.Helper()
	f := seedIt(t, build(t, s))
	info, ok := parseL4(f)
	if !ok {
		t.Fatal("superFrame: does not parse")
	}
	hdr := VirtioNetHdr{
		Flags:      FlagNeedsCsum,
		HdrLen:     uint16(len(f)), // the kernel reports the linear length here
		GSOSize:    uint16(mss),
		CsumStart:  uint16(info.L4Off),
		CsumOffset: uint16(info.CsumOffset()),
	}
	switch {
	case s.udp:
		hdr.GSOType = GSOUDPL4
	case s.v6:
		hdr.GSOType = GSOTCPv6
	default:
		hdr.GSOType = GSOTCPv4
	}
	return hdr, f
}

func TestSegmentTCP(t *testing.T) {
	const offset = 8 // VXLAN header headroom
	type tc struct {
		spec pktSpec
		mss  int
	}
	var cases []tc
	for _, v6 := range []bool{false, true} {
		for _, vlan := range []bool{false, true} {
			for _, plen := range []int{1, 1409, 1410, 1411, 1410 * 3, 1410*3 + 7, 65535 - 20 - 32 - 40} {
				cases = append(cases, tc{pktSpec{v6: v6, vlan: vlan, opts: true, payload: payloadOf(plen, byte(plen)),
					seq: 0xfffff000, ack: 77, flags: "CFPA", ipID: 0xfffe, tos: 0x2, ttl: 9}, 1410})
			}
			cases = append(cases, tc{pktSpec{v6: v6, vlan: vlan, payload: payloadOf(60000, 1), seq: 1, flags: "A"}, 1448})
			cases = append(cases, tc{pktSpec{v6: v6, vlan: vlan, payload: payloadOf(3001, 1), seq: 1, flags: "PA"}, 1})
		}
	}
	for _, c := range cases {
		name := fmt.Sprintf("v6=%v/vlan=%v/len=%d/mss=%d", c.spec.v6, c.spec.vlan, len(c.spec.payload), c.mss)
		t.Run(name, func(t *testing.T) {
			hdr, f := superFrame(t, c.spec, c.mss)
			orig := append([]byte(nil), f...)
			want := (len(c.spec.payload) + c.mss - 1) / c.mss
			count, segLen, err := Segments(lay(f), hdr, f)
			if err != nil || count != want {
				t.Fatalf("Segments = %d, %d, %v; want %d", count, segLen, err, want)
			}
			size := offset + segLen
			out, backing := outBufs(want, size)
			sizes := make([]int, want)
			n, err := SegmentTCP(lay(f), hdr, f, out, sizes, offset)
			if err != nil {
				t.Fatal(err)
			}
			if n != want {
				t.Fatalf("n = %d, want ceil(%d/%d) = %d", n, len(c.spec.payload), c.mss, want)
			}
			if !bytes.Equal(f, orig) {
				t.Fatal("input modified")
			}
			if !guardsIntact(out, backing, size) {
				t.Fatal("wrote past an output buffer")
			}
			var payload []byte
			for i := 0; i < n; i++ {
				if i < n-1 && sizes[i] != segLen {
					t.Fatalf("segment %d size %d, want %d", i, sizes[i], segLen)
				}
				if !bytes.Equal(out[i][:offset], bytes.Repeat([]byte{0xa5}, offset)) {
					t.Fatalf("segment %d: headroom written", i)
				}
				seg := out[i][offset : offset+sizes[i]]
				d := decodeValid(t, seg)
				if (d.vlan != nil) != c.spec.vlan {
					t.Fatalf("segment %d: VLAN tag lost", i)
				}
				if d.vlan != nil && d.vlan.VLANIdentifier != 42 {
					t.Fatalf("segment %d: VLAN id %d", i, d.vlan.VLANIdentifier)
				}
				if len(d.payload) > c.mss || (i < n-1 && len(d.payload) != c.mss) {
					t.Fatalf("segment %d: payload %d with mss %d", i, len(d.payload), c.mss)
				}
				if d.ip4 != nil {
					if d.ip4.Id != c.spec.ipID+uint16(i) {
						t.Fatalf("segment %d: IP ID %d, want %d", i, d.ip4.Id, c.spec.ipID+uint16(i))
					}
					l3 := 14
					if c.spec.vlan {
						l3 = 18
					}
					if int(d.ip4.Length) != len(seg)-l3 {
						t.Fatalf("segment %d: IP length %d", i, d.ip4.Length)
					}
					if d.ip4.TOS != c.spec.tos || d.ip4.TTL != c.spec.ttl && c.spec.ttl != 0 || d.ip4.Flags != 2 {
						t.Fatalf("segment %d: IP fields changed: %+v", i, d.ip4)
					}
				}
				if d.ip6 != nil && int(d.ip6.Length) != len(d.ip6.Payload) {
					t.Fatalf("segment %d: IPv6 payload length %d, have %d", i, d.ip6.Length, len(d.ip6.Payload))
				}
				tcp := d.tcp
				if tcp.Seq != c.spec.seq+uint32(i*c.mss) || tcp.Ack != c.spec.ack {
					t.Fatalf("segment %d: seq %d ack %d", i, tcp.Seq, tcp.Ack)
				}
				last := i == n-1
				has := func(f byte) bool { return bytes.IndexByte([]byte(c.spec.flags), f) >= 0 }
				if tcp.FIN != (last && has('F')) || tcp.PSH != (last && has('P')) || tcp.CWR != (i == 0 && has('C')) || !tcp.ACK {
					t.Fatalf("segment %d/%d: flags FIN=%v PSH=%v CWR=%v ACK=%v", i, n, tcp.FIN, tcp.PSH, tcp.CWR, tcp.ACK)
				}
				if c.spec.opts && (len(tcp.Options) != 3 || !bytes.Equal(tcp.Options[2].OptionData, []byte{0, 0, 1, 2, 0, 0, 3, 4})) {
					t.Fatalf("segment %d: options %v", i, tcp.Options)
				}
				payload = append(payload, d.payload...)
			}
			if !bytes.Equal(payload, c.spec.payload) {
				t.Fatal("payload not preserved")
			}
		})
	}
}

func TestSegmentUDPL4(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, plen := range []int{1, 1200, 1201, 12000, 12001} {
			hdr, f := superFrame(t, pktSpec{udp: true, v6: v6, payload: payloadOf(plen, 3), ipID: 100}, 1200)
			want := (plen + 1199) / 1200
			out, _ := outBufs(want, 1300)
			sizes := make([]int, want)
			n, err := SegmentTCP(lay(f), hdr, f, out, sizes, 0)
			if err != nil || n != want {
				t.Fatalf("v6=%v len=%d: n=%d err=%v", v6, plen, n, err)
			}
			var payload []byte
			for i := 0; i < n; i++ {
				d := decodeValid(t, out[i][:sizes[i]])
				if int(d.udp.Length) != 8+len(d.udp.Payload) {
					t.Fatalf("UDP length %d", d.udp.Length)
				}
				if d.ip4 != nil && d.ip4.Id != 100+uint16(i) {
					t.Fatalf("IP ID %d", d.ip4.Id)
				}
				payload = append(payload, d.udp.Payload...)
			}
			if !bytes.Equal(payload, payloadOf(plen, 3)) {
				t.Fatal("payload not preserved")
			}
		}
	}
}

func TestSegmentNone(t *testing.T) {
	for _, s := range []pktSpec{
		{payload: payloadOf(1000, 1), flags: "PA"},
		{v6: true, vlan: true, payload: payloadOf(999, 1), flags: "A"},
		{udp: true, payload: payloadOf(999, 1)},
	} {
		good := build(t, s)
		f := seedIt(t, append([]byte(nil), good...))
		info, _ := parseL4(f)
		hdr := VirtioNetHdr{Flags: FlagNeedsCsum, CsumStart: uint16(info.L4Off), CsumOffset: uint16(info.CsumOffset())}
		out, _ := outBufs(1, 2000)
		sizes := []int{0}
		n, err := SegmentTCP(lay(f), hdr, f, out, sizes, 8)
		if err != nil || n != 1 || sizes[0] != len(f) {
			t.Fatalf("n=%d sizes=%v err=%v", n, sizes, err)
		}
		if !bytes.Equal(out[0][8:8+n*sizes[0]], good) {
			t.Fatal("completed frame differs")
		}
		// Without NEEDS_CSUM: a plain copy.
		n, err = SegmentTCP(lay(f), VirtioNetHdr{}, f, out, sizes, 0)
		if err != nil || n != 1 || !bytes.Equal(out[0][:sizes[0]], f) {
			t.Fatalf("plain copy: %d %v", n, err)
		}
	}
}

func TestSegmentErrors(t *testing.T) {
	hdr, f := superFrame(t, pktSpec{payload: payloadOf(5000, 1), flags: "A"}, 1000)
	out, backing := outBufs(5, 1100)
	sizes := make([]int, 5)
	snapshot := append([]byte(nil), backing...)
	check := func(name string, h VirtioNetHdr, frame []byte, out [][]byte, sizes []int, offset int, want error) {
		t.Helper()
		n, err := SegmentTCP(lay(frame), h, frame, out, sizes, offset)
		if !errors.Is(err, want) || n != 0 {
			t.Errorf("%s: n=%d err=%v, want %v", name, n, err, want)
		}
		if !bytes.Equal(backing, snapshot) {
			t.Fatalf("%s: output written on error", name)
		}
	}
	check("too few buffers", hdr, f, out[:4], sizes, 0, ErrTooManySegments)
	check("too few sizes", hdr, f, out, sizes[:4], 0, ErrTooManySegments)
	check("offset too large", hdr, f, out, sizes, 101, ErrShortBuffer)
	check("negative offset", hdr, f, out, sizes, -1, ErrShortBuffer)
	h := hdr
	h.GSOType = GSOTCPv6
	check("v6 type on v4", h, f, out, sizes, 0, ErrMalformed)
	h = hdr
	h.GSOType = GSOUDP
	check("UFO", h, f, out, sizes, 0, ErrUnsupported)
	h = hdr
	h.GSOType = 7
	check("unknown type", h, f, out, sizes, 0, ErrUnsupported)
	h = hdr
	h.CsumStart = 30
	check("csum_start", h, f, out, sizes, 0, ErrMalformed)
	h = hdr
	h.GSOSize = 0
	check("gso_size 0", h, f, out, sizes, 0, ErrMalformed)
	check("truncated", hdr, f[:len(f)-1], out, sizes, 0, ErrMalformed)
	check("none, csum beyond", VirtioNetHdr{Flags: FlagNeedsCsum, CsumStart: 99, CsumOffset: 0}, f[:100], out, sizes, 0, ErrMalformed)
	check("none, csum offset huge", VirtioNetHdr{Flags: FlagNeedsCsum, CsumStart: 34, CsumOffset: 0xffff}, f[:100], out, sizes, 0, ErrMalformed)
	check("none, short out", VirtioNetHdr{}, f, out, sizes, 0, ErrShortBuffer)
	check("none, no out", VirtioNetHdr{}, f[:100], nil, sizes, 0, ErrTooManySegments)
}

var benchSink int

func BenchmarkSegmentTCP(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		b.Run(map[bool]string{false: "v4", true: "v6"}[v6], func(b *testing.B) {
			// A 64 KB super-frame at MSS 1410, as read from a TAP.
			plen := 65535 - 20 - 32
			if v6 {
				plen = 65535 - 32
			}
			plen -= plen % 1410 // keep the IP length within 64 KiB for both
			hdr, f := superFrame(b, pktSpec{v6: v6, opts: true, payload: payloadOf(plen, 1), flags: "PA"}, 1410)
			count, segLen, err := Segments(lay(f), hdr, f)
			if err != nil {
				b.Fatal(err)
			}
			out := make([][]byte, count)
			for i := range out {
				out[i] = make([]byte, 8+segLen)
			}
			sizes := make([]int, count)
			b.SetBytes(int64(len(f)))
			b.ReportAllocs()
			for b.Loop() {
				n, err := SegmentTCP(lay(f), hdr, f, out, sizes, 8)
				if err != nil || n != count {
					b.Fatal(n, err)
				}
				benchSink += n
			}
			b.ReportMetric(float64(count), "segs/op")
		})
	}
}

func TestSegmentsLayout(t *testing.T) {
	// One contiguous buffer sliced by stride gives back-to-back frames, as
	// UDP_SEGMENT wants them.
	hdr, f := superFrame(t, pktSpec{payload: payloadOf(10000, 1), flags: "A"}, 1448)
	count, segLen, err := Segments(lay(f), hdr, f)
	if err != nil {
		t.Fatal(err)
	}
	const off = 8
	stride := off + segLen
	big := make([]byte, count*stride)
	out := make([][]byte, count)
	for i := range out {
		out[i] = big[i*stride : (i+1)*stride]
	}
	sizes := make([]int, count)
	n, err := SegmentTCP(lay(f), hdr, f, out, sizes, off)
	if err != nil || n != count {
		t.Fatal(n, err)
	}
	for i := 0; i < n; i++ {
		seg := big[i*stride+off : i*stride+off+sizes[i]]
		d := decodeValid(t, seg)
		if binary.BigEndian.Uint32(seg[34+4:]) != d.tcp.Seq {
			t.Fatal("layout mismatch")
		}
	}
}
