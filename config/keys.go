package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vxland/vxland/encap"
)

// Kind is the type of a key's value, in a file and on the command line.
type Kind uint8

// The kinds of values.
const (
	// KindString is a TOML string; a flag's argument as written.
	KindString Kind = iota
	// KindInt is a TOML integer; a flag's argument in decimal (0x.. and
	// 0o.. allowed).
	KindInt
	// KindBool is a TOML boolean; a flag given alone (--up) or as
	// --up=false.
	KindBool
	// KindStrings is a TOML array of strings; a flag given once per element.
	KindStrings
	// KindNumberOrString is a TOML integer or string (ttl = 16,
	// ttl = "inherit"); a flag's argument as written.
	KindNumberOrString
)

// Section names the table a key belongs in.
type Section string

// The sections of a configuration file.
const (
	// SectionVNI keys go in [[vni]] entries and [defaults].
	SectionVNI Section = "vni"
	// SectionDaemon keys go in the [daemon] table.
	SectionDaemon Section = "daemon"
	// SectionEtcd keys go in the [etcd] table.
	SectionEtcd Section = "etcd"
	// SectionFlannel keys go in the [flannel] table.
	SectionFlannel Section = "flannel"
	// SectionCluster keys go in the [cluster] table.
	SectionCluster Section = "cluster"
)

// Sections are the tables other than [[vni]] and [defaults], in the order
// of the documentation.
var Sections = []Section{SectionDaemon, SectionEtcd, SectionCluster, SectionFlannel, SectionBGP}

// Key describes one configuration setting, once: its name in a file and on
// the command line, its help and documentation, its default and its parser.
// The flag parser of cmd/vxland, the TOML decoder, `vxland --help` and the
// key tables of docs/config.md all come from KeyTable (a test keeps the
// document in step).
type Key struct {
	// Name is the TOML key.
	Name string
	// Section is the table the key goes in.
	Section Section
	// Kind is the value's type.
	Kind Kind
	// Flag is the command-line flag, without dashes; "" when there is none.
	Flag string
	// FlagAliases are other spellings of Flag (ip-link's "id" for "vni").
	FlagAliases []string
	// Arg names the flag's argument in --help ("IP", "N"); "" for booleans.
	Arg string
	// Group is the --help heading the flag is listed under.
	Group string
	// Help is the flag's one-sentence description in --help.
	Help string
	// Type is the value's type as docs/config.md states it.
	Type string
	// Doc is the key's meaning as docs/config.md states it.
	Doc string
	// Default is the value a file gets when it does not set the key, as
	// docs/config.md states it.
	Default string
	// FlagDefault is the flag's default where it differs from the file's
	// ("" otherwise); the flag parser applies it.
	FlagDefault string
	// Example is a value shown in messages about the wrong type.
	Example string

	set   func(t Target, in input) error // sets one value (one element of KindStrings)
	reset func(t Target)                 // KindStrings: empties the list a file's array replaces
}

// Target is what a key sets: the VNI being built (for SectionVNI keys) and
// the daemon settings (for SectionDaemon keys).
type Target struct {
	VNI     *VNI
	Daemon  *Daemon
	Etcd    *Etcd
	Flannel *Flannel
	Cluster *Cluster
	BGP     *BGP
}

// input is one value as given, for a key's parser.
type input struct {
	name  string // the key as written: "ttl" in a file, "--ttl" on the command line
	s     string // the value (KindString, KindStrings element, KindNumberOrString)
	n     int64  // the value (KindInt, KindNumberOrString given as an integer)
	b     bool   // the value (KindBool)
	isInt bool   // n holds the value
}

// String is the key and its value, for messages: `ttl 300`, `--remote "x"`.
func (in input) String() string {
	if in.isInt {
		return fmt.Sprintf("%s %d", in.name, in.n)
	}
	return fmt.Sprintf("%s %q", in.name, in.s)
}

// ParseFlag sets t from a command-line argument s given to the key's flag,
// spelt flag ("--remote"). A KindStrings key appends one element; a
// KindBool key reads "true" or "false".
func (k *Key) ParseFlag(t Target, flag, s string) error {
	in := input{name: flag, s: s}
	switch k.Kind {
	case KindNumberOrString: // a decimal number reads as a file's integer
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			in.n, in.isInt = n, true
		}
	case KindInt:
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			return fmt.Errorf("%s %q: want an integer", flag, s)
		}
		in.n, in.isInt = n, true
	case KindBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%s %q: want true or false", flag, s)
		}
		in.b = b
	}
	return k.set(t, in)
}

// Replace sets t from the arguments given to the key's flag on the command
// line, spelt flag, replacing what t held: a flag given with --config
// overrides the file's value (a list as a whole).
func (k *Key) Replace(t Target, flag string, values []string) error {
	if k.reset != nil {
		k.reset(t)
	}
	for _, s := range values {
		if err := k.ParseFlag(t, flag, s); err != nil {
			return err
		}
	}
	return nil
}

// decode sets t from a TOML value, checking its type first. A KindStrings
// value replaces the list.
func (k *Key) decode(t Target, val any) error {
	in := input{name: k.Name}
	switch k.Kind {
	case KindString:
		s, ok := val.(string)
		if !ok {
			return fmt.Errorf("%s: want a string%s, got %s", k.Name, k.example(), describe(val))
		}
		in.s = s
	case KindInt:
		n, ok := val.(int64)
		if !ok {
			return fmt.Errorf("%s: want an integer%s, got %s", k.Name, k.example(), describe(val))
		}
		in.n, in.isInt = n, true
	case KindBool:
		b, ok := val.(bool)
		if !ok {
			return fmt.Errorf("%s: want true or false, got %s", k.Name, describe(val))
		}
		in.b = b
	case KindNumberOrString:
		switch x := val.(type) {
		case int64:
			in.n, in.isInt, in.s = x, true, strconv.FormatInt(x, 10)
		case string:
			in.s = x
		default:
			return fmt.Errorf("%s: want an integer or a string%s, got %s", k.Name, k.example(), describe(val))
		}
	case KindStrings:
		arr, ok := val.([]any)
		if !ok {
			return fmt.Errorf("%s: want an array of strings%s, got %s", k.Name, k.example(), describe(val))
		}
		ss := make([]string, 0, len(arr))
		for i, e := range arr {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("%s: element %d: want a string, got %s", k.Name, i+1, describe(e))
			}
			ss = append(ss, s)
		}
		k.reset(t)
		for _, s := range ss {
			in.s = s
			if err := k.set(t, in); err != nil {
				return err
			}
		}
		return nil
	}
	return k.set(t, in)
}

func (k *Key) example() string {
	if k.Example == "" {
		return ""
	}
	return " like " + k.Example
}

// LookupKey returns the key named name in section, or nil.
func LookupKey(section Section, name string) *Key {
	for i := range KeyTable {
		if k := &KeyTable[i]; k.Section == section && k.Name == name {
			return k
		}
	}
	return nil
}

// SectionKeys returns the names of the keys of section, in KeyTable's
// order.
func SectionKeys(section Section) []string {
	var out []string
	for _, k := range KeyTable {
		if k.Section == section {
			out = append(out, k.Name)
		}
	}
	return out
}

// Keys lists the keys of a [[vni]] entry, in the documentation's order.
// [defaults] takes the same keys but id.
func Keys() []string { return SectionKeys(SectionVNI) }

// Help headings, in the order --help lists them.
const (
	GroupVXLAN     = "VXLAN (named after ip-link(8) type vxlan)"
	GroupInterface = "Interface"
	GroupDaemon    = "Daemon"
	GroupEtcd      = "etcd (cluster and flannel modes)"
	GroupCluster   = "Cluster (with etcd endpoints, a VNI with neither --remote nor --group joins)"
	GroupFlannel   = "Flannel (join a flannel network; flags as flanneld's)"
)

// HelpGroups are the --help headings, in order.
var HelpGroups = []string{GroupVXLAN, GroupInterface, GroupDaemon, GroupEtcd, GroupCluster, GroupFlannel, GroupBGP}

// KeyTable is every configuration key, in the documentation's order.
// The [bgp] keys (bgp.go) close it.
var KeyTable = append([]Key{
	{
		Name: "id", Section: SectionVNI, Kind: KindInt,
		Flag: "vni", FlagAliases: []string{"id"}, Arg: "N", Group: GroupVXLAN,
		Help: fmt.Sprintf("VXLAN network identifier, 0-%d (required)", encap.MaxVNI),
		Type: "integer", Default: "required",
		Doc: fmt.Sprintf("VXLAN network identifier, 0-%d; unique per local address, `dstport` and address family", encap.MaxVNI),
		set: func(t Target, in input) error {
			if in.n < 0 || in.n > encap.MaxVNI {
				return fmt.Errorf("%s: must be a number from 0 to %d", in, encap.MaxVNI)
			}
			t.VNI.ID = uint32(in.n)
			return nil
		},
	},
	{
		Name: "remote", Section: SectionVNI, Kind: KindStrings, Example: `["192.0.2.2"]`,
		Flag: "remote", Arg: "IP", Group: GroupVXLAN,
		Help: "remote VTEP: flood destination for broadcast, multicast and unknown unicast (repeat for head-end replication to several)",
		Type: "array of strings", Default: "none",
		Doc:   "unicast flood destinations for broadcast, multicast and unknown unicast (head-end replication); excludes `group`",
		reset: func(t Target) { t.VNI.Remotes = []netip.Addr{} },
		set: func(t Target, in input) error {
			a, err := parseAddr(in)
			if err != nil {
				return err
			}
			t.VNI.Remotes = append(t.VNI.Remotes, a)
			return nil
		},
	},
	{
		Name: "group", Section: SectionVNI, Kind: KindString, Example: `"239.1.1.1"`,
		Flag: "group", Arg: "IP", Group: GroupVXLAN,
		Help: "multicast group to join on --dev and flood to (excludes --remote)",
		Type: "string", Default: "none",
		Doc: "multicast group to join and flood to (224.0.0.0/4 or ff00::/8); excludes `remote`, needs `dev`",
		set: func(t Target, in input) (err error) {
			t.VNI.Group, err = parseAddr(in)
			return err
		},
	},
	{
		Name: "local", Section: SectionVNI, Kind: KindString, Example: `"192.0.2.1"`,
		Flag: "local", Arg: "IP", Group: GroupVXLAN,
		Help: "local underlay address to bind and send from",
		Type: "string", Default: "any",
		Doc: "underlay address to bind and send from; `\"0.0.0.0\"` or `\"::\"` means any address of that family",
		set: func(t Target, in input) (err error) {
			t.VNI.Local, err = parseAddr(in)
			return err
		},
	},
	{
		Name: "dev", Section: SectionVNI, Kind: KindString, Example: `"eth0"`,
		Flag: "dev", Arg: "IFACE", Group: GroupVXLAN,
		Help: "underlay device to send through (also sizes the default MTU)",
		Type: "string", Default: "none",
		Doc: "underlay device: binds the sockets, joins `group`, sizes the default MTU",
		set: func(t Target, in input) error { t.VNI.Dev = in.s; return nil },
	},
	{
		Name: "dstport", Section: SectionVNI, Kind: KindInt,
		Flag: "dstport", Arg: "PORT", Group: GroupVXLAN,
		Help: fmt.Sprintf("UDP port to send to and listen on (default %d; 8472 is Linux's legacy)", DefaultPort),
		Type: "integer", Default: strconv.Itoa(DefaultPort),
		Doc: "UDP port sent to and received on, 1-65535",
		set: func(t Target, in input) error {
			if in.n < 1 || in.n > math.MaxUint16 {
				return fmt.Errorf("%s: must be 1-65535", in)
			}
			t.VNI.Port = uint16(in.n)
			return nil
		},
	},
	{
		Name: "srcport", Section: SectionVNI, Kind: KindString, Example: `"49152-65535"`,
		Flag: "srcport", Arg: "MIN-MAX", Group: GroupVXLAN,
		Help: "outer UDP source port range (default: the local port range)",
		Type: "string", Default: "the local port range",
		Doc: "outer UDP source port range `\"MIN-MAX\"`, 1 <= MIN < MAX <= 65535, MAX excluded as in the kernel",
		set: func(t Target, in input) error {
			lo, hi, ok := ParseSrcPort(in.s)
			if !ok {
				return fmt.Errorf("%s: %s", in, srcportRule)
			}
			t.VNI.SrcPortMin, t.VNI.SrcPortMax = lo, hi
			return nil
		},
	},
	{
		Name: "allow_remote", Section: SectionVNI, Kind: KindStrings, Example: `["192.0.2.0/24"]`,
		Flag: "allow-remote", Arg: "CIDR", Group: GroupVXLAN,
		Help: "receive only from underlay sources in CIDR (repeatable); others are dropped unread and counted (rx_not_allowed)",
		Type: "array of strings", Default: "any source",
		Doc:   "the only underlay sources received from: prefixes (`\"192.0.2.0/24\"`) or addresses; datagrams from others are dropped before they are read (`rx_not_allowed`). Per socket: VNIs sharing one must agree; `remote`s must be inside",
		reset: func(t Target) { t.VNI.AllowRemote = []netip.Prefix{} },
		set: func(t Target, in input) error {
			p, err := parsePrefixOrAddr(in)
			if err != nil {
				return err
			}
			t.VNI.AllowRemote = append(t.VNI.AllowRemote, p)
			return nil
		},
	},
	{
		Name: "ttl", Section: SectionVNI, Kind: KindNumberOrString, Example: `16 or "inherit"`,
		Flag: "ttl", Arg: "N|inherit", Group: GroupVXLAN,
		Help: "outer TTL, 1-255, or the inner TTL (default 64; 1 to a multicast group)",
		Type: "integer, or a string: `\"auto\"`, `\"inherit\"` or a number (`\"0x10\"`), as `--ttl` takes it",
		Doc:  "outer TTL, 1-255, or the inner TTL / hop limit", Default: "`\"auto\"`: 64, or 1 to a multicast group",
		set: func(t Target, in input) error {
			ttl, inherit, ok := ParseTTL(in.s)
			if !ok {
				return fmt.Errorf(`%s: must be 1-255, "auto" or "inherit"`, in)
			}
			t.VNI.TTL, t.VNI.TTLInherit = ttl, inherit
			return nil
		},
	},
	{
		Name: "tos", Section: SectionVNI, Kind: KindNumberOrString, Example: `"0x10" or "inherit"`,
		Flag: "tos", Arg: "N|inherit", Group: GroupVXLAN,
		Help: "outer TOS, or inherit the inner DS field (default 0); ECN per RFC 6040",
		Type: "integer, or a string: `\"inherit\"` or a number (`\"0x10\"`), as `--tos` takes it",
		Doc:  "outer TOS 0-255 (`0x..` allowed), or copy the inner DS field; ECN per RFC 6040 either way", Default: "0",
		set: func(t Target, in input) error {
			tos, inherit, ok := ParseTOS(in.s)
			if !ok {
				return fmt.Errorf(`%s: must be 0-255 (0x.. allowed), or "inherit"`, in)
			}
			t.VNI.TOS, t.VNI.TOSInherit = tos, inherit
			return nil
		},
	},
	{
		Name: "learning", Section: SectionVNI, Kind: KindBool,
		Flag: "learning", Group: GroupVXLAN,
		Help: "learn remote MACs from received frames (default true; false in a VNI that joins the cluster)",
		Type: "boolean", Default: "true",
		Doc: "learn remote MACs from received frames; in a VNI that joins the cluster the default is false",
		set: func(t Target, in input) error { t.VNI.Learning, t.VNI.LearningSet = in.b, true; return nil },
	},
	{
		Name: "ageing", Section: SectionVNI, Kind: KindInt, Example: "300 (whole seconds)",
		Flag: "ageing", Arg: "SECONDS", Group: GroupVXLAN,
		Help: fmt.Sprintf("lifetime of learned entries, 0 for never (default %d)", int(DefaultAgeing/time.Second)),
		Type: "integer", Default: strconv.Itoa(int(DefaultAgeing / time.Second)),
		Doc: "lifetime of learned entries in seconds; 0: never expire",
		set: func(t Target, in input) error {
			if in.n < 0 {
				return fmt.Errorf("%s: must be >= 0 seconds (0: never expire)", in)
			}
			if in.n > int64(math.MaxInt64/time.Second) {
				return fmt.Errorf("%s: too large", in)
			}
			t.VNI.Ageing = time.Duration(in.n) * time.Second
			return nil
		},
	},
	{
		Name: "maxaddress", Section: SectionVNI, Kind: KindInt,
		Flag: "maxaddress", Arg: "N", Group: GroupVXLAN,
		Help: "maximum forwarding entries, 0 for no limit (default 0)",
		Type: "integer", Default: "0",
		Doc: "forwarding database size limit; 0: none",
		set: func(t Target, in input) error {
			if in.n < 0 || in.n > math.MaxInt32 {
				return fmt.Errorf("%s: must be 0 (no limit) to %d", in, math.MaxInt32)
			}
			t.VNI.MaxAddress = int(in.n)
			return nil
		},
	},
	{
		Name: "learn_rate", Section: SectionVNI, Kind: KindInt,
		Flag: "learn-rate", Arg: "N", Group: GroupVXLAN,
		Help: fmt.Sprintf("learned entries created or moved per second at most, 0 for no limit (default %d)", DefaultLearnRate),
		Type: "integer", Default: strconv.Itoa(DefaultLearnRate),
		Doc: "entries learning may create or migrate per second (a burst of one second's worth); more are not learned and count `fdb_learn_limited`, the frames are still delivered; 0: no limit. The kernel has none",
		set: func(t Target, in input) error {
			if in.n < 0 || in.n > math.MaxInt32 {
				return fmt.Errorf("%s: must be 0 (no limit) to %d", in, math.MaxInt32)
			}
			t.VNI.LearnRate = int(in.n)
			return nil
		},
	},
	{
		Name: "proxy", Section: SectionVNI, Kind: KindBool,
		Flag: "proxy", Group: GroupVXLAN,
		Help: "answer ARP requests and IPv6 Neighbor Solicitations from the TAP out of the neighbour table; flood none",
		Type: "boolean", Default: "false",
		Doc: "answer ARP requests and IPv6 Neighbor Solicitations from the TAP out of the neighbour table (the host's entries on the TAP and `vxlanctl neigh`); consume, never flood, the rest",
		set: func(t Target, in input) error { t.VNI.Proxy = in.b; return nil },
	},
	{
		Name: "l2miss", Section: SectionVNI, Kind: KindBool,
		Flag: "l2miss", Group: GroupVXLAN,
		Help: "report unicast frames dropped for want of a forwarding entry (vxlanctl monitor)",
		Type: "boolean", Default: "false",
		Doc: "raise an `l2miss` event (`vxlanctl monitor`) for a unicast frame dropped for want of a forwarding entry and of an all-zeros entry",
		set: func(t Target, in input) error { t.VNI.L2Miss = in.b; return nil },
	},
	{
		Name: "l3miss", Section: SectionVNI, Kind: KindBool,
		Flag: "l3miss", Group: GroupVXLAN,
		Help: "report addresses the proxy or rsc finds no neighbour entry for (vxlanctl monitor)",
		Type: "boolean", Default: "false",
		Doc: "raise an `l3miss` event (`vxlanctl monitor`) for an address that the proxy or the route short-circuit finds no neighbour entry for",
		set: func(t Target, in input) error { t.VNI.L3Miss = in.b; return nil },
	},
	{
		Name: "rsc", Section: SectionVNI, Kind: KindBool,
		Flag: "rsc", Group: GroupVXLAN,
		Help: "route short-circuit: send IP frames addressed to a router's MAC straight to the neighbour of their destination",
		Type: "boolean", Default: "false",
		Doc: "route short-circuit: an IP frame sent to a MAC whose forwarding entry is flagged `router` goes to the neighbour entry of its destination address instead",
		set: func(t Target, in input) error { t.VNI.RSC = in.b; return nil },
	},
	{
		Name: "tap", Section: SectionVNI, Kind: KindString, Example: `"vx40"`,
		Flag: "tap", Arg: "NAME", Group: GroupInterface, FlagDefault: "vxland0",
		Help: "TAP device name (default vxland0)",
		Type: "string", Default: "`\"vx<id>\"`",
		Doc: "TAP device name: a valid interface name of 1-15 bytes (no `/`, `:`, whitespace); unique per network namespace",
		set: func(t Target, in input) error { t.VNI.TAP = in.s; return nil },
	},
	{
		Name: "netns", Section: SectionVNI, Kind: KindString, Example: `"blue"`,
		Flag: "netns", Arg: "NAME|PATH", Group: GroupInterface,
		Help: "create the TAP in this network namespace (a name from 'ip netns add', or a path like /proc/PID/ns/net); the UDP socket stays in vxland's own namespace",
		Type: "string", Default: "the daemon's",
		Doc: "network namespace of the TAP: a name under /run/netns (`\"blue\"`) or an absolute path (`\"/proc/1234/ns/net\"`); the UDP sockets stay in the daemon's namespace",
		set: func(t Target, in input) error { t.VNI.Netns = in.s; return nil },
	},
	{
		Name: "mtu", Section: SectionVNI, Kind: KindInt,
		Flag: "mtu", Arg: "N", Group: GroupInterface,
		Help: "TAP MTU (default: underlay MTU - 50 over IPv4, - 70 over IPv6)",
		Type: "integer", Default: "underlay MTU - 50, or 1450",
		Doc: fmt.Sprintf("TAP MTU, %d-%d; 0 for automatic", MinMTU, MaxMTU),
		set: func(t Target, in input) error {
			if in.n < 0 || in.n > math.MaxInt32 {
				return fmt.Errorf("%s: must be %d-%d, or 0 for automatic", in, MinMTU, MaxMTU)
			}
			t.VNI.MTU = int(in.n)
			return nil
		},
	},
	{
		Name: "mac", Section: SectionVNI, Kind: KindString, Example: `"02:00:5e:10:00:01"`,
		Flag: "mac", Arg: "MAC", Group: GroupInterface,
		Help: "TAP MAC address (default: stable, derived from host, namespace, --local, TAP and VNI)",
		Type: "string", Default: "stable, derived from host, network namespace, `local`, TAP name and VNI",
		Doc: "TAP MAC address, unicast and non-zero",
		set: func(t Target, in input) error {
			m, err := net.ParseMAC(in.s)
			if err != nil || len(m) != 6 {
				return fmt.Errorf("%s: not an Ethernet address (like 02:00:5e:10:00:01)", in)
			}
			t.VNI.MAC = m
			return nil
		},
	},
	{
		Name: "addr", Section: SectionVNI, Kind: KindStrings, Example: `["203.0.113.1/24"]`,
		Flag: "addr", Arg: "CIDR", Group: GroupInterface,
		Help: "address to put on the TAP, e.g. 203.0.113.1/24 (repeatable)",
		Type: "array of strings", Default: "none",
		Doc:   "addresses with prefix length put on the TAP (`\"203.0.113.1/24\"`)",
		reset: func(t Target) { t.VNI.Addrs = []netip.Prefix{} },
		set: func(t Target, in input) error {
			p, err := netip.ParsePrefix(in.s)
			if err != nil {
				if a, err := netip.ParseAddr(in.s); err == nil {
					bits := 24
					if a.Is6() {
						bits = 64
					}
					return fmt.Errorf("%s: no prefix length (like %s/%d)", in, a, bits)
				}
				return fmt.Errorf("%s: not an address with prefix length (like 203.0.113.1/24)", in)
			}
			t.VNI.Addrs = append(t.VNI.Addrs, p)
			return nil
		},
	},
	{
		Name: "master", Section: SectionVNI, Kind: KindString, Example: `"br0"`,
		Flag: "master", Arg: "BRIDGE", Group: GroupInterface,
		Help: "enslave the TAP to this Linux bridge (in the TAP's namespace)",
		Type: "string", Default: "none",
		Doc: "Linux bridge (in the TAP's namespace) to enslave the TAP to, like `ip link set TAP master BR`",
		set: func(t Target, in input) error { t.VNI.Master = in.s; return nil },
	},
	{
		Name: "up", Section: SectionVNI, Kind: KindBool,
		Flag: "up", Group: GroupInterface,
		Help: "set the TAP up once created",
		Type: "boolean", Default: "false (like `ip link add`)",
		Doc: "set the TAP up once created",
		set: func(t Target, in input) error { t.VNI.Up = in.b; return nil },
	},
	{
		Name: "control", Section: SectionVNI, Kind: KindString, Example: `"/run/vxland/vx40.sock"`,
		Flag: "control", Arg: "PATH", Group: GroupDaemon,
		Help: "control socket for vxlanctl (default /run/vxland/TAP.sock, or /run/vxland/netns/NAME/TAP.sock in network namespace NAME)",
		Type: "string", Default: "`/run/vxland/<tap>.sock`, `/run/vxland/netns/<name>/<tap>.sock` when vxland runs in the named namespace `<name>` (`$VXLAND_RUNDIR` replaces /run/vxland)",
		Doc: "control socket for vxlanctl (at most 107 bytes); unique",
		set: func(t Target, in input) error { t.VNI.Control = in.s; return nil },
	},
	{
		Name: "offload", Section: SectionVNI, Kind: KindBool,
		Flag: "offload", Group: GroupDaemon,
		Help: "TSO/GSO/GRO and checksum hand-over with the kernel (default true)",
		Type: "boolean", Default: "true",
		Doc: "hand checksum state to the TAP in a virtio-net header, segment and coalesce with UDP GSO/GRO",
		set: func(t Target, in input) error { t.VNI.Offload = in.b; return nil },
	},
	{
		Name: "metrics", Section: SectionDaemon, Kind: KindString, Example: `"127.0.0.1:9477"`,
		Flag: "metrics", Arg: "ADDR", Group: GroupDaemon,
		Help: "serve Prometheus metrics on http://ADDR/metrics (host:port; default off)",
		Type: "string", Default: "off",
		Doc: "`host:port` to serve Prometheus metrics on, at http://host:port/metrics; the flag overrides the file",
		set: func(t Target, in input) error { t.Daemon.Metrics = in.s; return nil },
	},
	{
		Name: "queues", Section: SectionDaemon, Kind: KindInt,
		Flag: "queues", Arg: "N", Group: GroupDaemon,
		Help: "workers each way: TAP queues and receive sockets per endpoint, 0 for one per CPU (default 0)",
		Type: "integer", Default: "0",
		Doc: "workers each way: every TAP gets N queues (IFF_MULTI_QUEUE) and every endpoint N receive sockets on its port (SO_REUSEPORT), one worker each; a flow stays on one; 0: one per CPU. Read at start",
		set: func(t Target, in input) error {
			if in.n < 0 || in.n > MaxQueues {
				return fmt.Errorf("%s: must be 0 (one per CPU) to %d", in, MaxQueues)
			}
			t.Daemon.Queues = int(in.n)
			return nil
		},
	},
	{
		Name: "underlay", Section: SectionDaemon, Kind: KindString, Example: `"tap"`,
		Flag: "underlay", Arg: "udp|tap", Group: GroupDaemon,
		Help: "how datagrams are sent: udp (sockets) or tap (experimental: unicast IPv4 through an underlay TAP the host forwards, TCP super-frames whole; needs --local, Linux 6.17) (default udp)",
		Type: "string", Default: "`\"udp\"`",
		Doc: "how VXLAN datagrams are sent: `\"udp\"` through UDP sockets; `\"tap\"` (experimental) writes unicast IPv4 datagrams with their outer headers to an underlay TAP (`<first TAP>u`) that the host forwards from, each TCP super-frame whole (UDP tunnel GSO, Linux 6.17 or later; older kernels fall back to `udp`); needs `local`, an IPv4 underlay and a `net.ipv4.conf.all.rp_filter` other than 1 (strict) (see docs/DESIGN.md). Receiving and multicast stay on the sockets. Read at start",
		set: func(t Target, in input) error {
			switch in.s {
			case UnderlayUDP, UnderlayTAP:
				t.Daemon.Underlay = in.s
				return nil
			}
			return fmt.Errorf("%s: want %q or %q", in, UnderlayUDP, UnderlayTAP)
		},
	},
	{
		Name: "endpoints", Section: SectionEtcd, Kind: KindStrings, Example: `["http://192.0.2.254:2379"]`,
		Flag: "etcd-endpoints", Arg: "URLS", Group: GroupEtcd,
		Help: "etcd client URLs, comma-separated (http://IP:2379, or https:// with the TLS files)",
		Type: "array of strings", Default: "none",
		Doc:   "etcd client URLs (`\"http://192.0.2.254:2379\"`, or `https://` with the TLS files below); a string may hold several, comma-separated, as the flag does",
		reset: func(t Target) { t.Etcd.Endpoints = []string{} },
		set: func(t Target, in input) error {
			for _, s := range strings.Split(in.s, ",") {
				s = strings.TrimSpace(s)
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
					return fmt.Errorf("%s: %q is not an etcd client URL like http://192.0.2.254:2379", in, s)
				}
				t.Etcd.Endpoints = append(t.Etcd.Endpoints, s)
			}
			return nil
		},
	},
	{
		Name: "prefix", Section: SectionEtcd, Kind: KindString, Example: `"/coreos.com/network"`,
		Flag: "etcd-prefix", Arg: "PATH", Group: GroupEtcd,
		Help: "etcd key prefix (default " + DefaultClusterPrefix + "; flannel mode: /coreos.com/network, as flanneld)",
		Type: "string", Default: "`\"" + DefaultClusterPrefix + "\"`; `\"" + DefaultFlannelPrefix + "\"` in flannel mode",
		Doc: "etcd key prefix, an absolute path",
		set: func(t Target, in input) error {
			if !strings.HasPrefix(in.s, "/") || strings.ContainsAny(in.s, "\x00") {
				return fmt.Errorf("%s: want an absolute key path like /coreos.com/network", in)
			}
			t.Etcd.Prefix = strings.TrimSuffix(in.s, "/")
			return nil
		},
	},
	{
		Name: "cafile", Section: SectionEtcd, Kind: KindString, Example: `"/etc/vxland/etcd-ca.pem"`,
		Flag: "etcd-cafile", Arg: "FILE", Group: GroupEtcd,
		Help: "PEM file of the CA that signs the etcd servers' certificates",
		Type: "string", Default: "none", Doc: "PEM file of the CA that signs the etcd servers' certificates (TLS)",
		set: func(t Target, in input) error { t.Etcd.CAFile = in.s; return nil },
	},
	{
		Name: "certfile", Section: SectionEtcd, Kind: KindString, Example: `"/etc/vxland/etcd-client.pem"`,
		Flag: "etcd-certfile", Arg: "FILE", Group: GroupEtcd,
		Help: "PEM file of this client's certificate (with --etcd-keyfile)",
		Type: "string", Default: "none", Doc: "PEM file of this client's certificate; needs `keyfile`",
		set: func(t Target, in input) error { t.Etcd.CertFile = in.s; return nil },
	},
	{
		Name: "keyfile", Section: SectionEtcd, Kind: KindString, Example: `"/etc/vxland/etcd-client-key.pem"`,
		Flag: "etcd-keyfile", Arg: "FILE", Group: GroupEtcd,
		Help: "PEM file of this client's private key",
		Type: "string", Default: "none", Doc: "PEM file of this client's private key; needs `certfile`",
		set: func(t Target, in input) error { t.Etcd.KeyFile = in.s; return nil },
	},
	{
		Name: "lease_ttl", Section: SectionCluster, Kind: KindInt, Example: "10 (whole seconds)",
		Flag: "etcd-lease-ttl", Arg: "SECONDS", Group: GroupCluster,
		Help: fmt.Sprintf("lifetime of this node's etcd lease: a node that dies leaves the others this long after (default %d)", int(DefaultLeaseTTL/time.Second)),
		Type: "integer", Default: strconv.Itoa(int(DefaultLeaseTTL / time.Second)),
		Doc: "lifetime of the node's etcd lease in seconds, at least 1; a node killed without revoking it leaves the others this long after",
		set: func(t Target, in input) error {
			if in.n < 1 || in.n > 1<<31-1 {
				return fmt.Errorf("%s: must be 1 to %d seconds", in, 1<<31-1)
			}
			t.Cluster.LeaseTTL = time.Duration(in.n) * time.Second
			return nil
		},
	},
	{
		Name: "members_only", Section: SectionCluster, Kind: KindBool,
		Flag: "cluster-members-only", Group: GroupCluster,
		Help: "drop datagrams of cluster VNIs from underlay sources that are not members (default true)",
		Type: "boolean", Default: "true",
		Doc: "drop datagrams of a cluster VNI whose underlay source is not a member of it, counted as `rx_not_member`",
		set: func(t Target, in input) error { t.Cluster.MembersOnly = in.b; return nil },
	},
	{
		Name: "enable", Section: SectionFlannel, Kind: KindBool,
		Flag: "flannel", Group: GroupFlannel,
		Help: "be a node of the flannel network in etcd (vxlan backend): lease a subnet, serve flannel.VNI, follow the other nodes",
		Type: "boolean", Default: "false",
		Doc: "be a node of the flannel network whose configuration is in etcd (`[etcd]`); no `[[vni]]` entries then",
		set: func(t Target, in input) error { t.Flannel.Enable = in.b; return nil },
	},
	{
		Name: "public_ip", Section: SectionFlannel, Kind: KindString, Example: `"192.0.2.1"`,
		Flag: "public-ip", Arg: "IP", Group: GroupFlannel,
		Help: "this node's underlay address, published in its lease (default: --iface's first IPv4 address)",
		Type: "string", Default: "the first IPv4 address of `iface`",
		Doc: "this node's IPv4 underlay address, published in its lease",
		set: func(t Target, in input) error {
			a, err := parseAddr(in)
			if err == nil && (!a.Is4() || !a.IsGlobalUnicast()) {
				err = fmt.Errorf("%s: want a unicast IPv4 address", in)
			}
			t.Flannel.PublicIP = a
			return err
		},
	},
	{
		Name: "iface", Section: SectionFlannel, Kind: KindString, Example: `"eth0"`,
		Flag: "iface", Arg: "IFACE", Group: GroupFlannel,
		Help: "underlay device (default: the device of the default route)",
		Type: "string", Default: "the device of the default route",
		Doc: "underlay device: its MTU sizes the flannel device's, its address is the default `public_ip`",
		set: func(t Target, in input) error { t.Flannel.Iface = in.s; return nil },
	},
	{
		Name: "subnet_file", Section: SectionFlannel, Kind: KindString, Example: `"/run/flannel/subnet.env"`,
		Flag: "subnet-file", Arg: "PATH", Group: GroupFlannel,
		Help: "where to write subnet.env for the flannel CNI plugin (default " + DefaultSubnetFile + ")",
		Type: "string", Default: "`\"" + DefaultSubnetFile + "\"`",
		Doc: "where subnet.env is written, as flanneld writes it",
		set: func(t Target, in input) error { t.Flannel.SubnetFile = in.s; return nil },
	},
}, bgpKeys...)

// parseAddr parses an IP address; an IPv4-mapped IPv6 address becomes IPv4.
func parseAddr(in input) (netip.Addr, error) {
	a, err := netip.ParseAddr(in.s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: not an IP address", in)
	}
	return a.Unmap(), nil
}

// parsePrefixOrAddr parses a prefix (masked: 192.0.2.7/24 is
// 192.0.2.0/24) or a bare address, which is a prefix of its full length.
// IPv4-mapped IPv6 forms become IPv4.
func parsePrefixOrAddr(in input) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(in.s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(in.s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s: not an address or a prefix (like 192.0.2.0/24)", in)
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// FlagNames returns the flag's spellings with dashes: "--vni", "--id".
func (k *Key) FlagNames() []string {
	if k.Flag == "" {
		return nil
	}
	out := []string{"--" + k.Flag}
	for _, a := range k.FlagAliases {
		out = append(out, "--"+a)
	}
	return out
}

// WriteFlagHelp writes the --help lines of the flags under heading group:
// "  --remote IP          remote VTEP: ...", descriptions wrapped.
func WriteFlagHelp(b *strings.Builder, group string) {
	for _, k := range KeyTable {
		if k.Flag == "" || k.Group != group {
			continue
		}
		name := "--" + k.Flag
		if k.Kind == KindBool {
			if k.Default == "true" { // turned off with --flag=false
				name += "=BOOL"
			}
		} else {
			name += " " + k.Arg
		}
		WriteHelpLine(b, name, k.Help)
	}
}

// Help layout: flags indented by 2, descriptions from column 23, lines
// wrapped before column 80.
const (
	helpIndent = 2
	helpColumn = 23
	helpWidth  = 80
)

// WriteHelpLine writes one flag's --help entry, its description wrapped.
func WriteHelpLine(b *strings.Builder, name, help string) {
	line := strings.Repeat(" ", helpIndent) + name
	if len(line) >= helpColumn-1 {
		b.WriteString(line + "\n")
		line = ""
	}
	for _, w := range strings.Fields(help) {
		switch {
		case len(line) < helpColumn:
			line += strings.Repeat(" ", helpColumn-len(line)) + w
		case len(line)+1+len(w) > helpWidth:
			b.WriteString(line + "\n")
			line = strings.Repeat(" ", helpColumn) + w
		default:
			line += " " + w
		}
	}
	b.WriteString(line + "\n")
}

// MarkdownTable renders the keys of section as the table docs/config.md
// shows: key, type, meaning, default and flag.
func MarkdownTable(section Section) string {
	var b strings.Builder
	b.WriteString("| key | type | meaning | default | flag |\n|---|---|---|---|---|\n")
	for _, k := range KeyTable {
		if k.Section != section {
			continue
		}
		flag := "-"
		if names := k.FlagNames(); names != nil {
			flag = "`" + strings.Join(names, "`, `") + "`"
			switch {
			case k.Kind == KindStrings:
				flag += " (repeated)"
			case k.FlagDefault != "":
				flag += fmt.Sprintf(" (default `%s`)", k.FlagDefault)
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", k.Name, k.Type, k.Doc, k.Default, flag)
	}
	return b.String()
}
