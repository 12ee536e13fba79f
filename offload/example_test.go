package offload_test

import (
	"errors"

	"github.com/vxland/vxland/offload"
)

// The transmit side: a frame read from the TAP (IFF_VNET_HDR) starts with the
// 10-byte virtio-net header. SegmentTCP writes wire-sized Ethernet frames
// behind 8 bytes of headroom, where the VXLAN header goes; the buffers can be
// windows of one contiguous buffer for a single UDP_SEGMENT send.
func ExampleSegmentTCP() {
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

	count, segLen, err := offload.Segments(hdr, frame)
	if err != nil {
		return // count as a drop
	}
	stride := vxlanHdrLen + segLen
	send := make([]byte, 64*stride) // preallocated once in real code
	if count > 64 {
		return
	}
	out := make([][]byte, count) // likewise preallocated
	sizes := make([]int, count)
	for i := range out {
		out[i] = send[i*stride : (i+1)*stride]
	}
	if _, err := offload.SegmentTCP(hdr, frame, out, sizes, vxlanHdrLen); err != nil {
		return
	}
	// Write each VXLAN header into out[i][:8]; then send
	// send[:(count-1)*stride+vxlanHdrLen+sizes[count-1]] with UDP_SEGMENT =
	// stride (all but the last datagram are exactly stride bytes).
}

// The receive side: decapsulated inner frames of one batch go through a
// Coalescer; each output is one TAP write with its virtio-net header.
func ExampleCoalescer() {
	c := offload.NewCoalescer(offload.CoalescerConfig{MTU: 1450})
	var frames [][]byte // inner Ethernet frames of one received batch

	var vnet [offload.VirtioNetHdrLen]byte
	write := func(hdr offload.VirtioNetHdr, frame []byte) error {
		hdr.Encode(vnet[:])
		// writev(tap, [vnet[:], frame]) - one syscall, no copy
		return nil
	}
	for _, f := range frames {
		err := c.Add(f)
		if errors.Is(err, offload.ErrCoalescerFull) {
			_ = c.Flush(write)
			err = c.Add(f)
		}
		_ = err
	}
	_ = c.Flush(write)
}
