package cluster

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/overlay"
)

func TestKeys(t *testing.T) {
	s := NewSchema("/vxland/")
	a := netip.MustParseAddr("2001:db8::1")
	k := s.MemberKey(40, a)
	if k != "/vxland/v1/vni/40/member/2001:db8::1" {
		t.Fatalf("key %q", k)
	}
	if got, err := s.ParseMemberKey(40, k); err != nil || got != a {
		t.Fatalf("parse %q: %v %v", k, got, err)
	}
	for _, bad := range []string{
		"/vxland/v1/vni/41/member/192.0.2.1",    // another VNI
		"/vxland/v1/vni/40/member/",             // no address
		"/vxland/v1/vni/40/member/192.0.2.1/x",  // deeper
		"/vxland/v1/vni/40/member/fe80::1%eth0", // zone
		"/vxland/v1/vni/40/member/::ffff:192.0.2.1",
		"/vxland/v1/vni/40/member/0.0.0.0",
		"/vxland/v1/vni/40/member/239.1.1.1",
		"/vxland/v1/vni/40/member/255.255.255.255",
	} {
		if _, err := s.ParseMemberKey(40, bad); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	if NewSchema("").VNIPrefix(7) != "/vxland/v1/vni/7/member/" {
		t.Error("default prefix")
	}
}

func TestMemberRoundTrip(t *testing.T) {
	v := overlay.VTEP{Addr: netip.MustParseAddr("192.0.2.1"), Port: 4789, MAC: fdb.MAC{2, 0, 0, 0, 0, 1},
		Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8::1")}}
	eps := []overlay.Endpoint{{MAC: fdb.MAC{0xa, 0, 0, 0, 0, 2}, IPs: []netip.Addr{netip.MustParseAddr("203.0.113.9")}}, {MAC: fdb.MAC{0xa, 0, 0, 0, 0, 1}}}
	b, err := EncodeMember(v, eps)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"addr":"192.0.2.1","port":4789,"mac":"02:00:00:00:00:01","addrs":["203.0.113.1","2001:db8::1"],"endpoints":[{"mac":"0a:00:00:00:00:02","ips":["203.0.113.9"]},{"mac":"0a:00:00:00:00:01"}]}`
	if string(b) != want {
		t.Fatalf("encoded\n%s\nwant\n%s", b, want)
	}
	p, err := DecodeMember(v.Addr, b)
	if err != nil {
		t.Fatal(err)
	}
	v.Addrs = overlay.SortAddrs(v.Addrs)
	if p.ID != "192.0.2.1" || !p.VTEP.Equal(v) || !slices.EqualFunc(p.Endpoints, overlay.SortEndpoints(eps), overlay.Endpoint.Equal) {
		t.Fatalf("decoded %+v", p)
	}
	// Fields a later version 1 may add are ignored.
	if _, err := DecodeMember(v.Addr, []byte(`{"v":1,"addr":"192.0.2.1","port":4789,"mac":"02:00:00:00:00:01","later":{"x":1}}`)); err != nil {
		t.Fatalf("unknown field refused: %v", err)
	}
}

// TestHostileValues checks that values another writer may put are refused
// with ErrInvalid, never accepted half-way and never a panic.
func TestHostileValues(t *testing.T) {
	addr := netip.MustParseAddr("192.0.2.1")
	ok := `"v":1,"addr":"192.0.2.1","port":4789,"mac":"02:00:00:00:00:01"`
	many := func(n int, item string) string {
		return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
	}
	for name, v := range map[string]string{
		"empty":          ``,
		"not json":       `hello`,
		"array":          `[1,2]`,
		"trailing":       `{` + ok + `} {}`,
		"version 2":      `{"v":2,"addr":"192.0.2.1","port":4789,"mac":"02:00:00:00:00:01"}`,
		"no version":     `{"addr":"192.0.2.1","port":4789,"mac":"02:00:00:00:00:01"}`,
		"other addr":     `{"v":1,"addr":"192.0.2.2","port":4789,"mac":"02:00:00:00:00:01"}`,
		"port 0":         `{"v":1,"addr":"192.0.2.1","port":0,"mac":"02:00:00:00:00:01"}`,
		"port 70000":     `{"v":1,"addr":"192.0.2.1","port":70000,"mac":"02:00:00:00:00:01"}`,
		"group mac":      `{"v":1,"addr":"192.0.2.1","port":4789,"mac":"01:00:5e:00:00:01"}`,
		"zero mac":       `{"v":1,"addr":"192.0.2.1","port":4789,"mac":"00:00:00:00:00:00"}`,
		"bad mac":        `{"v":1,"addr":"192.0.2.1","port":4789,"mac":"zz"}`,
		"addr type":      `{"v":1,"addr":7,"port":4789,"mac":"02:00:00:00:00:01"}`,
		"bad tap addr":   `{` + ok + `,"addrs":["203.0.113.300"]}`,
		"mcast tap addr": `{` + ok + `,"addrs":["224.0.0.1"]}`,
		"zone tap addr":  `{` + ok + `,"addrs":["fe80::1%eth0"]}`,
		"too many addrs": `{` + ok + `,"addrs":` + many(MaxTAPAddrs+1, `"203.0.113.1"`) + `}`,
		"ep group mac":   `{` + ok + `,"endpoints":[{"mac":"ff:ff:ff:ff:ff:ff"}]}`,
		"ep twice":       `{` + ok + `,"endpoints":[{"mac":"0a:00:00:00:00:01"},{"mac":"0a:00:00:00:00:01"}]}`,
		"ep is vtep":     `{` + ok + `,"endpoints":[{"mac":"02:00:00:00:00:01"}]}`,
		"ep bad ip":      `{` + ok + `,"endpoints":[{"mac":"0a:00:00:00:00:01","ips":["x"]}]}`,
		"ep many ips":    `{` + ok + `,"endpoints":[{"mac":"0a:00:00:00:00:01","ips":` + many(MaxEndpointIPs+1, `"203.0.113.1"`) + `}]}`,
		"too many eps":   `{` + ok + `,"endpoints":` + many(MaxEndpoints+1, `{"mac":"0a:00:00:00:00:01"}`) + `}`,
		"too large":      `{` + ok + `,"pad":"` + strings.Repeat("x", MaxValueSize) + `"}`,
	} {
		if p, err := DecodeMember(addr, []byte(v)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: accepted (%+v, %v)", name, p, err)
		}
	}
}

func FuzzDecodeMember(f *testing.F) {
	f.Add([]byte(`{"v":1,"addr":"192.0.2.1","port":4789,"mac":"02:00:00:00:00:01","addrs":["203.0.113.1"],"endpoints":[{"mac":"0a:00:00:00:00:02","ips":["203.0.113.9"]}]}`))
	f.Add([]byte(`{"v":1}`))
	addr := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeMember(addr, b)
		if err != nil {
			return
		}
		// What is accepted re-encodes to a value that decodes the same.
		again, err := EncodeMember(p.VTEP, p.Endpoints)
		if err != nil {
			t.Fatal(err)
		}
		q, err := DecodeMember(addr, again)
		if err != nil || !q.Equal(p) {
			t.Fatalf("re-decoded %+v, %v; want %+v", q, err, p)
		}
	})
}
