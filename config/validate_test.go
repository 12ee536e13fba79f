package config

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// errorsOf returns the *Error values in err (one, or several joined).
func errorsOf(t *testing.T, err error) []*Error {
	t.Helper()
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]*Error, 0, len(list))
	for _, e := range list {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("%T %v is not a *config.Error", e, e)
		}
		out = append(out, ce)
	}
	return out
}

// checkError asserts that err holds an *Error whose text starts with want
// and that names entry and key.
func checkError(t *testing.T, err error, want string, entry int, key string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	for _, e := range errorsOf(t, err) {
		if !strings.HasPrefix(e.Error(), want) {
			continue
		}
		if e.Entry != entry || e.Key != key {
			t.Errorf("%q: Entry, Key = %d, %q; want %d, %q", e.Error(), e.Entry, e.Key, entry, key)
		}
		if strings.Contains(e.Error(), "\n") {
			t.Errorf("%q: not one line", e.Error())
		}
		return
	}
	t.Errorf("error:\n%v\nhas no line starting with\n%s", err, want)
}

const v1 = "version = 1\n"

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		want  string // the start of one line of the error
		entry int
		key   string
	}{
		// The file.
		{"syntax", v1 + "[[vni]]\nid = 1\nx y\n", "t.toml: line 4: toml: expected", 0, ""},
		{"version missing", "[[vni]]\nid = 1\n", `t.toml: version: missing; add "version = 1" at the top of the file`, 0, "version"},
		{"version 2", "version = 2\n[[vni]]\nid = 1\n", "t.toml: version 2: not supported; this vxland reads version 1", 0, "version"},
		{"version string", "version = \"1\"\n[[vni]]\nid = 1\n", `t.toml: version: want the integer 1, got the string "1"`, 0, "version"},
		{"unknown top-level key", v1 + "vnis = 1\n[[vni]]\nid = 1\n", `t.toml: unknown key "vnis" at the top level (did you mean "vni"?)`, 0, "vnis"},
		{"vni key at top level", v1 + "dstport = 1\n[[vni]]\nid = 1\n", `t.toml: unknown key "dstport" at the top level (put it under [defaults] or a [[vni]] entry)`, 0, "dstport"},
		{"no vni", v1, "t.toml: no VNIs: add at least one [[vni]] entry", 0, "vni"},
		{"vni not an array", v1 + "[vni]\nid = 1\n", "t.toml: vni: write [[vni]] (an array of tables), not [vni]", 0, "vni"},
		{"vni wrong type", v1 + "vni = 3\n", "t.toml: vni: want [[vni]] tables, got the integer 3", 0, "vni"},
		{"defaults not a table", v1 + "defaults = 3\n[[vni]]\nid = 1\n", "t.toml: defaults: want a table ([defaults]), got the integer 3", 0, "defaults"},
		{"unknown key in defaults", v1 + "[defaults]\nfoo = 1\n[[vni]]\nid = 1\n", `t.toml: defaults: unknown key "foo"`, 0, "foo"},
		{"id in defaults", v1 + "[defaults]\nid = 1\n[[vni]]\nid = 1\n", "t.toml: defaults: id: cannot have a default; set it in each [[vni]]", 0, "id"},
		{"bad value in defaults", v1 + "[defaults]\nttl = 0\n[[vni]]\nid = 1\n", `t.toml: defaults: ttl 0: must be 1-255, "auto" or "inherit"`, 0, "ttl"},

		// Keys and types.
		{"unknown key", v1 + "[[vni]]\nid = 40\n[[vni]]\nid = 41\nremotes = []\n", `t.toml: vni 41 (entry 2): unknown key "remotes" (did you mean "remote"?)`, 2, "remotes"},
		{"unknown key alias", v1 + "[[vni]]\nid = 1\nport = 4789\n", `t.toml: vni 1 (entry 1): unknown key "port" (did you mean "dstport"?)`, 1, "port"},
		{"unknown sub-table", v1 + "[[vni]]\nid = 1\n[vni.extra]\nx = 1\n", `t.toml: vni 1 (entry 1): unknown key "extra"`, 1, "extra"},
		{"id missing", v1 + "[[vni]]\nid = 1\n[[vni]]\ntap = \"x\"\n", "t.toml: vni entry 2: id: missing; every [[vni]] needs one (0-16777215)", 2, "id"},
		{"id string", v1 + "[[vni]]\nid = \"40\"\n", `t.toml: vni entry 1: id: want an integer, got the string "40"`, 1, "id"},
		{"id too large", v1 + "[[vni]]\nid = 16777216\n", "t.toml: vni 16777216 (entry 1): id 16777216: must be a number from 0 to 16777215", 1, "id"},
		{"id negative", v1 + "[[vni]]\nid = -1\n", "t.toml: vni -1 (entry 1): id -1: must be a number from 0 to 16777215", 1, "id"},
		{"bool wrong type", v1 + "[[vni]]\nid = 1\nlearning = \"no\"\n", `t.toml: vni 1 (entry 1): learning: want true or false, got the string "no"`, 1, "learning"},
		{"string wrong type", v1 + "[[vni]]\nid = 1\ntap = 5\n", "t.toml: vni 1 (entry 1): tap: want a string like \"vx40\", got the integer 5", 1, "tap"},
		{"remote not an array", v1 + "[[vni]]\nid = 1\nremote = \"192.0.2.2\"\n", `t.toml: vni 1 (entry 1): remote: want an array of strings like ["192.0.2.2"], got the string "192.0.2.2"`, 1, "remote"},
		{"remote element type", v1 + "[[vni]]\nid = 1\nremote = [\"192.0.2.2\", 3]\n", "t.toml: vni 1 (entry 1): remote: element 2: want a string, got the integer 3", 1, "remote"},
		{"remote not an address", v1 + "[[vni]]\nid = 1\nremote = [\"192.0.2.x\"]\n", `t.toml: vni 1 (entry 1): remote "192.0.2.x": not an IP address`, 1, "remote"},
		{"group not an address", v1 + "[[vni]]\nid = 1\ngroup = \"g\"\n", `t.toml: vni 1 (entry 1): group "g": not an IP address`, 1, "group"},
		{"local not an address", v1 + "[[vni]]\nid = 1\nlocal = \"l\"\n", `t.toml: vni 1 (entry 1): local "l": not an IP address`, 1, "local"},
		{"dstport 0", v1 + "[[vni]]\nid = 1\ndstport = 0\n", "t.toml: vni 1 (entry 1): dstport 0: must be 1-65535", 1, "dstport"},
		{"dstport too large", v1 + "[[vni]]\nid = 1\ndstport = 65536\n", "t.toml: vni 1 (entry 1): dstport 65536: must be 1-65535", 1, "dstport"},
		{"srcport equal", v1 + "[[vni]]\nid = 1\nsrcport = \"5-5\"\n", `t.toml: vni 1 (entry 1): srcport "5-5": want MIN-MAX with 1 <= MIN < MAX <= 65535`, 1, "srcport"},
		{"srcport reversed", v1 + "[[vni]]\nid = 1\nsrcport = \"2000-1000\"\n", `t.toml: vni 1 (entry 1): srcport "2000-1000": want MIN-MAX`, 1, "srcport"},
		{"srcport zero", v1 + "[[vni]]\nid = 1\nsrcport = \"0-10\"\n", `t.toml: vni 1 (entry 1): srcport "0-10": want MIN-MAX`, 1, "srcport"},
		{"srcport too large", v1 + "[[vni]]\nid = 1\nsrcport = \"1-65536\"\n", `t.toml: vni 1 (entry 1): srcport "1-65536": want MIN-MAX`, 1, "srcport"},
		{"srcport no dash", v1 + "[[vni]]\nid = 1\nsrcport = \"1000\"\n", `t.toml: vni 1 (entry 1): srcport "1000": want MIN-MAX`, 1, "srcport"},
		{"srcport integer", v1 + "[[vni]]\nid = 1\nsrcport = 1000\n", `t.toml: vni 1 (entry 1): srcport: want a string like "49152-65535", got the integer 1000`, 1, "srcport"},
		{"ttl 0", v1 + "[[vni]]\nid = 1\nttl = 0\n", `t.toml: vni 1 (entry 1): ttl 0: must be 1-255, "auto" or "inherit"`, 1, "ttl"},
		{"ttl 256", v1 + "[[vni]]\nid = 1\nttl = 256\n", `t.toml: vni 1 (entry 1): ttl 256: must be 1-255, "auto" or "inherit"`, 1, "ttl"},
		{"ttl word", v1 + "[[vni]]\nid = 1\nttl = \"sometimes\"\n", `t.toml: vni 1 (entry 1): ttl "sometimes": must be 1-255, "auto" or "inherit"`, 1, "ttl"},
		{"tos 256", v1 + "[[vni]]\nid = 1\ntos = 256\n", `t.toml: vni 1 (entry 1): tos 256: must be 0-255 (0x.. allowed), or "inherit"`, 1, "tos"},
		{"tos negative", v1 + "[[vni]]\nid = 1\ntos = -1\n", `t.toml: vni 1 (entry 1): tos -1: must be 0-255 (0x.. allowed), or "inherit"`, 1, "tos"},
		{"tos word", v1 + "[[vni]]\nid = 1\ntos = \"high\"\n", `t.toml: vni 1 (entry 1): tos "high": must be 0-255 (0x.. allowed), or "inherit"`, 1, "tos"},
		{"mtu small", v1 + "[[vni]]\nid = 1\nmtu = 67\n", "t.toml: vni 1 (entry 1): mtu 67: must be 68-65485, or 0 for automatic", 1, "mtu"},
		{"mtu large", v1 + "[[vni]]\nid = 1\nmtu = 65486\n", "t.toml: vni 1 (entry 1): mtu 65486: must be 68-65485", 1, "mtu"},
		{"mtu negative", v1 + "[[vni]]\nid = 1\nmtu = -1\n", "t.toml: vni 1 (entry 1): mtu -1: must be 68-65485", 1, "mtu"},
		{"mac syntax", v1 + "[[vni]]\nid = 1\nmac = \"02:00\"\n", `t.toml: vni 1 (entry 1): mac "02:00": not an Ethernet address`, 1, "mac"},
		{"mac long", v1 + "[[vni]]\nid = 1\nmac = \"02:00:00:00:00:00:00:01\"\n", `t.toml: vni 1 (entry 1): mac "02:00:00:00:00:00:00:01": not an Ethernet address`, 1, "mac"},
		{"mac multicast", v1 + "[[vni]]\nid = 1\nmac = \"01:00:5e:00:00:01\"\n", "t.toml: vni 1 (entry 1): mac 01:00:5e:00:00:01: must be a unicast, non-zero address", 1, "mac"},
		{"mac zero", v1 + "[[vni]]\nid = 1\nmac = \"00:00:00:00:00:00\"\n", "t.toml: vni 1 (entry 1): mac 00:00:00:00:00:00: must be a unicast, non-zero address", 1, "mac"},
		{"addr without prefix", v1 + "[[vni]]\nid = 1\naddr = [\"203.0.113.1\"]\n", `t.toml: vni 1 (entry 1): addr "203.0.113.1": no prefix length (like 203.0.113.1/24)`, 1, "addr"},
		{"addr garbage", v1 + "[[vni]]\nid = 1\naddr = [\"x/24\"]\n", `t.toml: vni 1 (entry 1): addr "x/24": not an address with prefix length`, 1, "addr"},
		{"addr twice", v1 + "[[vni]]\nid = 1\naddr = [\"203.0.113.1/24\", \"203.0.113.1/24\"]\n", "t.toml: vni 1 (entry 1): addr 203.0.113.1/24: listed twice", 1, "addr"},
		{"ageing negative", v1 + "[[vni]]\nid = 1\nageing = -1\n", "t.toml: vni 1 (entry 1): ageing -1: must be >= 0 seconds (0: never expire)", 1, "ageing"},
		{"ageing float", v1 + "[[vni]]\nid = 1\nageing = 1.5\n", "t.toml: vni 1 (entry 1): ageing: want an integer like 300 (whole seconds), got the float 1.5", 1, "ageing"},
		{"ageing huge", v1 + "[[vni]]\nid = 1\nageing = 9223372036854775807\n", "t.toml: vni 1 (entry 1): ageing 9223372036854775807: too large", 1, "ageing"},
		{"maxaddress negative", v1 + "[[vni]]\nid = 1\nmaxaddress = -1\n", "t.toml: vni 1 (entry 1): maxaddress -1: must be 0 (no limit) to 2147483647", 1, "maxaddress"},

		// Rules of one entry.
		{"remote and group", v1 + "[[vni]]\nid = 39\n[[vni]]\nid = 40\nremote = [\"192.0.2.2\"]\ngroup = \"239.1.1.1\"\ndev = \"ul0\"\n", "t.toml: vni 40 (entry 2): remote and group exclude each other", 2, "group"},
		{"group not multicast", v1 + "[[vni]]\nid = 1\ngroup = \"192.0.2.9\"\ndev = \"ul0\"\n", "t.toml: vni 1 (entry 1): group 192.0.2.9: not a multicast address", 1, "group"},
		{"group without dev", v1 + "[[vni]]\nid = 1\ngroup = \"239.1.1.1\"\n", "t.toml: vni 1 (entry 1): group 239.1.1.1: needs dev", 1, "dev"},
		{"group zoned", v1 + "[[vni]]\nid = 1\ngroup = \"ff02::1%ul0\"\ndev = \"ul0\"\n", "t.toml: vni 1 (entry 1): group ff02::1%ul0: zoned addresses are not supported", 1, "group"},
		{"remote multicast", v1 + "[[vni]]\nid = 1\nremote = [\"239.1.1.1\"]\n", "t.toml: vni 1 (entry 1): remote 239.1.1.1: a multicast address; a multicast group goes in group", 1, "remote"},
		{"remote zero", v1 + "[[vni]]\nid = 1\nremote = [\"0.0.0.0\"]\n", "t.toml: vni 1 (entry 1): remote 0.0.0.0: must be a unicast, non-zero address", 1, "remote"},
		{"remote zero v6", v1 + "[[vni]]\nid = 1\nremote = [\"::\"]\n", "t.toml: vni 1 (entry 1): remote ::: must be a unicast, non-zero address", 1, "remote"},
		{"remote broadcast", v1 + "[[vni]]\nid = 1\nremote = [\"255.255.255.255\"]\n", "t.toml: vni 1 (entry 1): remote 255.255.255.255: the broadcast address is not a unicast address", 1, "remote"},
		{"remote zoned", v1 + "[[vni]]\nid = 1\nremote = [\"fe80::1%eth0\"]\n", "t.toml: vni 1 (entry 1): remote fe80::1%eth0: zoned addresses are not supported", 1, "remote"},
		{"remote twice", v1 + "[[vni]]\nid = 1\nremote = [\"192.0.2.2\", \"192.0.2.2\"]\n", "t.toml: vni 1 (entry 1): remote 192.0.2.2: listed twice", 1, "remote"},
		{"local multicast", v1 + "[[vni]]\nid = 1\nlocal = \"239.1.1.1\"\n", "t.toml: vni 1 (entry 1): local 239.1.1.1: must be a unicast address", 1, "local"},
		{"mixed families", v1 + "[[vni]]\nid = 1\nlocal = \"192.0.2.1\"\nremote = [\"2001:db8::2\"]\n", "t.toml: vni 1 (entry 1): local 192.0.2.1 and remote 2001:db8::2 mix IPv4 and IPv6", 1, "local"},
		{"mixed remotes", v1 + "[[vni]]\nid = 1\nremote = [\"192.0.2.2\", \"2001:db8::2\"]\n", "t.toml: vni 1 (entry 1): remote 192.0.2.2 and remote 2001:db8::2 mix IPv4 and IPv6", 1, "local"},
		{"mixed group", v1 + "[[vni]]\nid = 1\nlocal = \"2001:db8::1\"\ngroup = \"239.1.1.1\"\ndev = \"ul0\"\n", "t.toml: vni 1 (entry 1): local 2001:db8::1 and group 239.1.1.1 mix IPv4 and IPv6", 1, "local"},
		{"mixed via defaults", v1 + "[defaults]\nlocal = \"2001:db8::1\"\n[[vni]]\nid = 1\nremote = [\"192.0.2.2\"]\n", "t.toml: vni 1 (entry 1): local 2001:db8::1 and remote 192.0.2.2 mix IPv4 and IPv6", 1, "local"},
		{"tap empty", v1 + "[[vni]]\nid = 1\ntap = \" \"\n", `t.toml: vni 1 (entry 1): tap: invalid device name " "`, 1, "tap"},
		{"tap slash", v1 + "[[vni]]\nid = 1\ntap = \"a/b\"\n", `t.toml: vni 1 (entry 1): tap: invalid device name "a/b"`, 1, "tap"},
		{"tap too long", v1 + "[[vni]]\nid = 1\ntap = \"abcdefghijklmnop\"\n", `t.toml: vni 1 (entry 1): tap: device name "abcdefghijklmnop" too long`, 1, "tap"},
		{"dev invalid", v1 + "[[vni]]\nid = 1\ndev = \"a:b\"\n", `t.toml: vni 1 (entry 1): dev: invalid device name "a:b"`, 1, "dev"},
		{"master invalid", v1 + "[[vni]]\nid = 1\nmaster = \"..\"\n", `t.toml: vni 1 (entry 1): master: invalid device name ".."`, 1, "master"},
		{"master is the tap", v1 + "[[vni]]\nid = 1\nmaster = \"vx1\"\n", `t.toml: vni 1 (entry 1): master "vx1": the TAP cannot be its own master`, 1, "master"},
		{"netns relative path", v1 + "[[vni]]\nid = 1\nnetns = \"proc/1/ns/net\"\n", `t.toml: vni 1 (entry 1): netns "proc/1/ns/net": a path must be absolute`, 1, "netns"},
		{"netns dotdot", v1 + "[[vni]]\nid = 1\nnetns = \"..\"\n", `t.toml: vni 1 (entry 1): netns "..": not a namespace name`, 1, "netns"},
		{"netns too long", v1 + "[[vni]]\nid = 1\nnetns = \"" + strings.Repeat("n", 255) + "\"\n", `t.toml: vni 1 (entry 1): netns "nnnn`, 1, "netns"},
		{"netns NUL", v1 + "[[vni]]\nid = 1\nnetns = \"a\\u0000\"\n", `t.toml: vni 1 (entry 1): netns "a\x00": contains a NUL byte`, 1, "netns"},
		{"control too long", v1 + "[[vni]]\nid = 1\ncontrol = \"/" + strings.Repeat("c", 107) + "\"\n", `t.toml: vni 1 (entry 1): control "/ccc`, 1, "control"},

		// Rules between entries.
		{"same id, local and port", v1 + "[defaults]\nlocal = \"192.0.2.1\"\n[[vni]]\nid = 40\n[[vni]]\nid = 40\ntap = \"other\"\n", "t.toml: vni 40 (entry 2): id 40: already used by vni 40 (entry 1) with the same local (192.0.2.1) and dstport (4789)", 2, "id"},
		{"same id, no local", v1 + "[[vni]]\nid = 40\n[[vni]]\nid = 40\ntap = \"other\"\nlocal = \"0.0.0.0\"\n", "t.toml: vni 40 (entry 2): id 40: already used by vni 40 (entry 1) with the same local (any IPv4) and dstport (4789)", 2, "id"},
		{"same tap", v1 + "[[vni]]\nid = 40\ntap = \"x\"\n[[vni]]\nid = 41\ntap = \"x\"\ncontrol = \"/run/x.sock\"\n", `t.toml: vni 41 (entry 2): tap "x": already used by vni 40 (entry 1) in the same network namespace (the daemon's own); set tap`, 2, "tap"},
		{"same tap, netns by name and path", v1 + "[[vni]]\nid = 40\nnetns = \"blue\"\n[[vni]]\nid = 41\ntap = \"vx40\"\nnetns = \"/run/netns/blue\"\ncontrol = \"/run/x.sock\"\n", `t.toml: vni 41 (entry 2): tap "vx40": already used by vni 40 (entry 1) in the same network namespace (netns "/run/netns/blue")`, 2, "tap"},
		{"same default tap", v1 + "[[vni]]\nid = 40\n[[vni]]\nid = 40\ndstport = 8472\n", `t.toml: vni 40 (entry 2): tap "vx40": already used by vni 40 (entry 1)`, 2, "tap"},
		{"same control", v1 + "[[vni]]\nid = 40\n[[vni]]\nid = 41\ntap = \"vx40\"\nnetns = \"blue\"\n", "t.toml: vni 41 (entry 2): control \"" + testRunDir + "/vx40.sock\": socket already used by vni 40 (entry 1); set control", 2, "control"},
		{"srcport differs on one socket", v1 + "[[vni]]\nid = 40\nsrcport = \"1000-2000\"\n[[vni]]\nid = 41\n", `t.toml: vni 41 (entry 2): srcport (unset) differs from srcport "1000-2000" of vni 40 (entry 1), which shares its socket`, 2, "srcport"},
		{"offload differs on one socket", v1 + "[[vni]]\nid = 40\n[[vni]]\nid = 41\noffload = false\n", `t.toml: vni 41 (entry 2): offload = false differs from offload = true of vni 40 (entry 1), which shares its socket`, 2, "offload"},
		{"allow_remote differs on one socket", v1 + "[[vni]]\nid = 40\nallow_remote = [\"192.0.2.0/24\"]\n[[vni]]\nid = 41\nallow_remote = [\"192.0.2.0/25\"]\n", `t.toml: vni 41 (entry 2): allow_remote (192.0.2.0/25) differs from allow_remote (192.0.2.0/24) of vni 40 (entry 1), which shares its socket`, 2, "allow_remote"},
		{"allow_remote on one VNI of a socket", v1 + "[[vni]]\nid = 40\n[[vni]]\nid = 41\nallow_remote = [\"192.0.2.0/24\"]\n", `t.toml: vni 41 (entry 2): allow_remote (192.0.2.0/24) differs from allow_remote (any source) of vni 40 (entry 1)`, 2, "allow_remote"},
		{"allow_remote not a prefix", v1 + "[[vni]]\nid = 40\nallow_remote = [\"192.0.2.0/33\"]\n", `t.toml: vni 40 (entry 1): allow_remote "192.0.2.0/33": not an address or a prefix (like 192.0.2.0/24)`, 1, "allow_remote"},
		{"allow_remote of the other family", v1 + "[[vni]]\nid = 40\nlocal = \"192.0.2.1\"\nallow_remote = [\"2001:db8::/32\"]\n", `t.toml: vni 40 (entry 1): allow_remote 2001:db8::/32: the underlay is IPv4, so no datagram could come from there`, 1, "allow_remote"},
		{"remote outside allow_remote", v1 + "[[vni]]\nid = 40\nremote = [\"198.51.100.2\"]\nallow_remote = [\"192.0.2.0/24\"]\n", `t.toml: vni 40 (entry 1): remote 198.51.100.2 is outside allow_remote (192.0.2.0/24): its datagrams would be dropped; add it`, 1, "allow_remote"},
		{"socket clash: same local, other dev", v1 + "[defaults]\nlocal = \"192.0.2.1\"\n[[vni]]\nid = 40\n[[vni]]\nid = 41\ndev = \"ul0\"\n", "t.toml: vni 41 (entry 2): dstport 4789: needs its own socket (local 192.0.2.1, dev ul0) that clashes with the socket of vni 40 (entry 1) (local 192.0.2.1, no dev)", 2, "local"},
		{"socket clash: any and specific", v1 + "[[vni]]\nid = 40\n[[vni]]\nid = 41\nlocal = \"192.0.2.1\"\n", "t.toml: vni 41 (entry 2): dstport 4789: needs its own socket (local 192.0.2.1, no dev) that clashes with the socket of vni 40 (entry 1) (local any IPv4, no dev)", 2, "local"},
		{"socket clash: group binds any", v1 + "[[vni]]\nid = 40\nlocal = \"192.0.2.1\"\n[[vni]]\nid = 41\nlocal = \"192.0.2.5\"\ngroup = \"239.1.1.1\"\ndev = \"ul0\"\n", "t.toml: vni 41 (entry 2): dstport 4789: needs its own socket (local 192.0.2.5, dev ul0, bound to any address for its group) that clashes", 2, "local"},
		{"underlay unknown", v1 + "[daemon]\nunderlay = \"raw\"\n[[vni]]\nid = 40\n", `t.toml: daemon: underlay "raw": want "udp" or "tap"`, 0, "underlay"},
		{"underlay tap without local", v1 + "[daemon]\nunderlay = \"tap\"\n[[vni]]\nid = 40\n", "t.toml: vni 40 (entry 1): underlay tap: needs local, the outer source address vxland writes", 1, "local"},
		{"underlay tap over IPv6", v1 + "[daemon]\nunderlay = \"tap\"\n[[vni]]\nid = 40\nlocal = \"2001:db8::1\"\n", "t.toml: vni 40 (entry 1): underlay tap: local 2001:db8::1: IPv6 underlays are not supported (IPv4 only)", 1, "local"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("VXLAND_RUNDIR", testRunDir)
			cfg, err := Parse([]byte(tt.src), "t.toml")
			if cfg != nil {
				t.Errorf("Parse returned a Config with an error")
			}
			checkError(t, err, tt.want, tt.entry, tt.key)
		})
	}
}

// Rules only a Config built in code can break.
func TestValidateErrors(t *testing.T) {
	good := func(edit func(c *Config)) *Config {
		v := NewVNI(40)
		v.TAP, v.Control = "vx40", "/run/vxland/vx40.sock"
		c := &Config{Version: Version, VNIs: []VNI{v}, Source: "flags"}
		if edit != nil {
			edit(c)
		}
		return c
	}
	if err := good(nil).Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(c *Config)
		want  string
		entry int
		key   string
	}{
		{"version 0", func(c *Config) { c.Version = 0 }, `flags: version: missing; add "version = 1"`, 0, "version"},
		{"version 2", func(c *Config) { c.Version = 2 }, "flags: version 2: not supported", 0, "version"},
		{"no VNIs", func(c *Config) { c.VNIs = nil }, "flags: no VNIs", 0, "vni"},
		{"id", func(c *Config) { c.VNIs[0].ID = 1 << 24 }, "flags: vni 16777216 (entry 1): id 16777216: must be a number from 0 to 16777215", 1, "id"},
		{"tap empty", func(c *Config) { c.VNIs[0].TAP = "" }, "flags: vni 40 (entry 1): tap: empty device name", 1, "tap"},
		{"control empty", func(c *Config) { c.VNIs[0].Control = "" }, "flags: vni 40 (entry 1): control: empty socket path", 1, "control"},
		{"control NUL", func(c *Config) { c.VNIs[0].Control = "/a\x00" }, `flags: vni 40 (entry 1): control "/a\x00": contains a NUL byte`, 1, "control"},
		{"port 0", func(c *Config) { c.VNIs[0].Port = 0 }, "flags: vni 40 (entry 1): dstport 0: must be 1-65535", 1, "dstport"},
		{"srcport half", func(c *Config) { c.VNIs[0].SrcPortMax = 10 }, "flags: vni 40 (entry 1): srcport 0-10: want MIN-MAX", 1, "srcport"},
		{"tos and inherit", func(c *Config) { c.VNIs[0].TOS, c.VNIs[0].TOSInherit = 16, true }, `flags: vni 40 (entry 1): tos: a value (16) and "inherit" exclude each other`, 1, "tos"},
		{"mac length", func(c *Config) { c.VNIs[0].MAC = net.HardwareAddr{2, 0, 0, 0, 0, 0, 0, 1} }, "flags: vni 40 (entry 1): mac 02:00:00:00:00:00:00:01: not a 6-byte Ethernet address", 1, "mac"},
		{"remote mapped", func(c *Config) { c.VNIs[0].Remotes = addrs("::ffff:192.0.2.2") }, "flags: vni 40 (entry 1): remote ::ffff:192.0.2.2: an IPv4-mapped address; write 192.0.2.2", 1, "remote"},
		{"remote invalid", func(c *Config) { c.VNIs[0].Remotes = []netip.Addr{{}} }, "flags: vni 40 (entry 1): remote: invalid (zero) address", 1, "remote"},
		{"group mapped", func(c *Config) {
			c.VNIs[0].Group, c.VNIs[0].Dev = netip.MustParseAddr("::ffff:239.1.1.1"), "ul0"
		}, "flags: vni 40 (entry 1): group ::ffff:239.1.1.1: an IPv4-mapped address; write 239.1.1.1", 1, "group"},
		{"addr invalid", func(c *Config) { c.VNIs[0].Addrs = []netip.Prefix{{}} }, "flags: vni 40 (entry 1): addr: invalid prefix", 1, "addr"},
		{"ageing", func(c *Config) { c.VNIs[0].Ageing = -time.Second }, "flags: vni 40 (entry 1): ageing -1s: must be >= 0 (0: never expire)", 1, "ageing"},
		{"maxaddress", func(c *Config) { c.VNIs[0].MaxAddress = -1 }, "flags: vni 40 (entry 1): maxaddress -1: must be >= 0 (0: no limit)", 1, "maxaddress"},
		{"mtu", func(c *Config) { c.VNIs[0].MTU = 1 << 20 }, "flags: vni 40 (entry 1): mtu 1048576: must be 68-65485", 1, "mtu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkError(t, good(tt.edit).Validate(), tt.want, tt.entry, tt.key)
		})
	}
}

// All problems are reported, entry by entry, one per line.
func TestAllErrorsReported(t *testing.T) {
	t.Setenv("VXLAND_RUNDIR", testRunDir)
	src := v1 + `[[vni]]
id = 40
dstport = 5
[[vni]]
id = 41
local = "192.0.2.1"
ttl = 0
mtu = 1
[[vni]]
id = 42
remote = ["239.1.1.1"]
mac = "01:00:00:00:00:01"
`
	_, err := Parse([]byte(src), "t.toml")
	if err == nil {
		t.Fatal("no error")
	}
	// ttl is a type-level problem: reported first, alone.
	if got, want := err.Error(), `t.toml: vni 41 (entry 2): ttl 0: must be 1-255, "auto" or "inherit"`; got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	src = strings.Replace(src, "ttl = 0\n", "", 1)
	_, err = Parse([]byte(src), "t.toml")
	want := strings.Join([]string{
		"t.toml: vni 41 (entry 2): mtu 1: must be 68-65485, or 0 for automatic",
		"t.toml: vni 42 (entry 3): remote 239.1.1.1: a multicast address; a multicast group goes in group",
		"t.toml: vni 42 (entry 3): mac 01:00:00:00:00:01: must be a unicast, non-zero address",
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestUnknownKeySuggestions(t *testing.T) {
	for key, hint := range map[string]string{
		"remotes": "remote", "aging": "ageing", "dstprot": "dstport", "vni": "id",
		"learn": "learning", "namespace": "netns", "addrs": "addr", "Remote": "remote",
	} {
		err := unknownKey(key, Keys(), "")
		if want := `(did you mean "` + hint + `"?)`; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %s", key, err, want)
		}
	}
	if err := unknownKey("zzzzzz", Keys(), ""); strings.Contains(err.Error(), "did you mean") {
		t.Errorf("zzzzzz: %v", err)
	}
}

func TestTTLInherit(t *testing.T) {
	cfg, err := Parse([]byte("version = 1\n[[vni]]\nid = 1\nttl = \"inherit\"\n[[vni]]\nid = 2\nttl = 9\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if v := cfg.VNIs[0]; !v.TTLInherit || v.TTL != 0 {
		t.Errorf("ttl = \"inherit\": %+v", v)
	}
	if v := cfg.VNIs[1]; v.TTLInherit || v.TTL != 9 {
		t.Errorf("ttl = 9: %+v", v)
	}
}
