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

func TestClusterShow(t *testing.T) {
	st := &ClusterStatus{
		Endpoints: []string{"http://192.0.2.254:2379"}, Prefix: "/vxland", State: "connected", Lease: "1ebda237",
		VNIs: []ClusterVNI{{VNI: 40, Dev: "vx0", Revision: 57, Published: true,
			Local: ClusterMember{Addr: netip.MustParseAddr("192.0.2.1"), Port: 4789, MAC: fdb.MAC{2, 0, 0, 0, 0, 1},
				Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.1")}},
			Members: []ClusterMember{{Addr: netip.MustParseAddr("192.0.2.2"), Port: 4789, MAC: fdb.MAC{2, 0, 0, 0, 0, 2},
				Endpoints: []ClusterEndpoint{{MAC: fdb.MAC{0xa, 0, 0, 0, 0, 1}, IPs: []netip.Addr{netip.MustParseAddr("203.0.113.11")}}}}},
		}},
		Stats: []stats.Value{{Name: "cluster_watch_events", Value: 12}},
	}
	path := filepath.Join(t.TempDir(), "vx0.sock")
	startServer(t, path, func(s *Server) { s.ClusterShow = func() *ClusterStatus { return st } }, testDevice("vx0", newFake()))
	got, err := dial(t, path).ClusterShow()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := FormatCluster(&b, got); err != nil {
		t.Fatal(err)
	}
	want := `cluster etcd http://192.0.2.254:2379 prefix /vxland state connected lease 1ebda237
vni 40 dev vx0 revision 57 published
    local  192.0.2.1 port 4789 mac 02:00:00:00:00:01 addrs 203.0.113.1
    member 192.0.2.2 port 4789 mac 02:00:00:00:00:02
        endpoint 0a:00:00:00:00:01 203.0.113.11
counters
    cluster_watch_events 12
`
	if b.String() != want {
		t.Errorf("cluster show:\n%s\nwant:\n%s", b.String(), want)
	}

	// A daemon without a cluster refuses.
	path2 := filepath.Join(t.TempDir(), "vx1.sock")
	startServer(t, path2, nil, testDevice("vx1", newFake()))
	var ce *Error
	if _, err := dial(t, path2).ClusterShow(); !errors.As(err, &ce) || ce.Code != CodeInvalid || !strings.Contains(ce.Message, "not in a cluster") {
		t.Errorf("cluster show without a cluster: %v", err)
	}
}
