package offload

import (
	"encoding/binary"
	"fmt"

	"github.com/vxland/vxland/checksum"
	"github.com/vxland/vxland/inner"
)

// segPlan is the validated layout of a GSO super-frame.
type segPlan struct {
	info   *inner.Layout
	hdrLen int // Ethernet + IP + L4 headers: PayloadOff
	mss    int
	plen   int // payload bytes after the headers, up to info.End()
	count  int
}

// frameLen returns the length of segment i's Ethernet frame.
func (p *segPlan) frameLen(i int) int {
	n := p.plen - i*p.mss
	if n > p.mss {
		n = p.mss
	}
	return p.hdrLen + n
}

// plan validates a TSO/USO super-frame, whose layout is info, against its
// virtio-net header.
func plan(info *inner.Layout, hdr VirtioNetHdr, frame []byte) (segPlan, error) {
	var p segPlan
	gso := hdr.GSOType &^ GSOECN
	if !info.Transport {
		return p, fmt.Errorf("%w: GSO type %#x on a frame that is not Ethernet+IPv4/IPv6+TCP/UDP (%d bytes; IPv6 extension headers are not supported)", ErrMalformed, hdr.GSOType, len(frame))
	}
	switch gso {
	case GSOTCPv4, GSOTCPv6:
		want := uint8(4)
		if gso == GSOTCPv6 {
			want = 6
		}
		if info.Proto != protoTCP || info.IPVersion != want {
			return p, fmt.Errorf("%w: GSO type %#x but frame is IPv%d protocol %d", ErrMalformed, hdr.GSOType, info.IPVersion, info.Proto)
		}
	case GSOUDPL4:
		if info.Proto != protoUDP {
			return p, fmt.Errorf("%w: GSO type UDP_L4 but frame is IPv%d protocol %d", ErrMalformed, info.IPVersion, info.Proto)
		}
	default:
		return p, fmt.Errorf("%w: GSO type %#x", ErrUnsupported, hdr.GSOType)
	}
	if hdr.Flags&FlagNeedsCsum != 0 && (int(hdr.CsumStart) != info.L4Off || int(hdr.CsumOffset) != info.CsumOffset()) {
		return p, fmt.Errorf("%w: csum_start %d/csum_offset %d, but the L4 header is at %d (checksum at +%d)", ErrMalformed, hdr.CsumStart, hdr.CsumOffset, info.L4Off, info.CsumOffset())
	}
	if hdr.GSOSize == 0 {
		return p, fmt.Errorf("%w: GSO type %#x with gso_size 0", ErrMalformed, hdr.GSOType)
	}
	p.info = info
	p.hdrLen = info.PayloadOff()
	p.mss = int(hdr.GSOSize)
	p.plen = info.End() - p.hdrLen
	if p.hdrLen-info.L3Off+p.mss > maxIPLen {
		return p, fmt.Errorf("%w: gso_size %d with %d bytes of IP+L4 headers exceeds the IP length limit", ErrMalformed, p.mss, p.hdrLen-info.L3Off)
	}
	p.count = (p.plen + p.mss - 1) / p.mss
	if p.count == 0 {
		p.count = 1 // headers only: one frame, checksum completed
	}
	return p, nil
}

// segState carries what every segment's headers derive from.
type segState struct {
	ipID   uint16
	seq    uint32
	flags  uint8
	pseudo uint64 // pseudo-header sum without the length
}

func (p *segPlan) state(frame []byte) segState {
	info := p.info
	var s segState
	if info.IPVersion == 4 {
		s.ipID = binary.BigEndian.Uint16(frame[info.L3Off+4 : info.L3Off+6])
	}
	if info.Proto == protoTCP {
		s.seq = binary.BigEndian.Uint32(frame[info.L4Off+4 : info.L4Off+8])
		s.flags = frame[info.L4Off+13]
	}
	s.pseudo = pseudo(frame, info, 0)
	return s
}

// putHeaders writes segment i's headers into hdr (p.hdrLen bytes, a copy of
// the super-frame's headers rewritten for the segment) and its transport
// checksum over hdr's L4 part and payload, the segment's payload bytes
// wherever they are.
func (p *segPlan) putHeaders(s *segState, frame, hdr, payload []byte, i int) {
	info := p.info
	l3, l4 := info.L3Off, info.L4Off
	copy(hdr, frame[:p.hdrLen])
	size := p.hdrLen + len(payload)
	ip := hdr[l3:]
	if info.IPVersion == 4 {
		binary.BigEndian.PutUint16(ip[2:4], uint16(size-l3))
		binary.BigEndian.PutUint16(ip[4:6], s.ipID+uint16(i))
		ipv4HdrCsum(ip, info.IPHdrLen)
	} else {
		binary.BigEndian.PutUint16(ip[4:6], uint16(size-l3-ipv6HdrLen))
	}
	l4len := size - l4
	if info.Proto == protoTCP {
		th := hdr[l4:]
		binary.BigEndian.PutUint32(th[4:8], s.seq+uint32(i*p.mss))
		f := s.flags
		if i != p.count-1 {
			f &^= tcpFlagFIN | tcpFlagPSH
		}
		if i != 0 {
			f &^= tcpFlagCWR
		}
		th[13] = f
	} else {
		binary.BigEndian.PutUint16(hdr[l4+4:l4+6], uint16(l4len))
	}
	csumAt := l4 + info.CsumOffset()
	hdr[csumAt], hdr[csumAt+1] = 0, 0
	// The L4 header length is a multiple of 4, so the payload's sum chains
	// on at an even offset.
	sum := checksum.Sum(hdr[l4:p.hdrLen], s.pseudo+uint64(l4len))
	putCsum(hdr[csumAt:csumAt+2], checksum.Sum(payload, sum))
}

// Segments reports how SegmentTCP will split frame, whose layout is l: the
// number of output frames and the Ethernet frame length of each of them but
// the last (the last is at most that long). With these a caller can lay out
// one contiguous send buffer for UDP_SEGMENT: out[i] = buf[i*stride :
// (i+1)*stride] with stride = offset + segLen. For GSONone it returns (1,
// len(frame)).
func Segments(l *inner.Layout, hdr VirtioNetHdr, frame []byte) (count, segLen int, err error) {
	if hdr.GSOType&^GSOECN == GSONone {
		return 1, len(frame), nil
	}
	p, err := plan(l, hdr, frame)
	if err != nil {
		return 0, 0, err
	}
	return p.count, p.frameLen(0), nil
}

// SegmentTCP splits a super-frame read from a TAP with IFF_VNET_HDR (hdr is
// its virtio-net header, frame the Ethernet frame behind it, l its layout)
// into ordinary Ethernet frames, copying the payload. Frame i is written to
// out[i][offset:offset+sizes[i]]; offset is headroom the caller keeps in
// front of each frame (e.g. for the 8-byte VXLAN header). It returns the
// number of frames written. SegmentGather builds the same frames without
// copying the payload.
//
// For GSOTCPv4 and GSOTCPv6 (GSOECN allowed) every segment carries at most
// hdr.GSOSize payload bytes; the Ethernet, IP and TCP headers (options
// included) are copied; the IPv4 ID is incremented per segment, the IPv4
// total length (IPv6 payload length) and IPv4 header checksum are rewritten,
// the TCP sequence number advances by the payload sent before, FIN and PSH
// stay only on the last segment and CWR only on the first, and the TCP
// checksum is computed in full. The number of segments is
// ceil(payload/GSOSize). GSOUDPL4 (USO) is handled the same way with the UDP
// length rewritten and a full UDP checksum per datagram (the name is
// historical). hdr.HdrLen is ignored (the kernel fills it with the linear
// length of the skb); header lengths come from the layout. With
// FlagNeedsCsum, CsumStart/CsumOffset must match the layout's L4 header.
//
// For GSONone the frame is copied to out[0][offset:]; with FlagNeedsCsum the
// checksum at CsumStart+CsumOffset is completed there the way a device would
// (sum from CsumStart to the end of the frame), for any protocol.
//
// The input frame is not modified and must not overlap the output buffers.
// Errors (ErrMalformed, ErrUnsupported, ErrTooManySegments, ErrShortBuffer,
// wrapped) are returned before anything is written; SegmentTCP never panics
// and never writes past len(out[i]).
func SegmentTCP(l *inner.Layout, hdr VirtioNetHdr, frame []byte, out [][]byte, sizes []int, offset int) (n int, err error) {
	if offset < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrShortBuffer, offset)
	}
	if hdr.GSOType&^GSOECN == GSONone {
		return segmentNone(hdr, frame, out, sizes, offset)
	}
	p, err := plan(l, hdr, frame)
	if err != nil {
		return 0, err
	}
	if p.count > len(out) || p.count > len(sizes) {
		return 0, fmt.Errorf("%w: %d bytes of payload at gso_size %d need %d frames, have %d buffers and %d sizes",
			ErrTooManySegments, p.plen, p.mss, p.count, len(out), len(sizes))
	}
	for i := 0; i < p.count; i++ {
		if need := offset + p.frameLen(i); len(out[i]) < need {
			return 0, fmt.Errorf("%w: output buffer %d holds %d bytes, segment needs %d (offset %d)", ErrShortBuffer, i, len(out[i]), need, offset)
		}
	}
	s := p.state(frame)
	payload := frame[p.hdrLen:l.End()]
	for i := 0; i < p.count; i++ {
		size := p.frameLen(i)
		seg := out[i][offset : offset+size]
		start := i * p.mss
		copy(seg[p.hdrLen:], payload[start:start+size-p.hdrLen])
		// Summed from the copy just written, while it is in cache.
		p.putHeaders(&s, frame, seg[:p.hdrLen], seg[p.hdrLen:], i)
		sizes[i] = size
	}
	return p.count, nil
}

// SegmentGather splits a TSO/USO super-frame like SegmentTCP, without
// copying its payload: for segment i it writes hdrRoom bytes of room (left
// as they are, e.g. for the VXLAN header) followed by the segment's
// Ethernet, IP and TCP/UDP headers into hdrs[i], reslicing hdrs[i] to
// exactly hdrRoom plus the header length, and sets payloads[i] to the
// segment's payload, a slice of frame. The headers carry everything
// SegmentTCP's would (IP ID, lengths, IPv4 header checksum, TCP sequence
// number and flags, and the transport checksum, summed over the payload in
// frame), so that [hdrs[i], payloads[i]] is segment i's datagram; a sender
// hands the pairs to one UDP_SEGMENT sendmsg as an iovec list. All segments
// but the last have the same header and payload lengths.
//
// frame must stay unmodified while the payloads are in use. GSONone frames
// are refused with ErrUnsupported (send those as they are, after CompleteAt).
// Errors are returned before anything is written; SegmentGather never panics
// and never writes past len(hdrs[i]).
func SegmentGather(l *inner.Layout, h VirtioNetHdr, frame []byte, hdrRoom int, hdrs [][]byte, payloads [][]byte) (n int, err error) {
	if hdrRoom < 0 {
		return 0, fmt.Errorf("%w: negative header room %d", ErrShortBuffer, hdrRoom)
	}
	if h.GSOType&^GSOECN == GSONone {
		return 0, fmt.Errorf("%w: SegmentGather of a frame without GSO", ErrUnsupported)
	}
	p, err := plan(l, h, frame)
	if err != nil {
		return 0, err
	}
	if p.count > len(hdrs) || p.count > len(payloads) {
		// The bare sentinel: a caller out of slots flushes and retries on
		// the packet path, which must not allocate.
		return 0, ErrTooManySegments
	}
	need := hdrRoom + p.hdrLen
	for i := 0; i < p.count; i++ {
		if len(hdrs[i]) < need {
			return 0, fmt.Errorf("%w: header slot %d holds %d bytes, needs %d (room %d)", ErrShortBuffer, i, len(hdrs[i]), need, hdrRoom)
		}
	}
	s := p.state(frame)
	payload := frame[p.hdrLen:l.End()]
	for i := 0; i < p.count; i++ {
		start := i * p.mss
		pl := payload[start : start+p.frameLen(i)-p.hdrLen]
		hdrs[i] = hdrs[i][:need]
		p.putHeaders(&s, frame, hdrs[i][hdrRoom:], pl, i)
		payloads[i] = pl
	}
	return p.count, nil
}

// segmentNone copies a non-GSO frame and completes its checksum if asked to.
func segmentNone(hdr VirtioNetHdr, frame []byte, out [][]byte, sizes []int, offset int) (int, error) {
	if len(out) < 1 || len(sizes) < 1 {
		return 0, fmt.Errorf("%w: need 1 output buffer, have %d buffers and %d sizes", ErrTooManySegments, len(out), len(sizes))
	}
	if need := offset + len(frame); len(out[0]) < need {
		return 0, fmt.Errorf("%w: output buffer holds %d bytes, frame needs %d (offset %d)", ErrShortBuffer, len(out[0]), need, offset)
	}
	needsCsum := hdr.Flags&FlagNeedsCsum != 0
	if needsCsum && !csumInFrame(len(frame), int(hdr.CsumStart), int(hdr.CsumOffset)) {
		return 0, fmt.Errorf("%w: csum_start %d + csum_offset %d beyond the %d-byte frame", ErrMalformed, hdr.CsumStart, hdr.CsumOffset, len(frame))
	}
	dst := out[0][offset : offset+len(frame)]
	copy(dst, frame)
	if needsCsum {
		CompleteAt(dst, int(hdr.CsumStart), int(hdr.CsumOffset))
	}
	sizes[0] = len(frame)
	return 1, nil
}
