package overlay

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/vxland/vxland/fdb"
)

// MaxEndpointIPs bounds the addresses recorded for one endpoint.
const MaxEndpointIPs = 16

// ObserveFrame records a frame read from the TAP: its source MAC as an
// endpoint (see ObserveSource) and, when it is an ARP request or reply
// (gratuitous ones included), an IPv6 neighbour solicitation or
// advertisement, the address it announces for that MAC. It is called on
// the packet path: frames it has seen before cost no lock and no
// allocation.
func (l *Local) ObserveFrame(frame []byte) {
	if len(frame) < 14 {
		return
	}
	src := [6]byte(frame[6:12])
	l.ObserveSource(src)
	if fdb.MAC(src) == l.cfg.VTEP.MAC {
		return // the TAP's own addresses come from netlink
	}
	if ip, ok := announcedIP(frame); ok {
		l.addEndpointIP(fdb.MAC(src), ip)
	}
}

// announcedIP returns the address an untagged ARP or IPv6 neighbour
// discovery frame says its sender has: an ARP packet's sender address
// (when the sender hardware address is the frame's source), an NS's
// source address, an NA's target address. Unspecified and group
// addresses (ARP probes, DAD) are not announcements.
func announcedIP(f []byte) (netip.Addr, bool) {
	var ip netip.Addr
	switch binary.BigEndian.Uint16(f[12:14]) {
	case 0x0806: // ARP
		a := f[14:]
		if len(a) < 28 || binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != 0x0800 ||
			a[4] != 6 || a[5] != 4 || !slices.Equal(a[8:14], f[6:12]) {
			return ip, false
		}
		if op := binary.BigEndian.Uint16(a[6:8]); op != 1 && op != 2 {
			return ip, false
		}
		ip = netip.AddrFrom4([4]byte(a[14:18]))
	case 0x86dd: // IPv6
		p := f[14:]
		if len(p) < 40+24 || p[6] != 58 || p[7] != 255 { // ICMPv6, hop limit 255 as ND requires
			return ip, false
		}
		switch p[40] {
		case 135: // neighbour solicitation: the sender's own address is the source
			ip = netip.AddrFrom16([16]byte(p[8:24]))
		case 136: // neighbour advertisement: the target is the sender's
			ip = netip.AddrFrom16([16]byte(p[48:64]))
		default:
			return ip, false
		}
	default:
		return ip, false
	}
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return ip, false
	}
	return ip, true
}

// addEndpointIP records that mac uses ip; an address moves from any other
// endpoint to it. Known bindings take the lock but allocate nothing.
func (l *Local) addEndpointIP(mac fdb.MAC, ip netip.Addr) {
	l.mu.Lock()
	if slices.Contains(l.ips[mac], ip) {
		l.mu.Unlock()
		return
	}
	for m, ips := range l.ips {
		if i := slices.Index(ips, ip); i >= 0 {
			l.ips[m] = slices.Delete(slices.Clone(ips), i, i+1)
		}
	}
	full := len(l.ips[mac]) >= MaxEndpointIPs
	if !full {
		l.ips[mac] = SortAddrs(append(slices.Clone(l.ips[mac]), ip))
	}
	l.mu.Unlock()
	if full {
		l.ipsFull.Inc()
		return
	}
	l.signal()
}
