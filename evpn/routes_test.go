package evpn

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/overlay"
)

var (
	vtep1  = netip.MustParseAddr("192.0.2.1")
	vtep2  = netip.MustParseAddr("192.0.2.2")
	vtep3  = netip.MustParseAddr("192.0.2.3")
	tapMAC = fdb.MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	epMAC  = fdb.MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a}
	tapIP  = netip.MustParseAddr("203.0.113.1")
	tapIP6 = netip.MustParseAddr("2001:db8::1")
	epIP   = netip.MustParseAddr("203.0.113.10")
)

// unhex turns "c0 16 09 ..." into bytes.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantBytes(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	if w := unhex(t, want); !bytes.Equal(got, w) {
		t.Errorf("%s:\n got % x\nwant % x", what, got, w)
	}
}

func testAdvert() Advert {
	return Advert{
		Origin: Origin{ASN: 65001, RouterID: vtep1}, VNI: 100, RDIndex: 100,
		VTEP:      overlay.VTEP{Addr: vtep1, Port: 4789, MAC: tapMAC, Addrs: []netip.Addr{tapIP, tapIP6}},
		Endpoints: []overlay.Endpoint{{MAC: epMAC, IPs: []netip.Addr{epIP}}},
		Seq:       map[fdb.MAC]uint32{epMAC: 3},
	}
}

// attr returns the attribute of type typ of p.
func attr(t *testing.T, p *apiutil.Path, typ bgp.BGPAttrType) bgp.PathAttributeInterface {
	t.Helper()
	for _, a := range p.Attrs {
		if a.GetType() == typ {
			return a
		}
	}
	t.Fatalf("%s: no attribute %s", p.Nlri, typ)
	return nil
}

func serialize(t *testing.T, s interface {
	Serialize(...*bgp.MarshallingOption) ([]byte, error)
}) []byte {
	t.Helper()
	b, err := s.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAdvertWire checks the bytes of what vxland advertises against the
// formats of RFC 7432, RFC 8365 and RFC 6514 as FRR reads them.
func TestAdvertWire(t *testing.T) {
	paths, err := testAdvert().Paths()
	if err != nil {
		t.Fatal(err)
	}
	// type-3, then per MAC: MAC only, then each IP. TAP first.
	if len(paths) != 1+3+2 {
		t.Fatalf("%d paths", len(paths))
	}
	const rd = "0001 c0000201 0064" // type 1, 192.0.2.1 : 100
	imet := paths[0]
	wantBytes(t, "type-3 NLRI", serialize(t, imet.Nlri),
		"03 11"+rd+"00000000 20 c0000201")
	wantBytes(t, "PMSI tunnel", serialize(t, attr(t, imet, bgp.BGP_ATTR_TYPE_PMSI_TUNNEL)),
		"c0 16 09 00 06 000064 c0000201") // optional transitive, type 22; no leaf info, ingress replication, label = VNI, endpoint
	const rt = "0002 fde9 00000064" // two-octet AS specific, route target, 65001:100
	const vxlan = "030c 0000 0000 0008"
	wantBytes(t, "type-3 communities", serialize(t, attr(t, imet, bgp.BGP_ATTR_TYPE_EXTENDED_COMMUNITIES)),
		"c0 10 10"+rt+vxlan)
	wantBytes(t, "origin", serialize(t, attr(t, imet, bgp.BGP_ATTR_TYPE_ORIGIN)), "40 01 01 00")
	mp := attr(t, imet, bgp.BGP_ATTR_TYPE_MP_REACH_NLRI).(*bgp.PathAttributeMpReachNLRI)
	if mp.Nexthop != vtep1 || mp.AFI != bgp.AFI_L2VPN || mp.SAFI != bgp.SAFI_EVPN {
		t.Errorf("type-3 MP_REACH: next hop %v afi %d safi %d", mp.Nexthop, mp.AFI, mp.SAFI)
	}

	const esi = "00000000000000000000"
	wantBytes(t, "type-2 TAP MAC only", serialize(t, paths[1].Nlri),
		"02 21"+rd+esi+"00000000 30 020000000001 00 000064")
	wantBytes(t, "type-2 TAP MAC+IPv4", serialize(t, paths[2].Nlri),
		"02 25"+rd+esi+"00000000 30 020000000001 20 cb007101 000064")
	wantBytes(t, "type-2 TAP MAC+IPv6", serialize(t, paths[3].Nlri),
		"02 31"+rd+esi+"00000000 30 020000000001 80 20010db8000000000000000000000001 000064")
	wantBytes(t, "type-2 TAP communities", serialize(t, attr(t, paths[1], bgp.BGP_ATTR_TYPE_EXTENDED_COMMUNITIES)),
		"c0 10 10"+rt+vxlan)
	wantBytes(t, "type-2 endpoint MAC+IP", serialize(t, paths[5].Nlri),
		"02 25"+rd+esi+"00000000 30 02000000000a 20 cb00710a 000064")
	wantBytes(t, "type-2 endpoint communities (moved: sequence 3)", serialize(t, attr(t, paths[4], bgp.BGP_ATTR_TYPE_EXTENDED_COMMUNITIES)),
		"c0 10 18"+rt+vxlan+"0600 0000 00000003")
	for _, p := range paths {
		if p.Family != bgp.RF_EVPN {
			t.Errorf("%s: family %v", p.Nlri, p.Family)
		}
		if nh := attr(t, p, bgp.BGP_ATTR_TYPE_MP_REACH_NLRI).(*bgp.PathAttributeMpReachNLRI).Nexthop; nh != vtep1 {
			t.Errorf("%s: next hop %v", p.Nlri, nh)
		}
	}
}

// TestRouteTargetASN checks that a four-octet AS contributes its low 16
// bits to the route target, as FRR derives it.
func TestRouteTargetASN(t *testing.T) {
	b, err := RouteTarget(4200000001, 5000).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "route target 4200000001:5000", b, "0002 ea01 00001388")
}

func TestAdvertRefuses(t *testing.T) {
	a := testAdvert()
	a.VNI = 1 << 24
	if _, err := a.Paths(); err == nil {
		t.Error("vni 2^24 accepted")
	}
	a = testAdvert()
	a.VTEP.Addr = netip.Addr{}
	if _, err := a.Paths(); err == nil {
		t.Error("no VTEP address accepted")
	}
	a = testAdvert()
	a.Origin.RouterID = netip.MustParseAddr("2001:db8::1")
	if _, err := a.Paths(); err == nil {
		t.Error("IPv6 router ID accepted in a type-1 RD")
	}
}

// frrPath builds a received path from wire bytes: an MP_REACH_NLRI and
// further attributes, hex as they cross the wire.
func frrPath(t *testing.T, attrs ...string) *apiutil.Path {
	t.Helper()
	p := &apiutil.Path{Family: bgp.RF_EVPN}
	for _, h := range attrs {
		b := unhex(t, h)
		a, err := bgp.GetPathAttribute(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.DecodeFromBytes(b); err != nil {
			t.Fatalf("decode %s: %v", h, err)
		}
		if mp, ok := a.(*bgp.PathAttributeMpReachNLRI); ok {
			p.Nlri = mp.Value[0].NLRI
		}
		p.Attrs = append(p.Attrs, a)
	}
	return p
}

// Routes as FRR 8.4 sends them for VNI 100 from VTEP 192.0.2.2 (AS 65002,
// RD 192.0.2.2:2).
const (
	frrRD    = "0001 c0000202 0002"
	frrComms = "c0 10 10 0002 fdea 00000064 030c 0000 0000 0008"
	frrType3 = "90 0e 001c 0019 46 04 c0000202 00 03 11" + frrRD + "00000000 20 c0000202"
	frrPMSI  = "c0 16 09 00 06 000064 c0000202"
	frrType2 = "90 0e 0030 0019 46 04 c0000202 00 02 25" + frrRD + "00000000000000000000 00000000 30 02000000000b 20 cb00710b 000064"
)

// TestDecodeFRR decodes routes in FRR's wire format.
func TestDecodeFRR(t *testing.T) {
	r, err := DecodePath(frrPath(t, frrType3, frrComms, frrPMSI))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Route{Type: TypeIMET, VNI: 100, VTEP: vtep2}); r != want {
		t.Errorf("type-3: %+v, want %+v", r, want)
	}
	r, err = DecodePath(frrPath(t, frrType2, frrComms))
	if err != nil {
		t.Fatal(err)
	}
	want := Route{Type: TypeMACIP, VNI: 100, VTEP: vtep2, MAC: fdb.MAC{2, 0, 0, 0, 0, 0x0b}, IP: netip.MustParseAddr("203.0.113.11")}
	if r != want {
		t.Errorf("type-2: %+v, want %+v", r, want)
	}
	// With a MAC mobility community: sequence 7, sticky.
	r, err = DecodePath(frrPath(t, frrType2, "c0 10 18 0002 fdea 00000064 030c 0000 0000 0008 0600 0100 00000007"))
	if err != nil || r.Seq != 7 || !r.Sticky {
		t.Errorf("mobility: %+v %v", r, err)
	}
}

// TestDecodeRoundTrip decodes what vxland advertises.
func TestDecodeRoundTrip(t *testing.T) {
	paths, err := testAdvert().Paths()
	if err != nil {
		t.Fatal(err)
	}
	var got []Route
	for _, p := range paths {
		r, err := DecodePath(p)
		if err != nil {
			t.Fatalf("%s: %v", p.Nlri, err)
		}
		got = append(got, r)
	}
	want := []Route{
		{Type: TypeIMET, VNI: 100, VTEP: vtep1},
		{Type: TypeMACIP, VNI: 100, VTEP: vtep1, MAC: tapMAC},
		{Type: TypeMACIP, VNI: 100, VTEP: vtep1, MAC: tapMAC, IP: tapIP},
		{Type: TypeMACIP, VNI: 100, VTEP: vtep1, MAC: tapMAC, IP: tapIP6},
		{Type: TypeMACIP, VNI: 100, VTEP: vtep1, MAC: epMAC, Seq: 3},
		{Type: TypeMACIP, VNI: 100, VTEP: vtep1, MAC: epMAC, IP: epIP, Seq: 3},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// TestDecodeRefuses feeds routes that must be ignored, each for its
// reason.
func TestDecodeRefuses(t *testing.T) {
	cases := []struct {
		name   string
		attrs  []string
		reason string
	}{
		{"type-3 without PMSI", []string{frrType3, frrComms}, ReasonNoPMSI},
		{"type-3 with RSVP-TE P2MP PMSI", []string{frrType3, frrComms, "c0 16 09 00 01 000064 c0000202"}, ReasonNoPMSI},
		{"MPLS encapsulation", []string{frrType2, "c0 10 10 0002 fdea 00000064 030c 0000 0000 000a"}, ReasonEncap},
		{"route target of another VNI", []string{frrType2, "c0 10 10 0002 fdea 00000065 030c 0000 0000 0008"}, ReasonNoRT},
		{"no communities", []string{frrType2}, ReasonNoRT},
		{"route origin, not target", []string{frrType2, "c0 10 08 0003 fdea 00000064"}, ReasonNoRT},
		{"VNI 0", []string{"90 0e 0030 0019 46 04 c0000202 00 02 25" + frrRD + "00000000000000000000 00000000 30 02000000000b 20 cb00710b 000000", frrComms}, ReasonVNI},
		{"multicast MAC", []string{"90 0e 0030 0019 46 04 c0000202 00 02 25" + frrRD + "00000000000000000000 00000000 30 01005e000001 20 cb00710b 000064", frrComms}, ReasonMAC},
		{"all-zeros MAC", []string{"90 0e 0030 0019 46 04 c0000202 00 02 25" + frrRD + "00000000000000000000 00000000 30 000000000000 20 cb00710b 000064", frrComms}, ReasonMAC},
		{"unspecified next hop", []string{"90 0e 0030 0019 46 04 00000000 00 02 25" + frrRD + "00000000000000000000 00000000 30 02000000000b 20 cb00710b 000064", frrComms}, ReasonNextHop},
		{"multicast PMSI endpoint", []string{frrType3, frrComms, "c0 16 09 00 06 000064 ef000001"}, ReasonNextHop},
		{"ethernet segment route", []string{"90 0e 0022 0019 46 04 c0000202 00 04 17" + frrRD + "00112233445566778899 20 c0000202", frrComms}, ReasonUnsupported},
	}
	for _, c := range cases {
		_, err := DecodePath(frrPath(t, c.attrs...))
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if got := ReasonOf(err); got != c.reason {
			t.Errorf("%s: reason %s (%v), want %s", c.name, got, err, c.reason)
		}
	}
	if _, err := DecodePath(&apiutil.Path{}); ReasonOf(err) != ReasonMalformed {
		t.Errorf("empty path: %v", err)
	}
	// A four-octet AS route target naming the VNI is a match.
	if _, err := DecodePath(frrPath(t, frrType2, "c0 10 10 0202 fdeafdea 0064 030c 0000 0000 0008")); err != nil {
		t.Errorf("four-octet AS route target: %v", err)
	}
}

func TestRDIndexes(t *testing.T) {
	got := RDIndexes([]uint32{100, 70000, 1, 200, 100, 1 << 20})
	want := map[uint32]uint16{1: 1, 100: 100, 200: 200, 70000: 2, 1 << 20: 3}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for v, i := range want {
		if got[v] != i {
			t.Errorf("vni %d: index %d, want %d (%v)", v, got[v], i, got)
		}
	}
}

func TestClaimWins(t *testing.T) {
	a := Claim{VTEP: vtep2, Seq: 1}
	b := Claim{VTEP: vtep1, Seq: 0}
	if !a.Wins(b) || b.Wins(a) {
		t.Error("higher sequence loses")
	}
	c := Claim{VTEP: vtep1, Seq: 1}
	if !c.Wins(a) || a.Wins(c) {
		t.Error("equal sequence: lower address loses")
	}
	s := Claim{VTEP: vtep3, Sticky: true}
	if !s.Wins(a) || a.Wins(s) {
		t.Error("sticky loses")
	}
}

// TestPeers checks the grouping into peers and MAC mobility.
func TestPeers(t *testing.T) {
	mac := fdb.MAC{2, 0, 0, 0, 0, 0x0b}
	ip := netip.MustParseAddr("203.0.113.11")
	routes := []Route{
		{Type: TypeIMET, VNI: 100, VTEP: vtep2},
		{Type: TypeIMET, VNI: 100, VTEP: vtep3},
		{Type: TypeMACIP, VNI: 100, VTEP: vtep2, MAC: mac},
		{Type: TypeMACIP, VNI: 100, VTEP: vtep2, MAC: mac, IP: ip},
		{Type: TypeMACIP, VNI: 100, VTEP: vtep3, MAC: epMAC, IP: epIP},
	}
	peers, best := Peers(routes, 4789, nil)
	want := []overlay.Peer{
		{ID: "192.0.2.2", VTEP: overlay.VTEP{Addr: vtep2, Port: 4789}, Endpoints: []overlay.Endpoint{{MAC: mac, IPs: []netip.Addr{ip}}}},
		{ID: "192.0.2.3", VTEP: overlay.VTEP{Addr: vtep3, Port: 4789}, Endpoints: []overlay.Endpoint{{MAC: epMAC, IPs: []netip.Addr{epIP}}}},
	}
	if !slices.EqualFunc(peers, want, overlay.Peer.Equal) {
		t.Errorf("peers %+v\nwant  %+v", peers, want)
	}
	if best[mac] != (Claim{VTEP: vtep2}) {
		t.Errorf("best claim %+v", best[mac])
	}

	// The MAC moves to 192.0.2.3 with sequence 1: 192.0.2.2's stale
	// routes lose, its peer stays (it still floods).
	routes = append(routes, Route{Type: TypeMACIP, VNI: 100, VTEP: vtep3, MAC: mac, Seq: 1})
	peers, _ = Peers(routes, 4789, nil)
	if len(peers) != 2 || len(peers[0].Endpoints) != 0 || len(peers[1].Endpoints) != 2 || peers[1].Endpoints[1].MAC != mac {
		t.Errorf("after the move: %+v", peers)
	}

	// This node holds epMAC with sequence 1: it beats 192.0.2.3's
	// sequence 0, so no peer gets it.
	peers, _ = Peers(routes, 4789, map[fdb.MAC]Claim{epMAC: {VTEP: vtep1, Seq: 1}})
	for _, p := range peers {
		for _, e := range p.Endpoints {
			if e.MAC == epMAC {
				t.Errorf("a local MAC given to %s", p.ID)
			}
		}
	}
	// With sequence 0 against 0 the lower address (this node, .1) wins
	// too; against a higher remote sequence it loses.
	peers, _ = Peers(routes, 4789, map[fdb.MAC]Claim{mac: {VTEP: vtep1, Seq: 0}})
	if len(peers[1].Endpoints) != 2 {
		t.Errorf("remote sequence 1 lost to local 0: %+v", peers)
	}
}
