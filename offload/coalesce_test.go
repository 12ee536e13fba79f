package offload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// emitted is one Flush output, copied.
type emitted struct {
	hdr   VirtioNetHdr
	frame []byte
}

func flushAll(t testing.TB, c *Coalescer) []emitted {
	t.Helper()
	var out []emitted
	err := c.Flush(func(h VirtioNetHdr, f []byte) error {
		out = append(out, emitted{h, append([]byte(nil), f...)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatal("coalescer not empty after Flush")
	}
	return out
}

// expand turns an emitted frame into the wire frames the TAP's kernel side
// would see: GSO frames are segmented, NEEDS_CSUM frames completed. Each
// result must have valid checksums.
func expand(t testing.TB, e emitted) [][]byte {
	t.Helper()
	count, segLen, err := Segments(lay(e.frame), e.hdr, e.frame)
	if err != nil {
		t.Fatalf("%v: %v", e.hdr, err)
	}
	out, _ := outBufs(count, segLen)
	sizes := make([]int, count)
	n, err := SegmentTCP(lay(e.frame), e.hdr, e.frame, out, sizes, 0)
	if err != nil {
		t.Fatalf("%v: %v", e.hdr, err)
	}
	res := make([][]byte, n)
	for i := range res {
		res[i] = out[i][:sizes[i]]
	}
	return res
}

// segmentsOf splits a super-frame (checksums complete) for the tests.
func segmentsOf(t testing.TB, s pktSpec, mss int) [][]byte {
	t.Helper()
	hdr, f := superFrame(t, s, mss)
	count, segLen, err := Segments(lay(f), hdr, f)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := outBufs(count, segLen)
	sizes := make([]int, count)
	n, err := SegmentTCP(lay(f), hdr, f, out, sizes, 0)
	if err != nil {
		t.Fatal(err)
	}
	res := make([][]byte, n)
	for i := range res {
		res[i] = append([]byte(nil), out[i][:sizes[i]]...)
	}
	return res
}

func TestCoalesceRoundTrip(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, vlan := range []bool{false, true} {
			for _, seed := range []bool{false, true} {
				for _, plen := range []int{1448 * 10, 1448*10 + 100, 1448*45 - 5} {
					spec := pktSpec{v6: v6, vlan: vlan, opts: true, payload: payloadOf(plen, 7), seq: 0xffffff00, ack: 5, flags: "PA", ipID: 7}
					segs := segmentsOf(t, spec, 1448)
					if seed {
						for _, s := range segs {
							seedIt(t, s)
						}
					}
					c := NewCoalescer(CoalescerConfig{})
					for _, s := range segs {
						if err := c.Add(s, lay(s)); err != nil {
							t.Fatal(err)
						}
					}
					out := flushAll(t, c)
					if len(out) != 1 {
						t.Fatalf("v6=%v vlan=%v seed=%v len=%d: %d frames out, want 1", v6, vlan, seed, plen, len(out))
					}
					e := out[0]
					info, _ := parseL4(e.frame)
					wantType := uint8(GSOTCPv4)
					if v6 {
						wantType = GSOTCPv6
					}
					want := VirtioNetHdr{Flags: FlagNeedsCsum, GSOType: wantType, HdrLen: uint16(info.PayloadOff()),
						GSOSize: 1448, CsumStart: uint16(info.L4Off), CsumOffset: 16}
					if e.hdr != want {
						t.Fatalf("hdr %v, want %v", e.hdr, want)
					}
					// The merged frame is the original super-frame, with the
					// checksum field holding the seed over the merged length.
					hdr0, orig := superFrame(t, spec, 1448)
					if !bytes.Equal(e.frame, orig) {
						t.Fatalf("v6=%v vlan=%v: merged frame differs from the original super-frame", v6, vlan)
					}
					// And segmenting it again gives the same segments.
					again := expand(t, e)
					if len(again) != len(segs) {
						t.Fatalf("re-segmented into %d, want %d", len(again), len(segs))
					}
					for i := range again {
						decodeValid(t, again[i])
						if !seed && !bytes.Equal(again[i], segs[i]) {
							t.Fatalf("segment %d differs after the round trip", i)
						}
					}
					_ = hdr0
				}
			}
		}
	}
}

func TestCoalesceRules(t *testing.T) {
	base := pktSpec{opts: true, seq: 1000, ack: 9, flags: "A"}
	seg := func(mod func(*pktSpec), plen int, seq uint32) []byte {
		s := base
		s.payload = payloadOf(plen, byte(seq))
		s.seq = seq
		if mod != nil {
			mod(&s)
		}
		return build(t, s)
	}
	cases := []struct {
		name   string
		frames [][]byte
		want   []int // segments per output frame
	}{
		{"adjacent", [][]byte{seg(nil, 100, 1000), seg(nil, 100, 1100), seg(nil, 100, 1200)}, []int{3}},
		{"short last", [][]byte{seg(nil, 100, 1000), seg(nil, 100, 1100), seg(nil, 50, 1200)}, []int{3}},
		{"short ends", [][]byte{seg(nil, 100, 1000), seg(nil, 50, 1100), seg(nil, 100, 1150)}, []int{2, 1}},
		{"larger not appended", [][]byte{seg(nil, 100, 1000), seg(nil, 101, 1100)}, []int{1, 1}},
		{"gap", [][]byte{seg(nil, 100, 1000), seg(nil, 100, 1200)}, []int{1, 1}},
		{"psh ends", [][]byte{seg(nil, 100, 1000), seg(func(s *pktSpec) { s.flags = "PA" }, 100, 1100), seg(nil, 100, 1200)}, []int{2, 1}},
		{"psh first", [][]byte{seg(func(s *pktSpec) { s.flags = "PA" }, 100, 1000), seg(nil, 100, 1100)}, []int{1, 1}},
		{"fin", [][]byte{seg(nil, 100, 1000), seg(func(s *pktSpec) { s.flags = "FA" }, 100, 1100), seg(nil, 100, 1200)}, []int{1, 1, 1}},
		{"ack differs", [][]byte{seg(nil, 100, 1000), seg(func(s *pktSpec) { s.ack = 10 }, 100, 1100)}, []int{1, 1}},
		{"window differs", [][]byte{seg(nil, 100, 1000), seg(func(s *pktSpec) { s.window = 7 }, 100, 1100)}, []int{1, 1}},
		{"options differ", [][]byte{seg(nil, 100, 1000), seg(func(s *pktSpec) { s.opts = false }, 100, 1100)}, []int{1, 1}},
		{"ttl differs", [][]byte{seg(nil, 100, 1000), seg(func(s *pktSpec) { s.ttl = 3 }, 100, 1100)}, []int{1, 1}},
		{"tos differs", [][]byte{seg(nil, 100, 1000), seg(func(s *pktSpec) { s.tos = 1 }, 100, 1100)}, []int{1, 1}},
		{"vlan differs", [][]byte{seg(nil, 100, 1000), seg(func(s *pktSpec) { s.vlan = true }, 100, 1100)}, []int{1, 1}},
		{"pure ack between", [][]byte{seg(nil, 100, 1000), seg(nil, 0, 1100), seg(nil, 100, 1100)}, []int{1, 1, 1}},
		{"other flow interleaved", [][]byte{seg(nil, 100, 1000), seg(func(s *pktSpec) { s.sport = 1 }, 100, 1), seg(nil, 100, 1100),
			seg(func(s *pktSpec) { s.sport = 1 }, 100, 101)}, []int{2, 2}},
		{"reverse direction", [][]byte{seg(nil, 100, 1000), seg(func(s *pktSpec) { s.sport, s.dport = 5201, 40000 }, 100, 1), seg(nil, 100, 1100)}, []int{2, 1}},
		{"udp passes", [][]byte{build(t, pktSpec{udp: true, payload: payloadOf(100, 1)}), build(t, pktSpec{udp: true, payload: payloadOf(100, 1)})}, []int{1, 1}},
		{"v6", [][]byte{seg(func(s *pktSpec) { s.v6 = true }, 100, 1000), seg(func(s *pktSpec) { s.v6 = true }, 100, 1100)}, []int{2}},
		{"v6 flow label", [][]byte{seg(func(s *pktSpec) { s.v6 = true }, 100, 1000), seg(func(s *pktSpec) { s.v6 = true; s.tos = 4 }, 100, 1100)}, []int{1, 1}},
		{"non-IP", [][]byte{make([]byte, 60), seg(nil, 100, 1000)}, []int{1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			co := NewCoalescer(CoalescerConfig{})
			var totalPayload int
			for _, f := range c.frames {
				if err := co.Add(append([]byte(nil), f...), lay(append([]byte(nil), f...))); err != nil {
					t.Fatal(err)
				}
			}
			out := flushAll(t, co)
			if len(out) != len(c.want) {
				t.Fatalf("%d output frames, want %d", len(out), len(c.want))
			}
			for i, e := range out {
				wire := expand(t, e)
				if e.hdr.GSOType == GSONone {
					if len(wire) != 1 || c.want[i] != 1 {
						t.Fatalf("frame %d: not merged, want %d segments", i, c.want[i])
					}
					found := false
					for _, f := range c.frames {
						found = found || bytes.Equal(e.frame, f)
					}
					if !found {
						t.Fatalf("frame %d: pass-through frame changed", i)
					}
				} else {
					info, _ := parseL4(e.frame)
					n := (info.End() - info.PayloadOff() + int(e.hdr.GSOSize) - 1) / int(e.hdr.GSOSize)
					if n != c.want[i] {
						t.Fatalf("frame %d: %d segments merged, want %d", i, n, c.want[i])
					}
				}
				for _, w := range wire {
					if info, ok := parseL4(w); ok {
						decodeValid(t, w)
						totalPayload += info.End() - info.PayloadOff()
					}
				}
			}
			_ = totalPayload
		})
	}
}

func TestCoalesceChecksums(t *testing.T) {
	segs := segmentsOf(t, pktSpec{payload: payloadOf(1448*4, 1), flags: "A", seq: 1}, 1448)

	// Bad checksum in the middle: it passes through untouched, the others
	// around it merge as far as order allows.
	bad := make([][]byte, len(segs))
	for i := range segs {
		bad[i] = append([]byte(nil), segs[i]...)
	}
	bad[2][len(bad[2])-1] ^= 1
	c := NewCoalescer(CoalescerConfig{})
	for _, f := range bad {
		if err := c.Add(f, lay(f)); err != nil {
			t.Fatal(err)
		}
	}
	out := flushAll(t, c)
	if len(out) != 3 {
		t.Fatalf("%d frames, want 3 (2 merged, bad, 1)", len(out))
	}
	if out[0].hdr.GSOType != GSOTCPv4 || out[1].hdr != (VirtioNetHdr{}) || !bytes.Equal(out[1].frame, bad[2]) || out[2].hdr != (VirtioNetHdr{}) {
		t.Fatalf("unexpected: %v %v %v", out[0].hdr, out[1].hdr, out[2].hdr)
	}

	// Bad first segment: never merged, the next ones merge together.
	bad[2][len(bad[2])-1] ^= 1
	bad[0][len(bad[0])-1] ^= 1
	c = NewCoalescer(CoalescerConfig{})
	for _, f := range bad {
		if err := c.Add(f, lay(f)); err != nil {
			t.Fatal(err)
		}
	}
	out = flushAll(t, c)
	if len(out) != 2 || out[0].hdr != (VirtioNetHdr{}) || out[1].hdr.GSOType != GSOTCPv4 {
		t.Fatalf("bad head: %d frames", len(out))
	}

	// A single seeded frame leaves with NEEDS_CSUM, TCP and UDP alike.
	tcp := seedIt(t, append([]byte(nil), segs[0]...))
	udp := seedIt(t, build(t, pktSpec{udp: true, v6: true, vlan: true, payload: payloadOf(300, 2)}))
	c = NewCoalescer(CoalescerConfig{})
	_ = c.Add(tcp, lay(tcp))
	_ = c.Add(udp, lay(udp))
	out = flushAll(t, c)
	if len(out) != 2 {
		t.Fatal(len(out))
	}
	for i, e := range out {
		info, _ := parseL4(e.frame)
		want := VirtioNetHdr{Flags: FlagNeedsCsum, HdrLen: uint16(info.PayloadOff()), CsumStart: uint16(info.L4Off), CsumOffset: uint16(info.CsumOffset())}
		if e.hdr != want {
			t.Fatalf("frame %d: %v want %v", i, e.hdr, want)
		}
		decodeValid(t, expand(t, e)[0])
	}
}

func TestCoalesceOversize(t *testing.T) {
	for _, seed := range []bool{false, true} {
		for _, v6 := range []bool{false, true} {
			spec := pktSpec{v6: v6, opts: true, payload: payloadOf(60000, 3), flags: "PA", seq: 42}
			f := build(t, spec)
			if seed {
				seedIt(t, f)
			}
			c := NewCoalescer(CoalescerConfig{MTU: 1450})
			if err := c.Add(f, lay(f)); err != nil {
				t.Fatal(err)
			}
			out := flushAll(t, c)
			iph := 20
			if v6 {
				iph = 40
			}
			if len(out) != 1 || out[0].hdr.GSOSize != uint16(1450-iph-32) || out[0].hdr.Flags != FlagNeedsCsum {
				t.Fatalf("seed=%v v6=%v: %v", seed, v6, out[0].hdr)
			}
			var payload []byte
			for _, w := range expand(t, out[0]) {
				d := decodeValid(t, w)
				if len(w)-14 > 1450 {
					t.Fatalf("segment of %d bytes exceeds the MTU", len(w)-14)
				}
				payload = append(payload, d.payload...)
			}
			if !bytes.Equal(payload, spec.payload) {
				t.Fatal("payload lost")
			}
		}
	}
	// Without MTU it passes through.
	f := build(t, pktSpec{payload: payloadOf(60000, 3), flags: "A"})
	c := NewCoalescer(CoalescerConfig{})
	_ = c.Add(f, lay(f))
	if out := flushAll(t, c); len(out) != 1 || out[0].hdr != (VirtioNetHdr{}) {
		t.Fatal("oversize without MTU")
	}
}

func TestCoalesceLimits(t *testing.T) {
	segs := segmentsOf(t, pktSpec{payload: payloadOf(100*6, 1), flags: "A", seq: 1}, 100)
	other := segmentsOf(t, pktSpec{payload: payloadOf(100*6, 1), flags: "A", seq: 1, sport: 9}, 100)

	// MaxFrames: merging needs no new frame, a new flow does.
	c := NewCoalescer(CoalescerConfig{MaxFrames: 1})
	for _, s := range segs {
		if err := c.Add(s, lay(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Add(other[0], lay(other[0])); !errors.Is(err, ErrCoalescerFull) {
		t.Fatalf("Add when full: %v", err)
	}
	if c.Len() != 1 {
		t.Fatal("queued despite full")
	}
	out := flushAll(t, c)
	if len(out) != 1 || len(expand(t, out[0])) != 6 {
		t.Fatal("full: wrong output")
	}

	// MaxBuffers: with one buffer the second flow cannot merge but loses
	// nothing.
	c = NewCoalescer(CoalescerConfig{MaxBuffers: 1})
	for i := range segs {
		_ = c.Add(segs[i], lay(segs[i]))
		_ = c.Add(other[i], lay(other[i]))
	}
	out = flushAll(t, c)
	var n int
	for _, e := range out {
		n += len(expand(t, e))
	}
	if n != 12 || len(out) != 7 {
		t.Fatalf("buffers exhausted: %d wire frames in %d outputs", n, len(out))
	}

	// 64 KiB limit on the merged IP packet.
	big := segmentsOf(t, pktSpec{payload: payloadOf(1448*40, 1), flags: "A", seq: 1}, 1448)
	big = append(big, segmentsOf(t, pktSpec{payload: payloadOf(1448*20, 2), flags: "A", seq: 1 + 1448*40}, 1448)...)
	c = NewCoalescer(CoalescerConfig{})
	for _, s := range big {
		_ = c.Add(s, lay(s))
	}
	out = flushAll(t, c)
	if len(out) != 2 || len(expand(t, out[0])) != 45 || len(expand(t, out[1])) != 15 {
		t.Fatalf("64K limit: %d outputs", len(out))
	}
	for _, e := range out {
		info, _ := parseL4(e.frame)
		if info.IPLen > 65535 {
			t.Fatal("IP length over 64K")
		}
	}

	// emit errors stop the flush and empty the coalescer.
	for _, s := range segs[:2] {
		_ = c.Add(s, lay(s))
	}
	_ = c.Add(other[0], lay(other[0]))
	calls := 0
	err := c.Flush(func(VirtioNetHdr, []byte) error { calls++; return errors.New("tap gone") })
	if err == nil || calls != 1 || c.Len() != 0 {
		t.Fatalf("emit error: %v after %d calls", err, calls)
	}
}

func BenchmarkCoalesce(b *testing.B) {
	for _, mode := range []string{"seeded", "verified"} {
		b.Run(mode, func(b *testing.B) {
			// 44 full segments of one flow (64 KB), as one batch.
			segs := segmentsOf(b, pktSpec{opts: true, payload: payloadOf(1448*44, 1), flags: "A", seq: 1}, 1448)
			if mode == "seeded" {
				for _, s := range segs {
					seedIt(b, s)
				}
			}
			c := NewCoalescer(CoalescerConfig{})
			var bytesOut int
			emit := func(h VirtioNetHdr, f []byte) error {
				bytesOut += len(f)
				return nil
			}
			var total int
			for _, s := range segs {
				total += len(s)
			}
			b.SetBytes(int64(total))
			b.ReportAllocs()
			for b.Loop() {
				for _, s := range segs {
					if err := c.Add(s, lay(s)); err != nil {
						b.Fatal(err)
					}
				}
				if err := c.Flush(emit); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(segs)), "ns/frame")
		})
	}
}

// TestCoalesceZeroAlloc checks the per-packet path without the benchmark
// harness.
func TestCoalesceZeroAlloc(t *testing.T) {
	segs := segmentsOf(t, pktSpec{opts: true, payload: payloadOf(1448*20, 1), flags: "A", seq: 1}, 1448)
	udp := build(t, pktSpec{udp: true, payload: payloadOf(100, 1)})
	c := NewCoalescer(CoalescerConfig{})
	emit := func(VirtioNetHdr, []byte) error { return nil }
	allocs := testing.AllocsPerRun(50, func() {
		for _, s := range segs {
			_ = c.Add(s, lay(s))
			_ = c.Add(udp, lay(udp))
		}
		_ = c.Flush(emit)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per batch", allocs)
	}
	hdr, f := superFrame(t, pktSpec{payload: payloadOf(20000, 1), flags: "A"}, 1448)
	out, _ := outBufs(20, 1600)
	sizes := make([]int, 20)
	allocs = testing.AllocsPerRun(50, func() {
		_, _ = SegmentTCP(lay(f), hdr, f, out, sizes, 8)
		_ = CompleteChecksum(segs[0], lay(segs[0]))
		binary.BigEndian.PutUint16(segs[0][50:], 0)
	})
	if allocs != 0 {
		t.Fatalf("%v allocs in SegmentTCP/CompleteChecksum", allocs)
	}
}
