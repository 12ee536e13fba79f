package offload

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

// naiveValid checks a parsed frame's L4 checksum with the naive loop.
func naiveValid(frame []byte) bool {
	info, ok := parseL4(frame)
	if !ok {
		return false
	}
	return naiveL4Valid(frame, info.L3Off, info.L4Off, info.End(), info.IPVersion == 6, info.Proto)
}

func seedFrames(f *testing.F) [][]byte {
	var out [][]byte
	for _, s := range []pktSpec{
		{payload: payloadOf(3000, 1), flags: "PA", opts: true, seq: 5},
		{v6: true, vlan: true, payload: payloadOf(2500, 2), flags: "CFPA", seq: 0xffffff00},
		{udp: true, payload: payloadOf(2000, 3)},
		{udp: true, v6: true, payload: payloadOf(1, 3)},
		{payload: payloadOf(0, 1), flags: "A"},
	} {
		out = append(out, build(f, s))
	}
	return out
}

func FuzzCompleteChecksum(f *testing.F) {
	for _, fr := range seedFrames(f) {
		f.Add(fr)
		f.Add(seedIt(f, append([]byte(nil), fr...)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frame := append([]byte(nil), data...)
		_, _, partial := PartialChecksum(frame, lay(frame))
		done := CompleteChecksum(frame, lay(frame))
		if done != partial {
			t.Fatalf("CompleteChecksum=%v but PartialChecksum=%v", done, partial)
		}
		if !done {
			if !bytes.Equal(frame, data) {
				t.Fatal("frame modified although not completed")
			}
			return
		}
		if !naiveValid(frame) {
			t.Fatal("completed checksum does not verify")
		}
		info, _ := parseL4(frame)
		at := info.L4Off + info.CsumOffset()
		if binary.BigEndian.Uint16(frame[at:]) == 0 {
			t.Fatal("checksum 0 stored")
		}
		// Only the checksum field may differ.
		frame[at], frame[at+1] = data[at], data[at+1]
		if !bytes.Equal(frame, data) {
			t.Fatal("bytes other than the checksum changed")
		}
	})
}

func FuzzSegmentTCP(f *testing.F) {
	for _, fr := range seedFrames(f) {
		info, _ := parseL4(fr)
		gso := uint8(GSOTCPv4)
		switch {
		case info.Proto == protoUDP:
			gso = GSOUDPL4
		case info.IPVersion == 6:
			gso = GSOTCPv6
		}
		fr = seedIt(f, fr)
		f.Add(fr, uint8(FlagNeedsCsum), gso, uint16(500), uint16(info.L4Off), uint16(info.CsumOffset()), uint8(8), uint8(10), uint16(700))
		f.Add(fr, uint8(FlagNeedsCsum), uint8(GSONone), uint16(0), uint16(info.L4Off), uint16(info.CsumOffset()), uint8(0), uint8(1), uint16(4000))
		f.Add(fr, uint8(0), gso|GSOECN, uint16(1), uint16(0), uint16(0), uint8(3), uint8(64), uint16(100))
	}
	f.Fuzz(func(t *testing.T, data []byte, flags, gsoType uint8, gsoSize, csumStart, csumOffset uint16, offset, nbuf uint8, bufSize uint16) {
		hdr := VirtioNetHdr{Flags: flags, GSOType: gsoType, GSOSize: gsoSize, CsumStart: csumStart, CsumOffset: csumOffset}
		frame := append([]byte(nil), data...)
		size := int(bufSize) % 9000
		n := int(nbuf) % 80
		out, backing := outBufs(n, size)
		sizes := make([]int, n)
		cnt, err := SegmentTCP(lay(frame), hdr, frame, out, sizes, int(offset))
		if !guardsIntact(out, backing, size) {
			t.Fatal("wrote past an output buffer")
		}
		if !bytes.Equal(frame, data) {
			t.Fatal("input modified")
		}
		if err != nil {
			if cnt != 0 {
				t.Fatalf("n=%d with error %v", cnt, err)
			}
			return
		}
		wantCount, segLen, err2 := Segments(lay(frame), hdr, frame)
		if err2 != nil || wantCount != cnt {
			t.Fatalf("Segments = %d, %v; SegmentTCP wrote %d", wantCount, err2, cnt)
		}
		gso := gsoType &^ GSOECN
		if gso == GSONone {
			if flags&FlagNeedsCsum == 0 && !bytes.Equal(out[0][int(offset):int(offset)+sizes[0]], frame) {
				t.Fatal("GSONone copy differs")
			}
			return
		}
		info, _ := parseL4(frame)
		var payload []byte
		for i := 0; i < cnt; i++ {
			seg := out[i][int(offset) : int(offset)+sizes[i]]
			if sizes[i] > segLen {
				t.Fatalf("segment %d longer than Segments said", i)
			}
			if !naiveValid(seg) {
				t.Fatalf("segment %d: invalid checksum or does not parse", i)
			}
			si, _ := parseL4(seg)
			if si.IPVersion == 4 && naiveSum(seg[si.L3Off:si.L4Off], 0) != 0xffff {
				t.Fatalf("segment %d: IPv4 header checksum", i)
			}
			payload = append(payload, seg[si.PayloadOff():si.End()]...)
		}
		if !bytes.Equal(payload, frame[info.PayloadOff():info.End()]) {
			t.Fatal("payload not preserved")
		}
		// The gather form builds the same frames, the payload left in place.
		hdrs := hdrSlots(cnt, int(offset)+200)
		pays := make([][]byte, cnt)
		gn, gerr := SegmentGather(lay(frame), hdr, frame, int(offset), hdrs, pays)
		if gerr != nil || gn != cnt {
			t.Fatalf("SegmentGather = %d, %v; SegmentTCP wrote %d", gn, gerr, cnt)
		}
		for i := 0; i < cnt; i++ {
			got := append(bytes.Clone(hdrs[i][int(offset):]), pays[i]...)
			if !bytes.Equal(got, out[i][int(offset):int(offset)+sizes[i]]) || !within(pays[i], frame) {
				t.Fatalf("segment %d: gathered frame differs from the copied one", i)
			}
		}
	})
}

// normalize zeroes the fields coalescing and re-segmentation may legitimately
// change: IPv4 ID and header checksum, L4 checksum, TCP urgent pointer.
func normalize(frame []byte) []byte {
	f := append([]byte(nil), frame...)
	info, ok := parseL4(f)
	if !ok {
		return f
	}
	if info.IPVersion == 4 {
		ip := f[info.L3Off:]
		ip[4], ip[5], ip[10], ip[11] = 0, 0, 0, 0
	}
	at := info.L4Off + info.CsumOffset()
	f[at], f[at+1] = 0, 0
	if info.Proto == protoTCP {
		f[info.L4Off+18], f[info.L4Off+19] = 0, 0
	}
	return f
}

func FuzzCoalesce(f *testing.F) {
	// Input: frames encoded as a 2-byte length followed by the bytes.
	enc := func(frames [][]byte) []byte {
		var b []byte
		for _, fr := range frames {
			b = binary.BigEndian.AppendUint16(b, uint16(len(fr)))
			b = append(b, fr...)
		}
		return b
	}
	segs := segmentsOf(f, pktSpec{opts: true, payload: payloadOf(4000, 1), flags: "PA", seq: 1}, 1000)
	segs6 := segmentsOf(f, pktSpec{v6: true, vlan: true, payload: payloadOf(3000, 2), flags: "A", seq: 9}, 1000)
	f.Add(enc(segs), uint16(0))
	f.Add(enc(append(append([][]byte{}, segs...), segs6...)), uint16(0))
	var seededSegs [][]byte
	for _, s := range segs6 {
		seededSegs = append(seededSegs, seedIt(f, append([]byte(nil), s...)))
	}
	f.Add(enc(seededSegs), uint16(0))
	f.Add(enc([][]byte{segs[0], segs6[0], segs[1], segs6[1], segs[3]}), uint16(0))
	big := seedIt(f, build(f, pktSpec{payload: payloadOf(9000, 1), flags: "A"}))
	f.Add(enc([][]byte{big, segs[0]}), uint16(1450))
	f.Add(enc(seedFrames(f)), uint16(0))

	f.Fuzz(func(t *testing.T, input []byte, mtu uint16) {
		data := append([]byte(nil), input...) // Add may legitimately modify frames
		var frames [][]byte
		for len(data) >= 2 {
			n := int(binary.BigEndian.Uint16(data))
			data = data[2:]
			if n > len(data) {
				n = len(data)
			}
			frames = append(frames, data[:n:n])
			data = data[n:]
		}
		orig := make([][]byte, len(frames))
		for i := range frames {
			orig[i] = append([]byte(nil), frames[i]...)
			// The one documented in-place change with MTU 0: a seeded
			// frame with Ethernet padding is completed in software.
			if info, ok := parseL4(orig[i]); ok && len(orig[i]) != info.End() {
				CompleteChecksum(orig[i], lay(orig[i]))
			}
		}
		cfg := CoalescerConfig{MaxFrames: 8, MaxBuffers: 2, MTU: int(mtu) % 9001}
		c := NewCoalescer(cfg)
		var outs []emitted
		emit := func(h VirtioNetHdr, fr []byte) error {
			outs = append(outs, emitted{h, append([]byte(nil), fr...)})
			return nil
		}
		// The same frames through a gather-mode coalescer, which must hand
		// out the same frames in parts.
		cfg.Gather = true
		g := NewCoalescer(cfg)
		var gouts []emitted
		gemit := func(h VirtioNetHdr, parts [][]byte) error {
			var fr []byte
			for _, p := range parts {
				fr = append(fr, p...)
			}
			gouts = append(gouts, emitted{h, fr})
			return nil
		}
		gframes := make([][]byte, len(frames))
		for i := range frames {
			gframes[i] = bytes.Clone(frames[i])
		}
		for i, fr := range frames {
			if err := c.Add(fr, lay(fr)); err != nil {
				if err := c.Flush(emit); err != nil {
					t.Fatal(err)
				}
				if err := c.Add(fr, lay(fr)); err != nil {
					t.Fatalf("Add after Flush: %v", err)
				}
			}
			gf := gframes[i]
			if err := g.Add(gf, lay(gf)); err != nil {
				if err := g.FlushGather(gemit); err != nil {
					t.Fatal(err)
				}
				if err := g.Add(gf, lay(gf)); err != nil {
					t.Fatalf("Add after FlushGather: %v", err)
				}
			}
		}
		if err := c.Flush(emit); err != nil {
			t.Fatal(err)
		}
		if err := g.FlushGather(gemit); err != nil {
			t.Fatal(err)
		}
		if len(gouts) != len(outs) {
			t.Fatalf("gather mode emitted %d frames, copy mode %d", len(gouts), len(outs))
		}
		for i := range outs {
			if gouts[i].hdr != outs[i].hdr || !bytes.Equal(gouts[i].frame, outs[i].frame) {
				t.Fatalf("output %d: gather mode %v differs from copy mode %v", i, gouts[i].hdr, outs[i].hdr)
			}
		}

		var wire [][]byte
		for _, e := range outs {
			if e.hdr == (VirtioNetHdr{}) {
				wire = append(wire, e.frame)
				continue
			}
			count, segLen, err := Segments(lay(e.frame), e.hdr, e.frame)
			if err != nil {
				t.Fatalf("output %v not segmentable: %v", e.hdr, err)
			}
			out, _ := outBufs(count, segLen)
			sizes := make([]int, count)
			n, err := SegmentTCP(lay(e.frame), e.hdr, e.frame, out, sizes, 0)
			if err != nil {
				t.Fatalf("output %v not segmentable: %v", e.hdr, err)
			}
			for i := 0; i < n; i++ {
				w := out[i][:sizes[i]]
				if !naiveValid(w) {
					t.Fatalf("output %v: wire frame %d has a bad checksum", e.hdr, i)
				}
				wire = append(wire, w)
			}
		}
		if mtu%9001 != 0 {
			return // over-MTU frames are re-segmented; no 1:1 mapping
		}
		for i := range frames {
			if !bytes.Equal(frames[i], orig[i]) {
				d := 0
				for d < len(orig[i]) && frames[i][d] == orig[i][d] {
					d++
				}
				t.Fatalf("Add changed input frame %d of %d (len %d) at byte %d: %x -> %x", i, len(frames), len(orig[i]), d, orig[i][d], frames[i][d])
			}
		}
		if len(wire) != len(frames) {
			t.Fatalf("%d frames in, %d frames on the wire", len(frames), len(wire))
		}
		a := make([][]byte, len(frames))
		b := make([][]byte, len(wire))
		for i := range frames {
			a[i] = normalize(frames[i])
			b[i] = normalize(wire[i])
		}
		slices.SortFunc(a, bytes.Compare)
		slices.SortFunc(b, bytes.Compare)
		for i := range a {
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("frame sets differ at %d:\n%x\n%x", i, a[i], b[i])
			}
		}
	})
}
