// Package offload implements the checksum and segmentation offloads that a
// userspace VXLAN endpoint needs between a TAP device opened with
// IFF_VNET_HDR and its UDP sockets:
//
//   - VirtioNetHdr: the 10-byte struct virtio_net_hdr that precedes every
//     frame read from or written to such a TAP.
//   - Every function takes the frame's inner.Layout, decoded once by the
//     caller; Layout.Transport says whether a frame is one the offloads
//     handle (up to two 802.1Q/802.1ad tags, IPv4 or IPv6, TCP or UDP).
//   - PartialChecksum and CompleteChecksum: recognising and filling in a TCP
//     or UDP checksum that holds only the pseudo-header seed (the
//     CHECKSUM_PARTIAL state a same-host kernel sender hands over).
//   - SegmentGather: transmit side, splitting a TSO/USO super-frame read from
//     the TAP into MSS-sized segments as (headers, payload) pairs: headers
//     built in small slots behind caller-reserved room for the VXLAN header,
//     payloads left in the TAP's buffer, for one UDP_SEGMENT sendmsg of
//     iovec pairs. SegmentTCP builds the same frames by copying.
//   - Coalescer: receive side, merging consecutive TCP segments of a flow into
//     one GSO frame for a single TAP write: in gather mode a header and the
//     payload slices for one writev, otherwise copied into a merge buffer.
//
// All frames are Ethernet frames. All offsets in virtio-net headers (HdrLen,
// CsumStart) count from the first byte of the Ethernet header, i.e. they
// include the 14 (or 18 or 22, with VLAN tags) bytes of L2 header, exactly as the
// Linux tun driver reports and expects them for a TAP device.
//
// Limits: IPv4 fragments, IPv6 extension headers and IPv6 jumbograms are not
// handled (Layout.Transport is false, segmentation returns an error, the
// Coalescer passes such frames through untouched).
//
// Nothing on the per-packet paths allocates.
package offload
