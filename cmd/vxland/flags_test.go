package main

import (
	"errors"
	"fmt"
	"github.com/vxland/vxland/config"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlagsGood(t *testing.T) {
	t.Setenv("VXLAND_RUNDIR", "/run/vxland")
	cfg, err := parseFlags([]string{
		"--vni", "40", "--remote", "192.0.2.2", "--remote", "192.0.2.3", "--dstport", "8472",
		"--srcport", "49152-49408", "--ttl", "9", "--tos", "inherit", "--learning=false",
		"--ageing", "0", "--maxaddress", "100", "--tap", "vx40", "--mtu", "1400",
		"--mac", "02:00:00:00:00:01", "--addr", "203.0.113.1/24", "--up", "--offload=false",
	}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.VNIs) != 1 {
		t.Fatalf("%d VNIs, want 1", len(cfg.VNIs))
	}
	v := cfg.VNIs[0]
	want := []netip.Addr{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")}
	if v.ID != 40 || len(v.Remotes) != 2 || v.Remotes[0] != want[0] || v.Remotes[1] != want[1] {
		t.Errorf("vni/remotes: %+v", v)
	}
	if v.Port != 8472 || v.SrcPortMin != 49152 || v.SrcPortMax != 49408 || v.TTL != 9 || !v.TOSInherit {
		t.Errorf("ports/ttl/tos: %+v", v)
	}
	if v.Learning || v.Ageing != 0 || v.MaxAddress != 100 || v.Offload || !v.Up || v.MTU != 1400 {
		t.Errorf("learning/ageing/maxaddress/offload/up/mtu: %+v", v)
	}
	if v.TAP != "vx40" || v.MAC.String() != "02:00:00:00:00:01" || len(v.Addrs) != 1 {
		t.Errorf("tap/mac/addrs: %+v", v)
	}
	if v.Control != "/run/vxland/vx40.sock" {
		t.Errorf("control socket %q, want the TAP's default", v.Control)
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	cfg, err := parseFlags([]string{"--id", "7"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	v := cfg.VNIs[0]
	if v.ID != 7 || v.Port != 4789 || !v.Learning || v.Ageing != 300*time.Second || !v.Offload || v.TAP != "vxland0" || v.Up {
		t.Errorf("defaults: %+v", v)
	}
}

func TestParseFlagsBad(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--vni is required"},
		{[]string{"--vni", "16777216"}, "must be a number from 0 to 16777215"},
		{[]string{"--vni", "x"}, `--vni "x": want an integer`},
		{[]string{"--vni", "1", "--remote", "192.0.2"}, `--remote "192.0.2": not an IP address`},
		{[]string{"--vni", "1", "--remote", "239.1.1.1"}, "--remote 239.1.1.1: a multicast address; a multicast group goes in group"},
		{[]string{"--vni", "1", "--group", "192.0.2.1", "--dev", "lo"}, "--group 192.0.2.1: not a multicast address"},
		{[]string{"--vni", "1", "--group", "239.1.1.1", "--remote", "192.0.2.1", "--dev", "lo"}, "remote and group exclude each other"},
		{[]string{"--vni", "1", "--group", "239.1.1.1"}, "needs dev"},
		{[]string{"--vni", "1", "--remote", "192.0.2.1", "--local", "2001:db8::1"}, ""},
		{[]string{"--vni", "1", "--dstport", "0"}, "--dstport 0: must be 1-65535"},
		{[]string{"--vni", "1", "--srcport", "5000-4000"}, "want MIN-MAX"},
		{[]string{"--vni", "1", "--ttl", "300"}, "must be 1-255"},
		{[]string{"--vni", "1", "--ttl", "always"}, `"auto" or "inherit"`},
		{[]string{"--vni", "1", "--tos", "copy"}, `or "inherit"`},
		{[]string{"--vni", "1", "--mac", "zz"}, `--mac "zz": not an Ethernet address`},
		{[]string{"--vni", "1", "--mac", "01:00:00:00:00:01"}, "unicast"},
		{[]string{"--vni", "1", "--addr", "203.0.113.1"}, "prefix length"},
		{[]string{"--vni", "1", "--ageing", "-1"}, "must be >= 0"},
		{[]string{"--vni", "1", "--tap", "this-name-is-too-long"}, ""},
		{[]string{"--vni", "1", "--mtu", "20"}, ""},
		{[]string{"--vni", "1", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--vni", "1", "extra"}, `unexpected argument "extra"`},
		{[]string{"--config", "x.toml", "--vni", "1"}, "--config declares the VNIs; drop --vni"},
	} {
		_, err := parseFlags(tc.args, io.Discard)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", tc.args, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %q, want one line containing %q", tc.args, err, tc.want)
		}
	}
}

func TestParseFlagsHelp(t *testing.T) {
	var out strings.Builder
	cfg, err := parseFlags([]string{"--help"}, &out)
	if cfg != nil || err != nil || !strings.Contains(out.String(), "--remote IP") {
		t.Fatalf("--help: cfg %v err %v output %q", cfg, err, out.String())
	}
	// Every key's flag is listed, under a heading, in lines that fit a terminal.
	for _, k := range config.KeyTable {
		if k.Flag != "" && !strings.Contains(out.String(), "\n  --"+k.Flag) {
			t.Errorf("--help does not list --%s", k.Flag)
		}
		if k.Flag != "" && !slices.Contains(config.HelpGroups, k.Group) {
			t.Errorf("--%s: help group %q is not a heading", k.Flag, k.Group)
		}
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if len(line) > 80 {
			t.Errorf("--help line longer than 80 columns: %q", line)
		}
	}
}

func TestParseFlagsConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.toml")
	data := "version = 1\n[[vni]]\nid = 5\nremote = [\"192.0.2.5\"]\n[[vni]]\nid = 6\nremote = [\"192.0.2.6\"]\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseFlags([]string{"--config", path}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.VNIs) != 2 || cfg.VNIs[0].TAP != "vx5" || len(cfg.Endpoints()) != 1 {
		t.Errorf("config file: %+v endpoints %+v", cfg.VNIs, cfg.Endpoints())
	}
	os.WriteFile(path, []byte("version = 1\n[[vni]]\nid = 5\nremotes = [\"192.0.2.5\"]\n"), 0o644)
	if _, err := parseFlags([]string{"--config", path}, io.Discard); err == nil || !strings.Contains(err.Error(), `did you mean "remote"`) {
		t.Errorf("misspelt key: %v", err)
	}
}

func TestStableMAC(t *testing.T) {
	base := macIdentity{Machine: "0123", TAP: "vx0", VNI: 40}
	a, b := stableMAC(base), stableMAC(base)
	if a.String() != b.String() {
		t.Errorf("not stable: %s %s", a, b)
	}
	if a[0]&1 != 0 || a[0]&2 == 0 {
		t.Errorf("%s is not a locally administered unicast address", a)
	}
	// Each field tells two daemons of one host apart.
	for name, change := range map[string]func(*macIdentity){
		"vni":       func(m *macIdentity) { m.VNI = 41 },
		"tap":       func(m *macIdentity) { m.TAP = "vx1" },
		"machine":   func(m *macIdentity) { m.Machine = "4567" },
		"netns":     func(m *macIdentity) { m.Netns = "h1" },
		"tap netns": func(m *macIdentity) { m.TAPNetns = "blue" },
		"local":     func(m *macIdentity) { m.Local = "192.0.2.1" },
	} {
		other := base
		change(&other)
		if c := stableMAC(other); c.String() == a.String() {
			t.Errorf("a different %s gives the same %s", name, a)
		}
	}
	h1, h2 := base, base
	h1.Netns, h2.Netns = "h1", "h2"
	if stableMAC(h1).String() == stableMAC(h2).String() {
		t.Error("daemons in namespaces h1 and h2 share a MAC")
	}
}

func TestParseFlagsVersion(t *testing.T) {
	var out strings.Builder
	cfg, err := parseFlags([]string{"--version"}, &out)
	if cfg != nil || err != nil || !strings.HasPrefix(out.String(), "vxland ") {
		t.Fatalf("--version: cfg %v err %v output %q", cfg, err, out.String())
	}
}

func TestParseFlagsTTLInherit(t *testing.T) {
	cfg, err := parseFlags([]string{"--vni", "1", "--ttl", "inherit"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if v := cfg.VNIs[0]; !v.TTLInherit || v.TTL != 0 {
		t.Errorf("--ttl inherit: %+v", v)
	}
}

// Every configuration key with a flag reads a value on the command line as
// it does in a file: one parser, one message (the flag spelt with dashes).
func TestFlagsAndFileAgree(t *testing.T) {
	t.Setenv("VXLAND_RUNDIR", "/run/vxland-test")
	good := map[string]string{
		"id": "7", "remote": "192.0.2.2", "group": "239.1.1.1", "local": "192.0.2.1",
		"dev": "lo", "dstport": "8472", "srcport": "49152-49408", "ttl": "0x10", "tos": "inherit",
		"learning": "false", "ageing": "0", "maxaddress": "64", "learn_rate": "7", "tap": "vxt9", "netns": "blue",
		"mtu": "1400", "mac": "02:00:00:00:00:09", "addr": "203.0.113.9/24", "master": "br9",
		"up": "true", "control": "/run/vxland-test/x.sock", "offload": "false", "metrics": "127.0.0.1:9477", "queues": "2", "underlay": "tap",
		"endpoints": "http://192.0.2.254:2379", "prefix": "/vxt", "cafile": "ca.pem", "certfile": "c.pem",
		"keyfile": "k.pem", "lease_ttl": "5", "members_only": "false", "enable": "true", "public_ip": "192.0.2.1", "iface": "eth9", "subnet_file": "/tmp/s.env",
		"allow_remote": "198.51.100.0/24",
		"proxy":        "true", "l2miss": "true", "l3miss": "true", "rsc": "true",
		"asn": "4200000001", "router_id": "192.0.2.9", "neighbors": "192.0.2.2:65002", "port": "1179", "hold_time": "30",
	}
	bad := map[string]string{
		"id": "16777216", "remote": "192.0.2", "local": "x", "dstport": "70000", "srcport": "9-3",
		"ttl": "0", "tos": "256", "ageing": "-1", "maxaddress": "-1", "learn_rate": "-5", "mtu": "-1", "mac": "zz",
		"addr": "203.0.113.9", "endpoints": "192.0.2.254:2379", "prefix": "vxt", "public_ip": "2001:db8::1",
		"allow_remote": "192.0.2.0/33", "underlay": "udp6",
		"asn": "0", "router_id": "2001:db8::1", "neighbors": "192.0.2.2:x", "port": "0", "hold_time": "2",
	}
	for _, k := range config.KeyTable {
		if k.Flag == "" {
			continue
		}
		val, ok := good[k.Name]
		if !ok {
			t.Errorf("key %q: no sample value in this test", k.Name)
			continue
		}
		literal := func(v string) string {
			switch k.Kind {
			case config.KindInt, config.KindBool:
				return v
			case config.KindStrings:
				return fmt.Sprintf("[%q]", v)
			}
			return fmt.Sprintf("%q", v)
		}
		// The smallest valid configuration around the key, both ways.
		var file strings.Builder
		args := []string{}
		flannelKey := k.Section == config.SectionFlannel
		if k.Section == config.SectionVNI {
			file.WriteString("[[vni]]\n")
			if k.Name != "id" {
				file.WriteString("id = 1\n")
				args = append(args, "--vni", "1")
			}
			if k.Name != "tap" {
				file.WriteString("tap = \"vxland0\"\n")
			}
			if k.Name == "group" {
				file.WriteString("dev = \"lo\"\n")
				args = append(args, "--dev", "lo")
			}
		}
		if k.Section != config.SectionVNI {
			fmt.Fprintf(&file, "[%s]\n", k.Section)
		}
		fmt.Fprintf(&file, "%s = %s\n", k.Name, literal(val))
		if flannelKey {
			if k.Name != "enable" {
				file.WriteString("enable = true\n")
				args = append(args, "--flannel")
			}
			file.WriteString("[etcd]\nendpoints = [\"http://192.0.2.254:2379\"]\n")
			args = append(args, "--etcd-endpoints", "http://192.0.2.254:2379")
		} else if k.Section != config.SectionVNI {
			file.WriteString("[[vni]]\nid = 1\ntap = \"vxland0\"\n")
			args = append(args, "--vni", "1")
			if k.Section == config.SectionEtcd || k.Section == config.SectionCluster || k.Section == config.SectionBGP || k.Name == "underlay" {
				// With etcd endpoints the VNI joins the cluster, with an
				// AS it is served by EVPN, through an underlay TAP it
				// writes its outer source: it needs its underlay address.
				file.WriteString("local = \"192.0.2.1\"\n")
				args = append(args, "--local", "192.0.2.1")
			}
		}
		if k.Section == config.SectionEtcd && k.Name != "endpoints" {
			file.WriteString("[etcd]\nendpoints = [\"http://192.0.2.254:2379\"]\n")
			args = append(args, "--etcd-endpoints", "http://192.0.2.254:2379")
		}
		if k.Section == config.SectionBGP && k.Name != "asn" {
			file.WriteString("[bgp]\nasn = 65001\n")
			args = append(args, "--bgp-asn", "65001")
		}
		if k.Name == "certfile" {
			file.WriteString("[etcd]\nkeyfile = \"k.pem\"\n")
		}
		if k.Name == "keyfile" {
			file.WriteString("[etcd]\ncertfile = \"c.pem\"\n")
		}
		if k.Kind == config.KindBool {
			args = append(args, "--"+k.Flag+"="+val)
		} else {
			args = append(args, "--"+k.Flag, val)
		}
		if k.Name == "certfile" {
			args = append(args, "--etcd-keyfile", "k.pem")
		}
		if k.Name == "keyfile" {
			args = append(args, "--etcd-certfile", "c.pem")
		}
		table := file.String()
		fromFlags, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Errorf("%v: %v", args, err)
			continue
		}
		fromFile, err := config.Parse([]byte("version = 1\n"+mergeTables(table)), "t.toml")
		if err != nil {
			t.Errorf("key %q: %v", k.Name, err)
			continue
		}
		fromFile.Source = ""
		if !reflect.DeepEqual(fromFlags, fromFile) {
			t.Errorf("key %q = %s:\nflags %+v\n file %+v", k.Name, val, fromFlags, fromFile)
		}

		badVal, ok := bad[k.Name]
		if !ok {
			continue
		}
		_, flagErr := parseFlags([]string{"--vni", "1", "--" + k.Flag, badVal}, io.Discard)
		if k.Name == "id" {
			_, flagErr = parseFlags([]string{"--vni", badVal}, io.Discard)
		}
		lit := literal(badVal)
		if k.Kind == config.KindNumberOrString {
			lit = badVal
		}
		where, src := "vni 1 (entry 1)", "[[vni]]\nid = 1\n"+k.Name+" = "+lit+"\n"
		switch {
		case k.Name == "id":
			where, src = "vni "+badVal+" (entry 1)", "[[vni]]\nid = "+badVal+"\n"
		case k.Section != config.SectionVNI:
			where, src = string(k.Section), fmt.Sprintf("[%s]\n%s = %s\n[[vni]]\nid = 1\n", k.Section, k.Name, lit)
		}
		_, fileErr := config.Parse([]byte("version = 1\n"+src), "t.toml")
		if flagErr == nil || fileErr == nil {
			t.Errorf("key %q = %s accepted: flags %v, file %v", k.Name, badVal, flagErr, fileErr)
			continue
		}
		_, fileMsg, _ := strings.Cut(fileErr.Error(), where+": ")
		if want := strings.Replace(fileMsg, k.Name, "--"+k.Flag, 1); flagErr.Error() != want {
			t.Errorf("key %q = %s: flag says %q, file says %q", k.Name, badVal, flagErr, fileMsg)
		}
	}
}

// mergeTables joins the repeated [table] headers of a test's file (TOML
// allows each table once): the lines under a repeated header move up to
// its first occurrence.
func mergeTables(src string) string {
	var order []string
	body := map[string][]string{}
	cur := ""
	for _, line := range strings.Split(strings.TrimSpace(src), "\n") {
		if strings.HasPrefix(line, "[") && !strings.HasPrefix(line, "[[") {
			cur = line
			if _, ok := body[cur]; !ok {
				order = append(order, cur)
				body[cur] = nil
			}
			continue
		}
		if strings.HasPrefix(line, "[[") {
			cur = line
			order = append(order, cur)
			body[cur] = nil
			continue
		}
		body[cur] = append(body[cur], line)
	}
	var b strings.Builder
	b.WriteString(strings.Join(body[""], "\n") + "\n")
	for _, h := range order {
		b.WriteString(h + "\n" + strings.Join(body[h], "\n") + "\n")
	}
	return b.String()
}
