package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/vxland/vxland/config"
	"github.com/vxland/vxland/encap"
)

// usageError is a problem with the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func badf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

const usageText = `vxland: a userspace VXLAN endpoint (RFC 7348), interoperable with Linux vxlan.

Usage:
  vxland --vni N [--remote IP... | --group IP --dev IFACE] [options]
  vxland --config FILE

It creates a TAP device that behaves like the device of
  ip link add vxlan0 type vxlan id N remote IP dstport 4789
and forwards its frames over UDP without the kernel's vxlan driver.

VXLAN (named after ip-link(8) type vxlan):
  --vni N              VXLAN network identifier, 0-16777215 (required)
  --remote IP          remote VTEP: flood destination for broadcast, multicast and
                       unknown unicast (repeat for head-end replication to several)
  --group IP           multicast group to join on --dev and flood to (excludes --remote)
  --local IP           local underlay address to bind and send from
  --dev IFACE          underlay device to send through (also sizes the default MTU)
  --dstport PORT       UDP port to send to and listen on (default 4789; 8472 is Linux's legacy)
  --srcport MIN-MAX    outer UDP source port range (default: the local port range)
  --ttl N|inherit      outer TTL, 1-255, or the inner TTL (default 64; 1 to a multicast group)
  --tos N|inherit      outer TOS, or inherit the inner DS field (default 0); ECN per RFC 6040
  --learning=BOOL      learn remote MACs from received frames (default true)
  --ageing SECONDS     lifetime of learned entries, 0 for never (default 300)
  --maxaddress N       maximum forwarding entries, 0 for no limit (default 0)

Interface:
  --tap NAME           TAP device name (default vxland0)
  --netns NAME|PATH    create the TAP in this network namespace (a name from
                       'ip netns add', or a path like /proc/PID/ns/net); the UDP
                       socket stays in vxland's own namespace
  --mtu N              TAP MTU (default: underlay MTU - 50 over IPv4, - 70 over IPv6)
  --mac MAC            TAP MAC address (default: stable, derived from host, namespace,
                       --local, TAP and VNI)
  --addr CIDR          address to put on the TAP, e.g. 203.0.113.1/24 (repeatable)
  --master BRIDGE      enslave the TAP to this Linux bridge (in the TAP's namespace)
  --up                 set the TAP up once created

Daemon:
  --config FILE        serve the VNIs a TOML file declares (see docs/config.md)
  --control PATH       control socket for vxlanctl (default /run/vxland/TAP.sock, or
                       /run/vxland/netns/NAME/TAP.sock in network namespace NAME)
  --metrics ADDR       serve Prometheus metrics on http://ADDR/metrics (host:port; default off)
  --offload=BOOL       TSO/GSO/GRO and checksum hand-over with the kernel (default true)
  --cpuprofile FILE    write a Go CPU profile to FILE until exit (for 'go tool pprof')
  --version            print the version and exit
  -h, --help           show this help

Examples:
  vxland --vni 40 --remote 192.0.2.2 --addr 203.0.113.1/24 --up
  vxland --vni 42 --remote 192.0.2.2 --remote 192.0.2.3 --dstport 8472 --tap vx42
  vxland --vni 7 --group 239.1.1.1 --dev eth0 --master br0 --up
  vxland --vni 9 --remote 192.0.2.2 --netns blue --addr 203.0.113.9/24 --up
  vxlanctl fdb append 00:00:00:00:00:00 dev vxland0 dst 192.0.2.4

Exit status: 0 after SIGINT/SIGTERM, 2 for bad flags or a setup failure, 1 for a
failure while running. TAPs and control sockets are removed on exit.
`

// versionString names the build: module version and VCS revision when the
// binary carries them.
func versionString() string {
	v, rev, dirty := "(devel)", "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		return fmt.Sprintf("vxland %s (%s%s) %s", v, rev, dirty, runtime.Version())
	}
	return fmt.Sprintf("vxland %s %s", v, runtime.Version())
}

// cpuProfile is where --cpuprofile writes, "" for nowhere.
var cpuProfile string

// parseFlags turns the command line into a validated configuration. It
// returns nil, nil after printing --help.
func parseFlags(args []string, out io.Writer) (*config.Config, error) {
	v := config.NewVNI(0) // ip-link's defaults; the ID comes from --vni
	var setErr error      // a repeatable flag's own, clearer message
	check := func(f funcValue) funcValue {
		return func(s string) error {
			err := f(s)
			if err != nil && setErr == nil {
				setErr = err
			}
			return err
		}
	}
	fs := flag.NewFlagSet("vxland", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		vni        = fs.String("vni", "", "")
		id         = fs.String("id", "", "") // ip-link's own spelling
		group      = fs.String("group", "", "")
		local      = fs.String("local", "", "")
		dstport    = fs.Int("dstport", 4789, "")
		srcport    = fs.String("srcport", "", "")
		ttl        = fs.String("ttl", "", "")
		tos        = fs.String("tos", "", "")
		mac        = fs.String("mac", "", "")
		ageing     = fs.Int("ageing", 300, "")
		maxaddress = fs.Int("maxaddress", 0, "")
		file       = fs.String("config", "", "")
		metrics    = fs.String("metrics", "", "")
		help       = fs.Bool("help", false, "")
		version    = fs.Bool("version", false, "")
	)
	fs.BoolVar(help, "h", false, "")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "")
	fs.Var(check(func(s string) error {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return badf("--remote %q is not an IP address", s)
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return badf("--remote %s: must be a unicast address (multicast groups use --group)", s)
		}
		v.Remotes = append(v.Remotes, a.Unmap())
		return nil
	}), "remote", "")
	fs.Var(check(func(s string) error {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return badf("--addr %q is not an address with prefix length (like 203.0.113.1/24)", s)
		}
		v.Addrs = append(v.Addrs, p)
		return nil
	}), "addr", "")
	fs.StringVar(&v.Dev, "dev", "", "")
	fs.StringVar(&v.TAP, "tap", "vxland0", "")
	fs.StringVar(&v.Netns, "netns", "", "")
	fs.StringVar(&v.Master, "master", "", "")
	fs.IntVar(&v.MTU, "mtu", 0, "")
	fs.BoolVar(&v.Learning, "learning", true, "")
	fs.StringVar(&v.Control, "control", "", "")
	fs.BoolVar(&v.Up, "up", false, "")
	fs.BoolVar(&v.Offload, "offload", true, "")

	if err := fs.Parse(args); err != nil {
		if setErr != nil {
			return nil, setErr
		}
		// flag's own messages, made one line.
		return nil, badf("%s", strings.TrimSpace(strings.SplitN(err.Error(), "\n", 2)[0]))
	}
	if *help {
		fmt.Fprint(out, usageText)
		return nil, nil
	}
	if *version {
		fmt.Fprintln(out, versionString())
		return nil, nil
	}
	if fs.NArg() > 0 {
		return nil, badf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if *file != "" {
		var other []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "config" && f.Name != "cpuprofile" && f.Name != "version" && f.Name != "metrics" {
				other = append(other, "--"+f.Name)
			}
		})
		if len(other) > 0 {
			return nil, badf("--config declares everything; drop %s", strings.Join(other, " "))
		}
		cfg, err := config.Load(*file)
		if err != nil {
			return nil, &usageError{err.Error()}
		}
		if *metrics != "" { // the command line overrides [daemon] metrics
			cfg.Daemon.Metrics = *metrics
			if err := cfg.Validate(); err != nil {
				return nil, &usageError{flagWords(err)}
			}
		}
		return cfg, nil
	}

	if *vni == "" {
		*vni = *id
	}
	if *vni == "" {
		return nil, badf("--vni is required (0-%d), or --config FILE", encap.MaxVNI)
	}
	n, err := strconv.ParseUint(*vni, 0, 64)
	if err != nil || n > encap.MaxVNI {
		return nil, badf("--vni %q: must be a number from 0 to %d", *vni, encap.MaxVNI)
	}
	v.ID = uint32(n)
	if *group != "" {
		a, err := netip.ParseAddr(*group)
		if err != nil || !a.IsMulticast() {
			return nil, badf("--group %q is not a multicast address (224.0.0.0/4 or ff00::/8)", *group)
		}
		v.Group = a
	}
	if *local != "" {
		a, err := netip.ParseAddr(*local)
		if err != nil || a.IsMulticast() {
			return nil, badf("--local %q is not a unicast IP address", *local)
		}
		v.Local = a.Unmap()
	}
	if *dstport < 1 || *dstport > 65535 {
		return nil, badf("--dstport %d: must be 1-65535", *dstport)
	}
	v.Port = uint16(*dstport)
	if *srcport != "" {
		lo, hi, ok := config.ParseSrcPort(*srcport)
		if !ok {
			return nil, badf("--srcport %q: want MIN-MAX with 1 <= MIN < MAX <= 65535", *srcport)
		}
		v.SrcPortMin, v.SrcPortMax = lo, hi
	}
	t, inherit, ok := config.ParseTTL(*ttl)
	if !ok {
		return nil, badf("--ttl %q: must be 1-255, auto or inherit", *ttl)
	}
	v.TTL, v.TTLInherit = t, inherit
	if *tos != "" {
		t, inherit, ok := config.ParseTOS(*tos)
		if !ok {
			return nil, badf("--tos %q: must be 0-255 (0x.. allowed) or inherit", *tos)
		}
		v.TOS, v.TOSInherit = t, inherit
	}
	if *mac != "" {
		m, err := net.ParseMAC(*mac)
		if err != nil || len(m) != 6 {
			return nil, badf("--mac %q is not an Ethernet address", *mac)
		}
		v.MAC = m
	}
	if *ageing < 0 {
		return nil, badf("--ageing %d: must be >= 0 seconds", *ageing)
	}
	v.Ageing = time.Duration(*ageing) * time.Second
	v.MaxAddress = *maxaddress
	cfg := &config.Config{Version: config.Version, Daemon: config.Daemon{Metrics: *metrics}, VNIs: []config.VNI{v}}
	cfg.FillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, &usageError{flagWords(err)}
	}
	return cfg, nil
}

// flagWords rewords a configuration error for the command line: the
// one-VNI model's "vni N (entry 1):" prefixes say nothing there.
func flagWords(err error) string {
	var parts []string
	var walk func(error)
	walk = func(e error) {
		var ce *config.Error
		switch {
		case errors.As(e, &ce) && ce.Err != nil:
			parts = append(parts, ce.Err.Error())
		default:
			if j, ok := e.(interface{ Unwrap() []error }); ok {
				for _, x := range j.Unwrap() {
					walk(x)
				}
				return
			}
			parts = append(parts, e.Error())
		}
	}
	walk(err)
	return strings.Join(parts, "; ")
}

// funcValue adapts a function to flag.Value for repeatable flags.
type funcValue func(string) error

func (f funcValue) String() string     { return "" }
func (f funcValue) Set(s string) error { return f(s) }
