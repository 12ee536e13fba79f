package offload_test

import (
	"errors"

	"github.com/vxland/vxland/inner"
	"github.com/vxland/vxland/offload"
)

// The transmit side: a frame read from the TAP (IFF_VNET_HDR) starts with the
// 10-byte virtio-net header. The frame's layout is decoded once; SegmentGather
// then builds each segment's headers behind 8 bytes of room for the VXLAN
// header and points its payload into the read buffer, so that the segments
// leave as [hdr_i, payload_i] iovec pairs of one UDP_SEGMENT sendmsg.
func ExampleSegmentGather() {
	const vxlanHdrLen = 8
	readBuf := make([]byte, offload.VirtioNetHdrLen+65535+18) // one TAP read
	n := 0                                                    // = read(tap, readBuf)
	if n < offload.VirtioNetHdrLen {
		return
	}
	var hdr offload.VirtioNetHdr
	if err := hdr.Decode(readBuf[:n]); err != nil {
		return
	}
	frame := readBuf[offload.VirtioNetHdrLen:n]
	var l inner.Layout
	l.Decode(frame)

	// Preallocated once in real code: small header slots, payload slices.
	hdrs := make([][]byte, 64)
	for i := range hdrs {
		hdrs[i] = make([]byte, 128)
	}
	payloads := make([][]byte, 64)
	count, err := offload.SegmentGather(&l, hdr, frame, vxlanHdrLen, hdrs, payloads)
	if err != nil {
		return // count as a drop
	}
	// Write each VXLAN header into hdrs[i][:8]; then sendmsg the iovecs
	// hdrs[0], payloads[0], ..., hdrs[count-1], payloads[count-1] with
	// UDP_SEGMENT = len(hdrs[0]) + len(payloads[0]).
	_ = count
}

// The receive side: decapsulated inner frames of one batch go through a
// Coalescer in gather mode; each output is one writev to the TAP: the
// virtio-net header, then the parts.
func ExampleCoalescer() {
	c := offload.NewCoalescer(offload.CoalescerConfig{MTU: 1450, Gather: true})
	var frames [][]byte // inner Ethernet frames of one received batch

	var vnet [offload.VirtioNetHdrLen]byte
	write := func(hdr offload.VirtioNetHdr, parts [][]byte) error {
		hdr.Encode(vnet[:])
		// writev(tap, [vnet[:], parts...]) - one syscall, no copy
		return nil
	}
	var l inner.Layout
	for _, f := range frames {
		l.Decode(f) // once per frame, shared with ECN and the other checks
		err := c.Add(f, &l)
		if errors.Is(err, offload.ErrCoalescerFull) {
			_ = c.FlushGather(write)
			err = c.Add(f, &l)
		}
		_ = err
	}
	_ = c.FlushGather(write)
}
