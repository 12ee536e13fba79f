package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/checksum"
	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/offload"
)

// The underlay TAP (--underlay tap): unicast IPv4 datagrams are written,
// with their outer Ethernet, IPv4 and UDP headers, to a TAP whose own MAC
// they are addressed to, so the host receives them there and forwards them
// like routed packets (the kernel does the route lookup and neighbour
// resolution). A TCP super-frame goes as one such frame behind a tunnel
// virtio-net header (Linux 6.17, TUN_F_UDP_TUNNEL_GSO): the kernel, or the
// NIC, segments it after encapsulation, and a kernel vxlan peer receives
// it decapsulated once per super-frame instead of once per segment.
// Receiving, multicast and groups stay on the UDP sockets.

const (
	// tunnelHdrLen is struct virtio_net_hdr_v1_hash_tunnel.
	tunnelHdrLen = 24
	// outerEthIPUDP is the outer Ethernet, IPv4 and UDP headers.
	outerEthIPUDP = 14 + 20 + 8
	// tunnelSlotLen is what a tapSender writes in front of a datagram's
	// parts (whose first is the VXLAN header).
	tunnelSlotLen = tunnelHdrLen + outerEthIPUDP
	// innerBase is where the inner frame starts, counted from the outer
	// Ethernet header.
	innerBase = outerEthIPUDP + encap.HeaderLen
)

// tapUnderlayConfig is what the underlay TAP needs besides the sockets.
type tapUnderlayConfig struct {
	// Name is the TAP's name, unique in the daemon's namespace.
	Name string
	// Local is the outer source address (required).
	Local netip.Addr
	// SrcPortMin and SrcPortMax bound the outer source ports, [min, max);
	// both zero: the kernel's local port range.
	SrcPortMin, SrcPortMax uint16
	// Queues is how many queues the TAP has (one per sender, round robin).
	Queues int
	Logf   func(format string, args ...any)
}

// tapUnderlay is the UDP underlay with unicast IPv4 sent through an
// underlay TAP.
type tapUnderlay struct {
	*udpUnderlay
	qs     []*TAP
	next   int // the queue the next sender takes
	mac    [6]byte
	local  [4]byte
	lo, hi uint16
	caps   netio.UnderlayCaps
}

var _ netio.Underlay = (*tapUnderlay)(nil)

// checkTAPUnderlay refuses what the underlay TAP cannot serve, before
// anything is opened.
func checkTAPUnderlay(local netip.Addr, v6 bool) error {
	if v6 || local.Is6() {
		return errors.New("--underlay tap: IPv6 underlays are not supported (IPv4 only)")
	}
	if !local.IsValid() || local.IsUnspecified() {
		return errors.New("--underlay tap needs --local: the outer source address is written by vxland")
	}
	return nil
}

// openTAPUnderlay adds the underlay TAP to u. It returns
// errTunnelGSORefused (wrapped) when the kernel lacks tunnel GSO on TAPs,
// other errors when the host is set up so that the outer packets would be
// dropped. On error u is left open, for the caller to use or close.
func openTAPUnderlay(u *udpUnderlay, cfg tapUnderlayConfig) (_ *tapUnderlay, err error) {
	if err := checkTAPUnderlay(cfg.Local, u.cfg.V6); err != nil {
		return nil, err
	}
	rpf, err := checkRPFilter()
	if err != nil {
		return nil, err
	}
	t := &tapUnderlay{udpUnderlay: u, local: cfg.Local.As4(), lo: cfg.SrcPortMin, hi: cfg.SrcPortMax}
	if t.lo == 0 && t.hi == 0 {
		if t.lo, t.hi, err = localPortRange(); err != nil {
			return nil, err
		}
	}
	t.qs, err = OpenTAPQueues(TAPOptions{Name: cfg.Name, TunnelGSO: true, Queues: max(cfg.Queues, 1)})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			t.closeTAP()
		}
	}()
	name := t.qs[0].Name()
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("underlay tap %s: %w", name, err)
	}
	copy(t.mac[:], ifi.HardwareAddr)
	if err := routerPort(name); err != nil {
		return nil, fmt.Errorf("underlay tap %s: %w", name, err)
	}
	if rpf == "2" {
		// Loose filtering drops what arrives on a device without an IPv4
		// address; the outer source, as a /32, passes it (the address
		// stays on its own device too, and goes with the TAP).
		if err := addHostAddr(ifi.Index, cfg.Local); err != nil {
			return nil, fmt.Errorf("underlay tap %s: %w", name, err)
		}
	}
	t.caps = u.caps
	t.caps.TunnelGSO = true
	t.caps.SourcePorts = int(t.hi - t.lo)
	cfg.Logf("underlay tap %s: unicast IPv4 sent through it, TCP super-frames whole (UDP tunnel GSO)", name)
	return t, nil
}

// checkRPFilter returns net.ipv4.conf.all.rp_filter, refusing strict
// filtering: the outer source is a local address received on a TAP with no
// route back through it. The effective value is the larger of conf.all and
// the device's, whose own is set to 0: off passes, loose passes once the
// TAP has an address (addHostAddr), strict never does.
func checkRPFilter() (string, error) {
	v, err := readSysctl("net/ipv4/conf/all/rp_filter")
	if err != nil {
		return "", err
	}
	if v == "1" {
		return "", errors.New("--underlay tap: net.ipv4.conf.all.rp_filter is 1 (strict reverse-path filtering), which drops the outer packets the underlay TAP hands the kernel; set it to 0 or 2 (sysctl -w net.ipv4.conf.all.rp_filter=2)")
	}
	return v, nil
}

// addHostAddr puts a as a /32 on the interface of index ifindex.
func addHostAddr(ifindex int, a netip.Addr) error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByIndex(ifindex)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(32, 32)}}
	if err := h.AddrAdd(l, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add %s/32: %w", a, err)
	}
	return nil
}

// routerPort sets the TAP up and makes it a port the host forwards from:
// forwarding and accept_local on, rp_filter off, IPv6 off, on this device
// alone.
func routerPort(name string) error {
	for _, s := range []struct{ key, val string }{
		{"net/ipv4/conf/" + name + "/forwarding", "1"},
		{"net/ipv4/conf/" + name + "/accept_local", "1"},
		{"net/ipv4/conf/" + name + "/rp_filter", "0"},
	} {
		if err := writeSysctl(s.key, s.val); err != nil {
			return err
		}
	}
	// No router solicitations or MLD reports queued on a TAP nobody reads.
	if err := writeSysctl("net/ipv6/conf/"+name+"/disable_ipv6", "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return setLinkUp(name)
}

// setLinkUp sets the interface name up.
func setLinkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set up: %w", err)
	}
	return nil
}

func readSysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", strings.ReplaceAll(key, "/", "."), err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctl(key, val string) error {
	if err := os.WriteFile("/proc/sys/"+key, []byte(val), 0); err != nil {
		return fmt.Errorf("set %s=%s: %w", strings.ReplaceAll(key, "/", "."), val, err)
	}
	return nil
}

// localPortRange is the kernel's local port range as [lo, hi), the range
// its vxlan driver picks source ports from by default.
func localPortRange() (lo, hi uint16, err error) {
	v, err := readSysctl("net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(v)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("ip_local_port_range %q: want two ports", v)
	}
	a, err1 := strconv.ParseUint(f[0], 10, 16)
	b, err2 := strconv.ParseUint(f[1], 10, 16)
	if err1 != nil || err2 != nil || a >= b {
		return 0, 0, fmt.Errorf("ip_local_port_range %q: want two ports, low first", v)
	}
	return uint16(a), uint16(b), nil
}

// Caps implements netio.Underlay.
func (t *tapUnderlay) Caps() netio.UnderlayCaps { return t.caps }

// Close implements netio.Underlay.
func (t *tapUnderlay) Close() error {
	t.closeTAP()
	return t.udpUnderlay.Close()
}

func (t *tapUnderlay) closeTAP() {
	for _, q := range t.qs {
		q.Close()
	}
}

// NewSender implements netio.Underlay: each sender writes to one queue of
// the TAP (round robin) and sends the rest through a UDP sender.
func (t *tapUnderlay) NewSender() netio.Sender {
	q := t.qs[t.next%len(t.qs)]
	t.next++
	return &tapSender{
		u: t, q: q, udp: t.udpUnderlay.NewSender(),
		// Each sender starts its IPv4 identifications at a random point, so
		// that senders to one peer do not repeat each other's (the outer
		// packets may be fragmented: DF is not set).
		hdr:   outerHeader{mac: t.mac, local: t.local, lo: t.lo, hi: t.hi, id: uint16(rand.Uint32())},
		parts: make([][]byte, 0, maxWriteParts),
	}
}

// tapSender is one goroutine's sender on a tapUnderlay.
type tapSender struct {
	u     *tapUnderlay
	q     *TAP
	udp   netio.Sender
	hdr   outerHeader
	slot  [tunnelSlotLen]byte
	parts [][]byte
	// rest holds the messages for the UDP sender, idx their index in the
	// caller's batch.
	rest []netio.Datagram
	idx  []int
}

// Send implements netio.Sender.
func (s *tapSender) Send(msgs []netio.Datagram) (int, error) {
	sent := 0
	s.rest, s.idx = s.rest[:0], s.idx[:0]
	for i := range msgs {
		m := &msgs[i]
		m.Err = nil
		if !viaTAP(m.Addr.Addr()) {
			if m.Inner.Type != netio.GSONone {
				m.Err = unix.EINVAL // only the TAP takes super-frames
				continue
			}
			s.rest = append(s.rest, *m)
			s.idx = append(s.idx, i)
			continue
		}
		err := s.write(m)
		if err == nil {
			sent++
			continue
		}
		if isClosed(err) {
			return sent, err
		}
		m.Err = err
	}
	if len(s.rest) == 0 {
		return sent, nil
	}
	n, err := s.udp.Send(s.rest)
	for k := range s.rest {
		msgs[s.idx[k]].Err = s.rest[k].Err
	}
	clear(s.rest) // drop the references to the batch's buffers
	return sent + n, err
}

// write writes m to the TAP: one frame (the tunnel virtio-net header and
// outer headers from the slot, then m's parts), or for a UDP_SEGMENT train
// one frame per datagram of it.
func (s *tapSender) write(m *netio.Datagram) error {
	n := 0
	for _, p := range m.Parts {
		n += len(p)
	}
	if m.GSOSize > 0 && n > m.GSOSize {
		if m.Inner.Type != netio.GSONone {
			return unix.EINVAL
		}
		return s.writeTrain(m, n)
	}
	if len(m.Parts)+1 > cap(s.parts) {
		return unix.EINVAL
	}
	if err := s.hdr.put(s.slot[:], m, n); err != nil {
		return err
	}
	s.parts = append(s.parts[:0], s.slot[:])
	s.parts = append(s.parts, m.Parts...)
	err := s.q.Write(s.parts)
	clear(s.parts)
	return err
}

// writeTrain writes the train m (n bytes of GSOSize-byte datagrams, the
// last possibly shorter) one datagram per frame, each gathered from the
// part ranges it spans behind its own headers. (The kernel takes no UDP
// GSO through a TAP's tunnel header; the engine sends trains only for what
// it cannot hand over whole: VLAN-tagged or UDP super-frames.)
func (s *tapSender) writeTrain(m *netio.Datagram, n int) error {
	defer clear(s.parts)
	pi, po := 0, 0 // the next byte: part pi, offset po
	for off := 0; off < n; off += m.GSOSize {
		size := min(m.GSOSize, n-off)
		s.parts = append(s.parts[:0], s.slot[:])
		for need := size; need > 0; {
			p := m.Parts[pi][po:]
			if len(p) == 0 {
				pi, po = pi+1, 0
				continue
			}
			if len(s.parts) == cap(s.parts) {
				return unix.EINVAL
			}
			take := min(len(p), need)
			s.parts = append(s.parts, p[:take])
			need -= take
			po += take
		}
		if err := s.hdr.put(s.slot[:], m, size); err != nil {
			return err
		}
		if err := s.q.Write(s.parts); err != nil {
			return err
		}
	}
	return nil
}

// outerHeader builds the tunnel virtio-net header and the outer Ethernet,
// IPv4 and UDP headers of the datagrams one sender writes.
type outerHeader struct {
	mac    [6]byte // the TAP's: the host receives and forwards the frame
	local  [4]byte
	lo, hi uint16 // source port range, [lo, hi)
	id     uint16 // the next IPv4 identification
}

// put writes into b (tunnelSlotLen bytes) the headers of datagram m, whose
// UDP payload (VXLAN header and inner frame) is n bytes long.
func (o *outerHeader) put(b []byte, m *netio.Datagram, n int) error {
	ipLen := 20 + 8 + n
	if ipLen > 0xffff || len(b) < tunnelSlotLen {
		return unix.EMSGSIZE
	}
	if !m.Addr.Addr().Is4() {
		return unix.EAFNOSUPPORT
	}
	v := b[:tunnelHdrLen]
	clear(v)
	segs := 1
	if g := &m.Inner; g.Type != netio.GSONone {
		var typ uint8
		switch g.Type {
		case netio.GSOTCPv4:
			typ = offload.GSOTCPv4
		case netio.GSOTCPv6:
			typ = offload.GSOTCPv6
		default:
			return unix.EINVAL
		}
		if g.ECN {
			typ |= offload.GSOECN
		}
		if g.Size == 0 || int(g.HdrLen) > n-encap.HeaderLen || g.CsumStart >= g.HdrLen || g.NetOff >= g.CsumStart {
			return unix.EINVAL
		}
		v[0] = offload.FlagNeedsCsum
		v[1] = typ | offload.GSOUDPTunnelIPv4
		binary.LittleEndian.PutUint16(v[2:], innerBase+g.HdrLen)
		binary.LittleEndian.PutUint16(v[4:], g.Size)
		binary.LittleEndian.PutUint16(v[6:], innerBase+g.CsumStart)
		binary.LittleEndian.PutUint16(v[8:], g.CsumOffset)
		binary.LittleEndian.PutUint16(v[20:], 14+20)              // outer_th_offset: the outer UDP header
		binary.LittleEndian.PutUint16(v[22:], innerBase+g.NetOff) // inner_nh_offset
		payload := n - encap.HeaderLen - int(g.HdrLen)
		segs = max(1, (payload+int(g.Size)-1)/int(g.Size))
	}

	e := b[tunnelHdrLen:]
	copy(e[0:6], o.mac[:])
	copy(e[6:12], o.mac[:])
	e[12], e[13] = 0x08, 0x00
	ip := e[14:34]
	ip[0] = 0x45
	ip[1] = m.TOS
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
	binary.BigEndian.PutUint16(ip[4:], o.id)
	o.id += uint16(segs) // the kernel numbers the segments from id on
	ip[6], ip[7] = 0, 0  // DF unset, as the UDP sockets send (IP_PMTUDISC_DONT)
	// The host forwards the packet and decrements its TTL: one more, so
	// that it leaves with the TTL the UDP path would give it.
	ip[8] = m.TTL
	if ip[8] < 255 {
		ip[8]++
	}
	ip[9] = unix.IPPROTO_UDP
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], o.local[:])
	dst := m.Addr.Addr().As4()
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], ^checksum.Fold(checksum.Sum(ip, 0)))
	u := e[34:42]
	binary.BigEndian.PutUint16(u[0:], encap.SourcePort(m.Flow, o.lo, o.hi))
	binary.BigEndian.PutUint16(u[2:], m.Addr.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+n))
	u[6], u[7] = 0, 0 // no UDP checksum, the kernel's default over IPv4
	return nil
}
