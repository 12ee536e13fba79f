package offload

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"unsafe"

	"github.com/vxland/vxland/inner"
)

// within reports whether b lies inside buf (shares its memory).
func within(b, buf []byte) bool {
	if len(b) == 0 {
		return true
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	s := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	return p >= s && p+uintptr(len(b)) <= s+uintptr(len(buf))
}

// hdrSlots returns n header slots of size bytes, filled with 0xee.
func hdrSlots(n, size int) [][]byte {
	hdrs := make([][]byte, n)
	for i := range hdrs {
		hdrs[i] = bytes.Repeat([]byte{0xee}, size)
	}
	return hdrs
}

// checkGatherEqualsCopy segments frame both ways and requires [hdrs[i],
// payloads[i]] to equal SegmentTCP's frame i behind the same room, the room
// untouched and every payload a slice of frame.
func checkGatherEqualsCopy(t testing.TB, hdr VirtioNetHdr, frame []byte, room int) int {
	t.Helper()
	count, segLen, err := Segments(lay(frame), hdr, frame)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := outBufs(count, room+segLen)
	sizes := make([]int, count)
	n, err := SegmentTCP(lay(frame), hdr, frame, out, sizes, room)
	if err != nil {
		t.Fatal(err)
	}
	hdrs := hdrSlots(count, room+200)
	pays := make([][]byte, count)
	orig := bytes.Clone(frame)
	gn, err := SegmentGather(lay(frame), hdr, frame, room, hdrs, pays)
	if err != nil || gn != n {
		t.Fatalf("SegmentGather = %d, %v; SegmentTCP wrote %d", gn, err, n)
	}
	if !bytes.Equal(frame, orig) {
		t.Fatal("SegmentGather modified the frame")
	}
	for i := 0; i < n; i++ {
		if !bytes.Equal(hdrs[i][:room], bytes.Repeat([]byte{0xee}, room)) {
			t.Fatalf("segment %d: header room written", i)
		}
		got := append(bytes.Clone(hdrs[i][room:]), pays[i]...)
		if want := out[i][room : room+sizes[i]]; !bytes.Equal(got, want) {
			t.Fatalf("segment %d: gathered frame differs from the copied one\n%x\n%x", i, got, want)
		}
		if !within(pays[i], frame) {
			t.Fatalf("segment %d: payload is not a slice of the super-frame", i)
		}
		if i > 0 && i < n-1 && (len(hdrs[i]) != len(hdrs[0]) || len(pays[i]) != len(pays[0])) {
			t.Fatalf("segment %d: lengths %d+%d differ from the first's", i, len(hdrs[i]), len(pays[i]))
		}
	}
	return n
}

func TestSegmentGather(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, vlan := range []bool{false, true} {
			for _, plen := range []int{1, 1447, 1448, 1449, 10000, 60000} {
				s := pktSpec{v6: v6, vlan: vlan, opts: true, payload: payloadOf(plen, byte(plen)), seq: 0xfffff000, flags: "CFPA", ipID: 0xfffe}
				t.Run(fmt.Sprintf("tcp/v6=%v/vlan=%v/len=%d", v6, vlan, plen), func(t *testing.T) {
					hdr, f := superFrame(t, s, 1448)
					checkGatherEqualsCopy(t, hdr, f, 8)
				})
			}
			t.Run(fmt.Sprintf("udp/v6=%v/vlan=%v", v6, vlan), func(t *testing.T) {
				f := build(t, pktSpec{udp: true, v6: v6, vlan: vlan, payload: payloadOf(5000, 3)})
				l := lay(f)
				hdr := VirtioNetHdr{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, GSOSize: 1200, CsumStart: uint16(l.L4Off), CsumOffset: 6}
				seedIt(t, f)
				if n := checkGatherEqualsCopy(t, hdr, f, 0); n != 5 {
					t.Fatalf("%d datagrams, want 5", n)
				}
			})
		}
	}
}

func TestSegmentGatherErrors(t *testing.T) {
	hdr, f := superFrame(t, pktSpec{payload: payloadOf(3000, 1), flags: "A"}, 1000)
	hl := lay(f).PayloadOff()
	check := func(name string, h VirtioNetHdr, room int, hdrs, pays [][]byte, want error) {
		t.Helper()
		before := make([][]byte, len(hdrs))
		for i := range hdrs {
			before[i] = bytes.Clone(hdrs[i])
		}
		n, err := SegmentGather(lay(f), h, f, room, hdrs, pays)
		if !errors.Is(err, want) || n != 0 {
			t.Errorf("%s: n=%d err=%v, want %v", name, n, err, want)
		}
		for i := range hdrs {
			if !bytes.Equal(hdrs[i], before[i]) {
				t.Errorf("%s: header slot %d written on error", name, i)
			}
		}
	}
	check("no gso", VirtioNetHdr{}, 8, hdrSlots(3, 100), make([][]byte, 3), ErrUnsupported)
	check("negative room", hdr, -1, hdrSlots(3, 100), make([][]byte, 3), ErrShortBuffer)
	check("too few slots", hdr, 8, hdrSlots(2, 100), make([][]byte, 3), ErrTooManySegments)
	check("too few payloads", hdr, 8, hdrSlots(3, 100), make([][]byte, 2), ErrTooManySegments)
	check("short slot", hdr, 8, hdrSlots(3, 8+hl-1), make([][]byte, 3), ErrShortBuffer)
	bad := hdr
	bad.GSOType = GSOTCPv6
	check("wrong gso type", bad, 8, hdrSlots(3, 100), make([][]byte, 3), ErrMalformed)
}

func BenchmarkSegmentGather(b *testing.B) {
	for _, v6 := range []bool{false, true} {
		b.Run(map[bool]string{false: "v4", true: "v6"}[v6], func(b *testing.B) {
			plen := 65535 - 20 - 32
			if v6 {
				plen = 65535 - 32
			}
			plen -= plen % 1410
			hdr, f := superFrame(b, pktSpec{v6: v6, opts: true, payload: payloadOf(plen, 1), flags: "PA"}, 1410)
			hdrs := hdrSlots(64, 160)
			pays := make([][]byte, 64)
			var l inner.Layout
			b.SetBytes(int64(len(f)))
			b.ReportAllocs()
			var n int
			for b.Loop() {
				l.Decode(f)
				var err error
				n, err = SegmentGather(&l, hdr, f, 8, hdrs, pays)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < n; i++ {
					hdrs[i] = hdrs[i][:cap(hdrs[i])]
				}
			}
			b.ReportMetric(float64(n), "segs/op")
		})
	}
}

// gathered is one FlushGather output: the header, the parts as handed out,
// and their concatenation.
type gathered struct {
	hdr   VirtioNetHdr
	parts [][]byte
	frame []byte
}

func flushGatherAll(t testing.TB, c *Coalescer) []gathered {
	t.Helper()
	var out []gathered
	err := c.FlushGather(func(h VirtioNetHdr, parts [][]byte) error {
		g := gathered{hdr: h, parts: append([][]byte(nil), parts...)}
		for _, p := range parts {
			g.frame = append(g.frame, p...)
		}
		out = append(out, g)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatal("coalescer not empty after FlushGather")
	}
	return out
}

func TestCoalesceGather(t *testing.T) {
	a := segmentsOf(t, pktSpec{opts: true, payload: payloadOf(1448*10+100, 1), flags: "PA", seq: 7}, 1448)
	b := segmentsOf(t, pktSpec{v6: true, vlan: true, payload: payloadOf(1400*3, 2), flags: "A", seq: 9}, 1400)
	udp := build(t, pktSpec{udp: true, payload: payloadOf(100, 3)})
	var in [][]byte
	for i := range a {
		in = append(in, a[i])
		if i < len(b) {
			in = append(in, b[i])
		}
		if i == 4 {
			in = append(in, udp)
		}
	}
	copyMode := NewCoalescer(CoalescerConfig{})
	gather := NewCoalescer(CoalescerConfig{Gather: true})
	orig := make([][]byte, len(in))
	for i, f := range in {
		orig[i] = bytes.Clone(f)
		if err := copyMode.Add(bytes.Clone(f), lay(f)); err != nil {
			t.Fatal(err)
		}
		if err := gather.Add(f, lay(f)); err != nil {
			t.Fatal(err)
		}
	}
	want := flushAll(t, copyMode)
	got := flushGatherAll(t, gather)
	if len(got) != 3 || len(want) != 3 {
		t.Fatalf("%d gathered and %d copied frames, want 3 each", len(got), len(want))
	}
	for i := range got {
		if got[i].hdr != want[i].hdr || !bytes.Equal(got[i].frame, want[i].frame) {
			t.Fatalf("frame %d: gathered %v differs from copied %v", i, got[i].hdr, want[i].hdr)
		}
	}
	// The merged frames are headers plus one payload per segment, each a
	// slice of the frame given to Add; the UDP frame is itself.
	for i, n := range []int{len(a), len(b)} {
		g := got[i]
		if len(g.parts) != 1+n {
			t.Fatalf("merged frame %d: %d parts, want %d", i, len(g.parts), 1+n)
		}
	}
	for k, p := range got[0].parts[1:] {
		if !within(p, a[k]) {
			t.Fatalf("part %d is not a slice of segment %d", k+1, k)
		}
	}
	if len(got[2].parts) != 1 || !within(got[2].parts[0], udp) || len(got[2].parts[0]) != len(udp) {
		t.Fatal("unmerged frame not handed out as itself")
	}
	for i := range in {
		if !bytes.Equal(in[i], orig[i]) {
			t.Fatalf("gather mode modified input frame %d", i)
		}
	}
	// The merged frame segments back into the input.
	segs := expand(t, emitted{got[0].hdr, got[0].frame})
	for i := range segs {
		if !bytes.Equal(normalize(segs[i]), normalize(a[i])) {
			t.Fatalf("re-segmented frame %d differs", i)
		}
	}
	if err := gather.Flush(func(VirtioNetHdr, []byte) error { return nil }); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Flush in gather mode: %v", err)
	}
}

func TestCoalesceMaxSegments(t *testing.T) {
	const n = MaxMergeSegments + 6
	segs := segmentsOf(t, pktSpec{payload: payloadOf(100*n, 1), flags: "A", seq: 1}, 100)
	for _, gather := range []bool{false, true} {
		c := NewCoalescer(CoalescerConfig{Gather: gather})
		for _, s := range segs {
			if err := c.Add(s, lay(s)); err != nil {
				t.Fatal(err)
			}
		}
		var counts []int
		err := c.FlushGather(func(h VirtioNetHdr, parts [][]byte) error {
			counts = append(counts, len(parts)-1)
			return nil
		})
		if err != nil || len(counts) != 2 || counts[0] != MaxMergeSegments || counts[1] != n-MaxMergeSegments {
			t.Fatalf("gather=%v: payload parts per frame %v (%v), want [%d %d]", gather, counts, err, MaxMergeSegments, n-MaxMergeSegments)
		}
	}
}

func TestCoalesceGatherZeroAlloc(t *testing.T) {
	segs := segmentsOf(t, pktSpec{opts: true, payload: payloadOf(1448*20, 1), flags: "A", seq: 1}, 1448)
	udp := build(t, pktSpec{udp: true, payload: payloadOf(100, 1)})
	c := NewCoalescer(CoalescerConfig{Gather: true})
	emit := func(VirtioNetHdr, [][]byte) error { return nil }
	var l inner.Layout
	allocs := testing.AllocsPerRun(50, func() {
		for _, s := range segs {
			l.Decode(s)
			_ = c.Add(s, &l)
			l.Decode(udp)
			_ = c.Add(udp, &l)
		}
		_ = c.FlushGather(emit)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per batch", allocs)
	}
}

func BenchmarkCoalesceGather(b *testing.B) {
	segs := segmentsOf(b, pktSpec{opts: true, payload: payloadOf(1448*44, 1), flags: "A", seq: 1}, 1448)
	for _, s := range segs {
		seedIt(b, s)
	}
	c := NewCoalescer(CoalescerConfig{Gather: true})
	emit := func(VirtioNetHdr, [][]byte) error { return nil }
	var total int
	for _, s := range segs {
		total += len(s)
	}
	var l inner.Layout
	b.SetBytes(int64(total))
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range segs {
			l.Decode(s)
			if err := c.Add(s, &l); err != nil {
				b.Fatal(err)
			}
		}
		if err := c.FlushGather(emit); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(segs)), "ns/frame")
}
