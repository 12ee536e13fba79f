package evpn

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/internal/testnet"
	"github.com/vxland/vxland/overlay"
)

// freePort returns a TCP port free on addr now.
func freePort(t *testing.T, addr string) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// node is one speaker with one VNI, its session on a loopback address
// and its VTEP on a documentation address.
type node struct {
	name  string
	sp    *Speaker
	local *overlay.Local
	table *fdb.Table
	inst  *overlay.Installer
	addr  netip.Addr // BGP session address
	port  uint16
	vtep  netip.Addr
	mac   fdb.MAC

	skew atomic.Int64 // added to the local view's clock

	cancel context.CancelFunc
	done   chan error
}

func newNode(t *testing.T, name string, asn uint32, addr, vtep string, mac fdb.MAC, ageing time.Duration) *node {
	t.Helper()
	n := &node{name: name, addr: netip.MustParseAddr(addr), vtep: netip.MustParseAddr(vtep), mac: mac}
	n.port = freePort(t, addr)
	n.table = fdb.New(fdb.Options{})
	n.local = overlay.NewLocal(overlay.LocalConfig{VNI: 100, VTEP: overlay.VTEP{Addr: n.vtep, Port: 4789, MAC: mac},
		Ageing: ageing, Now: func() time.Time { return time.Now().Add(time.Duration(n.skew.Load())) }})
	n.inst = overlay.NewInstaller(overlay.InstallerConfig{Owner: Owner, VNI: 100, Table: n.table, Self: mac, SelfAddr: n.vtep})
	return n
}

func (n *node) start(t *testing.T, asn uint32, neighbors ...Neighbor) {
	t.Helper()
	sp, err := New(Config{
		ASN: asn, RouterID: n.vtep, Port: int(n.port), ListenAddrs: []netip.Addr{n.addr},
		Neighbors: neighbors, HoldTime: 3 * time.Second, ConnectRetry: time.Second,
		Logf: func(f string, a ...any) { t.Logf(n.name+": "+f, a...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Add(VNI{Local: n.local, Installer: n.inst}); err != nil {
		t.Fatal(err)
	}
	n.sp = sp
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- sp.Run(ctx) }()
	t.Cleanup(n.stop)
}

func (n *node) stop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
	}
}

func (n *node) neighbor(asn uint32) Neighbor {
	return Neighbor{Addr: n.addr, ASN: asn, Port: n.port}
}

// owned returns what the node installed from EVPN: MAC -> VTEP.
func (n *node) owned() map[fdb.MAC]netip.Addr {
	out := map[fdb.MAC]netip.Addr{}
	for _, e := range n.table.Owned(Owner) {
		for _, d := range e.Dests {
			out[e.MAC] = d.IP
		}
	}
	return out
}

func (n *node) counter(name string) uint64 {
	for _, v := range n.sp.Stats() {
		if v.Name == name {
			return v.Value
		}
	}
	return 0
}

func wantOwned(n *node, want map[fdb.MAC]netip.Addr) func() error {
	return func() error {
		got := n.owned()
		if len(got) != len(want) {
			return fmt.Errorf("%s installed %v, want %v", n.name, got, want)
		}
		for mac, ip := range want {
			if got[mac] != ip {
				return fmt.Errorf("%s installed %v, want %v", n.name, got, want)
			}
		}
		return nil
	}
}

// GoBGP keeps route-selection options in package variables that StartBgp
// writes: two servers in one process (these tests, never the daemon) race
// on them harmlessly, so the evpn package is left out of the -race run.

// TestSpeakers runs two speakers over loopback, in eBGP and in iBGP: each
// installs the other's flood entry and MACs (next hop = the VTEP, not the
// session address), a MAC that moves is followed through sequence numbers
// and the old location withdraws its route, and a speaker that stops
// takes its routes with it.
func TestSpeakers(t *testing.T) {
	t.Run("ebgp", func(t *testing.T) { testSpeakers(t, 65001, 65002) })
	// In iBGP both use one route target, and GoBGP checks the MAC
	// mobility of local routes against the other's.
	t.Run("ibgp", func(t *testing.T) { testSpeakers(t, 65000, 65000) })
}

func testSpeakers(t *testing.T, asA, asB uint32) {
	macA := fdb.MAC{2, 0, 0, 0, 0, 0xa1}
	macB := fdb.MAC{2, 0, 0, 0, 0, 0xb1}
	roam := fdb.MAC{2, 0, 0, 0, 0, 0xee}
	a := newNode(t, "a", asA, "127.0.0.1", "192.0.2.1", macA, time.Minute)
	b := newNode(t, "b", asB, "127.0.0.2", "192.0.2.2", macB, 0)
	a.local.SetAddrs([]netip.Addr{netip.MustParseAddr("203.0.113.1")})
	a.local.ObserveSource(roam)
	a.start(t, asA, b.neighbor(asB))
	b.start(t, asB, a.neighbor(asA))

	testnet.Eventually(t, 20*time.Second, wantOwned(b, map[fdb.MAC]netip.Addr{fdb.Zero: a.vtep, macA: a.vtep, roam: a.vtep}))
	testnet.Eventually(t, 5*time.Second, wantOwned(a, map[fdb.MAC]netip.Addr{fdb.Zero: b.vtep, macB: b.vtep}))
	st := b.sp.Status(context.Background())
	if len(st.Sessions) != 1 || st.Sessions[0].State != "established" || st.Sessions[0].Neighbor != a.addr {
		t.Fatalf("sessions %+v", st.Sessions)
	}
	// a: type-3, TAP MAC, TAP MAC+IP, roam.
	if len(st.VNIs) != 1 || st.VNIs[0].RoutesIn != 4 || st.VNIs[0].RoutesOut != 2 || st.VNIs[0].RD != "192.0.2.2:100" || st.VNIs[0].RT != fmt.Sprintf("%d:100", asB) {
		t.Fatalf("vnis %+v", st.VNIs)
	}
	if p := st.VNIs[0].Peers; len(p) != 1 || p[0].VTEP.Addr != a.vtep || len(p[0].Endpoints) != 2 {
		t.Fatalf("peers %+v", p)
	}
	if b.counter("evpn_sessions_established") != 1 {
		t.Errorf("sessions established %d", b.counter("evpn_sessions_established"))
	}

	// roam appears behind b: b advertises it with sequence 1, a yields.
	b.local.ObserveSource(roam)
	testnet.Eventually(t, 5*time.Second, wantOwned(a, map[fdb.MAC]netip.Addr{fdb.Zero: b.vtep, macB: b.vtep, roam: b.vtep}))
	testnet.Eventually(t, 5*time.Second, wantOwned(b, map[fdb.MAC]netip.Addr{fdb.Zero: a.vtep, macA: a.vtep}))
	// a withdrew its route for roam: b receives a's type-3 and TAP
	// routes only (MAC and MAC+IP).
	testnet.Eventually(t, 5*time.Second, func() error {
		if in := b.sp.Status(context.Background()).VNIs[0].RoutesIn; in != 3 {
			return fmt.Errorf("b receives %d routes from a, want 3", in)
		}
		return nil
	})
	if n := a.counter("evpn_path_errors"); n != 0 {
		t.Errorf("a: %d path errors", n)
	}

	// roam goes back to a once a has aged it out (its clock jumps past
	// the ageing time): a outbids b's sequence 1 with 2, and b withdraws
	// its route.
	a.skew.Store(int64(2 * time.Minute))
	// The speaker must have seen the MAC gone (a reconcile after the
	// expiry) for its return to count as a move back.
	testnet.Eventually(t, 10*time.Second, func() error {
		if n := a.sp.Status(context.Background()).VNIs[0].LocalMACs; n != 1 {
			return fmt.Errorf("a's speaker sees %d local MACs, want 1 (the TAP's)", n)
		}
		return nil
	})
	a.local.ObserveSource(roam)
	testnet.Eventually(t, 5*time.Second, wantOwned(b, map[fdb.MAC]netip.Addr{fdb.Zero: a.vtep, macA: a.vtep, roam: a.vtep}))
	testnet.Eventually(t, 5*time.Second, wantOwned(a, map[fdb.MAC]netip.Addr{fdb.Zero: b.vtep, macB: b.vtep}))
	testnet.Eventually(t, 5*time.Second, func() error {
		if in := a.sp.Status(context.Background()).VNIs[0].RoutesIn; in != 2 {
			return fmt.Errorf("a receives %d routes from b, want 2 (b's withdrawal of roam failed?)", in)
		}
		return nil
	})
	if n := b.counter("evpn_path_errors"); n != 0 {
		t.Errorf("b: %d path errors", n)
	}

	// b stops: a's routes from it go at once (b closes the session).
	b.stop()
	testnet.Eventually(t, 5*time.Second, wantOwned(a, map[fdb.MAC]netip.Addr{}))
	if a.counter("evpn_sessions_lost") != 1 {
		t.Errorf("sessions lost %d", a.counter("evpn_sessions_lost"))
	}
}

// TestSpeakerIgnoresBadRoutes feeds a speaker routes from a plain GoBGP
// peer that must be ignored; each is counted once under its reason and
// nothing of them is installed, while the valid route next to them is.
func TestSpeakerIgnoresBadRoutes(t *testing.T) {
	macA := fdb.MAC{2, 0, 0, 0, 0, 0xa1}
	a := newNode(t, "a", 65001, "127.0.0.1", "192.0.2.1", macA, time.Minute)
	peerAddr := netip.MustParseAddr("127.0.0.3")
	peerPort := freePort(t, "127.0.0.3")

	srv := server.NewBgpServer()
	go srv.Serve()
	defer srv.Stop()
	ctx := context.Background()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 65003, RouterId: "192.0.2.3", ListenPort: int32(peerPort), ListenAddresses: []string{"127.0.0.3"}}}); err != nil {
		t.Fatal(err)
	}
	err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: a.addr.String(), PeerAsn: 65001},
		Transport: &api.Transport{LocalAddress: peerAddr.String(), RemotePort: uint32(a.port)},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, HoldTime: 9, KeepaliveInterval: 3}},
		AfiSafis:  []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_L2VPN, Safi: api.Family_SAFI_EVPN}, Enabled: true}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	rd, _ := RouteDistinguisher(netip.MustParseAddr("192.0.2.3"), 7)
	vtep3 := netip.MustParseAddr("192.0.2.3")
	rt := func(vni uint32) bgp.ExtendedCommunityInterface { return RouteTarget(65003, vni) }
	vx := bgp.NewEncapExtended(bgp.TUNNEL_TYPE_VXLAN)
	var paths []*apiutil.Path
	add := func(nlri bgp.NLRI, nh netip.Addr, attrs ...bgp.PathAttributeInterface) {
		mp, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_EVPN, []bgp.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, &apiutil.Path{Family: bgp.RF_EVPN, Nlri: nlri,
			Attrs: append([]bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), mp}, attrs...)})
	}
	imet := func(ip netip.Addr) bgp.NLRI {
		n, err := bgp.NewEVPNMulticastEthernetTagRoute(rd, 0, ip)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	mac := func(m string, vni uint32) bgp.NLRI {
		n, err := bgp.NewEVPNMacIPAdvertisementRoute(rd, bgp.EthernetSegmentIdentifier{}, 0, m, netip.Addr{}, []uint32{vni})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	pmsi := func(vni uint32, ip netip.Addr) bgp.PathAttributeInterface {
		id, _ := bgp.NewIngressReplTunnelID(ip)
		return bgp.NewPathAttributePmsiTunnel(bgp.PMSI_TUNNEL_TYPE_INGRESS_REPL, false, vni, id)
	}
	comms := func(ecs ...bgp.ExtendedCommunityInterface) bgp.PathAttributeInterface {
		return bgp.NewPathAttributeExtendedCommunities(ecs)
	}
	// The valid one: 192.0.2.3 floods VNI 100.
	add(imet(vtep3), vtep3, comms(rt(100), vx), pmsi(100, vtep3))
	// type-3 without PMSI (another originator address, so another NLRI).
	add(imet(netip.MustParseAddr("192.0.2.33")), vtep3, comms(rt(100), vx))
	// A VNI this node does not serve.
	add(mac("02:00:00:00:00:c1", 200), vtep3, comms(rt(200), vx))
	// This node's own VTEP as next hop.
	add(mac("02:00:00:00:00:c2", 100), a.vtep, comms(rt(100), vx))
	// MPLS, not VXLAN.
	add(mac("02:00:00:00:00:c3", 100), vtep3, comms(rt(100), bgp.NewEncapExtended(bgp.TUNNEL_TYPE_MPLS)))
	// No route target for the VNI.
	add(mac("02:00:00:00:00:c4", 100), vtep3, comms(rt(101), vx))
	if _, err := srv.AddPath(apiutil.AddPathRequest{Paths: paths}); err != nil {
		t.Fatal(err)
	}

	a.start(t, 65001, Neighbor{Addr: peerAddr, ASN: 65003, Port: peerPort})
	testnet.Eventually(t, 20*time.Second, wantOwned(a, map[fdb.MAC]netip.Addr{fdb.Zero: vtep3}))
	want := map[string]uint64{
		"evpn_ignored_no_pmsi": 1, "evpn_ignored_unknown_vni": 1, "evpn_ignored_own_vtep": 1,
		"evpn_ignored_not_vxlan": 1, "evpn_ignored_no_route_target": 1,
	}
	testnet.Eventually(t, 5*time.Second, func() error {
		for name, n := range want {
			if got := a.counter(name); got != n {
				return fmt.Errorf("%s = %d, want %d", name, got, n)
			}
		}
		return nil
	})
	// More passes do not count the same routes again.
	before := a.counter("evpn_reconciles")
	a.local.ObserveSource(fdb.MAC{2, 0, 0, 0, 0, 0xa2})
	testnet.Eventually(t, 5*time.Second, func() error {
		if a.counter("evpn_reconciles") == before {
			return fmt.Errorf("no reconcile yet")
		}
		return nil
	})
	for name, n := range want {
		if got := a.counter(name); got != n {
			t.Errorf("after another pass %s = %d, want %d", name, got, n)
		}
	}
	if got := a.owned(); len(got) != 1 {
		t.Errorf("installed %v", got)
	}
}

// TestNewRefuses checks the configuration errors.
func TestNewRefuses(t *testing.T) {
	rid := netip.MustParseAddr("192.0.2.1")
	nb := Neighbor{Addr: netip.MustParseAddr("192.0.2.2")}
	for name, cfg := range map[string]Config{
		"no AS":              {RouterID: rid},
		"IPv6 router id":     {ASN: 1, RouterID: netip.MustParseAddr("2001:db8::1")},
		"no router id":       {ASN: 1},
		"neighbor twice":     {ASN: 1, RouterID: rid, Neighbors: []Neighbor{nb, nb}},
		"multicast neighbor": {ASN: 1, RouterID: rid, Neighbors: []Neighbor{{Addr: netip.MustParseAddr("239.1.1.1")}}},
		"port":               {ASN: 1, RouterID: rid, Port: 70000},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	sp, err := New(Config{ASN: 1, RouterID: rid})
	if err != nil {
		t.Fatal(err)
	}
	l := overlay.NewLocal(overlay.LocalConfig{VNI: 5})
	if err := sp.Add(VNI{Local: l}); err != nil {
		t.Fatal(err)
	}
	if err := sp.Add(VNI{Local: l}); err == nil {
		t.Error("a VNI added twice")
	}
}
