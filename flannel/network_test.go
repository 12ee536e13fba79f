package flannel

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestParseNetworkDefaults(t *testing.T) {
	n, err := ParseNetwork([]byte(`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}`))
	if err != nil {
		t.Fatal(err)
	}
	// flannel's CheckNetworkConfig: /24 subnets from the second to the last.
	if n.SubnetLen != 24 || n.SubnetMin != netip.MustParseAddr("10.5.1.0") ||
		n.SubnetMax != netip.MustParseAddr("10.5.255.0") || n.VNI != 1 || n.Port != 8472 {
		t.Errorf("defaults: %+v", n)
	}
	n, err = ParseNetwork([]byte(`{"Network":"198.51.100.0/24","SubnetLen":27,"SubnetMax":"198.51.100.96",
		"Backend":{"Type":"vxlan","VNI":42,"Port":4789,"DirectRouting":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	if n.SubnetMin != netip.MustParseAddr("198.51.100.32") || n.SubnetMax != netip.MustParseAddr("198.51.100.96") ||
		n.VNI != 42 || n.Port != 4789 || !n.DirectRouting {
		t.Errorf("explicit: %+v", n)
	}
	var got []string
	for s := range n.subnets {
		got = append(got, s.String())
	}
	if strings.Join(got, " ") != "198.51.100.32/27 198.51.100.64/27 198.51.100.96/27" {
		t.Errorf("subnets: %v", got)
	}
	// A /26 network without SubnetLen gets /28 subnets.
	if n, err := ParseNetwork([]byte(`{"Network":"192.0.2.0/26","Backend":{"Type":"vxlan"}}`)); err != nil || n.SubnetLen != 28 {
		t.Errorf("/26: %+v %v", n, err)
	}
}

func TestParseNetworkRefuses(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{`, "unexpected EOF"},
		{`{"Network":"10.5.0.0/16","Backend":{"Type":"host-gw"}}`, `Backend.Type "host-gw"`},
		{`{"Network":"10.5.0.0/16"}`, "Backend.Type is unset"},
		{`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","GBP":true}}`, "GBP"},
		{`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","Learning":true}}`, "Learning"},
		{`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}`, "Backend.VNI"},
		{`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","Port":70000}}`, "Backend.Port"},
		{`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","Colour":"red"}}`, `unknown field "Colour"`},
		{`{"Network":"10.5.0.0/16","Bogus":1,"Backend":{"Type":"vxlan"}}`, `unknown field "Bogus"`},
		{`{"Network":"10.5.0.0/16","EnableIPv6":true,"Backend":{"Type":"vxlan"}}`, "IPv6"},
		{`{"Network":"2001:db8::/32","Backend":{"Type":"vxlan"}}`, "want an IPv4 prefix"},
		{`{"Network":"10.5.0.0/16","SubnetLen":31,"Backend":{"Type":"vxlan"}}`, "less than /31"},
		{`{"Network":"10.5.0.0/16","SubnetLen":17,"Backend":{"Type":"vxlan"}}`, "four subnets"},
		{`{"Network":"10.5.0.0/30","Backend":{"Type":"vxlan"}}`, "too small"},
		{`{"Network":"10.5.0.0/16","SubnetMin":"10.6.0.0","Backend":{"Type":"vxlan"}}`, "SubnetMin"},
		{`{"Network":"10.5.0.0/16","SubnetMax":"10.5.3.7","Backend":{"Type":"vxlan"}}`, "boundary"},
		{`{"Network":"10.5.0.0/16","SubnetMin":"10.5.9.0","SubnetMax":"10.5.3.0","Backend":{"Type":"vxlan"}}`, "above SubnetMax"},
	} {
		_, err := ParseNetwork([]byte(tc.json))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.json, err, tc.want)
		}
	}
}

// A lease is written byte for byte as flanneld's encoding/json writes it.
func TestLeaseValueIsFlannels(t *testing.T) {
	mac, _ := net.ParseMAC("02:42:c0:00:02:01")
	l := Lease{Subnet: netip.MustParsePrefix("10.5.34.0/24"), PublicIP: netip.MustParseAddr("192.0.2.1"), VNI: 1, VtepMAC: mac}
	v, err := l.Value()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:42:c0:00:02:01"}}`
	if string(v) != want {
		t.Errorf("value\n got %s\nwant %s", v, want)
	}
	if k := SubnetKey("/coreos.com/network", l.Subnet); k != "/coreos.com/network/subnets/10.5.34.0-24" {
		t.Errorf("key %s", k)
	}
	n, _ := ParseNetwork([]byte(`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}`))
	back, err := ParseLease(n, "/coreos.com/network/subnets/10.5.34.0-24", v)
	if err != nil || !back.Equal(l) {
		t.Errorf("round trip: %+v %v", back, err)
	}
	// Dual-stack keys carry the IPv4 subnet first.
	if p, err := ParseSubnetKey("/x/subnets/10.5.34.0-24&fd00:10:5:34::-64"); err != nil || p != l.Subnet {
		t.Errorf("dual-stack key: %v %v", p, err)
	}
}

// Leases written by others are checked; nothing wrong is followed.
func TestParseLeaseRefuses(t *testing.T) {
	n, _ := ParseNetwork([]byte(`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}`))
	good := `{"PublicIP":"192.0.2.2","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:02"}}`
	if _, err := ParseLease(n, "/p/subnets/10.5.2.0-24", []byte(good)); err != nil {
		t.Fatalf("good lease refused: %v", err)
	}
	for _, tc := range []struct{ key, value, want string }{
		{"/p/subnets/10.5.2.0", good, "want <a.b.c.d>-<len>"},
		{"/p/subnets/10.5.2.1-24", good, "not a network address"},
		{"/p/subnets/10.6.2.0-24", good, "not a /24 subnet"},
		{"/p/subnets/10.5.2.0-25", good, "not a /24 subnet"},
		{"/p/subnets/10.5.2.0-24", `{"PublicIP":`, "unexpected end"},
		{"/p/subnets/10.5.2.0-24", `{"PublicIP":"192.0.2.2","BackendType":"udp"}`, "not a vxlan lease"},
		{"/p/subnets/10.5.2.0-24", strings.Replace(good, "192.0.2.2", "224.0.0.1", 1), "PublicIP"},
		{"/p/subnets/10.5.2.0-24", strings.Replace(good, "192.0.2.2", "0.0.0.0", 1), "PublicIP"},
		{"/p/subnets/10.5.2.0-24", strings.Replace(good, "192.0.2.2", "2001:db8::1", 1), "PublicIP"},
		{"/p/subnets/10.5.2.0-24", strings.Replace(good, "02:00:00:00:00:02", "01:00:5e:00:00:01", 1), "VtepMAC"},
		{"/p/subnets/10.5.2.0-24", strings.Replace(good, "02:00:00:00:00:02", "00:00:00:00:00:00", 1), "VtepMAC"},
		{"/p/subnets/10.5.2.0-24", strings.Replace(good, "02:00:00:00:00:02", "zz", 1), "VtepMAC"},
		{"/p/subnets/10.5.2.0-24", `{"PublicIP":"192.0.2.2","BackendType":"vxlan","BackendData":[1]}`, "BackendData"},
	} {
		_, err := ParseLease(n, tc.key, []byte(tc.value))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s = %s: got %v, want an error containing %q", tc.key, tc.value, err, tc.want)
		}
	}
}

func TestSubnetEnv(t *testing.T) {
	n, _ := ParseNetwork([]byte(`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}`))
	got := string(SubnetEnv(n, netip.MustParsePrefix("10.5.34.0/24"), 1450))
	const want = "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
	if got != want {
		t.Errorf("subnet.env\n got %q\nwant %q", got, want)
	}
}

// Whatever another node writes, parsing never panics.
func FuzzParseLease(f *testing.F) {
	n, _ := ParseNetwork([]byte(`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}`))
	f.Add("/p/subnets/10.5.2.0-24", `{"PublicIP":"192.0.2.2","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:02"}}`)
	f.Add("/p/subnets/10.5.2.0-24&fd00::-64", `{"PublicIP":null}`)
	f.Fuzz(func(t *testing.T, key, value string) {
		l, err := ParseLease(n, key, []byte(value))
		if err == nil && (!n.Contains(l.Subnet) || len(l.VtepMAC) != 6 || !l.PublicIP.Is4()) {
			t.Errorf("accepted a bad lease: %+v", l)
		}
		ParseNetwork([]byte(value))
	})
}
