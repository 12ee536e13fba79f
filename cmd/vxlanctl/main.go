// Command vxlanctl controls running vxland daemons in the syntax of
// bridge(8): it adds, appends, replaces, deletes and lists forwarding
// database entries of a vxland TAP device and shows its counters, talking to
// the daemon over its control socket (/run/vxland/TAP.sock).
//
//	vxlanctl fdb add|append|replace|del MAC dev TAP [dst IP] [port N] [vni N] [self] [permanent|static|dynamic]
//	vxlanctl fdb show [dev TAP]
//	vxlanctl neigh add|replace|del IP [lladdr MAC] dev TAP [router]
//	vxlanctl neigh show [dev TAP]
//	vxlanctl monitor [dev TAP]
//	vxlanctl stats [dev TAP]
//	vxlanctl devs [dev TAP]
//	vxlanctl reload [dev TAP]
//	vxlanctl cluster show [dev TAP]
//	vxlanctl bgp show [dev TAP]
//
// Run "vxlanctl --help" for the details. Exit status: 0 success, 1 the
// daemon refused the request or could not be reached, 2 usage error.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/vxland/vxland/control"
	"github.com/vxland/vxland/fdb"
)

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1 // the daemon refused, or no daemon answered
	exitUsage = 2 // the command line is wrong
)

const usageText = `Usage: vxlanctl [-j] [-n NETNS | --socket PATH] COMMAND

Control running vxland (userspace VXLAN) daemons, in the syntax of bridge(8).

Commands:
  vxlanctl fdb add     MAC dev TAP dst IP [port N] [vni N] [self] [STATE]
  vxlanctl fdb append  MAC dev TAP dst IP [port N] [vni N] [self] [STATE]
  vxlanctl fdb replace MAC dev TAP dst IP [port N] [vni N] [self] [STATE]
  vxlanctl fdb del     MAC dev TAP [dst IP [port N] [vni N]]
  vxlanctl fdb show    [dev TAP]
  vxlanctl neigh add|replace IP lladdr MAC dev TAP [router]
  vxlanctl neigh del   IP dev TAP
  vxlanctl neigh show  [dev TAP]
  vxlanctl monitor     [dev TAP]
  vxlanctl stats       [dev TAP]
  vxlanctl devs        [dev TAP]
  vxlanctl reload      [dev TAP]
  vxlanctl cluster show [dev TAP]
  vxlanctl bgp show    [dev TAP]
  vxlanctl help

  fdb add      create the entry MAC -> dst; fails if MAC has an entry already
  fdb append   add one more destination to MAC's entry, creating it if needed;
               on 00:00:00:00:00:00 this builds the list that broadcast,
               multicast and unknown unicast frames are copied to
  fdb replace  make dst MAC's only destination, creating the entry if needed
  fdb del      remove destination dst from MAC's entry; without dst, the whole
               entry
  fdb show     list the forwarding database as bridge fdb show does, one line
               per destination
  neigh add    add a neighbour entry IP -> MAC that vxland keeps beside the
               host's neighbour entries on the TAP; with proxy, ARP requests
               and Neighbor Solicitations for IP are answered with MAC; with
               rsc, routed frames to IP go straight to MAC
  neigh replace  the same, overwriting an entry vxland keeps
  neigh del    remove an entry vxland keeps (the host's own go with ip neigh del)
  neigh show   list the neighbour table as ip neigh show does: vxland's
               entries (PERMANENT), then the host's ("proto host")
  monitor      print events as they happen, one line each, until interrupted:
               "l2miss MAC dev TAP vni N", "l3miss IP dev TAP vni N",
               forwarding changes as bridge monitor fdb prints them, and
               "lost N events dev TAP vni N" when the daemon dropped events
               this monitor did not read in time
  stats        show the daemon's packet counters
  devs         list the devices the daemons serve: name, VNI, UDP port
  reload       make the daemon re-read its --config file and apply the
               changes, as SIGHUP does; prints what changed, or the problems
               (exit status 1, nothing changed when the file is invalid)
  cluster show the etcd control plane: connection, lease, and per VNI the
               revision applied, this node's announcement and the members
               with their endpoints (docs/cluster.md)
  bgp show     the BGP EVPN control plane: sessions with their state and
               prefix counts, and per VNI the RD, RT, routes out and in and
               the remote VTEPs with their endpoints (docs/evpn.md)

Arguments (keywords may come in any order after MAC):
  MAC        six hex octets separated by ':' or '-', e.g. 02:00:5e:10:00:01
  dev TAP    the vxland TAP device
  dst IP     the remote VTEP's IPv4 or IPv6 address
  port N     its UDP port (default: the device's destination port)
  vni N      the VNI to send with, 0-16777215 (default: the device's VNI)
  STATE      permanent (the default, as with bridge fdb add), static or
             dynamic; dynamic entries age out, the others never do
  self       accepted for bridge compatibility; vxland's entries are always self
  router     the MAC is a router's (bridge fdb's and ip neigh's "router"): with
             rsc, IP frames sent to it are readdressed to the neighbour of
             their destination; a Neighbor Advertisement for it says router
  lladdr MAC the neighbour's Ethernet address

Options:
  -j, --json     fdb show, neigh show, stats, devs, cluster show and bgp show
                 print JSON (as bridge -j): fdb show an array of {mac, ifname,
                 dst, port, vni, flags, state, owner}, neigh show an array of
                 {dst, dev, lladdr, router, state, source}, stats an array of
                 {dev, vni, port, counters: {name: value}}, devs an array of
                 {ifname, vni, port}, cluster show and bgp show an array of the
                 daemons' status; monitor one object per line: {event, dev,
                 vni, port, mac, ip, action, dst: {ip, port, vni}, state,
                 router, lost}
  -n NETNS       talk to the daemons of network namespace NETNS (a name from
                 'ip netns', or a path like /proc/PID/ns/net), as bridge -n
  --socket PATH  talk to the daemon on PATH instead of RUNDIR/TAP.sock
  -h, --help     show this help

The daemon serving TAP listens on RUNDIR/TAP.sock when it runs in the host's
network namespace, on RUNDIR/netns/NAME/TAP.sock in the namespace NAME (and
RUNDIR/netns-inode/INODE/TAP.sock in an unnamed one), so daemons with one TAP
name in different namespaces coexist; "ip netns exec NAME vxlanctl ..." and
"vxlanctl -n NAME ..." both reach NAME's. RUNDIR is /run/vxland, or
$VXLAND_RUNDIR when set. Without dev, "fdb show", "stats" and "devs" ask every daemon
with a socket in RUNDIR (or the one on --socket); "reload" reloads each daemon
with a socket there once.

Examples:
  # frames for 02:00:5e:10:00:01 go to the VTEP 192.0.2.2
  vxlanctl fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2

  # copy broadcast, multicast and unknown unicast to two VTEPs
  vxlanctl fdb append 00:00:00:00:00:00 dev vxl0 dst 192.0.2.2
  vxlanctl fdb append 00:00:00:00:00:00 dev vxl0 dst 192.0.2.3

  # move the host to another VTEP, on another port and VNI, as a static entry
  vxlanctl fdb replace 02:00:5e:10:00:01 dev vxl0 dst 2001:db8::2 port 8472 vni 100 static

  # drop one flood destination, then a whole entry
  vxlanctl fdb del 00:00:00:00:00:00 dev vxl0 dst 192.0.2.3
  vxlanctl fdb del 02:00:5e:10:00:01 dev vxl0

  vxlanctl fdb show dev vxl0
  vxlanctl stats

  # with proxy: answer ARP for 203.0.113.2 with 02:00:5e:10:00:02, and
  # follow the misses a controller should answer
  vxlanctl neigh add 203.0.113.2 lladdr 02:00:5e:10:00:02 dev vxl0
  vxlanctl monitor dev vxl0

Exit status: 0 success, 1 the daemon refused the request or no daemon
answered, 2 usage error.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cmd, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "vxlanctl: %v\nTry 'vxlanctl --help'.\n", err)
		return exitUsage
	}
	if cmd.op == opHelp {
		if _, err := io.WriteString(stdout, usageText); err != nil {
			return exitFail
		}
		return exitOK
	}
	if cmd.dir, err = socketDir(cmd.netns); err != nil {
		fmt.Fprintf(stderr, "vxlanctl: -n %s: %v\n", cmd.netns, err)
		return exitUsage
	}
	if err := execute(cmd, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "vxlanctl: %v\n", err)
		if isUsage(err) {
			return exitUsage
		}
		return exitFail
	}
	return exitOK
}

// socketDir is where the daemons of network namespace netns keep their
// sockets; "" means vxlanctl's own namespace.
func socketDir(netns string) (string, error) {
	if netns == "" {
		return control.SocketDir(), nil
	}
	return control.NetnsSocketDir(netns)
}

// connect returns a client for the daemon the command addresses.
func connect(cmd *command) (*control.Client, error) {
	if cmd.socket != "" {
		return control.Dial(cmd.socket)
	}
	return control.DialDevIn(cmd.dir, cmd.dev)
}

// execute carries out a parsed command, writing results to stdout and
// warnings to stderr.
func execute(cmd *command, stdout, stderr io.Writer) error {
	switch cmd.op {
	case opFDBAdd, opFDBAppend, opFDBReplace, opFDBDel:
		c, err := connect(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		switch cmd.op {
		case opFDBAdd:
			return c.FDBSet(fdb.OpAdd, cmd.dev, cmd.mac, *cmd.dst, cmd.state, cmd.router)
		case opFDBAppend:
			return c.FDBSet(fdb.OpAppend, cmd.dev, cmd.mac, *cmd.dst, cmd.state, cmd.router)
		case opFDBReplace:
			return c.FDBSet(fdb.OpReplace, cmd.dev, cmd.mac, *cmd.dst, cmd.state, cmd.router)
		default:
			return c.FDBDel(cmd.dev, cmd.mac, cmd.dst)
		}
	case opNeighAdd, opNeighReplace, opNeighDel:
		c, err := connect(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		switch cmd.op {
		case opNeighAdd:
			return c.NeighAdd(cmd.dev, cmd.ip, cmd.mac, cmd.router)
		case opNeighReplace:
			return c.NeighReplace(cmd.dev, cmd.ip, cmd.mac, cmd.router)
		default:
			return c.NeighDel(cmd.dev, cmd.ip)
		}
	case opNeighShow:
		var all []control.DeviceNeigh
		err := eachDaemon(cmd, stderr, func(c *control.Client) error {
			devs, err := c.NeighShow(cmd.dev)
			all = append(all, devs...)
			return err
		})
		if cmd.json {
			if werr := control.WriteNeighJSON(stdout, all); werr != nil {
				return werr
			}
			return err
		}
		for _, d := range all {
			if werr := control.FormatNeigh(stdout, d, cmd.dev == ""); werr != nil {
				return werr
			}
		}
		return err
	case opMonitor:
		return monitor(cmd, stdout, stderr)
	case opFDBShow:
		var all []control.DeviceFDB
		err := eachDaemon(cmd, stderr, func(c *control.Client) error {
			devs, err := c.FDBShow(cmd.dev)
			all = append(all, devs...)
			return err
		})
		if cmd.json {
			if werr := control.WriteFDBJSON(stdout, all); werr != nil {
				return werr
			}
			return err
		}
		// Like bridge, name the device on each line unless filtered by dev.
		for _, d := range all {
			if werr := control.FormatFDB(stdout, d, cmd.dev == ""); werr != nil {
				return werr
			}
		}
		return err
	case opStats:
		var all []control.DeviceStats
		err := eachDaemon(cmd, stderr, func(c *control.Client) error {
			devs, err := c.Stats(cmd.dev)
			all = append(all, devs...)
			return err
		})
		write := control.FormatStats
		if cmd.json {
			write = control.WriteStatsJSON
		}
		if werr := write(stdout, all); werr != nil {
			return werr
		}
		return err
	case opDevs:
		var all []control.DeviceInfo
		err := eachDaemon(cmd, stderr, func(c *control.Client) error {
			devs, err := c.Devices()
			for _, d := range devs {
				if cmd.dev == "" || d.Name == cmd.dev {
					all = append(all, d)
				}
			}
			return err
		})
		if err == nil && cmd.dev != "" && len(all) == 0 {
			err = fmt.Errorf("no device %q on this socket", cmd.dev)
		}
		write := control.FormatDevs
		if cmd.json {
			write = control.WriteDevsJSON
		}
		if werr := write(stdout, all); werr != nil {
			return werr
		}
		return err
	case opReload:
		return reload(cmd, stdout)
	case opClusterShow:
		return clusterShow(cmd, stdout)
	case opBGPShow:
		return bgpShow(cmd, stdout)
	}
	return fmt.Errorf("internal error: unexpected command %v", cmd.op)
}

// eachDaemon calls f with a client for the daemon the command addresses or,
// for show, stats and devs without dev and --socket, for each daemon with a socket
// in the run directory. Stale sockets of dead daemons are reported on stderr
// and skipped; other failures are reported and make the result an error.
func eachDaemon(cmd *command, stderr io.Writer, f func(*control.Client) error) error {
	if cmd.dev != "" || cmd.socket != "" {
		c, err := connect(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		return f(c)
	}
	socks, err := control.FindSocketsIn(cmd.dir)
	if err != nil {
		return err
	}
	if len(socks) == 0 {
		return fmt.Errorf("no vxland daemon found: no sockets in %s (is the daemon running? VXLAND_RUNDIR selects another directory)", cmd.dir)
	}
	answered, failed := 0, 0
	for _, p := range socks {
		c, err := control.Dial(p)
		if err == nil {
			err = f(c)
			c.Close()
		}
		switch {
		case err == nil:
			answered++
		case errors.Is(err, syscall.ECONNREFUSED):
			fmt.Fprintf(stderr, "vxlanctl: skipping stale socket %s (no daemon behind it)\n", p)
		default:
			fmt.Fprintf(stderr, "vxlanctl: %v\n", err)
			failed++
		}
	}
	switch {
	case failed > 0:
		return fmt.Errorf("%d of %d daemons failed to answer", failed, len(socks))
	case answered == 0:
		return fmt.Errorf("no vxland daemon answered in %s", cmd.dir)
	}
	return nil
}
