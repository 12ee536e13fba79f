package dataplane

import (
	"net/netip"

	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/inner"
	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/offload"
)

// innerGSO describes the TCP super-frame frame (layout l, virtio-net
// header h) for an underlay that takes it whole (netio.UnderlayCaps
// .TunnelGSO). It reports false for what such an underlay does not take:
// other GSO types, VLAN-tagged frames, headers that disagree with the
// layout, frames too long for one outer IPv4 packet.
func innerGSO(h offload.VirtioNetHdr, l *inner.Layout, frame []byte) (netio.InnerGSO, bool) {
	var g netio.InnerGSO
	switch h.GSOType &^ offload.GSOECN {
	case offload.GSOTCPv4:
		g.Type = netio.GSOTCPv4
		if l.IPVersion != 4 {
			return g, false
		}
	case offload.GSOTCPv6:
		g.Type = netio.GSOTCPv6
		if l.IPVersion != 6 {
			return g, false
		}
	default:
		return g, false
	}
	if !l.Transport || l.Proto != inner.ProtoTCP || l.VLANs != 0 || l.End() != len(frame) ||
		len(frame)+encap.HeaderLen+inner.UDPHeaderLen+inner.IPv4MinHeaderLen > inner.MaxIPLen {
		return g, false
	}
	if h.Flags&offload.FlagNeedsCsum == 0 || h.GSOSize == 0 || int(h.CsumStart) != l.L4Off || int(h.CsumOffset) != l.CsumOffset() ||
		l.PayloadOff() >= len(frame) {
		return g, false
	}
	g.ECN = h.GSOType&offload.GSOECN != 0
	g.Size = h.GSOSize
	g.NetOff = uint16(l.L3Off)
	g.HdrLen = uint16(l.PayloadOff())
	g.CsumStart = h.CsumStart
	g.CsumOffset = h.CsumOffset
	return g, true
}

// forwardWhole queues the TCP super-frame frame whole, one datagram per
// destination, for an underlay that segments after encapsulation. It
// reports false, having queued nothing, when the frame or one of its
// destinations (a multicast group) needs the segmenting path.
func (s *Segment) forwardWhole(st *txState, tn *tuning, l *inner.Layout, h offload.VirtioNetHdr, frame []byte, dests []fdb.Dest, flow uint32) bool {
	g, ok := innerGSO(h, l, frame)
	if !ok {
		return false
	}
	for i := range dests {
		if d := &dests[i]; s.usable(d) && !viaTAP(d.IP) {
			return false
		}
	}
	queued := s.queueToDests(st, tn, frame, l, dests, flow, g)
	if !queued {
		s.c.txNoDest.Inc()
		return true
	}
	// Counted as the segments it becomes, as the segmenting path counts.
	payload := len(frame) - int(g.HdrLen)
	n := max(1, (payload+int(g.Size)-1)/int(g.Size))
	st.frames += uint64(n)
	st.bytes += uint64(len(frame) + (n-1)*int(g.HdrLen))
	return true
}

// viaTAP reports whether a datagram to a goes through the TAP: unicast
// IPv4 does, all of it, so that one flow never takes two paths.
func viaTAP(a netip.Addr) bool {
	return a.Is4() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
