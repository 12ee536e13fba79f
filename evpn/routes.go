// Package evpn is vxland's BGP EVPN control plane (RFC 7432 with the VXLAN
// encapsulation of RFC 8365), speaking BGP through GoBGP in-process. Per
// VNI it advertises what an overlay.Local holds (a type-3 inclusive
// multicast route with an ingress-replication PMSI tunnel, and type-2
// MAC/IP routes for the TAP and the endpoints behind it) and installs what
// other VTEPs advertise through an overlay.Installer: their type-3 routes
// become the flood list, their type-2 routes forwarding entries and
// neighbour bindings.
//
// routes.go turns the overlay model into BGP paths and back, with no BGP
// session involved; speaker.go runs the BGP speaker. docs/evpn.md shows
// the route formats.
package evpn

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/overlay"
)

// Owner is the owner name of what EVPN installs (fdb show prints it).
const Owner fdb.Owner = "evpn"

// Route types this package speaks (RFC 7432 section 7).
const (
	// TypeMACIP is the MAC/IP advertisement route.
	TypeMACIP = bgp.EVPN_ROUTE_TYPE_MAC_IP_ADVERTISEMENT
	// TypeIMET is the inclusive multicast Ethernet tag route.
	TypeIMET = bgp.EVPN_INCLUSIVE_MULTICAST_ETHERNET_TAG
)

// maxVNI is the largest VXLAN network identifier (24 bits).
const maxVNI = 1<<24 - 1

// Origin is what identifies this speaker in the routes it originates.
type Origin struct {
	// ASN is the local autonomous system; its low 16 bits make the route
	// target.
	ASN uint32
	// RouterID is the BGP identifier; it is the administrator part of
	// every route distinguisher.
	RouterID netip.Addr
}

// RouteTarget is the route target FRR derives automatically for a VNI:
// the two-octet AS specific extended community ASN:VNI, where ASN is the
// low 16 bits of the local AS.
func RouteTarget(asn, vni uint32) *bgp.TwoOctetAsSpecificExtended {
	return bgp.NewTwoOctetAsSpecificExtended(bgp.EC_SUBTYPE_ROUTE_TARGET, uint16(asn), vni, true)
}

// RouteDistinguisher is the type-1 route distinguisher router-id:index.
func RouteDistinguisher(routerID netip.Addr, index uint16) (bgp.RouteDistinguisherInterface, error) {
	rd, err := bgp.NewRouteDistinguisherIPAddressAS(routerID, index)
	if err != nil {
		return nil, fmt.Errorf("route distinguisher %s:%d: %w", routerID, index, err)
	}
	return rd, nil
}

// RDIndexes assigns the index part of each VNI's route distinguisher: the
// VNI itself when it fits in 16 bits, else the smallest index from 1 that
// no other VNI uses. The result depends only on the set of VNIs.
func RDIndexes(vnis []uint32) map[uint32]uint16 {
	vs := slices.Sorted(slices.Values(vnis))
	vs = slices.Compact(vs)
	out := make(map[uint32]uint16, len(vs))
	used := map[uint16]bool{}
	for _, v := range vs {
		if v > 0 && v <= 0xffff {
			out[v] = uint16(v)
			used[uint16(v)] = true
		}
	}
	next := uint16(1)
	for _, v := range vs {
		if _, done := out[v]; done {
			continue
		}
		for used[next] {
			next++
		}
		out[v] = next
		used[next] = true
	}
	return out
}

// Advert is what this node advertises for one VNI.
type Advert struct {
	Origin  Origin
	VNI     uint32
	RDIndex uint16
	// VTEP is this node's tunnel endpoint: Addr is the next hop and the
	// PMSI tunnel endpoint, MAC and Addrs the TAP's.
	VTEP      overlay.VTEP
	Endpoints []overlay.Endpoint
	// Seq holds the MAC mobility sequence number of MACs that moved here
	// (RFC 7432 section 15); a MAC not in it is advertised without the
	// community (sequence 0).
	Seq map[fdb.MAC]uint32
}

// Paths returns the BGP paths of the advert: one type-3 route, and for the
// TAP and each endpoint a MAC-only type-2 route plus one per IP address,
// as FRR advertises them.
func (a Advert) Paths() ([]*apiutil.Path, error) {
	if a.VNI == 0 || a.VNI > maxVNI {
		return nil, fmt.Errorf("vni %d out of range", a.VNI)
	}
	vtep := a.VTEP.Addr.Unmap()
	if !vtep.IsValid() || vtep.IsUnspecified() {
		return nil, fmt.Errorf("vni %d: no local VTEP address", a.VNI)
	}
	rd, err := RouteDistinguisher(a.Origin.RouterID, a.RDIndex)
	if err != nil {
		return nil, err
	}
	rt := RouteTarget(a.Origin.ASN, a.VNI)
	encap := bgp.NewEncapExtended(bgp.TUNNEL_TYPE_VXLAN)
	now := time.Now().Unix()

	imet, err := bgp.NewEVPNMulticastEthernetTagRoute(rd, 0, vtep)
	if err != nil {
		return nil, fmt.Errorf("vni %d: type-3 route: %w", a.VNI, err)
	}
	pmsiID, err := bgp.NewIngressReplTunnelID(vtep)
	if err != nil {
		return nil, fmt.Errorf("vni %d: pmsi: %w", a.VNI, err)
	}
	out := []*apiutil.Path{}
	add := func(nlri bgp.NLRI, extra ...bgp.PathAttributeInterface) error {
		mp, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_EVPN, []bgp.PathNLRI{{NLRI: nlri}}, vtep)
		if err != nil {
			return fmt.Errorf("vni %d: %s: %w", a.VNI, nlri, err)
		}
		attrs := append([]bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP), mp}, extra...)
		out = append(out, &apiutil.Path{Family: bgp.RF_EVPN, Nlri: nlri, Attrs: attrs, Age: now})
		return nil
	}
	err = add(imet,
		bgp.NewPathAttributeExtendedCommunities([]bgp.ExtendedCommunityInterface{rt, encap}),
		bgp.NewPathAttributePmsiTunnel(bgp.PMSI_TUNNEL_TYPE_INGRESS_REPL, false, a.VNI, pmsiID))
	if err != nil {
		return nil, err
	}

	macs := make([]overlay.Endpoint, 0, len(a.Endpoints)+1)
	if a.VTEP.MAC != fdb.Zero {
		macs = append(macs, overlay.Endpoint{MAC: a.VTEP.MAC, IPs: a.VTEP.Addrs})
	}
	for _, e := range a.Endpoints {
		if e.MAC != a.VTEP.MAC {
			macs = append(macs, e)
		}
	}
	for _, e := range macs {
		if !validMAC(e.MAC) {
			continue
		}
		ecs := []bgp.ExtendedCommunityInterface{rt, encap}
		if s := a.Seq[e.MAC]; s > 0 {
			ecs = append(ecs, bgp.NewMacMobilityExtended(s, false))
		}
		comms := bgp.NewPathAttributeExtendedCommunities(ecs)
		ips := append([]netip.Addr{{}}, e.IPs...) // the MAC-only route first
		for _, ip := range ips {
			nlri, err := bgp.NewEVPNMacIPAdvertisementRoute(rd, bgp.EthernetSegmentIdentifier{}, 0, e.MAC.String(), ip.Unmap(), []uint32{a.VNI})
			if err != nil {
				return nil, fmt.Errorf("vni %d: type-2 route %s %s: %w", a.VNI, e.MAC, ip, err)
			}
			if err := add(nlri, comms); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Route is one received EVPN route this package understands.
type Route struct {
	Type uint8 // TypeMACIP or TypeIMET
	// VNI is the segment: the label of a type-2 route, the PMSI tunnel
	// label of a type-3 route.
	VNI uint32
	// VTEP is the remote tunnel endpoint: the next hop of a type-2 route,
	// the PMSI tunnel endpoint of a type-3 route.
	VTEP netip.Addr
	// MAC and IP are the addresses of a type-2 route (IP invalid for a
	// MAC-only route).
	MAC fdb.MAC
	IP  netip.Addr
	// Seq and Sticky are the MAC mobility community of a type-2 route.
	Seq    uint32
	Sticky bool
}

// Reasons a received route is ignored; each is the name of a counter
// (with "evpn_ignored_" before it).
const (
	ReasonUnsupported = "unsupported_type" // a route type other than 2 and 3
	ReasonNoPMSI      = "no_pmsi"          // type-3 without an ingress-replication PMSI tunnel
	ReasonEncap       = "not_vxlan"        // an encapsulation community other than VXLAN
	ReasonNoRT        = "no_route_target"  // no route target names the VNI
	ReasonVNI         = "bad_vni"          // VNI 0, or a label that names no VNI
	ReasonNextHop     = "bad_next_hop"     // missing, unspecified, multicast next hop or VTEP
	ReasonMAC         = "bad_mac"          // not a 48-bit unicast MAC, or all zeros
	ReasonUnknownVNI  = "unknown_vni"      // a VNI this node does not serve
	ReasonOwnVTEP     = "own_vtep"         // the remote VTEP is this node's address
	ReasonMalformed   = "malformed"        // missing pieces (no NLRI data, no attributes)
)

// RouteError is a received route that is ignored, with the reason.
type RouteError struct {
	Reason string // one of the Reason* constants
	Detail string
}

func (e *RouteError) Error() string { return e.Reason + ": " + e.Detail }

func refuse(reason, format string, args ...any) error {
	return &RouteError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason of an error DecodePath returned.
func ReasonOf(err error) string {
	var re *RouteError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ReasonMalformed
}

// DecodePath validates one received EVPN path and returns the route it
// says. It checks what FRR would: type-3 needs a PMSI tunnel of type
// ingress replication; any encapsulation community must say VXLAN; a
// route target must name the VNI (any AS part, like FRR's *:VNI); the
// VTEP must be a unicast address. Whether the VNI is served, and whether
// the VTEP is this node's, is for the caller to decide.
func DecodePath(p *apiutil.Path) (Route, error) {
	if p == nil || p.Nlri == nil {
		return Route{}, refuse(ReasonMalformed, "no NLRI")
	}
	n, ok := p.Nlri.(*bgp.EVPNNLRI)
	if !ok || n.RouteTypeData == nil {
		return Route{}, refuse(ReasonMalformed, "not an EVPN NLRI: %T", p.Nlri)
	}
	var (
		ecs  []bgp.ExtendedCommunityInterface
		pmsi *bgp.PathAttributePmsiTunnel
		nh   netip.Addr
	)
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeExtendedCommunities:
			ecs = append(ecs, a.Value...)
		case *bgp.PathAttributePmsiTunnel:
			pmsi = a
		case *bgp.PathAttributeMpReachNLRI:
			nh = a.Nexthop
		case *bgp.PathAttributeNextHop:
			nh = a.Value
		}
	}
	var r Route
	switch d := n.RouteTypeData.(type) {
	case *bgp.EVPNMacIPAdvertisementRoute:
		r.Type = TypeMACIP
		if d.MacAddressLength != 48 || len(d.MacAddress) != 6 {
			return Route{}, refuse(ReasonMAC, "MAC of %d bits", d.MacAddressLength)
		}
		r.MAC = fdb.MAC(d.MacAddress)
		if !validMAC(r.MAC) {
			return Route{}, refuse(ReasonMAC, "%s is not a unicast MAC", r.MAC)
		}
		if d.IPAddressLength != 0 {
			if !d.IPAddress.IsValid() || d.IPAddress.Unmap().IsUnspecified() {
				return Route{}, refuse(ReasonMalformed, "MAC %s: bad IP %s", r.MAC, d.IPAddress)
			}
			r.IP = d.IPAddress.Unmap()
		}
		if len(d.Labels) == 0 {
			return Route{}, refuse(ReasonVNI, "MAC %s: no label", r.MAC)
		}
		r.VNI = d.Labels[0]
		r.VTEP = nh.Unmap()
	case *bgp.EVPNMulticastEthernetTagRoute:
		r.Type = TypeIMET
		if pmsi == nil || pmsi.TunnelType != bgp.PMSI_TUNNEL_TYPE_INGRESS_REPL {
			return Route{}, refuse(ReasonNoPMSI, "type-3 route %s", n)
		}
		id, ok := pmsi.TunnelID.(*bgp.IngressReplTunnelID)
		if !ok {
			return Route{}, refuse(ReasonNoPMSI, "type-3 route %s: tunnel id %T", n, pmsi.TunnelID)
		}
		r.VNI = pmsi.Label
		r.VTEP = id.Value.Unmap()
	default:
		return Route{}, refuse(ReasonUnsupported, "route type %d", n.RouteType)
	}
	if r.VNI == 0 || r.VNI > maxVNI {
		return Route{}, refuse(ReasonVNI, "vni %d", r.VNI)
	}
	if !r.VTEP.IsValid() || r.VTEP.IsUnspecified() || r.VTEP.IsMulticast() || r.VTEP.IsLoopback() {
		return Route{}, refuse(ReasonNextHop, "vni %d: VTEP %v", r.VNI, r.VTEP)
	}
	rtOK := false
	for _, ec := range ecs {
		switch ec := ec.(type) {
		case *bgp.EncapExtended:
			if ec.TunnelType != bgp.TUNNEL_TYPE_VXLAN {
				return Route{}, refuse(ReasonEncap, "vni %d: encapsulation %s", r.VNI, ec.TunnelType)
			}
		case *bgp.MacMobilityExtended:
			r.Seq, r.Sticky = ec.Sequence, ec.IsSticky
		case *bgp.TwoOctetAsSpecificExtended:
			rtOK = rtOK || ec.SubType == bgp.EC_SUBTYPE_ROUTE_TARGET && ec.LocalAdmin == r.VNI
		case *bgp.FourOctetAsSpecificExtended:
			rtOK = rtOK || ec.SubType == bgp.EC_SUBTYPE_ROUTE_TARGET && uint32(ec.LocalAdmin) == r.VNI
		case *bgp.IPv4AddressSpecificExtended:
			rtOK = rtOK || ec.SubType == bgp.EC_SUBTYPE_ROUTE_TARGET && uint32(ec.LocalAdmin) == r.VNI
		}
	}
	if !rtOK {
		return Route{}, refuse(ReasonNoRT, "vni %d: no route target *:%d", r.VNI, r.VNI)
	}
	return r, nil
}

// validMAC reports whether m may be advertised or installed: unicast and
// not all zeros.
func validMAC(m fdb.MAC) bool {
	return m != fdb.Zero && m[0]&1 == 0
}

// Claim is one VTEP's claim on a MAC, for MAC mobility.
type Claim struct {
	VTEP   netip.Addr
	Seq    uint32
	Sticky bool
}

// Wins reports whether c beats d for a MAC (RFC 7432 section 15): a sticky
// claim beats a non-sticky one, then the higher sequence number wins, then
// the lower VTEP address.
func (c Claim) Wins(d Claim) bool {
	if c.Sticky != d.Sticky {
		return c.Sticky
	}
	if c.Seq != d.Seq {
		return c.Seq > d.Seq
	}
	return c.VTEP.Compare(d.VTEP) < 0
}

// Peers turns the valid routes of one VNI into the overlay model: one peer
// per remote VTEP (ID = its address), endpoints from its type-2 routes.
// A MAC claimed by several VTEPs (a move) goes to the winning claim only;
// local, when set, holds this node's own claims (the VTEP address is
// self), and a MAC that this node wins is given to no peer. It also
// returns the best remote claim per MAC, from which this node works out
// the sequence number to advertise when a MAC moves to it.
func Peers(routes []Route, port uint16, local map[fdb.MAC]Claim) ([]overlay.Peer, map[fdb.MAC]Claim) {
	best := map[fdb.MAC]Claim{}
	for _, r := range routes {
		if r.Type != TypeMACIP {
			continue
		}
		c := Claim{VTEP: r.VTEP, Seq: r.Seq, Sticky: r.Sticky}
		if old, ok := best[r.MAC]; !ok || c.Wins(old) {
			best[r.MAC] = c
		}
	}
	type acc struct {
		ips map[fdb.MAC][]netip.Addr
	}
	byVTEP := map[netip.Addr]*acc{}
	get := func(v netip.Addr) *acc {
		a := byVTEP[v]
		if a == nil {
			a = &acc{ips: map[fdb.MAC][]netip.Addr{}}
			byVTEP[v] = a
		}
		return a
	}
	for _, r := range routes {
		a := get(r.VTEP)
		if r.Type != TypeMACIP {
			continue
		}
		if b := best[r.MAC]; b.VTEP != r.VTEP {
			continue // lost the MAC to another VTEP
		}
		if l, mine := local[r.MAC]; mine && l.Wins(best[r.MAC]) {
			continue // the MAC is here
		}
		ips := a.ips[r.MAC]
		if r.IP.IsValid() {
			ips = append(ips, r.IP)
		}
		a.ips[r.MAC] = ips
	}
	peers := make([]overlay.Peer, 0, len(byVTEP))
	for v, a := range byVTEP {
		p := overlay.Peer{ID: v.String(), VTEP: overlay.VTEP{Addr: v, Port: port}}
		for mac, ips := range a.ips {
			p.Endpoints = append(p.Endpoints, overlay.Endpoint{MAC: mac, IPs: overlay.SortAddrs(ips)})
		}
		overlay.SortEndpoints(p.Endpoints)
		peers = append(peers, p)
	}
	slices.SortFunc(peers, func(x, y overlay.Peer) int { return x.VTEP.Addr.Compare(y.VTEP.Addr) })
	return peers, best
}
