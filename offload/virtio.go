package offload

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// VirtioNetHdrLen is the size of struct virtio_net_hdr (include/uapi/linux/
// virtio_net.h), the header a TAP opened with IFF_VNET_HDR puts in front of
// every frame, with TUNSETVNETHDRSZ left at (or set to) 10.
const VirtioNetHdrLen = 10

// Values of VirtioNetHdr.Flags and VirtioNetHdr.GSOType (VIRTIO_NET_HDR_F_*,
// VIRTIO_NET_HDR_GSO_*).
const (
	// FlagNeedsCsum: the checksum at CsumStart+CsumOffset holds only the
	// pseudo-header seed; the receiver (or device) must complete it by
	// summing from CsumStart to the end of the frame.
	FlagNeedsCsum = 1
	// FlagDataValid: the checksum has been validated (receive side).
	FlagDataValid = 2

	// GSONone: not a GSO frame.
	GSONone = 0
	// GSOTCPv4: TCP segmentation over IPv4 (TSO).
	GSOTCPv4 = 1
	// GSOUDP: UDP fragmentation offload (UFO); not supported by SegmentTCP.
	GSOUDP = 3
	// GSOTCPv6: TCP segmentation over IPv6.
	GSOTCPv6 = 4
	// GSOUDPL4: UDP segmentation (USO, UDP_SEGMENT), IPv4 or IPv6.
	GSOUDPL4 = 5
	// GSOUDPTunnelIPv4: ORed into GSOType when the frame is a UDP tunnel
	// (outer IPv4) around the inner GSO type, segmented after
	// encapsulation (the 24-byte tunnel header, Linux 6.17).
	GSOUDPTunnelIPv4 = 0x20
	// GSOECN: ORed into GSOType when the TCP super-frame carries CWR.
	GSOECN = 0x80
)

// Errors returned by this package; wrapped with context, test with errors.Is.
var (
	// ErrShortBuffer: an input or output buffer is too short.
	ErrShortBuffer = errors.New("offload: buffer too short")
	// ErrTooManySegments: the super-frame needs more output buffers (or
	// sizes entries) than were provided.
	ErrTooManySegments = errors.New("offload: too many segments for the output buffers")
	// ErrMalformed: the frame or its virtio-net header is inconsistent.
	ErrMalformed = errors.New("offload: malformed frame")
	// ErrUnsupported: a GSO type or frame layout this package does not handle.
	ErrUnsupported = errors.New("offload: unsupported offload")
	// ErrCoalescerFull: the Coalescer holds its maximum number of output
	// frames; Flush, then Add the same frame again.
	ErrCoalescerFull = errors.New("offload: coalescer full")
)

// VirtioNetHdr is struct virtio_net_hdr. On the wire its 16-bit fields are
// little-endian: the tun driver uses little-endian headers for virtio 1.0 and
// host order for legacy ones, which coincide on x86 and arm64 (on a big-endian
// host set TUNSETVNETLE).
type VirtioNetHdr struct {
	// Flags is a set of Flag* bits.
	Flags uint8
	// GSOType is one of the GSO* values, possibly ORed with GSOECN.
	GSOType uint8
	// HdrLen is, as the kernel writes it, the length of the linear part of
	// the skb (at least the headers); SegmentTCP does not rely on it. As
	// written by the Coalescer it is the length of Ethernet+IP+TCP headers.
	HdrLen uint16
	// GSOSize is the MSS: payload bytes per segment, headers excluded.
	GSOSize uint16
	// CsumStart is where checksumming starts (the L4 header), counted from
	// the start of the Ethernet frame.
	CsumStart uint16
	// CsumOffset is the position of the checksum field relative to
	// CsumStart: 16 for TCP, 6 for UDP.
	CsumOffset uint16
}

// Decode reads a header from the first VirtioNetHdrLen bytes of b.
func (h *VirtioNetHdr) Decode(b []byte) error {
	if len(b) < VirtioNetHdrLen {
		return fmt.Errorf("%w: virtio-net header needs %d bytes, have %d", ErrShortBuffer, VirtioNetHdrLen, len(b))
	}
	h.Flags = b[0]
	h.GSOType = b[1]
	h.HdrLen = binary.LittleEndian.Uint16(b[2:4])
	h.GSOSize = binary.LittleEndian.Uint16(b[4:6])
	h.CsumStart = binary.LittleEndian.Uint16(b[6:8])
	h.CsumOffset = binary.LittleEndian.Uint16(b[8:10])
	return nil
}

// Encode writes the header into b[:VirtioNetHdrLen]. It panics if b is
// shorter, like encoding/binary's Put functions.
func (h VirtioNetHdr) Encode(b []byte) {
	_ = b[VirtioNetHdrLen-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.LittleEndian.PutUint16(b[2:4], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:6], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:8], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:10], h.CsumOffset)
}

// String formats the header for logs and test failures.
func (h VirtioNetHdr) String() string {
	return fmt.Sprintf("vnet{flags=%#x gso=%#x hdrlen=%d gsosize=%d csum=%d+%d}",
		h.Flags, h.GSOType, h.HdrLen, h.GSOSize, h.CsumStart, h.CsumOffset)
}
