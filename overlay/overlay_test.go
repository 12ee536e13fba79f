package overlay_test

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/overlay"
	"github.com/vxland/vxland/stats"
)

var (
	self  = fdb.MAC{0x02, 0, 0, 0, 0, 0x01}
	macP2 = fdb.MAC{0x02, 0, 0, 0, 0, 0x02}
	macP3 = fdb.MAC{0x02, 0, 0, 0, 0, 0x03}
	macE1 = fdb.MAC{0x0a, 0, 0, 0, 0, 0x01}
	macE2 = fdb.MAC{0x0a, 0, 0, 0, 0, 0x02}
	a1    = netip.MustParseAddr("192.0.2.1")
	a2    = netip.MustParseAddr("192.0.2.2")
	a3    = netip.MustParseAddr("192.0.2.3")
	ip2   = netip.MustParseAddr("203.0.113.2")
	ip3   = netip.MustParseAddr("203.0.113.3")
	ipE1  = netip.MustParseAddr("203.0.113.101")
	ipE1b = netip.MustParseAddr("2001:db8::101")
)

type fakeNeigh struct {
	mu   sync.Mutex
	byOw map[fdb.Owner]map[netip.Addr]fdb.MAC
	err  error
}

func (f *fakeNeigh) Sync(o fdb.Owner, want map[netip.Addr]fdb.MAC) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byOw == nil {
		f.byOw = map[fdb.Owner]map[netip.Addr]fdb.MAC{}
	}
	f.byOw[o] = maps.Clone(want)
	return f.err
}

type fakeMembers struct{ got []netip.Addr }

func (f *fakeMembers) SetMembers(a []netip.Addr) { f.got = a }

func dest(ip netip.Addr) fdb.Dest { return fdb.Dest{IP: ip, Port: 4789, VNI: 40} }

func peer(id string, addr netip.Addr, mac fdb.MAC, tapIP netip.Addr, eps ...overlay.Endpoint) overlay.Peer {
	return overlay.Peer{ID: id, VTEP: overlay.VTEP{Addr: addr, Port: 4789, MAC: mac, Addrs: []netip.Addr{tapIP}}, Endpoints: eps}
}

func TestInstallerReconcilesByContent(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	nb := &fakeNeigh{}
	mb := &fakeMembers{}
	in := overlay.NewInstaller(overlay.InstallerConfig{Owner: "cluster", VNI: 40, Table: tb, Self: self, SelfAddr: a1, Neighbours: nb, Members: mb})
	// A remote configured by hand stays through everything.
	hand := dest(netip.MustParseAddr("198.51.100.9"))
	if err := tb.Append(fdb.Zero, hand, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	p2 := peer("n2", a2, macP2, ip2, overlay.Endpoint{MAC: macE1, IPs: []netip.Addr{ipE1, ipE1b}})
	p3 := peer("n3", a3, macP3, ip3)
	// Our own VTEP, as a source lists it, is ignored.
	me := peer("n1", a1, self, netip.MustParseAddr("203.0.113.1"))
	if err := in.Apply([]overlay.Peer{p3, me, p2}); err != nil {
		t.Fatal(err)
	}
	if got := tb.Defaults(); !slices.Equal(got, []fdb.Dest{hand, dest(a2), dest(a3)}) {
		t.Fatalf("flood list = %v", got)
	}
	for mac, want := range map[fdb.MAC]fdb.Dest{macP2: dest(a2), macE1: dest(a2), macP3: dest(a3)} {
		if got := tb.Lookup(mac); !slices.Equal(got, []fdb.Dest{want}) {
			t.Fatalf("lookup %s = %v, want %v", mac, got, want)
		}
	}
	if tb.Lookup(self) != nil {
		t.Fatal("own MAC installed")
	}
	wantNeigh := map[netip.Addr]fdb.MAC{ip2: macP2, ipE1: macE1, ipE1b: macE1, ip3: macP3}
	if !maps.Equal(nb.byOw["cluster"], wantNeigh) {
		t.Fatalf("neighbours = %v", nb.byOw["cluster"])
	}
	if !slices.Equal(mb.got, []netip.Addr{a2, a3}) {
		t.Fatalf("members = %v", mb.got)
	}

	// n2's TAP MAC changes and its endpoint leaves; n3 leaves.
	p2b := peer("n2", a2, macE2, ip2)
	if err := in.Apply([]overlay.Peer{p2b}); err != nil {
		t.Fatal(err)
	}
	if got := tb.Defaults(); !slices.Equal(got, []fdb.Dest{hand, dest(a2)}) {
		t.Fatalf("flood list after leave = %v", got)
	}
	for _, gone := range []fdb.MAC{macP2, macE1, macP3} {
		if tb.Lookup(gone) != nil {
			t.Fatalf("%s still installed", gone)
		}
	}
	if got := tb.Lookup(macE2); !slices.Equal(got, []fdb.Dest{dest(a2)}) {
		t.Fatalf("new MAC = %v", got)
	}
	if !maps.Equal(nb.byOw["cluster"], map[netip.Addr]fdb.MAC{ip2: macE2}) {
		t.Fatalf("neighbours after change = %v", nb.byOw["cluster"])
	}
	// Everything withdrawn: only the hand-made remote is left.
	if err := in.Withdraw(); err != nil {
		t.Fatal(err)
	}
	if es := tb.Entries(); len(es) != 1 || !slices.Equal(es[0].Dests, []fdb.Dest{hand}) {
		t.Fatalf("after withdraw: %+v", es)
	}
}

func TestInstallerConflicts(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	in := overlay.NewInstaller(overlay.InstallerConfig{Owner: "cluster", VNI: 40, Table: tb, Self: self})
	// A static entry made by hand wins over the control plane.
	pinned := dest(netip.MustParseAddr("198.51.100.7"))
	if err := tb.Add(macP2, pinned, fdb.Static); err != nil {
		t.Fatal(err)
	}
	// A learned one does not.
	if tb.Learn(macP3, dest(netip.MustParseAddr("198.51.100.8"))) != fdb.Learned {
		t.Fatal("learn")
	}
	// Two peers claim one endpoint MAC: the smaller ID gets it.
	ep := overlay.Endpoint{MAC: macE1}
	err := in.Apply([]overlay.Peer{peer("n3", a3, macP3, ip3, ep), peer("n2", a2, macP2, ip2, ep)})
	if !errors.Is(err, fdb.ErrOwned) {
		t.Fatalf("apply over a hand-made entry: %v", err)
	}
	if got := tb.Lookup(macP2); !slices.Equal(got, []fdb.Dest{pinned}) {
		t.Fatalf("hand-made entry overridden: %v", got)
	}
	if got := tb.Lookup(macP3); !slices.Equal(got, []fdb.Dest{dest(a3)}) {
		t.Fatalf("learned entry not replaced: %v", got)
	}
	if got := tb.Lookup(macE1); !slices.Equal(got, []fdb.Dest{dest(a2)}) {
		t.Fatalf("contested MAC = %v, want n2's", got)
	}
	if v := counter(in, "install_conflicts"); v != 1 {
		t.Fatalf("install_conflicts = %d", v)
	}
	// Once the hand-made entry is gone, the next apply installs it.
	if err := tb.Del(macP2, nil); err != nil {
		t.Fatal(err)
	}
	if err := in.Apply(in.Peers()); err != nil {
		t.Fatal(err)
	}
	if got := tb.Lookup(macP2); !slices.Equal(got, []fdb.Dest{dest(a2)}) {
		t.Fatalf("after the hand-made entry left: %v", got)
	}
}

func counter(s interface{ Stats() []stats.Value }, name string) uint64 {
	for _, v := range s.Stats() {
		if v.Name == name {
			return v.Value
		}
	}
	return 0
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLocalEndpoints(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := overlay.NewLocal(overlay.LocalConfig{VNI: 40, VTEP: overlay.VTEP{Addr: a1, Port: 4789, MAC: self}, Ageing: 10 * time.Second, MaxEndpoints: 2, Now: c.now})
	l.Tick()
	drain := func() bool {
		select {
		case <-l.Changed():
			return true
		default:
			return false
		}
	}
	l.ObserveSource(self) // the TAP itself
	l.ObserveSource([6]byte{0x01, 0, 0x5e, 0, 0, 1})
	if drain() {
		t.Fatal("own or group MAC signalled")
	}
	l.ObserveSource(macE1)
	if !drain() {
		t.Fatal("new endpoint not signalled")
	}
	l.ObserveSource(macE1)
	if drain() {
		t.Fatal("known endpoint signalled")
	}
	l.SetEndpointIPs(macE1, []netip.Addr{ipE1b, ipE1, ipE1})
	l.SetAddrs([]netip.Addr{ip2})
	if !drain() {
		t.Fatal("addresses not signalled")
	}
	l.ObserveSource(macE2)
	l.ObserveSource(macP3) // beyond the bound
	v, eps := l.Snapshot()
	if v.Addr != a1 || v.MAC != self || !slices.Equal(v.Addrs, []netip.Addr{ip2}) {
		t.Fatalf("vtep = %+v", v)
	}
	want := []overlay.Endpoint{{MAC: macE1, IPs: []netip.Addr{ipE1, ipE1b}}, {MAC: macE2}}
	if !slices.EqualFunc(eps, want, overlay.Endpoint.Equal) {
		t.Fatalf("endpoints = %+v", eps)
	}
	if counter(l, "local_endpoints_full") != 1 {
		t.Fatal("bound not counted")
	}
	drain()
	// E2 keeps sending, E1 falls silent and ages out.
	c.t = c.t.Add(6 * time.Second)
	l.Tick()
	l.ObserveSource(macE2)
	c.t = c.t.Add(6 * time.Second)
	l.Tick()
	if !drain() {
		t.Fatal("expiry not signalled")
	}
	if _, eps := l.Snapshot(); !slices.EqualFunc(eps, []overlay.Endpoint{{MAC: macE2}}, overlay.Endpoint.Equal) {
		t.Fatalf("after ageing: %+v", eps)
	}
}

func TestObserveSourceAllocations(t *testing.T) {
	l := overlay.NewLocal(overlay.LocalConfig{VNI: 40, VTEP: overlay.VTEP{MAC: self}})
	l.ObserveSource(macE1)
	if n := testing.AllocsPerRun(1000, func() { l.ObserveSource(macE1) }); n != 0 {
		t.Fatalf("ObserveSource of a known MAC allocates %v times", n)
	}
}

// TestInstallerPeerWithoutTAPMAC checks a peer that names no TAP MAC (an
// EVPN VTEP: only its endpoints have MACs): it floods and its endpoints
// are installed, and nothing is counted as ignored.
func TestInstallerPeerWithoutTAPMAC(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	in := overlay.NewInstaller(overlay.InstallerConfig{Owner: "evpn", VNI: 40, Table: tb, Self: self, SelfAddr: a1})
	p := overlay.Peer{ID: "192.0.2.2", VTEP: overlay.VTEP{Addr: a2, Port: 4789, Addrs: []netip.Addr{ip2}}, Endpoints: []overlay.Endpoint{{MAC: macE1, IPs: []netip.Addr{ipE1}}}}
	nb := &fakeNeigh{}
	in = overlay.NewInstaller(overlay.InstallerConfig{Owner: "evpn", VNI: 40, Table: tb, Self: self, SelfAddr: a1, Neighbours: nb})
	if err := in.Apply([]overlay.Peer{p}); err != nil {
		t.Fatal(err)
	}
	// A TAP address with no MAC to bind it to is no neighbour entry.
	if got := nb.byOw["evpn"]; !maps.Equal(got, map[netip.Addr]fdb.MAC{ipE1: macE1}) {
		t.Fatalf("neighbours = %v", got)
	}
	if got := tb.Defaults(); !slices.Equal(got, []fdb.Dest{dest(a2)}) {
		t.Fatalf("flood list = %v", got)
	}
	if got := tb.Lookup(macE1); !slices.Equal(got, []fdb.Dest{dest(a2)}) {
		t.Fatalf("endpoint = %v", got)
	}
	for _, v := range in.Stats() {
		if v.Name == "install_ignored" && v.Value != 0 {
			t.Fatalf("install_ignored = %d", v.Value)
		}
	}
}

// NoFlood installs a source's entries without a flood list (flannel mode).
func TestInstallerNoFlood(t *testing.T) {
	tab := fdb.New(fdb.Options{})
	in := overlay.NewInstaller(overlay.InstallerConfig{Owner: "flannel", VNI: 1, Table: tab, NoFlood: true})
	peer := overlay.Peer{ID: "198.51.100.32/27", VTEP: overlay.VTEP{Addr: netip.MustParseAddr("192.0.2.2"), Port: 8472, MAC: fdb.MAC{2, 0, 0, 0, 0, 2}}}
	if err := in.Apply([]overlay.Peer{peer}); err != nil {
		t.Fatal(err)
	}
	if d := tab.Defaults(); len(d) != 0 {
		t.Errorf("flood list %v, want none", d)
	}
	if d := tab.Lookup(peer.VTEP.MAC); len(d) != 1 || d[0].IP != peer.VTEP.Addr || d[0].Port != 8472 {
		t.Errorf("entry of the peer's MAC: %v", d)
	}
}
