package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vxland/vxland/control"
	"github.com/vxland/vxland/fdb"
)

// op is what a command line asks for.
type op int

const (
	opHelp op = iota
	opFDBAdd
	opFDBAppend
	opFDBReplace
	opFDBDel
	opFDBShow
	opStats
	opDevs
	opReload
	opNeighAdd
	opNeighReplace
	opNeighDel
	opNeighShow
	opMonitor
	opClusterShow
	opBGPShow
)

// String names the operation the way the command line spells it.
func (o op) String() string {
	switch o {
	case opHelp:
		return "help"
	case opFDBAdd:
		return "fdb add"
	case opFDBAppend:
		return "fdb append"
	case opFDBReplace:
		return "fdb replace"
	case opFDBDel:
		return "fdb del"
	case opFDBShow:
		return "fdb show"
	case opStats:
		return "stats"
	case opDevs:
		return "devs"
	case opReload:
		return "reload"
	case opNeighAdd:
		return "neigh add"
	case opNeighReplace:
		return "neigh replace"
	case opNeighDel:
		return "neigh del"
	case opNeighShow:
		return "neigh show"
	case opMonitor:
		return "monitor"
	case opClusterShow:
		return "cluster show"
	case opBGPShow:
		return "bgp show"
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// command is a parsed command line.
type command struct {
	op     op
	socket string          // --socket; empty: found from dev
	netns  string          // -n: the network namespace whose daemons to reach
	json   bool            // -j: fdb show, stats and devs print JSON
	dir    string          // the socket directory of that namespace (run sets it)
	dev    string          // TAP device; empty for show/stats/devs of every device
	mac    fdb.MAC         // fdb add/append/replace/del
	dst    *control.Remote // nil when the command line has no dst
	state  fdb.State       // add/append/replace; bridge's default is permanent
	router bool            // fdb add/append/replace, neigh add/replace: the router flag
	ip     netip.Addr      // neigh add/replace/del
}

// usageError is a command line vxlanctl cannot understand (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// unsupported are bridge fdb keywords that make no sense for vxland.
var unsupported = map[string]bool{
	"vlan": true, "via": true, "use": true, "extern_learn": true,
	"sticky": true, "src_vni": true, "nhid": true, "norefresh": true,
	"activity_notify": true, "inactive": true, "stale": true, "reachable": true,
}

// parseArgs turns the command line (without the program name) into a
// command. It does no I/O. Errors are *usageError.
func parseArgs(args []string) (*command, error) {
	var socket, netns string
	var rest []string
	jsonOut := false
	help := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help" || a == "-help":
			help = true
		case a == "--socket" || a == "-socket":
			if i+1 >= len(args) || args[i+1] == "" {
				return nil, usagef("%s needs a socket path", a)
			}
			if socket != "" {
				return nil, usagef("--socket given twice")
			}
			socket = args[i+1]
			i++
		case strings.HasPrefix(a, "--socket=") || strings.HasPrefix(a, "-socket="):
			_, v, _ := strings.Cut(a, "=")
			if v == "" {
				return nil, usagef("--socket needs a socket path")
			}
			if socket != "" {
				return nil, usagef("--socket given twice")
			}
			socket = v
		case a == "-j" || a == "--json" || a == "-json":
			jsonOut = true
		case a == "-n" || a == "--netns" || a == "-netns":
			if i+1 >= len(args) || args[i+1] == "" {
				return nil, usagef("%s needs a network namespace (a name from 'ip netns' or a path)", a)
			}
			if netns != "" {
				return nil, usagef("-n given twice")
			}
			netns = args[i+1]
			i++
		case len(a) > 1 && a[0] == '-' && !('0' <= a[1] && a[1] <= '9'):
			// A negative number is a (bad) value, reported where it is used.
			return nil, usagef("unknown option %q", a)
		default:
			rest = append(rest, a)
		}
	}
	if help {
		return &command{op: opHelp}, nil
	}
	if len(rest) == 0 {
		return nil, usagef("missing command (fdb, neigh, monitor, stats, devs, reload, cluster or bgp)")
	}
	var cmd *command
	var err error
	switch rest[0] {
	case "help":
		return &command{op: opHelp}, nil
	case "fdb":
		cmd, err = parseFDB(rest[1:])
	case "stats":
		cmd, err = parseQuery(opStats, rest[1:])
	case "devs":
		cmd, err = parseQuery(opDevs, rest[1:])
	case "reload":
		cmd, err = parseQuery(opReload, rest[1:])
	case "neigh", "neighbor", "neighbour":
		cmd, err = parseNeigh(rest[1:])
	case "monitor":
		cmd, err = parseMonitor(rest[1:])
	case "cluster":
		args := rest[1:]
		if len(args) > 0 && (args[0] == "show" || args[0] == "list") {
			args = args[1:]
		} else if len(args) > 0 && args[0] != "dev" && args[0] != "help" {
			return nil, usagef("unknown cluster command %q (want show)", args[0])
		}
		cmd, err = parseQuery(opClusterShow, args)
	case "bgp":
		args := rest[1:]
		if len(args) > 0 && (args[0] == "show" || args[0] == "list") {
			args = args[1:]
		} else if len(args) > 0 && args[0] != "dev" && args[0] != "help" {
			return nil, usagef("unknown bgp command %q (want show)", args[0])
		}
		cmd, err = parseQuery(opBGPShow, args)
	default:
		return nil, usagef("unknown command %q (want fdb, neigh, monitor, stats, devs, reload, cluster or bgp)", rest[0])
	}
	if err != nil {
		return nil, err
	}
	if socket != "" && netns != "" {
		return nil, usagef("-n and --socket exclude each other")
	}
	cmd.socket, cmd.netns, cmd.json = socket, netns, jsonOut
	return cmd, nil
}

// parseFDB parses what follows "fdb". As with bridge, a bare "fdb" shows.
func parseFDB(args []string) (*command, error) {
	if len(args) == 0 {
		return &command{op: opFDBShow}, nil
	}
	var o op
	switch args[0] {
	case "add":
		o = opFDBAdd
	case "append":
		o = opFDBAppend
	case "replace":
		o = opFDBReplace
	case "del", "delete":
		o = opFDBDel
	case "show", "list", "lst":
		return parseQuery(opFDBShow, args[1:])
	case "help":
		return &command{op: opHelp}, nil
	default:
		return nil, usagef("unknown fdb command %q (want add, append, replace, del or show)", args[0])
	}
	return parseModify(o, args[1:])
}

// parseQuery parses "[dev TAP]" for fdb show, stats, devs and reload.
func parseQuery(o op, args []string) (*command, error) {
	cmd := &command{op: o}
	for i := 0; i < len(args); i++ {
		switch w := args[i]; w {
		case "dev":
			if i+1 >= len(args) {
				return nil, usagef("%s: dev needs a device name", o)
			}
			if cmd.dev != "" {
				return nil, usagef("%s: dev given twice", o)
			}
			cmd.dev = args[i+1]
			i++
			if err := control.CheckDevName(cmd.dev); err != nil {
				return nil, usagef("%s: %v", o, err)
			}
		case "help":
			return &command{op: opHelp}, nil
		default:
			return nil, usagef("%s: unknown keyword %q (want dev TAP)", o, w)
		}
	}
	return cmd, nil
}

// parseModify parses the arguments of fdb add, append, replace and del:
// MAC dev TAP [dst IP] [port N] [vni N] [self] [permanent|static|dynamic],
// keywords in any order, as bridge fdb takes them.
func parseModify(o op, args []string) (*command, error) {
	cmd := &command{op: o, state: fdb.Permanent} // bridge fdb add assumes permanent
	var (
		haveMAC, haveState bool
		stateWord          string
		dst                netip.Addr
		port               uint16
		vni                *uint32
		seen               = map[string]bool{}
	)
	for i := 0; i < len(args); i++ {
		w := args[i]
		switch w {
		case "dev", "dst", "port", "vni", "to":
			if i+1 >= len(args) {
				return nil, usagef("%s: %s needs a value", o, w)
			}
			v := args[i+1]
			i++
			if w == "to" {
				w = "mac"
			}
			if seen[w] || (w == "mac" && haveMAC) {
				return nil, usagef("%s: %s given twice", o, w)
			}
			seen[w] = true
			switch w {
			case "mac":
				m, err := fdb.ParseMAC(v)
				if err != nil {
					return nil, usagef("%s: invalid MAC address %q (want six hex octets like 02:00:5e:10:00:01)", o, v)
				}
				cmd.mac, haveMAC = m, true
			case "dev":
				if err := control.CheckDevName(v); err != nil {
					return nil, usagef("%s: %v", o, err)
				}
				cmd.dev = v
			case "dst":
				ip, err := netip.ParseAddr(v)
				if err != nil || ip.Zone() != "" {
					return nil, usagef("%s: invalid dst %q (want an IPv4 or IPv6 address)", o, v)
				}
				if ip.IsUnspecified() {
					return nil, usagef("%s: dst %s is not a remote address", o, v)
				}
				dst = ip
			case "port":
				n, err := strconv.ParseUint(v, 0, 64)
				if err != nil || n > 65535 {
					return nil, usagef("%s: invalid port %q (want 0-65535)", o, v)
				}
				port = uint16(n)
			case "vni":
				n, err := strconv.ParseUint(v, 0, 64)
				if err != nil || n > control.MaxVNI {
					return nil, usagef("%s: invalid vni %q (want 0-%d)", o, v, control.MaxVNI)
				}
				v32 := uint32(n)
				vni = &v32
			}
		case "self":
			// vxland's entries are the device's own, as "self" asks.
		case "router":
			if o == opFDBDel {
				return nil, usagef("%s: router does not apply to a deletion", o)
			}
			cmd.router = true
		case "master":
			return nil, usagef("%s: master is not supported: vxland has no bridge, its entries are always self", o)
		case "permanent", "local", "static", "temp", "dynamic":
			s, err := control.ParseState(w)
			if err != nil {
				return nil, usagef("%s: %v", o, err)
			}
			if haveState && s != cmd.state {
				return nil, usagef("%s: conflicting states %q and %q", o, stateWord, w)
			}
			cmd.state, haveState, stateWord = s, true, w
		case "help":
			return &command{op: opHelp}, nil
		default:
			if unsupported[w] {
				return nil, usagef("%s: %q is not supported by vxlanctl", o, w)
			}
			if haveMAC {
				return nil, usagef("%s: unknown keyword %q", o, w)
			}
			m, err := fdb.ParseMAC(w)
			if err != nil {
				if strings.ContainsAny(w, ":-") {
					return nil, usagef("%s: invalid MAC address %q (want six hex octets like 02:00:5e:10:00:01)", o, w)
				}
				return nil, usagef("%s: unknown keyword %q (want a MAC address first)", o, w)
			}
			cmd.mac, haveMAC = m, true
		}
	}
	switch {
	case !haveMAC:
		return nil, usagef("%s: missing MAC address", o)
	case cmd.dev == "":
		return nil, usagef("%s: missing dev TAP", o)
	case !dst.IsValid() && o != opFDBDel:
		return nil, usagef("%s: missing dst IP (a vxlan entry needs the remote VTEP's address)", o)
	case !dst.IsValid() && (seen["port"] || seen["vni"]):
		return nil, usagef("%s: port and vni need dst (without dst the whole entry goes)", o)
	}
	if dst.IsValid() {
		cmd.dst = &control.Remote{IP: dst, Port: port, VNI: vni}
	}
	return cmd, nil
}

// isUsage reports whether err is a command-line error.
func isUsage(err error) bool {
	var u *usageError
	return errors.As(err, &u)
}

// parseNeigh parses what follows "neigh", in ip-neighbour(8) syntax:
// add|replace IP lladdr MAC dev TAP [router] [nud permanent], del IP dev
// TAP, show [dev TAP]. A bare "neigh" shows.
func parseNeigh(args []string) (*command, error) {
	if len(args) == 0 {
		return &command{op: opNeighShow}, nil
	}
	var o op
	switch args[0] {
	case "add":
		o = opNeighAdd
	case "replace", "change", "chg":
		o = opNeighReplace
	case "del", "delete":
		o = opNeighDel
	case "show", "list", "lst":
		return parseQuery(opNeighShow, args[1:])
	case "help":
		return &command{op: opHelp}, nil
	default:
		return nil, usagef("unknown neigh command %q (want add, replace, del or show)", args[0])
	}
	cmd := &command{op: o}
	var haveMAC bool
	seen := map[string]bool{}
	args = args[1:]
	for i := 0; i < len(args); i++ {
		w := args[i]
		switch w {
		case "lladdr", "dev", "nud", "to":
			if i+1 >= len(args) {
				return nil, usagef("%s: %s needs a value", o, w)
			}
			v := args[i+1]
			i++
			if seen[w] {
				return nil, usagef("%s: %s given twice", o, w)
			}
			seen[w] = true
			switch w {
			case "lladdr":
				if o == opNeighDel {
					return nil, usagef("%s: lladdr does not apply to a deletion", o)
				}
				m, err := fdb.ParseMAC(v)
				if err != nil {
					return nil, usagef("%s: invalid lladdr %q (want six hex octets like 02:00:5e:10:00:01)", o, v)
				}
				cmd.mac, haveMAC = m, true
			case "dev":
				if err := control.CheckDevName(v); err != nil {
					return nil, usagef("%s: %v", o, err)
				}
				cmd.dev = v
			case "nud":
				if v != "permanent" {
					return nil, usagef("%s: nud %s: vxland's entries are always permanent", o, v)
				}
			case "to":
				if err := cmd.setIP(o, v); err != nil {
					return nil, err
				}
			}
		case "router":
			if o == opNeighDel {
				return nil, usagef("%s: router does not apply to a deletion", o)
			}
			cmd.router = true
		case "permanent":
		case "help":
			return &command{op: opHelp}, nil
		default:
			if err := cmd.setIP(o, w); err != nil {
				return nil, err
			}
		}
	}
	switch {
	case !cmd.ip.IsValid():
		return nil, usagef("%s: missing address", o)
	case cmd.dev == "":
		return nil, usagef("%s: missing dev TAP", o)
	case !haveMAC && o != opNeighDel:
		return nil, usagef("%s: missing lladdr MAC", o)
	}
	return cmd, nil
}

// setIP takes the neighbour's address, once.
func (cmd *command) setIP(o op, v string) error {
	if cmd.ip.IsValid() {
		return usagef("%s: unknown keyword %q", o, v)
	}
	ip, err := netip.ParseAddr(v)
	if err != nil || ip.Zone() != "" {
		return usagef("%s: invalid address %q (want an IPv4 or IPv6 address)", o, v)
	}
	cmd.ip = ip
	return nil
}

// parseMonitor parses "monitor [all|neigh|fdb] [dev TAP]": vxland has one
// stream, so the object words are accepted and ignored.
func parseMonitor(args []string) (*command, error) {
	var rest []string
	for _, a := range args {
		switch a {
		case "all", "neigh", "fdb", "link":
		default:
			rest = append(rest, a)
		}
	}
	return parseQuery(opMonitor, rest)
}
