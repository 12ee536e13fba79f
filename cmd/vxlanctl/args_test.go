package main

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/vxland/vxland/control"
	"github.com/vxland/vxland/fdb"
)

func mustMAC(s string) fdb.MAC {
	m, err := fdb.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func remote(ip string, port uint16, vni *uint32) *control.Remote {
	return &control.Remote{IP: netip.MustParseAddr(ip), Port: port, VNI: vni}
}

func vniPtr(v uint32) *uint32 { return &v }

func TestParseArgsGood(t *testing.T) {
	m := mustMAC("02:00:5e:10:00:01")
	tests := []struct {
		args string
		want command
	}{
		{"cluster show", command{op: opClusterShow}},
		{"cluster", command{op: opClusterShow}},
		{"cluster show dev vx0", command{op: opClusterShow, dev: "vx0"}},
		{"-j cluster dev vx0", command{op: opClusterShow, dev: "vx0", json: true}},
		{"bgp show", command{op: opBGPShow}},
		{"bgp", command{op: opBGPShow}},
		{"-j bgp show dev vx0", command{op: opBGPShow, dev: "vx0", json: true}},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2",
			command{op: opFDBAdd, dev: "vxl0", mac: m, dst: remote("192.0.2.2", 0, nil), state: fdb.Permanent}},
		// Keywords in any order, '-' separators, upper case, self, explicit state.
		{"fdb append 02-00-5E-10-00-01 self static vni 100 dst 2001:db8::2 port 8472 dev vxl0",
			command{op: opFDBAppend, dev: "vxl0", mac: m, dst: remote("2001:db8::2", 8472, vniPtr(100)), state: fdb.Static}},
		{"fdb replace to 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 dynamic vni 0",
			command{op: opFDBReplace, dev: "vxl0", mac: m, dst: remote("192.0.2.2", 0, vniPtr(0)), state: fdb.Dynamic}},
		// The MAC need not come first, as with bridge.
		{"fdb add dev vxl0 dst 192.0.2.2 02:00:5e:10:00:01 permanent permanent local",
			command{op: opFDBAdd, dev: "vxl0", mac: m, dst: remote("192.0.2.2", 0, nil), state: fdb.Permanent}},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 port 0x1292 vni 16777215 temp",
			command{op: opFDBAdd, dev: "vxl0", mac: m, dst: remote("192.0.2.2", 4754, vniPtr(16777215)), state: fdb.Static}},
		{"fdb del 02:00:5e:10:00:01 dev vxl0",
			command{op: opFDBDel, dev: "vxl0", mac: m, state: fdb.Permanent}},
		{"fdb delete 00:00:00:00:00:00 dev vxl0 dst 192.0.2.3 port 4790 static",
			command{op: opFDBDel, dev: "vxl0", dst: remote("192.0.2.3", 4790, nil), state: fdb.Static}},
		{"fdb show", command{op: opFDBShow}},
		{"fdb", command{op: opFDBShow}},
		{"fdb list dev vxl0", command{op: opFDBShow, dev: "vxl0"}},
		{"--socket /tmp/x.sock fdb show dev vxl0", command{op: opFDBShow, dev: "vxl0", socket: "/tmp/x.sock"}},
		{"fdb show --socket=/tmp/x.sock", command{op: opFDBShow, socket: "/tmp/x.sock"}},
		{"stats", command{op: opStats}},
		{"stats dev vxl0", command{op: opStats, dev: "vxl0"}},
		{"devs", command{op: opDevs}},
		{"-j devs dev vxl0", command{op: opDevs, dev: "vxl0", json: true}},
		{"help", command{op: opHelp}},
		{"-h", command{op: opHelp}},
		{"--help", command{op: opHelp}},
		{"fdb help", command{op: opHelp}},
		{"fdb add help", command{op: opHelp}},
		{"fdb add 02:00:5e:10:00:01 --help", command{op: opHelp}},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 router",
			command{op: opFDBAdd, dev: "vxl0", mac: m, dst: remote("192.0.2.2", 0, nil), state: fdb.Permanent, router: true}},
		{"neigh add 203.0.113.2 lladdr 02:00:5e:10:00:01 dev vxl0",
			command{op: opNeighAdd, dev: "vxl0", mac: m, ip: netip.MustParseAddr("203.0.113.2")}},
		{"neighbour replace dev vxl0 router lladdr 02:00:5e:10:00:01 nud permanent to 2001:db8::2",
			command{op: opNeighReplace, dev: "vxl0", mac: m, ip: netip.MustParseAddr("2001:db8::2"), router: true}},
		{"neigh del 203.0.113.2 dev vxl0", command{op: opNeighDel, dev: "vxl0", ip: netip.MustParseAddr("203.0.113.2")}},
		{"neigh", command{op: opNeighShow}},
		{"neigh show dev vxl0", command{op: opNeighShow, dev: "vxl0"}},
		{"-j monitor", command{op: opMonitor, json: true}},
		{"monitor all dev vxl0", command{op: opMonitor, dev: "vxl0"}},
	}
	for _, tt := range tests {
		got, err := parseArgs(strings.Fields(tt.args))
		if err != nil {
			t.Errorf("parseArgs(%q): %v", tt.args, err)
			continue
		}
		if !reflect.DeepEqual(*got, tt.want) {
			t.Errorf("parseArgs(%q)\n got %+v dst %+v\nwant %+v dst %+v", tt.args, *got, got.dst, tt.want, tt.want.dst)
		}
	}
}

func TestParseArgsBad(t *testing.T) {
	tests := []struct{ args, msg string }{
		{"", "missing command"},
		{"route show", `unknown command "route"`},
		{"fdb flush", `unknown fdb command "flush"`},
		{"--frobnicate fdb show", `unknown option "--frobnicate"`},
		{"--socket", "--socket needs a socket path"},
		{"--socket= fdb show", "--socket needs a socket path"},
		{"--socket a --socket b fdb show", "--socket given twice"},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dts 192.0.2.2", `fdb add: unknown keyword "dts"`},
		{"fdb add dev vxl0 dts 192.0.2.2 02:00:5e:10:00:01", `fdb add: unknown keyword "dts"`},
		{"fdb add 02:00:5e:10:00 dev vxl0 dst 192.0.2.2", `invalid MAC address "02:00:5e:10:00"`},
		{"fdb add 02:00:5e:10:00:zz dev vxl0 dst 192.0.2.2", `invalid MAC address "02:00:5e:10:00:zz"`},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 02:00:5e:10:00:02", `unknown keyword "02:00:5e:10:00:02"`},
		{"fdb add dev vxl0 dst 192.0.2.2", "missing MAC address"},
		{"fdb add 02:00:5e:10:00:01 dst 192.0.2.2", "missing dev TAP"},
		{"fdb add 02:00:5e:10:00:01 dev vxl0", "fdb add: missing dst IP"},
		{"fdb append 02:00:5e:10:00:01 dev vxl0 port 4789", "fdb append: missing dst IP"},
		{"fdb replace 02:00:5e:10:00:01 dev vxl0 vni 5", "fdb replace: missing dst IP"},
		{"fdb del 02:00:5e:10:00:01 dev vxl0 vni 5", "port and vni need dst"},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst", "dst needs a value"},
		{"fdb add 02:00:5e:10:00:01 dev", "dev needs a value"},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.300", `invalid dst "192.0.2.300"`},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst host.example", `invalid dst "host.example"`},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst fe80::1%eth0", `invalid dst "fe80::1%eth0"`},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 0.0.0.0", "not a remote address"},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 port 65536", `invalid port "65536"`},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 port -1", `invalid port "-1"`},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 port vxlan", `invalid port "vxlan"`},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 vni 16777216", `invalid vni "16777216" (want 0-16777215)`},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 dst 192.0.2.3", "dst given twice"},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dev vxl1 dst 192.0.2.2", "dev given twice"},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 static permanent", `conflicting states "static" and "permanent"`},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 master", "master is not supported"},
		{"fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 vlan 5", `"vlan" is not supported`},
		{"fdb add 02:00:5e:10:00:01 dev ../../etc dst 192.0.2.2", "invalid device name"},
		{"fdb add 02:00:5e:10:00:01 dev averyveryverylongname dst 192.0.2.2", "too long"},
		{"fdb show dev", "dev needs a device name"},
		{"fdb show br br0", `fdb show: unknown keyword "br"`},
		{"fdb show dev vxl0 dev vxl1", "dev given twice"},
		{"stats vxl0", `stats: unknown keyword "vxl0"`},
		{"stats dev a/b", "invalid device name"},
		{"fdb del 02:00:5e:10:00:01 dev vxl0 router", "router does not apply to a deletion"},
		{"neigh add 203.0.113.2 dev vxl0", "neigh add: missing lladdr MAC"},
		{"neigh add lladdr 02:00:5e:10:00:01 dev vxl0", "neigh add: missing address"},
		{"neigh add 203.0.113.2 lladdr 02:00:5e:10:00:01", "neigh add: missing dev TAP"},
		{"neigh add 203.0.113.2 lladdr 02:00:5e:10:00 dev vxl0", `invalid lladdr "02:00:5e:10:00"`},
		{"neigh add 203.0.113.300 lladdr 02:00:5e:10:00:01 dev vxl0", `invalid address "203.0.113.300"`},
		{"neigh add 203.0.113.2 203.0.113.3 lladdr 02:00:5e:10:00:01 dev vxl0", `unknown keyword "203.0.113.3"`},
		{"neigh add 203.0.113.2 lladdr 02:00:5e:10:00:01 dev vxl0 nud reachable", "always permanent"},
		{"neigh del 203.0.113.2 lladdr 02:00:5e:10:00:01 dev vxl0", "lladdr does not apply to a deletion"},
		{"neigh flush dev vxl0", `unknown neigh command "flush"`},
		{"monitor dev", "dev needs a device name"},
		{"monitor route", `monitor: unknown keyword "route"`},
	}
	for _, tt := range tests {
		cmd, err := parseArgs(strings.Fields(tt.args))
		if err == nil {
			t.Errorf("parseArgs(%q) = %+v, want an error", tt.args, cmd)
			continue
		}
		if !isUsage(err) {
			t.Errorf("parseArgs(%q): %v is not a usage error", tt.args, err)
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("parseArgs(%q) = %q, want it to contain %q", tt.args, err, tt.msg)
		}
	}
}
