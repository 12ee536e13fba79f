package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// BGP defaults (the [bgp] table).
const (
	// DefaultBGPPort is the TCP port BGP listens on.
	DefaultBGPPort = 179
	// DefaultBGPHoldTime is the hold time offered to neighbors: FRR's
	// "datacenter" profile (keepalives every third of it).
	DefaultBGPHoldTime = 9 * time.Second
)

// SectionBGP keys go in the [bgp] table.
const SectionBGP Section = "bgp"

// GroupBGP is the --help heading of the BGP EVPN flags.
const GroupBGP = "BGP EVPN (a VNI with neither --remote nor --group takes its peers from EVPN)"

// BGP is the BGP EVPN control plane's configuration (the [bgp] table).
// With ASN set, every VNI with neither remotes nor a group is served by
// EVPN: it advertises its VTEP and local endpoints and installs the other
// VTEPs' (docs/evpn.md).
type BGP struct {
	// ASN is the local AS; 0: no BGP.
	ASN uint32
	// RouterID is the BGP identifier, an IPv4 address; unset: the local
	// address of the first EVPN VNI with an IPv4 one (EffectiveRouterID).
	RouterID netip.Addr
	// Neighbors are the peers.
	Neighbors []BGPNeighbor
	// Port is the TCP port to listen on.
	Port int
	// Password is the TCP MD5 key of every session; "" for none.
	Password string
	// HoldTime is the hold time offered; keepalives go every third of it.
	HoldTime time.Duration
}

// BGPNeighbor is one peer: IP[:ASN] on the command line.
type BGPNeighbor struct {
	Addr netip.Addr
	// ASN is the peer's AS; 0 means the local one (iBGP).
	ASN uint32
}

// NewBGP returns the [bgp] table's defaults.
func NewBGP() BGP {
	return BGP{Port: DefaultBGPPort, HoldTime: DefaultBGPHoldTime}
}

// Enabled reports whether BGP is configured (an AS is set).
func (b *BGP) Enabled() bool { return b.ASN != 0 }

// InEVPN reports whether v is served by EVPN: BGP is configured and v has
// neither remotes nor a group.
func (c *Config) InEVPN(v *VNI) bool {
	return c.BGP.Enabled() && !c.Flannel.Enable && len(v.Remotes) == 0 && !v.Group.IsValid()
}

// EffectiveRouterID is the router ID in use: RouterID, else the local
// address of the first EVPN VNI with an IPv4 one; invalid when there is
// none.
func (c *Config) EffectiveRouterID() netip.Addr {
	if c.BGP.RouterID.IsValid() {
		return c.BGP.RouterID
	}
	for i := range c.VNIs {
		if v := &c.VNIs[i]; c.InEVPN(v) && v.Local.Is4() && !v.Local.IsUnspecified() {
			return v.Local
		}
	}
	return netip.Addr{}
}

// ParseBGPNeighbor parses IP[:ASN]; an IPv6 address with an AS is written
// [IP]:ASN.
func ParseBGPNeighbor(s string) (BGPNeighbor, error) {
	addr, asn := s, ""
	if rest, ok := strings.CutPrefix(s, "["); ok {
		var found bool
		if addr, asn, found = strings.Cut(rest, "]"); !found {
			return BGPNeighbor{}, fmt.Errorf("%q: no closing ]", s)
		}
		if asn != "" {
			var colon bool
			if asn, colon = strings.CutPrefix(asn, ":"); !colon {
				return BGPNeighbor{}, fmt.Errorf("%q: want [IP]:ASN", s)
			}
		}
	} else if _, err := netip.ParseAddr(s); err != nil {
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			addr, asn = s[:i], s[i+1:]
		}
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() != "" {
		return BGPNeighbor{}, fmt.Errorf("%q: want IP[:ASN]", s)
	}
	n := BGPNeighbor{Addr: a.Unmap()}
	if asn != "" {
		v, err := strconv.ParseUint(asn, 10, 32)
		if err != nil || v == 0 {
			return BGPNeighbor{}, fmt.Errorf("%q: AS %q is not a number from 1 to 4294967295", s, asn)
		}
		n.ASN = uint32(v)
	}
	if !n.Addr.IsGlobalUnicast() && !n.Addr.IsPrivate() && !n.Addr.IsLoopback() {
		return BGPNeighbor{}, fmt.Errorf("%q: %s is not a unicast address", s, n.Addr)
	}
	return n, nil
}

// String formats the neighbor as ParseBGPNeighbor reads it.
func (n BGPNeighbor) String() string {
	if n.ASN == 0 {
		return n.Addr.String()
	}
	if n.Addr.Is6() {
		return "[" + n.Addr.String() + "]:" + strconv.FormatUint(uint64(n.ASN), 10)
	}
	return n.Addr.String() + ":" + strconv.FormatUint(uint64(n.ASN), 10)
}

// bgpKeys are the [bgp] table's keys; they close KeyTable.
var bgpKeys = []Key{
	{
		Name: "asn", Section: SectionBGP, Kind: KindInt, Example: "65001",
		Flag: "bgp-asn", Arg: "N", Group: GroupBGP,
		Help: "local AS: speak BGP EVPN (default: none, no BGP)",
		Type: "integer", Default: "none: no BGP",
		Doc: "local AS number, 1-4294967295; set: every VNI with neither `remote` nor `group` is served by BGP EVPN ([evpn.md](evpn.md)); its low 16 bits make the route targets",
		set: func(t Target, in input) error {
			if in.n < 1 || in.n > 1<<32-1 {
				return fmt.Errorf("%s: must be a number from 1 to 4294967295", in)
			}
			t.BGP.ASN = uint32(in.n)
			return nil
		},
	},
	{
		Name: "router_id", Section: SectionBGP, Kind: KindString, Example: `"192.0.2.1"`,
		Flag: "bgp-router-id", Arg: "IP", Group: GroupBGP,
		Help: "BGP identifier, an IPv4 address (default: the first EVPN VNI's IPv4 local address)",
		Type: "string", Default: "the `local` address of the first EVPN VNI with an IPv4 one",
		Doc: "BGP identifier (an IPv4 address); also the first half of every route distinguisher",
		set: func(t Target, in input) error {
			a, err := parseAddr(in)
			if err != nil {
				return err
			}
			if !a.Is4() || a.IsUnspecified() {
				return fmt.Errorf("%s: want an IPv4 address", in)
			}
			t.BGP.RouterID = a
			return nil
		},
	},
	{
		Name: "neighbors", Section: SectionBGP, Kind: KindStrings, Example: `["192.0.2.2:65002", "192.0.2.3"]`,
		Flag: "bgp-neighbor", Arg: "IP[:ASN]", Group: GroupBGP,
		Help: "BGP peer, repeatable; without ASN an iBGP peer",
		Type: "array of strings", Default: "none",
		Doc:   "BGP peers as `IP[:ASN]` (`[IPv6]:ASN`); without an AS the peer is in the local AS (iBGP)",
		reset: func(t Target) { t.BGP.Neighbors = nil },
		set: func(t Target, in input) error {
			n, err := ParseBGPNeighbor(in.s)
			if err != nil {
				return fmt.Errorf("%s: %w", in.name, err)
			}
			t.BGP.Neighbors = append(t.BGP.Neighbors, n)
			return nil
		},
	},
	{
		Name: "port", Section: SectionBGP, Kind: KindInt, Example: "179",
		Flag: "bgp-port", Arg: "PORT", Group: GroupBGP,
		Help: fmt.Sprintf("TCP port BGP listens on (default %d)", DefaultBGPPort),
		Type: "integer", Default: strconv.Itoa(DefaultBGPPort),
		Doc: "TCP port BGP listens on; sessions go to the neighbors' port 179",
		set: func(t Target, in input) error {
			if in.n < 1 || in.n > 65535 {
				return fmt.Errorf("%s: must be a port from 1 to 65535", in)
			}
			t.BGP.Port = int(in.n)
			return nil
		},
	},
	{
		Name: "hold_time", Section: SectionBGP, Kind: KindInt, Example: "9 (whole seconds)",
		Flag: "bgp-hold-time", Arg: "SECONDS", Group: GroupBGP,
		Help: fmt.Sprintf("BGP hold time; keepalives every third of it (default %d)", int(DefaultBGPHoldTime/time.Second)),
		Type: "integer", Default: strconv.Itoa(int(DefaultBGPHoldTime / time.Second)),
		Doc: "hold time offered to the neighbors in seconds, 3-65535 (keepalives every third of it); a silent neighbor's routes go after it",
		set: func(t Target, in input) error {
			if in.n < 3 || in.n > 65535 {
				return fmt.Errorf("%s: must be 3 to 65535 seconds", in)
			}
			t.BGP.HoldTime = time.Duration(in.n) * time.Second
			return nil
		},
	},
	{
		Name: "password", Section: SectionBGP, Kind: KindString, Example: `"secret"`,
		Help: "TCP MD5 key of every BGP session",
		Type: "string", Default: "none",
		Doc: "TCP MD5 signature key (RFC 2385) of every session; in the file only, never on a command line",
		set: func(t Target, in input) error { t.BGP.Password = in.s; return nil },
	},
}

// bgpDefaults turns learning off in VNIs served by EVPN, unless they set
// it: the peers' entries come from BGP.
func (c *Config) bgpDefaults() {
	for i := range c.VNIs {
		if v := &c.VNIs[i]; c.InEVPN(v) && !v.LearningSet {
			v.Learning = false
		}
	}
}

// checkBGP validates the [bgp] table and the VNIs EVPN serves, which need
// a specific local address: it is their VTEP, the next hop of their routes.
func (c *Config) checkBGP(l *errList) {
	b := &c.BGP
	if !b.Enabled() {
		if len(b.Neighbors) > 0 {
			l.addf("bgp", 0, "neighbors", "neighbors: need asn (the local AS)")
		}
		return
	}
	if c.ClusterMode() || c.Flannel.Enable {
		l.addf("bgp", 0, "asn", "asn: BGP EVPN excludes cluster mode and flannel mode (etcd endpoints)")
	}
	if !c.EffectiveRouterID().IsValid() {
		l.addf("bgp", 0, "router_id", "router_id: none given, and no EVPN VNI has an IPv4 local address to take it from")
	}
	seen := map[netip.Addr]bool{}
	for _, n := range b.Neighbors {
		if seen[n.Addr] {
			l.addf("bgp", 0, "neighbors", "neighbors: %s given twice", n.Addr)
		}
		seen[n.Addr] = true
	}
	for i := range c.VNIs {
		v := &c.VNIs[i]
		if c.InEVPN(v) && (!v.Local.IsValid() || v.Local.IsUnspecified()) {
			l.add(entryWhere(v.ID, i), i+1, "local", fmt.Errorf("local: a VNI served by EVPN needs its underlay address (the next hop of its routes)"))
		}
	}
}
