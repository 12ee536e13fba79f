package control

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/stats"
)

func TestBGPShow(t *testing.T) {
	st := &BGPStatus{
		ASN: 65002, RouterID: netip.MustParseAddr("192.0.2.2"), Port: 179,
		Sessions: []BGPSession{{Neighbor: netip.MustParseAddr("192.0.2.1"), ASN: 65001, State: "established", Received: 3, Accepted: 3, Advertised: 3}},
		VNIs: []BGPVNI{{VNI: 100, Dev: "vx0", RD: "192.0.2.2:100", RT: "65002:100", RoutesOut: 3, RoutesIn: 2,
			VTEPs: []ClusterMember{{Addr: netip.MustParseAddr("192.0.2.1"), Port: 4789,
				Endpoints: []ClusterEndpoint{{MAC: fdb.MAC{0xa, 0, 0, 0, 0, 1}, IPs: []netip.Addr{netip.MustParseAddr("203.0.113.11")}}}}}}},
		Stats: []stats.Value{{Name: "evpn_reconciles", Value: 7}},
	}
	path := filepath.Join(t.TempDir(), "vx0.sock")
	startServer(t, path, func(s *Server) { s.BGPShow = func() *BGPStatus { return st } }, testDevice("vx0", newFake()))
	got, err := dial(t, path).BGPShow()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := FormatBGP(&b, got); err != nil {
		t.Fatal(err)
	}
	want := `bgp as 65002 router-id 192.0.2.2 port 179
neighbor 192.0.2.1 as 65001 established received 3 accepted 3 advertised 3
vni 100 dev vx0 rd 192.0.2.2:100 rt 65002:100 routes out 3 in 2
    vtep 192.0.2.1 port 4789
        endpoint 0a:00:00:00:00:01 203.0.113.11
counters
    evpn_reconciles 7
`
	if b.String() != want {
		t.Errorf("bgp show:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteBGPJSON(&b, []*BGPStatus{got}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"neighbor":"192.0.2.1","asn":65001,"state":"established"`) {
		t.Errorf("json: %s", b.String())
	}

	path2 := filepath.Join(t.TempDir(), "vx1.sock")
	startServer(t, path2, nil, testDevice("vx1", newFake()))
	var ce *Error
	if _, err := dial(t, path2).BGPShow(); !errors.As(err, &ce) || ce.Code != CodeInvalid || !strings.Contains(ce.Message, "does not speak BGP") {
		t.Errorf("bgp show without BGP: %v", err)
	}
}
