// Package overlay is the seam between vxland's control planes and its data
// plane. A control plane (the etcd cluster, or BGP EVPN) speaks one model:
// per VNI, the remote Peers, each a VTEP (underlay address and port, TAP
// MAC and addresses) with the Endpoints (MAC and IPs) behind it. An
// Installer takes a VNI's desired remote state from one named source and
// reconciles it, by content, into the forwarding database (flood list and
// owned static entries) and the neighbour table. A Local is the other
// direction: what this node has to announce for a VNI, its VTEP and the
// endpoints seen on its TAP.
//
// The control planes know nothing of the data plane, and the data plane
// nothing of etcd or BGP: both sides meet here.
package overlay

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/vxland/vxland/fdb"
)

// VTEP is one node's tunnel endpoint for a VNI.
type VTEP struct {
	// Addr is the underlay address datagrams for the VNI go to.
	Addr netip.Addr
	// Port is the UDP port they go to.
	Port uint16
	// MAC is the Ethernet address of the node's TAP device.
	MAC fdb.MAC
	// Addrs are the IP addresses on the node's TAP device (sorted).
	Addrs []netip.Addr
}

// Endpoint is an Ethernet address behind a VTEP (a container or VM on a
// bridge with the TAP), with the IP addresses it was seen to use.
type Endpoint struct {
	MAC fdb.MAC
	IPs []netip.Addr // sorted
}

// Peer is what one remote node contributes to a VNI.
type Peer struct {
	// ID names the node within its source (for etcd, the member key); it
	// orders peers and breaks ties when two claim one MAC.
	ID        string
	VTEP      VTEP
	Endpoints []Endpoint // sorted by MAC
}

// Equal reports whether v and w say the same.
func (v VTEP) Equal(w VTEP) bool {
	return v.Addr == w.Addr && v.Port == w.Port && v.MAC == w.MAC && slices.Equal(v.Addrs, w.Addrs)
}

// Equal reports whether e and f say the same.
func (e Endpoint) Equal(f Endpoint) bool {
	return e.MAC == f.MAC && slices.Equal(e.IPs, f.IPs)
}

// Equal reports whether p and q say the same.
func (p Peer) Equal(q Peer) bool {
	return p.ID == q.ID && p.VTEP.Equal(q.VTEP) && slices.EqualFunc(p.Endpoints, q.Endpoints, Endpoint.Equal)
}

// SortAddrs sorts a and removes duplicates, in place; it returns the result.
func SortAddrs(a []netip.Addr) []netip.Addr {
	slices.SortFunc(a, netip.Addr.Compare)
	return slices.Compact(a)
}

// SortEndpoints sorts es by MAC, in place, and returns it.
func SortEndpoints(es []Endpoint) []Endpoint {
	slices.SortFunc(es, func(a, b Endpoint) int { return cmpMAC(a.MAC, b.MAC) })
	return es
}

func cmpMAC(a, b fdb.MAC) int {
	for i := range a {
		if c := cmp.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}
