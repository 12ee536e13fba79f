package dataplane

import (
	"encoding/binary"
	"net/netip"

	"github.com/vxland/vxland/arpnd"
	"github.com/vxland/vxland/fdb"
)

// proxy handles an ARP or Neighbor Solicitation frame from the TAP as the
// kernel's arp_reduce and neigh_reduce do, and reports whether it took the
// frame (every ARP frame, and every Neighbor Solicitation; other frames go
// on to be forwarded). A request whose target has a usable (NUD_CONNECTED)
// neighbour entry is answered with a reply written back to the TAP, unless
// the entry's MAC has a forwarding entry without a remote address (a local
// neighbour); one whose target has no entry at all is consumed, raising an
// l3miss when asked to, and one whose entry is not usable (incomplete,
// stale, failed) is consumed quietly, as in the kernel. Duplicate address
// detection is looked up the same way (an l3miss when there is no entry)
// but never answered (the kernel answers to ::, which no host accepts).
func (s *Segment) proxy(st *txState, tn *tuning, frame []byte) bool {
	switch arpnd.Parse(frame, &st.req) {
	case arpnd.Forward:
		return false
	case arpnd.Consume:
		s.c.proxyConsumed.Inc()
		return true
	case arpnd.Invalid:
		s.c.proxyInvalid.Inc()
		return true
	}
	r := &st.req
	n, ok := s.neigh.Lookup(r.Target)
	if !ok || !n.Usable() || r.DAD {
		s.c.proxyConsumed.Inc()
		if !ok {
			s.miss3(tn, r.Target)
		}
		return true
	}
	dests, router := s.cfg.Table.LookupRouter(n.MAC)
	if len(dests) > 0 && dests[0].IP.IsUnspecified() {
		s.c.proxyConsumed.Inc() // bridge-local neighbour: not ours to answer
		return true
	}
	size := r.Reply(st.reply[:], [6]byte(n.MAC), router || n.Router)
	if st.writeFrame(s.vnet, st.reply[:size]) != nil {
		s.c.tapWriteErr.Inc()
		return true
	}
	s.c.proxyAnswered.Inc()
	return true
}

// miss3 raises an l3miss for ip when asked to.
func (s *Segment) miss3(tn *tuning, ip netip.Addr) {
	if tn.L3Miss {
		s.c.l3miss.Inc()
		s.bus.L3Miss(ip)
	}
}

// shortCircuit is the kernel's route_shortcircuit: an untagged IPv4 or
// IPv6 frame sent to a router's MAC goes straight to the neighbour of its
// destination address, its source becoming the router's MAC. It reports
// whether the destination MAC changed; an address without a neighbour
// entry raises an l3miss when asked to. Unlike the kernel, which takes the
// address of an entry in any state (all zeros while incomplete, which then
// floods), an entry that is not usable leaves the frame as it is.
func (s *Segment) shortCircuit(frame []byte, tn *tuning) bool {
	if frame[0]&1 != 0 {
		return false
	}
	var dst netip.Addr
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case 0x0800:
		if len(frame) < 14+20 {
			return false
		}
		dst = netip.AddrFrom4([4]byte(frame[30:34]))
	case 0x86dd:
		if len(frame) < 14+40 {
			return false
		}
		dst = netip.AddrFrom16([16]byte(frame[38:54]))
	default:
		return false
	}
	n, ok := s.neigh.Lookup(dst)
	if !ok {
		s.miss3(tn, dst)
		return false
	}
	if !n.Usable() {
		return false
	}
	if fdb.MAC(frame[0:6]) == n.MAC {
		return false
	}
	copy(frame[6:12], frame[0:6])
	copy(frame[0:6], n.MAC[:])
	s.c.rscRewrites.Inc()
	return true
}
