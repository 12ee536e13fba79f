package control

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/stats"
)

func TestFormatFDB(t *testing.T) {
	d := DeviceFDB{Name: "vxl0", VNI: 42, Port: 4789, Entries: []fdb.Entry{
		{MAC: fdb.Zero, State: fdb.Permanent, Dests: []fdb.Dest{
			{IP: ip2, Port: 4789, VNI: 42},
			{IP: ip3, Port: 8472, VNI: 42},
			{IP: ip6, Port: 4789, VNI: 0},
		}},
		{MAC: macA, State: fdb.Static, Dests: []fdb.Dest{{IP: netip.MustParseAddr("198.51.100.7"), Port: 4790, VNI: 7}}},
		{MAC: macB, State: fdb.Dynamic, Dests: []fdb.Dest{{IP: ip2, Port: 4789, VNI: 42}}},
	}}
	var b strings.Builder
	if err := FormatFDB(&b, d, true); err != nil {
		t.Fatal(err)
	}
	want := `00:00:00:00:00:00 dev vxl0 dst 192.0.2.2 self permanent
00:00:00:00:00:00 dev vxl0 dst 192.0.2.3 port 8472 self permanent
00:00:00:00:00:00 dev vxl0 dst 2001:db8::2 vni 0 self permanent
02:00:5e:10:00:01 dev vxl0 dst 198.51.100.7 port 4790 vni 7 self static
02:00:5e:10:00:02 dev vxl0 dst 192.0.2.2 self
`
	if b.String() != want {
		t.Errorf("FormatFDB with dev:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := FormatFDB(&b, d, false); err != nil {
		t.Fatal(err)
	}
	if got := strings.SplitN(b.String(), "\n", 2)[0]; got != "00:00:00:00:00:00 dst 192.0.2.2 self permanent" {
		t.Errorf("FormatFDB without dev: first line %q", got)
	}
}

func TestFormatStats(t *testing.T) {
	var b strings.Builder
	err := FormatStats(&b, []DeviceStats{
		{Name: "vxl0", VNI: 42, Port: 4789, Stats: []stats.Value{{Name: "rx_packets", Value: 7}, {Name: "tx_dropped_no_fdb", Value: 12}}},
		{Name: "vxl1", VNI: 1, Port: 8472},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `dev vxl0 vni 42 port 4789
    rx_packets        7
    tx_dropped_no_fdb 12

dev vxl1 vni 1 port 8472
`
	if b.String() != want {
		t.Errorf("FormatStats:\n%q\nwant:\n%q", b.String(), want)
	}
}

func TestPaths(t *testing.T) {
	t.Setenv(RunDirEnv, "")
	if got := SocketPath("vxl0"); got != "/run/vxland/vxl0.sock" {
		t.Errorf("SocketPath = %s", got)
	}
	t.Setenv(RunDirEnv, "/tmp/x")
	if got := SocketPath("vxl0"); got != "/tmp/x/vxl0.sock" {
		t.Errorf("SocketPath with %s = %s", RunDirEnv, got)
	}
	for _, name := range []string{"vxl0", "tap-a.b_c", "fifteen-chars-x"} {
		if err := CheckDevName(name); err != nil {
			t.Errorf("CheckDevName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "a/b", "../etc", "a b", "a:1", "sixteen-chars-xx", "tab\tx"} {
		if err := CheckDevName(name); err == nil {
			t.Errorf("CheckDevName(%q) accepted", name)
		}
	}
}

func TestParseState(t *testing.T) {
	for in, want := range map[string]fdb.State{"permanent": fdb.Permanent, "local": fdb.Permanent, "static": fdb.Static, "temp": fdb.Static, "dynamic": fdb.Dynamic} {
		if got, err := ParseState(in); err != nil || got != want {
			t.Errorf("ParseState(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseState("stale"); err == nil {
		t.Error("ParseState(stale) accepted")
	}
}

func TestWriteJSON(t *testing.T) {
	var b strings.Builder
	d := DeviceFDB{Name: "vxl0", VNI: 42, Port: 4789, Entries: []fdb.Entry{
		{MAC: fdb.Zero, State: fdb.Permanent, Dests: []fdb.Dest{{IP: ip2, Port: 4789, VNI: 42}}},
		{MAC: macB, State: fdb.Dynamic, Dests: []fdb.Dest{{IP: ip6, Port: 8472, VNI: 7}}},
	}}
	if err := WriteFDBJSON(&b, []DeviceFDB{d}); err != nil {
		t.Fatal(err)
	}
	want := `[{"mac":"00:00:00:00:00:00","ifname":"vxl0","dst":"192.0.2.2","port":4789,"vni":42,"flags":["self"],"state":"permanent"},` +
		`{"mac":"02:00:5e:10:00:02","ifname":"vxl0","dst":"2001:db8::2","port":8472,"vni":7,"flags":["self"]}]` + "\n"
	if b.String() != want {
		t.Errorf("WriteFDBJSON:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteFDBJSON(&b, nil); err != nil || b.String() != "[]\n" {
		t.Errorf("empty table: %q, %v", b.String(), err)
	}
	b.Reset()
	err := WriteStatsJSON(&b, []DeviceStats{{Name: "vxl0", VNI: 42, Port: 4789, Stats: []stats.Value{{Name: "rx_frames", Value: 7}}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"dev":"vxl0","vni":42,"port":4789,"counters":{"rx_frames":7}}]` + "\n"; b.String() != want {
		t.Errorf("WriteStatsJSON: %s want %s", b.String(), want)
	}
	devs := []DeviceInfo{{Name: "vxl0", VNI: 42, Port: 4789}, {Name: "vxl1", VNI: 0, Port: 8472}}
	b.Reset()
	if err := WriteDevsJSON(&b, devs); err != nil {
		t.Fatal(err)
	}
	if want := `[{"ifname":"vxl0","vni":42,"port":4789},{"ifname":"vxl1","vni":0,"port":8472}]` + "\n"; b.String() != want {
		t.Errorf("WriteDevsJSON: %s want %s", b.String(), want)
	}
	b.Reset()
	if err := WriteDevsJSON(&b, nil); err != nil || b.String() != "[]\n" {
		t.Errorf("no devices: %q, %v", b.String(), err)
	}
	b.Reset()
	if err := FormatDevs(&b, devs); err != nil {
		t.Fatal(err)
	}
	if want := "dev vxl0 vni 42 port 4789\ndev vxl1 vni 0 port 8472\n"; b.String() != want {
		t.Errorf("FormatDevs: %q want %q", b.String(), want)
	}
}
