package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestBGPTable(t *testing.T) {
	t.Setenv("VXLAND_RUNDIR", "/run/vxland-test")
	cfg, err := Parse([]byte(`version = 1
[bgp]
asn = 65001
neighbors = ["192.0.2.2:65002", "192.0.2.3", "[2001:db8::2]:4200000000", "2001:db8::3"]
hold_time = 30
password = "s3cret"
[[vni]]
id = 100
local = "192.0.2.1"
remote = ["192.0.2.9"]
[[vni]]
id = 101
local = "192.0.2.1"
[[vni]]
id = 102
local = "192.0.2.1"
learning = true
`), "b.toml")
	if err != nil {
		t.Fatal(err)
	}
	b := cfg.BGP
	want := []BGPNeighbor{
		{Addr: netip.MustParseAddr("192.0.2.2"), ASN: 65002}, {Addr: netip.MustParseAddr("192.0.2.3")},
		{Addr: netip.MustParseAddr("2001:db8::2"), ASN: 4200000000}, {Addr: netip.MustParseAddr("2001:db8::3")},
	}
	if b.ASN != 65001 || b.Port != DefaultBGPPort || b.HoldTime != 30*time.Second || b.Password != "s3cret" || len(b.Neighbors) != len(want) {
		t.Fatalf("bgp %+v", b)
	}
	for i, n := range want {
		if b.Neighbors[i] != n {
			t.Errorf("neighbor %d: %+v, want %+v", i, b.Neighbors[i], n)
		}
		if back, err := ParseBGPNeighbor(n.String()); err != nil || back != n {
			t.Errorf("%s does not parse back: %+v %v", n, back, err)
		}
	}
	// The router ID comes from the first EVPN VNI (101; 100 has a remote).
	if id := cfg.EffectiveRouterID(); id != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("router id %v", id)
	}
	for i, w := range []struct{ in, learning bool }{{false, true}, {true, false}, {true, true}} {
		v := &cfg.VNIs[i]
		if cfg.InEVPN(v) != w.in || v.Learning != w.learning {
			t.Errorf("vni %d: in evpn %v learning %v, want %v %v", v.ID, cfg.InEVPN(v), v.Learning, w.in, w.learning)
		}
	}
}

func TestBGPRefused(t *testing.T) {
	for _, c := range []struct{ file, want string }{
		{"[bgp]\nasn = 65001\n[etcd]\nendpoints = [\"http://192.0.2.254:2379\"]\n[[vni]]\nid = 1\nlocal = \"192.0.2.1\"\n", "excludes cluster mode"},
		{"[bgp]\nasn = 65001\n[[vni]]\nid = 1\n", "needs its underlay address"},
		{"[bgp]\nasn = 65001\n[[vni]]\nid = 1\nlocal = \"2001:db8::1\"\n", "router_id: none given"},
		{"[bgp]\nneighbors = [\"192.0.2.2\"]\n[[vni]]\nid = 1\n", "need asn"},
		{"[bgp]\nasn = 65001\nneighbors = [\"192.0.2.2\", \"192.0.2.2:65002\"]\n[[vni]]\nid = 1\nlocal = \"192.0.2.1\"\n", "given twice"},
		{"[bgp]\nasn = 65001\nneighbors = [\"239.1.1.1\"]\n[[vni]]\nid = 1\nlocal = \"192.0.2.1\"\n", "not a unicast address"},
		{"[bgp]\nasn = 65001\nneighbors = [\"[2001:db8::2\"]\n[[vni]]\nid = 1\nlocal = \"192.0.2.1\"\n", "no closing ]"},
		{"[bgp]\nasn = 65001\nneighbors = [\"192.0.2.2:0\"]\n[[vni]]\nid = 1\nlocal = \"192.0.2.1\"\n", "is not a number"},
		{"[bgp]\nasn = 65001\nrouter = \"192.0.2.1\"\n[[vni]]\nid = 1\nlocal = \"192.0.2.1\"\n", "unknown key"},
		{"bgp = 1\n[[vni]]\nid = 1\n", "want a table"},
	} {
		_, err := Parse([]byte("version = 1\n"+c.file), "b.toml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.file, err, c.want)
		}
	}
}
