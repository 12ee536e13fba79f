// Package netio defines the two I/O boundaries of the data plane, in the
// manner of wireguard-go's tun.Device and conn.Bind: a FrameDevice, where
// Ethernet frames enter and leave the overlay (a TAP queue on Linux), and
// an Underlay, which sends and receives VXLAN datagrams in batches (UDP
// sockets on Linux). The engine is written against these alone, so that
// in-memory implementations (package memio) test it without privileges.
package netio

import (
	"errors"
	"net/netip"
	"os"
)

// FrameDevice is one queue of the device frames enter and leave the
// overlay by. A multiqueue TAP is several FrameDevices, one per queue.
type FrameDevice interface {
	// Read reads up to len(bufs) frames, blocking until at least one is
	// there and then taking what else is queued without blocking. Frame i
	// is stored at bufs[i][offset:], behind a virtio-net header when
	// Caps().VnetHdr, and its length (header included) in sizes[i].
	// Only one goroutine reads a FrameDevice.
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	// Write writes one frame gathered from parts, the first part being
	// its virtio-net header when Caps().VnetHdr. The device keeps none of
	// the parts. Safe for concurrent use. (A TAP has no batch write: one
	// frame is one write system call, and gathering is what saves copies.)
	Write(parts [][]byte) error
	// Caps reports what the device negotiated with the kernel.
	Caps() FrameCaps
	// Name is the interface name.
	Name() string
	// Close releases the queue; a blocked Read returns an error for which
	// IsClosed holds.
	Close() error
}

// FrameCaps is what a FrameDevice carries besides plain frames.
type FrameCaps struct {
	// VnetHdr: every frame read or written has a virtio-net header in
	// front (offload.VirtioNetHdrLen bytes).
	VnetHdr bool
	// TSO: reads may return TCP super-frames to segment (GSO type set in
	// the virtio-net header), and writes may carry coalesced ones.
	TSO bool
	// Offloads describes the accepted offloads for logs ("csum tso4 ...").
	Offloads string
}

// Datagram is one VXLAN datagram (the UDP payload), or on send a train of
// them, with its underlay metadata.
type Datagram struct {
	// Buf is the receive buffer a Receiver fills; unused on send.
	Buf []byte
	// N is the received length; -1 when the datagram was larger than Buf
	// (truncated, to be dropped).
	N int
	// Parts is what a Sender sends, gathered in order; unused on receive.
	Parts [][]byte
	// Addr is the source on receive, the destination on send.
	Addr netip.AddrPort
	// TOS is the outer TOS or traffic class, received or to send.
	TOS uint8
	// TTL is the outer TTL or hop limit to send.
	TTL uint8
	// GSOSize, on receive, is the size of each datagram of a train the
	// kernel coalesced (UDP_GRO), 0 for one datagram; on send, with a
	// payload longer than it, the payload is a train of GSOSize-byte
	// datagrams (the last may be shorter) that the kernel splits
	// (UDP_SEGMENT).
	GSOSize int
	// Flow is the inner flow hash on send: the Underlay derives the outer
	// source port from it, so one flow keeps one port.
	Flow uint32
	// Inner, on send to an Underlay with Caps().TunnelGSO, describes the
	// unsegmented TCP super-frame the payload carries after its VXLAN
	// header; the zero value: a plain datagram.
	Inner InnerGSO
	// Err, after Send, is why this message was refused (nil: sent).
	Err error
}

// InnerGSO describes a TCP super-frame sent whole, to be segmented by the
// kernel (or the hardware) after encapsulation: the sender hands over one
// packet per super-frame instead of a train of datagrams. Offsets count
// from the start of the inner Ethernet frame (after the VXLAN header).
type InnerGSO struct {
	// Type is the inner segmentation, GSOTCPv4 or GSOTCPv6; GSONone (0)
	// marks a plain datagram, whose other fields are unused.
	Type GSOType
	// ECN: the super-frame has CWR set in its first segment only (the
	// kernel's SKB_GSO_TCP_ECN).
	ECN bool
	// Size is the inner MSS: TCP payload bytes per segment.
	Size uint16
	// NetOff is where the inner IP header starts.
	NetOff uint16
	// HdrLen is the inner headers' length, Ethernet to the end of TCP.
	HdrLen uint16
	// CsumStart and CsumOffset locate the inner TCP checksum, which holds
	// the pseudo-header sum still to be completed: it starts at CsumStart
	// (the TCP header) and is stored at CsumStart+CsumOffset.
	CsumStart, CsumOffset uint16
}

// GSOType is an inner segmentation kind (InnerGSO.Type).
type GSOType uint8

// The inner segmentation kinds.
const (
	GSONone GSOType = iota
	GSOTCPv4
	GSOTCPv6
)

// Receiver is one receive queue of an Underlay, read by one goroutine.
type Receiver interface {
	// Recv fills msgs[i].N, Addr, TOS and GSOSize for up to len(msgs)
	// datagrams received into msgs[i].Buf, blocking until at least one
	// arrives, and returns how many did.
	Recv(msgs []Datagram) (int, error)
}

// Sender sends batches of datagrams for one goroutine.
type Sender interface {
	// Send sends every message of msgs, setting Err on those the kernel
	// refuses (the others still go), and returns how many were sent. An
	// error is returned only when the underlay itself failed (closed).
	Send(msgs []Datagram) (int, error)
}

// UnderlayCaps is what an Underlay offers.
type UnderlayCaps struct {
	// GSO: Send takes trains (GSOSize > 0).
	GSO bool
	// GRO: Recv may return coalesced trains.
	GRO bool
	// V6: the underlay is IPv6.
	V6 bool
	// SourcePorts is how many distinct outer source ports flows spread
	// over.
	SourcePorts int
	// TunnelGSO: Send takes unsegmented TCP super-frames (Datagram.Inner
	// set) to unicast destinations and hands each over as one packet.
	TunnelGSO bool
}

// Underlay sends and receives VXLAN datagrams.
type Underlay interface {
	// Receivers are the receive queues, each read by one goroutine;
	// datagrams of one flow always arrive on the same queue.
	Receivers() []Receiver
	// NewSender returns a Sender for one goroutine.
	NewSender() Sender
	// Caps reports what the underlay offers.
	Caps() UnderlayCaps
	// Port is the UDP port datagrams are received on, and sent to when a
	// destination names none.
	Port() uint16
	// JoinGroup and LeaveGroup join and leave a multicast group so that
	// its datagrams are received (once, on one queue).
	JoinGroup(g netip.Addr) error
	LeaveGroup(g netip.Addr) error
	// Tick is called once a second: counters the underlay polls are
	// brought up to date.
	Tick()
	// Close releases the underlay; blocked Recv calls return an error for
	// which IsClosed holds.
	Close() error
}

// IsClosed reports whether err comes from a FrameDevice or an Underlay
// closed by Close.
func IsClosed(err error) bool { return errors.Is(err, os.ErrClosed) }
