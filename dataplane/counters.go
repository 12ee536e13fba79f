package dataplane

import (
	"net/netip"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/stats"
)

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
// datagram's VNI was known.
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
