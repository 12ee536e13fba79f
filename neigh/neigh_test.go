package neigh

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/fdb"
)

var (
	ipA  = netip.MustParseAddr("203.0.113.2")
	ip6A = netip.MustParseAddr("2001:db8::2")
	macA = fdb.MAC{2, 0, 0, 0, 0, 0xa}
	macB = fdb.MAC{2, 0, 0, 0, 0, 0xb}
)

func TestControlEntries(t *testing.T) {
	tb := New()
	if _, ok := tb.Lookup(ipA); ok {
		t.Fatal("empty table has an entry")
	}
	if err := tb.Add(ipA, macA, false); err != nil {
		t.Fatal(err)
	}
	if err := tb.Add(ipA, macB, false); !errors.Is(err, ErrExists) {
		t.Errorf("second add: %v, want ErrExists", err)
	}
	if err := tb.Replace(ipA, macB, true); err != nil {
		t.Fatal(err)
	}
	if e, ok := tb.Lookup(ipA); !ok || e.MAC != macB || !e.Router || e.Source != Control {
		t.Errorf("lookup after replace: %+v %v", e, ok)
	}
	if err := tb.Del(ipA); err != nil {
		t.Fatal(err)
	}
	if err := tb.Del(ipA); !errors.Is(err, ErrNotFound) {
		t.Errorf("second del: %v, want ErrNotFound", err)
	}
	for _, bad := range []struct {
		ip  netip.Addr
		mac fdb.MAC
	}{
		{netip.Addr{}, macA}, {netip.IPv4Unspecified(), macA}, {netip.MustParseAddr("239.1.1.1"), macA},
		{netip.MustParseAddr("fe80::1%eth0"), macA}, {ipA, fdb.MAC{1, 0, 0x5e, 0, 0, 1}}, {ipA, fdb.Zero},
	} {
		if err := tb.Add(bad.ip, bad.mac, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("add %s %s: %v, want ErrInvalid", bad.ip, bad.mac, err)
		}
	}
}

func TestControlWinsOverHost(t *testing.T) {
	tb := New()
	tb.SetHost(ipA, macA, false, NUDPermanent)
	if e, ok := tb.Lookup(ipA); !ok || e.MAC != macA || e.Source != Host {
		t.Fatalf("host entry: %+v %v", e, ok)
	}
	tb.Add(ipA, macB, false)
	if e, _ := tb.Lookup(ipA); e.MAC != macB {
		t.Errorf("control entry does not win: %+v", e)
	}
	if n := len(tb.Entries()); n != 2 {
		t.Errorf("%d entries listed, want 2", n)
	}
	tb.Del(ipA)
	if e, _ := tb.Lookup(ipA); e.MAC != macA {
		t.Errorf("host entry gone with the control entry: %+v", e)
	}
	if err := tb.Del(ipA); !errors.Is(err, ErrNotFound) {
		t.Errorf("del of a host entry through control: %v, want ErrNotFound", err)
	}
}

func TestApply(t *testing.T) {
	const idx = 7
	upd := func(typ uint16, ip netip.Addr, state int, flags int, ifindex int) netlink.NeighUpdate {
		fam := unix.AF_INET6
		if ip.Is4() {
			fam = unix.AF_INET
		}
		return netlink.NeighUpdate{Type: typ, Neigh: netlink.Neigh{LinkIndex: ifindex, Family: fam, State: state,
			Flags: flags, IP: net.IP(ip.AsSlice()), HardwareAddr: net.HardwareAddr(macA[:])}}
	}
	tb := New()
	for _, tc := range []struct {
		name            string
		u               netlink.NeighUpdate
		present, usable bool
	}{
		{"permanent", upd(unix.RTM_NEWNEIGH, ipA, netlink.NUD_PERMANENT, 0, idx), true, true},
		{"other interface", upd(unix.RTM_NEWNEIGH, ip6A, netlink.NUD_PERMANENT, 0, idx+1), false, false},
		{"stale", upd(unix.RTM_NEWNEIGH, ipA, netlink.NUD_STALE, 0, idx), true, false},
		{"reachable", upd(unix.RTM_NEWNEIGH, ipA, netlink.NUD_REACHABLE, 0, idx), true, true},
		{"incomplete", upd(unix.RTM_NEWNEIGH, ipA, netlink.NUD_INCOMPLETE, 0, idx), true, false},
		{"failed", upd(unix.RTM_NEWNEIGH, ipA, netlink.NUD_FAILED, 0, idx), true, false},
		{"noarp", upd(unix.RTM_NEWNEIGH, ipA, netlink.NUD_NOARP, 0, idx), true, true},
		{"deleted", upd(unix.RTM_DELNEIGH, ipA, netlink.NUD_NOARP, 0, idx), false, false},
	} {
		tb.Apply(tc.u, idx)
		ip, _ := netip.AddrFromSlice(tc.u.IP)
		e, ok := tb.Lookup(ip.Unmap())
		if ok != tc.present || e.Usable() != tc.usable {
			t.Errorf("%s: present %v usable %v, want %v %v", tc.name, ok, e.Usable(), tc.present, tc.usable)
		}
	}
	incomplete := upd(unix.RTM_NEWNEIGH, ipA, netlink.NUD_INCOMPLETE, 0, idx)
	incomplete.HardwareAddr = nil
	tb.Apply(incomplete, idx)
	if e, ok := tb.Lookup(ipA); !ok || e.Usable() || e.MAC != (fdb.MAC{}) {
		t.Errorf("incomplete entry without lladdr: %+v %v", e, ok)
	}
	tb.Apply(upd(unix.RTM_NEWNEIGH, ip6A, netlink.NUD_PERMANENT, netlink.NTF_ROUTER, idx), idx)
	if e, ok := tb.Lookup(ip6A); !ok || !e.Router {
		t.Errorf("router entry: %+v %v", e, ok)
	}
	tb.Apply(upd(unix.RTM_DELNEIGH, ipA, 0, 0, idx), idx)
	bridge := upd(unix.RTM_NEWNEIGH, ipA, netlink.NUD_PERMANENT, 0, idx)
	bridge.Family = unix.AF_BRIDGE
	tb.Apply(bridge, idx)
	if _, ok := tb.Lookup(ipA); ok {
		t.Error("a bridge fdb notification became a neighbour")
	}
}

func TestLookupNoAllocation(t *testing.T) {
	tb := New()
	tb.Add(ipA, macA, false)
	tb.SetHost(ip6A, macB, false, NUDPermanent)
	if n := testing.AllocsPerRun(100, func() {
		tb.Lookup(ipA)
		tb.Lookup(ip6A)
	}); n != 0 {
		t.Errorf("%v allocations per lookup", n)
	}
}

// TestSync checks a control plane's entries: installed and replaced by
// content, other owners' kept, shadowed by control entries and shadowing
// the host's, invalid bindings refused.
func TestSync(t *testing.T) {
	tb := New()
	a1, a2, a3 := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("203.0.113.3")
	m1, m2 := fdb.MAC{2, 0, 0, 0, 0, 1}, fdb.MAC{2, 0, 0, 0, 0, 2}
	tb.SetHost(a2, m1, false, NUDReachable)
	if err := tb.Sync("cluster", map[netip.Addr]fdb.MAC{a1: m1, a2: m2}); err != nil {
		t.Fatal(err)
	}
	if err := tb.Sync("evpn", map[netip.Addr]fdb.MAC{a2: m1, a3: m1}); err != nil {
		t.Fatal(err)
	}
	if e, ok := tb.Lookup(a2); !ok || e.MAC != m2 || e.Source != Owned || e.Owner != "cluster" || !e.Usable() {
		t.Fatalf("owned entry %+v, host's shadowed", e)
	}
	if e, _ := tb.Lookup(a3); e.Owner != "evpn" {
		t.Fatalf("other owner's entry %+v", e)
	}
	if err := tb.Add(a1, m2, false); err != nil {
		t.Fatal(err)
	}
	if e, _ := tb.Lookup(a1); e.Source != Control || e.MAC != m2 {
		t.Fatalf("control entry does not win: %+v", e)
	}
	// The cluster's set shrinks: its a2 goes, the host's shows again.
	err := tb.Sync("cluster", map[netip.Addr]fdb.MAC{a1: m1, netip.MustParseAddr("224.0.0.1"): m1})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("multicast binding: %v", err)
	}
	if e, _ := tb.Lookup(a2); e.Source != Host {
		t.Fatalf("after the owner dropped it: %+v", e)
	}
	// Listed: the control entry, the owned ones (the cluster's a1 shadowed
	// by it, evpn's a3), the host's.
	var got []string
	for _, e := range tb.Entries() {
		got = append(got, e.IP.String()+" "+e.Source.String()+" "+string(e.Owner))
	}
	want := []string{"203.0.113.1 control ", "203.0.113.1 owned cluster", "203.0.113.3 owned evpn", "203.0.113.2 host "}
	if !slices.Equal(got, want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
}
