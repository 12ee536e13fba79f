package config

import (
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const testRunDir = "/run/vxland-test"

// parse parses src as "t.toml" with a fixed run directory and fails the
// test on error.
func parse(t *testing.T, src string) *Config {
	t.Helper()
	t.Setenv("VXLAND_RUNDIR", testRunDir)
	cfg, err := Parse([]byte(src), "t.toml")
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror:\n%v", src, err)
	}
	return cfg
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// want is NewVNI(id) with the derived defaults of a file entry filled in.
func want(id uint32, edit func(v *VNI)) VNI {
	v := NewVNI(id)
	v.TAP = DefaultTAP(id)
	if edit != nil {
		edit(&v)
	}
	if v.Control == "" {
		v.Control = testRunDir + "/" + v.TAP + ".sock"
	}
	return v
}

func TestParseGood(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []VNI
	}{
		{
			name: "minimal",
			src:  "version = 1\n[[vni]]\nid = 40\n",
			want: []VNI{want(40, nil)},
		},
		{
			name: "every key",
			src: `version = 1
[[vni]]
id = 16777215
tap = "tap.x-1"
netns = "/proc/1/ns/net"
remote = ["2001:db8::2", "2001:db8::3"]
local = "2001:db8::1"
dev = "ul0"
dstport = 8472
srcport = "49152-49408"
ttl = 9
tos = 0x10
mtu = 9000
mac = "02:00:5e:10:00:01"
addr = ["203.0.113.1/24", "2001:db8:40::1/64"]
up = true
master = "br0"
learning = false
ageing = 0
maxaddress = 1024
learn_rate = 50
offload = false
control = "/tmp/x.sock"
`,
			want: []VNI{{
				ID: 16777215, TAP: "tap.x-1", Netns: "/proc/1/ns/net",
				Remotes: addrs("2001:db8::2", "2001:db8::3"),
				Local:   netip.MustParseAddr("2001:db8::1"), Dev: "ul0",
				Port: 8472, SrcPortMin: 49152, SrcPortMax: 49408,
				TTL: 9, TOS: 0x10, MTU: 9000,
				MAC:   net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01},
				Addrs: []netip.Prefix{netip.MustParsePrefix("203.0.113.1/24"), netip.MustParsePrefix("2001:db8:40::1/64")},
				Up:    true, Master: "br0", Learning: false, LearningSet: true, Ageing: 0, MaxAddress: 1024, LearnRate: 50,
				Offload: false, Control: "/tmp/x.sock",
			}},
		},
		{
			name: "defaults merge and per-vni override",
			src: `version = 1
[defaults]
local = "192.0.2.1"
dstport = 8472
remote = ["192.0.2.2"]
learning = false
ageing = 60
tos = "inherit"
ttl = 3
[[vni]]
id = 1
[[vni]]
id = 2
remote = []
group = "239.1.1.1"
dev = "ul0"
dstport = 4789
learning = true
tos = 8
ttl = "auto"
`,
			want: []VNI{
				want(1, func(v *VNI) {
					v.Local, v.Port, v.Remotes = netip.MustParseAddr("192.0.2.1"), 8472, addrs("192.0.2.2")
					v.Learning, v.LearningSet, v.Ageing, v.TOSInherit, v.TTL = false, true, time.Minute, true, 3
				}),
				want(2, func(v *VNI) {
					v.Local, v.Port, v.Remotes = netip.MustParseAddr("192.0.2.1"), 4789, []netip.Addr{}
					v.Group, v.Dev = netip.MustParseAddr("239.1.1.1"), "ul0"
					v.Learning, v.LearningSet, v.Ageing, v.TOS, v.TTL = true, true, time.Minute, 8, 0
				}),
			},
		},
		{
			name: "inline array of tables, mapped address read as IPv4",
			src:  `version = 1` + "\n" + `vni = [{id = 1, remote = ["::ffff:192.0.2.2"]}, {id = 2, tap = "t2"}]`,
			want: []VNI{
				want(1, func(v *VNI) { v.Remotes = addrs("192.0.2.2") }),
				want(2, func(v *VNI) { v.TAP = "t2" }),
			},
		},
		{
			name: "same id on another port, same tap name in another netns",
			src: `version = 1
[[vni]]
id = 40
[[vni]]
id = 40
dstport = 8472
tap = "vx40"
netns = "blue"
control = "/run/vxland-test/blue-vx40.sock"
`,
			want: []VNI{
				want(40, nil),
				want(40, func(v *VNI) { v.Port, v.Netns, v.Control = 8472, "blue", testRunDir+"/blue-vx40.sock" }),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, tt.src)
			if cfg.Version != Version || cfg.Source != "t.toml" {
				t.Errorf("Version, Source = %d, %q", cfg.Version, cfg.Source)
			}
			if !reflect.DeepEqual(cfg.VNIs, tt.want) {
				t.Errorf("VNIs:\n got %+v\nwant %+v", cfg.VNIs, tt.want)
			}
		})
	}
}

// Defaults must not share slices between entries.
func TestDefaultsNotShared(t *testing.T) {
	cfg := parse(t, `version = 1
[defaults]
remote = ["192.0.2.2"]
addr = ["203.0.113.1/24"]
mac = "02:00:00:00:00:01"
[[vni]]
id = 1
[[vni]]
id = 2
tap = "other"
`)
	a, b := &cfg.VNIs[0], &cfg.VNIs[1]
	a.Remotes[0] = netip.MustParseAddr("192.0.2.9")
	a.Addrs[0] = netip.MustParsePrefix("198.51.100.1/24")
	a.MAC[5] = 9
	if b.Remotes[0].String() != "192.0.2.2" || b.Addrs[0].String() != "203.0.113.1/24" || b.MAC[5] != 1 {
		t.Errorf("entries share slices: %+v", b)
	}
}

func TestEndpoints(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []EndpointKey
	}{
		{
			name: "same local and port: one endpoint",
			src: `version = 1
[defaults]
local = "192.0.2.1"
[[vni]]
id = 40
remote = ["192.0.2.2"]
[[vni]]
id = 41
remote = ["192.0.2.3"]
`,
			want: []EndpointKey{{Local: netip.MustParseAddr("192.0.2.1"), Port: 4789, Offload: true, VNIs: []int{0, 1}}},
		},
		{
			name: "different port: two endpoints",
			src: `version = 1
[defaults]
local = "192.0.2.1"
[[vni]]
id = 40
[[vni]]
id = 41
dstport = 8472
srcport = "1000-2000"
[[vni]]
id = 42
`,
			want: []EndpointKey{
				{Local: netip.MustParseAddr("192.0.2.1"), Port: 4789, Offload: true, VNIs: []int{0, 2}},
				{Local: netip.MustParseAddr("192.0.2.1"), Port: 8472, SrcPortMin: 1000, SrcPortMax: 2000, Offload: true, VNIs: []int{1}},
			},
		},
		{
			name: "families apart, unspecified local is no local",
			src: `version = 1
[[vni]]
id = 1
remote = ["2001:db8::2"]
[[vni]]
id = 2
local = "0.0.0.0"
[[vni]]
id = 3
local = "::"
[[vni]]
id = 4
`,
			want: []EndpointKey{
				{Port: 4789, V6: true, Offload: true, VNIs: []int{0, 2}},
				{Port: 4789, Offload: true, VNIs: []int{1, 3}},
			},
		},
		{
			name: "distinct explicit locals on one port, different devs",
			src: `version = 1
[[vni]]
id = 1
local = "192.0.2.1"
dev = "a"
[[vni]]
id = 2
local = "192.0.2.5"
dev = "b"
[[vni]]
id = 1
local = "192.0.2.5"
dev = "b"
tap = "vx1b"
`,
			want: []EndpointKey{
				{Local: netip.MustParseAddr("192.0.2.1"), Port: 4789, Dev: "a", Offload: true, VNIs: []int{0}},
				{Local: netip.MustParseAddr("192.0.2.5"), Port: 4789, Dev: "b", Offload: true, VNIs: []int{1, 2}},
			},
		},
		{
			name: "a group shares the socket of unicast VNIs with the same local and dev",
			src: `version = 1
[defaults]
local = "192.0.2.1"
dev = "ul0"
[[vni]]
id = 40
remote = ["192.0.2.2"]
[[vni]]
id = 41
group = "239.1.1.1"
`,
			want: []EndpointKey{{Local: netip.MustParseAddr("192.0.2.1"), Port: 4789, Dev: "ul0", Offload: true, VNIs: []int{0, 1}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parse(t, tt.src).Endpoints()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Endpoints:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestV6(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	g4, g6 := netip.MustParseAddr("239.1.1.1"), netip.MustParseAddr("ff05::1")
	tests := []struct {
		v    VNI
		want bool
	}{
		{VNI{}, false},
		{VNI{Local: v6}, true},
		{VNI{Local: netip.IPv6Unspecified()}, true},
		{VNI{Group: g6}, true},
		{VNI{Group: g4}, false},
		{VNI{Remotes: []netip.Addr{v6}}, true},
		{VNI{Remotes: []netip.Addr{v4}}, false},
	}
	for _, tt := range tests {
		if got := tt.v.V6(); got != tt.want {
			t.Errorf("%+v.V6() = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestNetnsPath(t *testing.T) {
	for ns, want := range map[string]string{
		"":                    "",
		"blue":                "/run/netns/blue",
		"/run/netns/blue":     "/run/netns/blue",
		"/proc/1//ns/net":     "/proc/1/ns/net",
		"/var/run/netns/blue": "/var/run/netns/blue",
	} {
		v := VNI{Netns: ns}
		if got := v.NetnsPath(); got != want {
			t.Errorf("NetnsPath(%q) = %q, want %q", ns, got, want)
		}
	}
}

// The flag parser's path: NewVNI, FillDefaults, Validate.
func TestBuildInCode(t *testing.T) {
	t.Setenv("VXLAND_RUNDIR", testRunDir)
	v := NewVNI(40)
	v.Remotes = addrs("192.0.2.2")
	v.TAP = "vxland0"
	c := &Config{Version: Version, VNIs: []VNI{v}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "vni 40 (entry 1): control: empty socket path") {
		t.Errorf("Validate before FillDefaults: %v", err)
	}
	c.FillDefaults()
	if got := c.VNIs[0].Control; got != testRunDir+"/vxland0.sock" {
		t.Errorf("Control = %q", got)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	before := reflect.ValueOf(*c).Interface()
	_ = c.Validate()
	if !reflect.DeepEqual(before, *c) {
		t.Error("Validate changed the Config")
	}
}

func TestLoad(t *testing.T) {
	t.Setenv("VXLAND_RUNDIR", testRunDir)
	path := t.TempDir() + "/vxland.toml"
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "read configuration") || !strings.Contains(err.Error(), path) {
		t.Errorf("Load of a missing file: %v", err)
	}
	writeFile(t, path, "version = 1\n[[vni]]\nid = 7\nttl = 0\n")
	_, err := Load(path)
	if err == nil || err.Error() != path+`: vni 7 (entry 1): ttl 0: must be 1-255, "auto" or "inherit"` {
		t.Errorf("Load: %v", err)
	}
	writeFile(t, path, "version = 1\n[[vni]]\nid = 7\n")
	cfg, err := Load(path)
	if err != nil || cfg.Source != path || len(cfg.VNIs) != 1 || cfg.VNIs[0].ID != 7 {
		t.Errorf("Load = %+v, %v", cfg, err)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTOSAndTTLSyntax: the file takes what the flags take, through the same
// parsers: tos = "0x10" as --tos 0x10.
func TestTOSAndTTLSyntax(t *testing.T) {
	for _, tc := range []struct {
		keys       string
		tos, ttl   uint8
		tosInherit bool
	}{
		{"tos = \"0x10\"\nttl = \"0x10\"", 0x10, 16, false},
		{"tos = 16\nttl = 9", 16, 9, false},
		{"tos = \"inherit\"\nttl = \"auto\"", 0, 0, true},
	} {
		cfg, err := Parse([]byte("version = 1\n[[vni]]\nid = 1\n"+tc.keys+"\n"), "t.toml")
		if err != nil {
			t.Errorf("%q: %v", tc.keys, err)
			continue
		}
		v := cfg.VNIs[0]
		if v.TOS != tc.tos || v.TTL != tc.ttl || v.TOSInherit != tc.tosInherit {
			t.Errorf("%q: tos %#x ttl %d inherit %v", tc.keys, v.TOS, v.TTL, v.TOSInherit)
		}
	}
}

func TestAllowRemote(t *testing.T) {
	cfg, err := Parse([]byte(`version = 1
[defaults]
allow_remote = ["192.0.2.7/24", "198.51.100.9", "::ffff:203.0.113.0/120"]
[[vni]]
id = 40
remote = ["192.0.2.2", "198.51.100.9"]
[[vni]]
id = 41
allow_remote = ["203.0.113.0/24", "198.51.100.9/32", "192.0.2.0/24"]
[[vni]]
id = 42
dstport = 8472
allow_remote = []
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.9/32"), netip.MustParsePrefix("203.0.113.0/24")}
	if got := cfg.VNIs[0].AllowRemote; !slices.Equal(got, want) {
		t.Errorf("allow_remote = %v, want %v (masked, bare address a /32, mapped form unmapped)", got, want)
	}
	eps := cfg.Endpoints()
	if len(eps) != 2 {
		t.Fatalf("%d endpoints, want 2", len(eps))
	}
	// VNIs 40 and 41 list the same prefixes in another order: one socket.
	if !slices.Equal(eps[0].AllowRemote, want) || len(eps[0].VNIs) != 2 {
		t.Errorf("endpoint 4789: allow_remote %v, VNIs %v", eps[0].AllowRemote, eps[0].VNIs)
	}
	if len(eps[1].AllowRemote) != 0 {
		t.Errorf("endpoint 8472 (allow_remote = []): allow_remote %v, want none", eps[1].AllowRemote)
	}
}
