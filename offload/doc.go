// Package offload implements the checksum and segmentation offloads that a
// userspace VXLAN endpoint needs between a TAP device opened with
// IFF_VNET_HDR and its UDP sockets:
//
//   - VirtioNetHdr: the 10-byte struct virtio_net_hdr that precedes every
//     frame read from or written to such a TAP.
//   - ParseL4: introspection of an inner Ethernet frame (one optional 802.1Q
//     or 802.1ad tag, IPv4 or IPv6, TCP or UDP).
//   - PartialChecksum and CompleteChecksum: recognising and filling in a TCP
//     or UDP checksum that holds only the pseudo-header seed (the
//     CHECKSUM_PARTIAL state a same-host kernel sender hands over).
//   - SegmentTCP: transmit side, splitting a TSO/USO super-frame read from the
//     TAP into MSS-sized Ethernet frames, written behind caller-reserved
//     headroom for the VXLAN header.
//   - Coalescer: receive side, merging consecutive TCP segments of a flow into
//     one GSO frame for a single TAP write.
//
// All frames are Ethernet frames. All offsets in virtio-net headers (HdrLen,
// CsumStart) count from the first byte of the Ethernet header, i.e. they
// include the 14 (or 18, with a VLAN tag) bytes of L2 header, exactly as the
// Linux tun driver reports and expects them for a TAP device.
//
// Limits: IPv4 fragments, IPv6 extension headers and IPv6 jumbograms are not
// parsed (ParseL4 reports !ok, SegmentTCP returns an error, the Coalescer
// passes such frames through untouched).
//
// Nothing on the per-packet paths allocates.
package offload
