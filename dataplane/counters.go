package dataplane

import (
	"net/netip"

	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/stats"
)

// perVNI reports whether a receive drop for reason r is decided once the
// datagram's VNI is known, and so is counted on that VNI's segment; the
// others (short datagram, I flag clear, unknown VNI) are counted on the
// socket, which several segments may share. Reserved bits count on the
// segment because, like the kernel, the data plane looks the VNI up first:
// with an unknown VNI such a datagram is rx_unknown_vni.
func perVNI(r encap.Reason) bool {
	switch r {
	case encap.ReasonOK, encap.ReasonShort, encap.ReasonNoIFlag, encap.ReasonUnknownVNI:
		return false
	}
	return r < encap.NumReasons
}

// initCounters registers the counters of the endpoint's socket.
func (ep *Endpoint) initCounters() {
	n := ep.counters.New
	ep.rxPackets = n("rx_datagrams")
	ep.notAllowed = n("rx_not_allowed")
	for r := encap.ReasonOK + 1; r < encap.NumReasons; r++ {
		if !perVNI(r) {
			ep.rxDrops[r] = n(r.String())
		}
	}
	ep.rxOverflow = n("rx_socket_overflow")
	ep.panics = n("loop_panics")
}

// initCounters registers the segment's counters.
func (s *Segment) initCounters() {
	c := &s.c
	n := s.counters.New
	c.txFrames, c.txBytes, c.txMessages = n("tx_frames"), n("tx_bytes"), n("tx_messages")
	c.txNoDest, c.txShort, c.txErrors, c.txBadGSO = n("tx_no_destination"), n("tx_short"), n("tx_send_errors"), n("tx_bad_gso")
	c.rxFrames, c.rxBytes = n("rx_frames"), n("rx_bytes")
	for r := encap.ReasonOK + 1; r < encap.NumReasons; r++ {
		if perVNI(r) {
			s.rxDrops[r] = n(r.String())
		}
	}
	c.rxBadSource, c.tapWrites, c.tapWriteErr = n("rx_invalid_source_mac"), n("rx_tap_writes"), n("rx_tap_write_errors")
	c.learned, c.migrated, c.learnFull, c.learnLimited = n("fdb_learned"), n("fdb_migrated"), n("fdb_learn_full"), n("fdb_learn_limited")
	c.proxyAnswered, c.proxyConsumed, c.proxyInvalid = n("proxy_answered"), n("proxy_consumed"), n("proxy_invalid")
	c.l2miss, c.l3miss, c.rscRewrites = n("l2miss"), n("l3miss"), n("rsc_rewrites")
	c.eventsDropped, c.eventsCoalesced = n("events_dropped"), n("events_coalesced")
	c.rxNotMember = n("rx_not_member")
}

// Accessors for monitoring: which counters belong to a segment and which to
// its endpoint's socket, read apart (Segment.Stats reads them together).

// VNI returns the segment's VXLAN network identifier.
func (s *Segment) VNI() uint32 { return s.cfg.VNI }

// Table returns the segment's forwarding database.
func (s *Segment) Table() *fdb.Table { return s.cfg.Table }

// Counters returns the segment's own counters, without the endpoint's.
func (s *Segment) Counters() []stats.Value { return s.counters.Snapshot() }

// Counters returns the counters of the endpoint's socket: datagrams
// received, recovered loop panics and the drops decided before a
// datagram's VNI was known (see perVNI).
func (ep *Endpoint) Counters() []stats.Value { return ep.counters.Snapshot() }

// Local returns the configured underlay address and the UDP port the
// endpoint receives on; the address is the unspecified one of the
// endpoint's family ("0.0.0.0" or "::") when none was configured.
func (ep *Endpoint) Local() netip.AddrPort {
	a := ep.cfg.Local
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
		if ep.cfg.V6 {
			a = netip.IPv6Unspecified()
		}
	}
	return netip.AddrPortFrom(a, ep.port)
}
