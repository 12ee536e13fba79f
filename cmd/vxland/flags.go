package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vxland/vxland/control"
	"github.com/vxland/vxland/encap"
)

// options are the daemon's settings, named after `ip link add ... type vxlan`.
type options struct {
	vni        uint32
	remotes    []netip.Addr
	local      netip.Addr
	dev        string
	dstport    uint16
	srcMin     uint16
	srcMax     uint16
	ttl        uint8
	tos        uint8
	tosInherit bool
	tap        string
	mtu        int
	mac        net.HardwareAddr
	learning   bool
	ageing     time.Duration
	maxaddress int
	control    string
	addrs      []netip.Prefix
	up         bool
	offload    bool
	v6         bool
}

// usageError is a problem with the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func badf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

const usageText = `vxland: a userspace VXLAN endpoint (RFC 7348), interoperable with Linux vxlan.

Usage:
  vxland --vni N [--remote IP]... [options]

It creates a TAP device that behaves like the device of
  ip link add vxlan0 type vxlan id N remote IP dstport 4789
and forwards its frames over UDP without the kernel's vxlan driver.

VXLAN (named after ip-link(8) type vxlan):
  --vni N              VXLAN network identifier, 0-16777215 (required)
  --remote IP          remote VTEP: flood destination for broadcast, multicast and
                       unknown unicast (repeat for head-end replication to several)
  --local IP           local underlay address to bind and send from
  --dev IFACE          underlay device to send through (also sizes the default MTU)
  --dstport PORT       UDP port to send to and listen on (default 4789; 8472 is Linux's legacy)
  --srcport MIN-MAX    outer UDP source port range (default: the local port range)
  --ttl N              outer TTL, 1-255 (default 64; 1 for multicast destinations)
  --tos N|inherit      outer TOS, or inherit the inner DS field (default 0); ECN per RFC 6040
  --learning=BOOL      learn remote MACs from received frames (default true)
  --ageing SECONDS     lifetime of learned entries (default 300)
  --maxaddress N       maximum forwarding entries, 0 for no limit (default 0)

Interface:
  --tap NAME           TAP device name (default vxland0)
  --mtu N              TAP MTU (default: underlay MTU - 50, or 1450)
  --mac MAC            TAP MAC address (default: stable, derived from host, TAP and VNI)
  --addr CIDR          address to put on the TAP, e.g. 203.0.113.1/24 (repeatable)
  --up                 set the TAP up once created

Daemon:
  --control PATH       control socket for vxlanctl (default /run/vxland/TAP.sock)
  --offload=BOOL       hand checksum state to the TAP in a virtio-net header (default true)
  -h, --help           show this help

Examples:
  vxland --vni 40 --remote 192.0.2.2 --addr 203.0.113.1/24 --up
  vxland --vni 42 --remote 192.0.2.2 --remote 192.0.2.3 --dstport 8472 --tap vx42
  vxlanctl fdb append 00:00:00:00:00:00 dev vxland0 dst 192.0.2.4

Exit status: 0 after SIGINT/SIGTERM, 2 for bad flags or a setup failure, 1 for a
failure while running. The TAP and control socket are removed on exit.
`

// parseFlags turns the command line into options.
func parseFlags(args []string, out io.Writer) (*options, error) {
	o := &options{}
	var setErr error // a repeatable flag's own, clearer message
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
		local      = fs.String("local", "", "")
		dstport    = fs.Int("dstport", 4789, "")
		srcport    = fs.String("srcport", "", "")
		ttl        = fs.String("ttl", "", "")
		tos        = fs.String("tos", "", "")
		mac        = fs.String("mac", "", "")
		ageing     = fs.Int("ageing", 300, "")
		maxaddress = fs.Int("maxaddress", 0, "")
	)
	fs.Var(check(func(s string) error {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return badf("--remote %q is not an IP address", s)
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return badf("--remote %s: must be a unicast address (multicast groups use --group)", s)
		}
		o.remotes = append(o.remotes, a.Unmap())
		return nil
	}), "remote", "")
	fs.Var(check(func(s string) error {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return badf("--addr %q is not an address with prefix length (like 203.0.113.1/24)", s)
		}
		o.addrs = append(o.addrs, p)
		return nil
	}), "addr", "")
	fs.StringVar(&o.dev, "dev", "", "")
	fs.StringVar(&o.tap, "tap", "vxland0", "")
	fs.IntVar(&o.mtu, "mtu", 0, "")
	fs.BoolVar(&o.learning, "learning", true, "")
	fs.StringVar(&o.control, "control", "", "")
	fs.BoolVar(&o.up, "up", false, "")
	fs.BoolVar(&o.offload, "offload", true, "")
	help := fs.Bool("help", false, "")
	fs.BoolVar(help, "h", false, "")

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
	if fs.NArg() > 0 {
		return nil, badf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}

	if *vni == "" {
		*vni = *id
	}
	if *vni == "" {
		return nil, badf("--vni is required (0-%d)", encap.MaxVNI)
	}
	v, err := strconv.ParseUint(*vni, 0, 64)
	if err != nil || v > encap.MaxVNI {
		return nil, badf("--vni %q: must be a number from 0 to %d", *vni, encap.MaxVNI)
	}
	o.vni = uint32(v)

	if *local != "" {
		a, err := netip.ParseAddr(*local)
		if err != nil || a.IsMulticast() {
			return nil, badf("--local %q is not a unicast IP address", *local)
		}
		o.local = a.Unmap()
	}
	if err := o.setFamily(); err != nil {
		return nil, err
	}

	if *dstport < 1 || *dstport > 65535 {
		return nil, badf("--dstport %d: must be 1-65535", *dstport)
	}
	o.dstport = uint16(*dstport)
	if *srcport != "" {
		lo, hi, ok := strings.Cut(*srcport, "-")
		if !ok {
			lo, hi, ok = strings.Cut(*srcport, ":")
		}
		a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
		b, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
		if !ok || err1 != nil || err2 != nil || a == 0 || b <= a {
			return nil, badf("--srcport %q: want MIN-MAX with 1 <= MIN < MAX <= 65535", *srcport)
		}
		o.srcMin, o.srcMax = uint16(a), uint16(b)
	}
	if *ttl != "" && *ttl != "auto" {
		t, err := strconv.ParseUint(*ttl, 0, 8)
		if err != nil || t == 0 {
			return nil, badf("--ttl %q: must be 1-255 or auto", *ttl)
		}
		o.ttl = uint8(t)
	}
	switch *tos {
	case "", "0":
	case "inherit":
		o.tosInherit = true
	default:
		t, err := strconv.ParseUint(*tos, 0, 8)
		if err != nil {
			return nil, badf("--tos %q: must be 0-255 (0x.. allowed) or inherit", *tos)
		}
		o.tos = uint8(t)
	}
	if *mac != "" {
		m, err := net.ParseMAC(*mac)
		if err != nil || len(m) != 6 {
			return nil, badf("--mac %q is not an Ethernet address", *mac)
		}
		if m[0]&1 != 0 || allZero(m) {
			return nil, badf("--mac %s: must be a unicast, non-zero address", *mac)
		}
		o.mac = m
	}
	if *ageing < 0 {
		return nil, badf("--ageing %d: must be >= 0 seconds", *ageing)
	}
	o.ageing = time.Duration(*ageing) * time.Second
	if *maxaddress < 0 {
		return nil, badf("--maxaddress %d: must be >= 0", *maxaddress)
	}
	o.maxaddress = *maxaddress
	if err := control.CheckDevName(o.tap); err != nil {
		return nil, badf("--tap: %v", err)
	}
	if o.mtu != 0 && (o.mtu < 68 || o.mtu > 65535-50) {
		return nil, badf("--mtu %d: must be 68-65485", o.mtu)
	}
	if o.control == "" {
		o.control = control.SocketPath(o.tap)
	}
	return o, nil
}

// setFamily checks that the underlay addresses are of one family and
// records which.
func (o *options) setFamily() error {
	var fam []netip.Addr
	if o.local.IsValid() {
		fam = append(fam, o.local)
	}
	fam = append(fam, o.remotes...)
	for i, a := range fam {
		if a.Is4() != fam[0].Is4() {
			return badf("underlay addresses mix IPv4 and IPv6 (%s and %s)", fam[0], fam[i])
		}
	}
	o.v6 = len(fam) > 0 && fam[0].Is6()
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// funcValue adapts a function to flag.Value for repeatable flags.
type funcValue func(string) error

func (f funcValue) String() string     { return "" }
func (f funcValue) Set(s string) error { return f(s) }
