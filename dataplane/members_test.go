package dataplane

import (
	"net/netip"
	"testing"

	"github.com/vxland/vxland/encap"
)

// TestMembersOnly checks that a segment restricted to members drops
// datagrams from other underlay sources first (rx_not_member) and hands
// members' datagrams on to the usual checks.
func TestMembersOnly(t *testing.T) {
	ep, s := benchEndpoint(t, false, nil, nil)
	w := rxFor(ep)
	receive := func(d []byte, from netip.Addr) {
		w.receive(d, from, 0)
		w.finish()
	}
	member := netip.MustParseAddr("192.0.2.2")
	stranger := netip.MustParseAddr("192.0.2.66")
	// A datagram whose inner source is our own MAC: once past the member
	// check it is dropped as rx_own_mac, before any TAP write.
	dgram := make([]byte, encap.HeaderLen+60)
	encap.PutHeader(dgram, benchVNI)
	frame := dgram[encap.HeaderLen:]
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:], benchOurMAC[:])
	frame[12], frame[13] = 0x88, 0xb5
	ownMAC := s.rxDrops[encap.ReasonOwnMAC]

	receive(dgram, stranger) // no member list: everyone passes
	if ownMAC.Load() != 1 || s.c.rxNotMember.Load() != 0 {
		t.Fatalf("unrestricted: own_mac %d not_member %d", ownMAC.Load(), s.c.rxNotMember.Load())
	}
	s.SetMembers([]netip.Addr{member})
	receive(dgram, stranger)
	receive(dgram, netip.MustParseAddr("::ffff:192.0.2.66"))
	if ownMAC.Load() != 1 || s.c.rxNotMember.Load() != 2 {
		t.Fatalf("stranger: own_mac %d not_member %d", ownMAC.Load(), s.c.rxNotMember.Load())
	}
	receive(dgram, netip.MustParseAddr("::ffff:192.0.2.2"))
	if ownMAC.Load() != 2 || s.c.rxNotMember.Load() != 2 {
		t.Fatalf("member: own_mac %d not_member %d", ownMAC.Load(), s.c.rxNotMember.Load())
	}
	s.SetMembers([]netip.Addr{})
	receive(dgram, member)
	if s.c.rxNotMember.Load() != 3 {
		t.Fatal("empty member list accepted a datagram")
	}
	s.SetMembers(nil)
	receive(dgram, stranger)
	if ownMAC.Load() != 3 {
		t.Fatal("nil member list still filters")
	}
	s.SetMembers([]netip.Addr{member})
	if n := testing.AllocsPerRun(100, func() { receive(dgram, member) }); n != 0 {
		t.Fatalf("receive allocates %v times", n)
	}
}
