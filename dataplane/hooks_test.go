package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/vxland/vxland/arpnd"
	"github.com/vxland/vxland/checksum"
	"github.com/vxland/vxland/events"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/inner"
	"github.com/vxland/vxland/neigh"
	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/netio/memio"
)

var (
	hookAsker  = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	hookTarget = fdb.MAC{0x02, 0, 0, 0, 0, 0x02}
	ip4Asker   = netip.MustParseAddr("203.0.113.1")
	ip4Target  = netip.MustParseAddr("203.0.113.2")
	ip4Unknown = netip.MustParseAddr("203.0.113.99")
)

// hookSegment is a segment with the given tuning whose proxy replies land
// in *replies.
func hookSegment(t *testing.T, tn Tuning) (*Segment, *[][]byte) {
	dev := &replyDevice{Device: memio.NewDevice("hook0", netio.FrameCaps{})}
	_, s := benchEndpoint(t, false, nil, dev)
	s.SetTuning(tn)
	return s, &dev.replies
}

// replyDevice is an in-memory device whose writes (the proxy's replies)
// are kept in order, as they happen.
type replyDevice struct {
	*memio.Device
	replies [][]byte
}

// discardDevice is an in-memory device whose writes go nowhere, without
// allocating.
type discardDevice struct{ *memio.Device }

func (discardDevice) Write([][]byte) error { return nil }

func (d *replyDevice) Write(parts [][]byte) error {
	var f []byte
	for _, p := range parts {
		f = append(f, p...)
	}
	d.replies = append(d.replies, f)
	return nil
}

func arpRequest(tip netip.Addr) []byte {
	b := make([]byte, 42)
	copy(b[0:6], benchBcast[:])
	copy(b[6:12], hookAsker[:])
	binary.BigEndian.PutUint16(b[12:], 0x0806)
	a := b[14:]
	copy(a, []byte{0, 1, 8, 0, 6, 4, 0, 1})
	copy(a[8:14], hookAsker[:])
	s, tt := ip4Asker.As4(), tip.As4()
	copy(a[14:18], s[:])
	copy(a[24:28], tt[:])
	return b
}

// expectedARPReply is the kernel's reply to arpRequest(ip4Target).
func expectedARPReply() []byte {
	var r arpnd.Request
	if arpnd.Parse(arpRequest(ip4Target), &r) != arpnd.Answer {
		panic("test request does not parse")
	}
	b := make([]byte, arpnd.MaxReplyLen)
	return b[:r.Reply(b, hookTarget, false)]
}

func TestProxyAnswers(t *testing.T) {
	s, replies := hookSegment(t, Tuning{Proxy: true})
	s.neigh.Add(ip4Target, hookTarget, false)
	s.cfg.Table.Add(hookTarget, fdb.Dest{IP: netip.MustParseAddr("192.0.2.2"), Port: 4789, VNI: benchVNI}, fdb.Permanent)
	st := txFor(s)
	s.transmitFrame(st, s.tune.Load(), arpRequest(ip4Target))
	if len(*replies) != 1 || !bytes.Equal((*replies)[0], expectedARPReply()) {
		t.Fatalf("replies %x", *replies)
	}
	if s.c.proxyAnswered.Load() != 1 || s.c.txFrames.Load() != 0 || s.c.txNoDest.Load() != 0 {
		t.Errorf("answered %d, tx_frames %d, tx_no_destination %d: want 1, 0, 0",
			s.c.proxyAnswered.Load(), s.c.txFrames.Load(), s.c.txNoDest.Load())
	}
}

// TestProxyAnswersWithoutFDBEntry: the kernel answers from the neighbour
// table alone when the MAC has no forwarding entry at all.
func TestProxyAnswersWithoutFDBEntry(t *testing.T) {
	s, replies := hookSegment(t, Tuning{Proxy: true})
	s.neigh.SetHost(ip4Target, hookTarget, false, neigh.NUDReachable)
	s.transmitFrame(txFor(s), s.tune.Load(), arpRequest(ip4Target))
	if len(*replies) != 1 {
		t.Fatalf("%d replies, want 1", len(*replies))
	}
}

func TestProxyConsumes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tn         Tuning
		frame      []byte
		local      bool // the neighbour's MAC is bridge-local
		stale      bool // the target's entry is the host's, and stale
		l3miss     uint64
		consumed   uint64
		invalid    uint64
		wantEvents int
	}{
		{"unknown target", Tuning{Proxy: true}, arpRequest(ip4Unknown), false, false, 0, 1, 0, 0},
		{"unknown target with l3miss", Tuning{Proxy: true, L3Miss: true}, arpRequest(ip4Unknown), false, false, 1, 1, 0, 1},
		{"bridge-local neighbour", Tuning{Proxy: true, L3Miss: true}, arpRequest(ip4Target), true, false, 0, 1, 0, 0},
		{"stale neighbour: quietly, as the kernel", Tuning{Proxy: true, L3Miss: true}, arpRequest(ip4Unknown), false, true, 0, 1, 0, 0},
		{"gratuitous", Tuning{Proxy: true, L3Miss: true}, arpRequest(ip4Asker), false, false, 0, 1, 0, 0},
		{"short arp", Tuning{Proxy: true, L3Miss: true}, arpRequest(ip4Target)[:30], false, false, 0, 0, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, replies := hookSegment(t, tc.tn)
			s.cfg.Table.Append(fdb.Zero, fdb.Dest{IP: netip.MustParseAddr("192.0.2.9"), Port: 4789, VNI: benchVNI}, fdb.Permanent)
			s.neigh.Add(ip4Target, hookTarget, false)
			if tc.stale {
				s.neigh.SetHost(ip4Unknown, hookTarget, false, neigh.NUDStale)
			}
			if tc.local {
				s.cfg.Table.Add(hookTarget, fdb.Dest{IP: netip.IPv4Unspecified(), Port: 4789, VNI: benchVNI}, fdb.Permanent)
			}
			sub := s.Events().Subscribe()
			defer sub.Close()
			s.transmitFrame(txFor(s), s.tune.Load(), tc.frame)
			if len(*replies) != 0 {
				t.Errorf("answered: %x", *replies)
			}
			if s.c.txFrames.Load() != 0 {
				t.Error("an ARP frame was flooded")
			}
			if s.c.l3miss.Load() != tc.l3miss || s.c.proxyConsumed.Load() != tc.consumed || s.c.proxyInvalid.Load() != tc.invalid {
				t.Errorf("l3miss %d consumed %d invalid %d, want %d %d %d", s.c.l3miss.Load(),
					s.c.proxyConsumed.Load(), s.c.proxyInvalid.Load(), tc.l3miss, tc.consumed, tc.invalid)
			}
			if len(sub.C()) != tc.wantEvents {
				t.Fatalf("%d events, want %d", len(sub.C()), tc.wantEvents)
			}
			if tc.wantEvents > 0 {
				if e := <-sub.C(); e.Kind != events.L3Miss || e.IP != ip4Unknown || e.VNI != benchVNI {
					t.Errorf("event %+v", e)
				}
			}
		})
	}
}

// TestProxyOffFloods: without proxy, ARP is an ordinary broadcast.
func TestProxyOffFloods(t *testing.T) {
	s, replies := hookSegment(t, Tuning{})
	s.cfg.Table.Append(fdb.Zero, sinkDest(t), fdb.Permanent)
	s.neigh.Add(ip4Target, hookTarget, false)
	st := txFor(s)
	s.transmitFrame(st, s.tune.Load(), arpRequest(ip4Target))
	s.flush(st)
	if len(*replies) != 0 || s.c.txFrames.Load() != 1 {
		t.Errorf("%d replies, %d frames sent; want 0, 1", len(*replies), s.c.txFrames.Load())
	}
}

func TestL2Miss(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tn       Tuning
		dst      [6]byte
		defaults bool
		want     int
	}{
		{"unicast", Tuning{L2Miss: true}, benchDstMAC, false, 1},
		{"off", Tuning{}, benchDstMAC, false, 0},
		{"multicast destination", Tuning{L2Miss: true}, [6]byte{0x01, 0, 0x5e, 0, 0, 1}, false, 0},
		{"all-zeros entry floods", Tuning{L2Miss: true}, benchDstMAC, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := hookSegment(t, tc.tn)
			if tc.defaults {
				s.cfg.Table.Append(fdb.Zero, sinkDest(t), fdb.Permanent)
			}
			sub := s.Events().Subscribe()
			defer sub.Close()
			st := txFor(s)
			s.transmitFrame(st, s.tune.Load(), tcp4Frame(tc.dst, benchPeerMAC, 10, 1, false))
			s.transmitFrame(st, s.tune.Load(), tcp4Frame(tc.dst, benchPeerMAC, 10, 2, false)) // coalesced
			s.flush(st)
			if got := int(s.c.l2miss.Load()); got != 2*tc.want {
				t.Errorf("l2miss %d, want %d", got, 2*tc.want)
			}
			if len(sub.C()) != tc.want {
				t.Fatalf("%d events, want %d", len(sub.C()), tc.want)
			}
			if tc.want > 0 {
				if e := <-sub.C(); e.Kind != events.L2Miss || e.MAC != fdb.MAC(tc.dst) {
					t.Errorf("event %+v", e)
				}
				if s.c.eventsCoalesced.Load() != 1 {
					t.Errorf("coalesced %d, want 1", s.c.eventsCoalesced.Load())
				}
			}
		})
	}
}

// TestRouteShortCircuit: an IP frame to a router's MAC goes to the
// neighbour of its destination IP, as the kernel's route_shortcircuit
// sends it.
func TestRouteShortCircuit(t *testing.T) {
	router := fdb.MAC{0x02, 0, 0, 0, 0, 0xee}
	routerDest, hostDest := sinkDest(t), sinkDest(t)
	dstIP := netip.AddrFrom4(benchDstIP)
	for _, tc := range []struct {
		name            string
		tn              Tuning
		flag, neighbour bool
		wantDst         fdb.MAC
		wantDest        fdb.Dest
		l3miss          uint64
	}{
		{"rewritten", Tuning{RSC: true}, true, true, fdb.MAC(benchDstMAC), hostDest, 0},
		{"rsc off", Tuning{}, true, true, router, routerDest, 0},
		{"not a router", Tuning{RSC: true}, false, true, router, routerDest, 0},
		{"no neighbour", Tuning{RSC: true, L3Miss: true}, true, false, router, routerDest, 1},
		{"incomplete neighbour", Tuning{RSC: true, L3Miss: true}, true, true, router, routerDest, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := hookSegment(t, tc.tn)
			s.cfg.Table.Set(fdb.OpAdd, router, routerDest, fdb.Permanent, tc.flag)
			s.cfg.Table.Add(fdb.MAC(benchDstMAC), hostDest, fdb.Permanent)
			switch {
			case tc.name == "incomplete neighbour":
				s.neigh.SetHost(dstIP, fdb.MAC{}, false, neigh.NUDIncomplete)
			case tc.neighbour:
				s.neigh.Add(dstIP, fdb.MAC(benchDstMAC), false)
			}
			frame := tcp4Frame(router, benchPeerMAC, 10, 1, false)
			var l inner.Layout
			l.Decode(frame)
			dests, _ := s.route(frame, &l, s.tune.Load())
			if len(dests) != 1 || dests[0] != tc.wantDest {
				t.Errorf("destinations %v, want %v", dests, tc.wantDest)
			}
			if fdb.MAC(frame[0:6]) != tc.wantDst {
				t.Errorf("destination MAC %s, want %s", fdb.MAC(frame[0:6]), tc.wantDst)
			}
			if tc.wantDst != router && fdb.MAC(frame[6:12]) != router {
				t.Errorf("source MAC %s, want the router's", fdb.MAC(frame[6:12]))
			}
			if s.c.l3miss.Load() != tc.l3miss {
				t.Errorf("l3miss %d, want %d", s.c.l3miss.Load(), tc.l3miss)
			}
		})
	}
}

// TestHooksHotPathAllocations: with every hook on, an ordinary unicast
// frame is forwarded without allocating, and so is an answered ARP request.
func TestHooksHotPathAllocations(t *testing.T) {
	_, s := benchEndpoint(t, false, nil, discardDevice{memio.NewDevice("hook0", netio.FrameCaps{})})
	s.SetTuning(Tuning{Proxy: true, L2Miss: true, L3Miss: true, RSC: true})
	s.cfg.Table.Add(fdb.MAC(benchDstMAC), sinkDest(t), fdb.Static)
	s.neigh.Add(ip4Target, hookTarget, false)
	st := txFor(s)
	frame := tcp4Frame(benchDstMAC, benchPeerMAC, 1000, 1, false)
	arp := arpRequest(ip4Target)
	n := testing.AllocsPerRun(200, func() {
		s.transmitFrame(st, s.tune.Load(), frame)
		s.transmitFrame(st, s.tune.Load(), arp)
		dropQueued(st)
	})
	if n != 0 {
		t.Errorf("%v allocations per frame pair", n)
	}
	if s.c.proxyAnswered.Load() == 0 {
		t.Error("the ARP request was not answered")
	}
}

// nsRequest is a Neighbor Solicitation for target with a source
// link-layer address option, checksum right.
func nsRequest(target netip.Addr) []byte {
	return nsFrom(netip.MustParseAddr("2001:db8::1"), target)
}

// nsFrom is a solicitation from src; from :: (duplicate address
// detection) without the option, as RFC 4861 wants.
func nsFrom(srcIP, target netip.Addr) []byte {
	f := make([]byte, 14+40+32)
	copy(f[0:6], []byte{0x33, 0x33, 0xff, 0, 0, 2})
	copy(f[6:12], hookAsker[:])
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	ip := f[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 32)
	ip[6], ip[7] = 58, 255
	src := srcIP.As16()
	copy(ip[8:24], src[:])
	copy(ip[24:40], netip.MustParseAddr("ff02::1:ff00:2").AsSlice())
	icmp := ip[40:]
	icmp[0] = 135
	t16 := target.As16()
	copy(icmp[8:24], t16[:])
	icmp[24], icmp[25] = 1, 1
	copy(icmp[26:32], hookAsker[:])
	if srcIP.IsUnspecified() {
		f = f[:len(f)-8]
		binary.BigEndian.PutUint16(ip[4:], 24)
		icmp = icmp[:24]
	}
	sum := checksum.PseudoV6(ip[8:24], ip[24:40], 58, len(icmp))
	binary.BigEndian.PutUint16(icmp[2:], ^checksum.Fold(checksum.Sum(icmp, sum)))
	return f
}

// TestProxyNS: a solicitation is answered with an NA whose router flag
// comes from the forwarding entry; an unknown target raises l3miss.
func TestProxyNS(t *testing.T) {
	target := netip.MustParseAddr("2001:db8::2")
	for _, router := range []bool{false, true} {
		s, replies := hookSegment(t, Tuning{Proxy: true, L3Miss: true})
		s.neigh.Add(target, hookTarget, false)
		s.cfg.Table.Set(fdb.OpAdd, hookTarget, fdb.Dest{IP: netip.MustParseAddr("192.0.2.2"), Port: 4789, VNI: benchVNI}, fdb.Permanent, router)
		s.transmitFrame(txFor(s), s.tune.Load(), nsRequest(target))
		if len(*replies) != 1 || len((*replies)[0]) != arpnd.NAReplyLen {
			t.Fatalf("router %v: replies %x", router, *replies)
		}
		na := (*replies)[0]
		if got := na[14+40+4]&0x80 != 0; got != router {
			t.Errorf("NA router flag %v, want %v", got, router)
		}
		if [6]byte(na[0:6]) != hookAsker || fdb.MAC(na[6:12]) != hookTarget {
			t.Errorf("NA %x", na[:12])
		}
	}
	s, replies := hookSegment(t, Tuning{Proxy: true, L3Miss: true})
	sub := s.Events().Subscribe()
	defer sub.Close()
	s.transmitFrame(txFor(s), s.tune.Load(), nsRequest(target))
	if len(*replies) != 0 || s.c.l3miss.Load() != 1 || s.c.proxyConsumed.Load() != 1 {
		t.Fatalf("unknown target: %d replies, l3miss %d, consumed %d", len(*replies), s.c.l3miss.Load(), s.c.proxyConsumed.Load())
	}
	if e := <-sub.C(); e.Kind != events.L3Miss || e.IP != target {
		t.Errorf("event %+v", e)
	}
}

// TestProxyDAD: duplicate address detection for an unknown address raises
// l3miss, as in the kernel; for a known one it is consumed, never answered.
func TestProxyDAD(t *testing.T) {
	target := netip.MustParseAddr("2001:db8::2")
	s, replies := hookSegment(t, Tuning{Proxy: true, L3Miss: true})
	dad := nsFrom(netip.IPv6Unspecified(), target)
	s.transmitFrame(txFor(s), s.tune.Load(), dad)
	if s.c.l3miss.Load() != 1 || s.c.proxyConsumed.Load() != 1 {
		t.Errorf("unknown: l3miss %d consumed %d, want 1 1", s.c.l3miss.Load(), s.c.proxyConsumed.Load())
	}
	s.neigh.Add(target, hookTarget, false)
	s.transmitFrame(txFor(s), s.tune.Load(), dad)
	if len(*replies) != 0 || s.c.l3miss.Load() != 1 || s.c.proxyConsumed.Load() != 2 {
		t.Errorf("known: %d replies, l3miss %d consumed %d, want 0 1 2", len(*replies), s.c.l3miss.Load(), s.c.proxyConsumed.Load())
	}
}
