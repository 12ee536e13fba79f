package overlay_test

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/overlay"
)

func eth(src fdb.MAC, etherType uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:], src[:])
	binary.BigEndian.PutUint16(f[12:], etherType)
	return append(f, payload...)
}

func arp(src, senderHW fdb.MAC, op uint16, sender, target string) []byte {
	a := make([]byte, 28)
	binary.BigEndian.PutUint16(a[0:], 1)
	binary.BigEndian.PutUint16(a[2:], 0x0800)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], op)
	copy(a[8:], senderHW[:])
	s4 := netip.MustParseAddr(sender).As4()
	copy(a[14:], s4[:])
	t4 := netip.MustParseAddr(target).As4()
	copy(a[24:], t4[:])
	return eth(src, 0x0806, a)
}

func nd(src fdb.MAC, typ byte, from, target string) []byte {
	p := make([]byte, 40+24)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], 24)
	p[6], p[7] = 58, 255
	f16 := netip.MustParseAddr(from).As16()
	copy(p[8:], f16[:])
	p[40] = typ
	t16 := netip.MustParseAddr(target).As16()
	copy(p[48:], t16[:])
	return eth(src, 0x86dd, p)
}

func TestObserveFrameAddresses(t *testing.T) {
	l := overlay.NewLocal(overlay.LocalConfig{VNI: 40, VTEP: overlay.VTEP{MAC: self}})
	ips := func(mac fdb.MAC) []netip.Addr {
		_, eps := l.Snapshot()
		for _, e := range eps {
			if e.MAC == mac {
				return e.IPs
			}
		}
		return nil
	}
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, f := range [][]byte{
		arp(macE1, macE1, 1, "203.0.113.11", "203.0.113.2"),      // request
		arp(macE1, macE1, 2, "203.0.113.12", "203.0.113.12"),     // gratuitous reply
		arp(macE1, macE1, 1, "0.0.0.0", "203.0.113.13"),          // probe: no address
		arp(macE1, macP2, 2, "203.0.113.14", "203.0.113.2"),      // proxied for another MAC
		nd(macE1, 135, "2001:db8::11", "2001:db8::2"),            // NS
		nd(macE1, 135, "::", "2001:db8::15"),                     // DAD
		nd(macE1, 136, "fe80::1", "2001:db8::12"),                // NA: the target
		nd(macE1, 128, "2001:db8::16", "2001:db8::2"),            // echo request
		nd(self, 136, "2001:db8::1", "2001:db8::1"),              // the TAP itself
		eth(macE1, 0x0806, []byte{0, 1, 8, 0, 6, 4, 0, 1}),       // truncated ARP
		arp(macE1, macE1, 1, "224.0.0.1", "203.0.113.2")[:14+20], // truncated too
		eth(macE1, 0x86dd, make([]byte, 30)),                     // truncated IPv6
		arp(macE1, macE1, 1, "255.255.255.255", "203.0.113.2"),   // broadcast sender
	} {
		l.ObserveFrame(f)
	}
	want := addrs("203.0.113.11", "203.0.113.12", "2001:db8::11", "2001:db8::12")
	if got := ips(macE1); !slices.Equal(got, want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
	if got := ips(self); got != nil {
		t.Fatalf("the TAP itself is an endpoint: %v", got)
	}
	// An address that moves to another endpoint leaves the first.
	l.ObserveFrame(arp(macE2, macE2, 2, "203.0.113.12", "203.0.113.12"))
	if got := ips(macE2); !slices.Equal(got, addrs("203.0.113.12")) {
		t.Fatalf("moved address: %v", got)
	}
	if got := ips(macE1); slices.Contains(got, netip.MustParseAddr("203.0.113.12")) {
		t.Fatalf("moved address still on the first endpoint: %v", got)
	}
	// Seen again: no change, no allocation.
	f := arp(macE1, macE1, 1, "203.0.113.11", "203.0.113.2")
	if n := testing.AllocsPerRun(100, func() { l.ObserveFrame(f) }); n != 0 {
		t.Fatalf("ObserveFrame of a known ARP allocates %v times", n)
	}
	// At most MaxEndpointIPs per endpoint.
	for i := 0; i < overlay.MaxEndpointIPs+4; i++ {
		l.ObserveFrame(arp(macP3, macP3, 1, netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}).String(), "198.51.100.254"))
	}
	if got := ips(macP3); len(got) != overlay.MaxEndpointIPs || counter(l, "local_endpoint_ips_full") != 4 {
		t.Fatalf("bound: %d addresses, %d refused", len(got), counter(l, "local_endpoint_ips_full"))
	}
}

// BenchmarkObserveFrame is the cost the transmit path pays per frame in a
// cluster VNI: a known source MAC, not ARP or neighbour discovery.
func BenchmarkObserveFrame(b *testing.B) {
	l := overlay.NewLocal(overlay.LocalConfig{VNI: 40, VTEP: overlay.VTEP{MAC: self}})
	f := eth(macE1, 0x0800, make([]byte, 1486))
	l.ObserveFrame(f)
	b.ReportAllocs()
	for b.Loop() {
		l.ObserveFrame(f)
	}
}
