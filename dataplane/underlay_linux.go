package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/stats"
)

const (
	// DefaultTxSockets is the size of the transmit socket pool when the
	// source port range is the kernel's local port range: flows spread
	// over this many outer source ports (a socket can only send from the
	// port it is bound to).
	DefaultTxSockets = 64
	// sendBatchLen is how many messages one sendmmsg carries at most.
	sendBatchLen = 64
	// sendIovecs is the room for gathered parts of one sendmmsg.
	sendIovecs = 1024
)

// udpConfig describes the Linux underlay: UDP sockets.
type udpConfig struct {
	// Bind is the receive address (the zero Addr or unspecified: any).
	Bind netip.Addr
	// Local is the transmit sockets' source address (zero: routing picks).
	Local      netip.Addr
	Dev        string
	V6         bool
	Port       uint16
	SrcPortMin uint16
	SrcPortMax uint16
	TxSockets  int
	// Queues is how many receive sockets share the port (SO_REUSEPORT).
	Queues  int
	Offload bool
	// Overflow counts the datagrams the kernel dropped for want of room
	// in a receive queue.
	Overflow *stats.Counter
	Logf     func(format string, args ...any)
}

// udpUnderlay is the Linux netio.Underlay: a group of receive sockets on
// one port (SO_REUSEPORT spreads flows over them) and a pool of transmit
// sockets bound to distinct source ports.
type udpUnderlay struct {
	cfg  udpConfig
	port uint16
	rx   []*udpSocket
	tx   []*udpSocket
	caps netio.UnderlayCaps
}

var _ netio.Underlay = (*udpUnderlay)(nil)

// openUnderlay opens the sockets cfg describes.
func openUnderlay(cfg udpConfig) (_ *udpUnderlay, err error) {
	u := &udpUnderlay{cfg: cfg}
	defer func() {
		if err != nil {
			u.Close()
		}
	}()
	if err := u.openRx(); err != nil {
		return nil, err
	}
	if err := u.openTxPool(); err != nil {
		return nil, err
	}
	u.caps = netio.UnderlayCaps{V6: cfg.V6, SourcePorts: len(u.tx)}
	if cfg.Offload {
		u.probeOffloads()
	}
	return u, nil
}

// openRx binds the receive sockets. With several queues, a socket without
// SO_REUSEPORT first checks that nobody holds the port (so that a second
// daemon is refused, not let into the group), then the group is bound.
func (u *udpUnderlay) openRx() error {
	cfg := u.cfg
	n := max(cfg.Queues, 1)
	port := cfg.Port
	if n > 1 {
		probe, err := openUDP(cfg.Bind, port, cfg.V6, 1)
		if err != nil {
			return err
		}
		port = probe.port
		probe.close()
	}
	for i := 0; i < n; i++ {
		s, err := openUDPReuse(cfg.Bind, port, cfg.V6, defaultBatch, n > 1)
		if err != nil {
			return err
		}
		u.rx = append(u.rx, s)
		port = s.port
		if err := u.bindDev(s); err != nil {
			return err
		}
		if err := s.setIPInt(unix.IP_RECVTOS, unix.IPV6_RECVTCLASS, 1, "IP_RECVTOS/IPV6_RECVTCLASS"); err != nil {
			return err
		}
		if i > 0 {
			// Multicast is delivered to every socket of the port that
			// accepts it: only the first joins groups, the others take
			// none, so each datagram is received once.
			if err := s.setIPInt(unix.IP_MULTICAST_ALL, unix.IPV6_MULTICAST_ALL, 0, "IP_MULTICAST_ALL/IPV6_MULTICAST_ALL"); err != nil {
				return err
			}
		}
		setBuffer(s.fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, 8<<20)
		if err := s.countOverflow(cfg.Overflow); err != nil {
			return err
		}
	}
	u.port = port
	return nil
}

// setBuffer raises a socket buffer, with the privileged option first.
func setBuffer(fd, force, plain, size int) {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
	}
}

// openTxPool binds the transmit sockets. With an explicit source port range
// the sockets take ports spread evenly over it, so that the flow hash maps
// each flow to a stable port inside the range; otherwise the kernel picks
// ephemeral ports, as it does for the kernel driver's default range.
func (u *udpUnderlay) openTxPool() error {
	cfg := u.cfg
	n := cfg.TxSockets
	lo, hi := int(cfg.SrcPortMin), int(cfg.SrcPortMax)
	ranged := hi > lo
	if n <= 0 {
		n = DefaultTxSockets
	}
	if ranged && hi-lo < n {
		n = hi - lo
	}
	for i := 0; i < n; i++ {
		var s *udpSocket
		var err error
		if !ranged {
			s, err = openUDP(cfg.Local, 0, cfg.V6, 1)
		} else {
			// Try the slot's port, then the next ones in the slot.
			start := lo + i*(hi-lo)/n
			end := lo + (i+1)*(hi-lo)/n
			for p := start; p < end; p++ {
				s, err = openUDP(cfg.Local, uint16(p), cfg.V6, 1)
				if err == nil || !errors.Is(err, unix.EADDRINUSE) {
					break
				}
			}
		}
		if err != nil {
			if ranged && errors.Is(err, unix.EADDRINUSE) && len(u.tx) > 0 {
				continue // this slot is taken; the others serve
			}
			return fmt.Errorf("transmit socket: %w", err)
		}
		u.tx = append(u.tx, s)
		if err := u.bindDev(s); err != nil {
			return err
		}
		// DF unset, like the kernel driver's default ("df unset").
		// (IP_PMTUDISC_DONT and IPV6_PMTUDISC_DONT are both 0.)
		_ = s.setIPInt(unix.IP_MTU_DISCOVER, unix.IPV6_MTU_DISCOVER, unix.IP_PMTUDISC_DONT, "IP_MTU_DISCOVER/IPV6_MTU_DISCOVER")
		setBuffer(s.fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, 4<<20)
		setBuffer(s.fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, 4096)
		if err := u.multicastTx(s); err != nil {
			return err
		}
	}
	if len(u.tx) == 0 {
		return fmt.Errorf("no free source port in %d-%d", lo, hi)
	}
	return nil
}

// probeOffloads turns on UDP GRO for the receive sockets and checks that
// the transmit sockets take UDP_SEGMENT, logging one line for each the
// kernel refuses; the data path then uses the next best way, with the same
// wire behaviour.
func (u *udpUnderlay) probeOffloads() {
	u.caps.GRO = true
	for _, s := range u.rx {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_UDP, unix.UDP_GRO, 1); err != nil {
			u.cfg.Logf("udp: kernel refuses UDP_GRO (%v); receiving datagrams one by one", err)
			u.caps.GRO = false
			break
		}
	}
	u.caps.GSO = true
	for _, s := range u.tx {
		if err := unix.SetsockoptInt(s.fd, unix.SOL_UDP, unix.UDP_SEGMENT, 0); err != nil {
			u.cfg.Logf("udp: kernel refuses UDP_SEGMENT (%v); sending segments with sendmmsg", err)
			u.caps.GSO = false
			break
		}
	}
}

// bindDev restricts s to the configured underlay device.
func (u *udpUnderlay) bindDev(s *udpSocket) error {
	if u.cfg.Dev == "" {
		return nil
	}
	if err := unix.BindToDevice(s.fd, u.cfg.Dev); err != nil {
		return fmt.Errorf("bind to device %s: %w", u.cfg.Dev, err)
	}
	return nil
}

// multicastTx sends multicast through the underlay device, and never to
// ourselves (the kernel's vxlan socket turns multicast loop off too).
func (u *udpUnderlay) multicastTx(s *udpSocket) error {
	if err := s.setIPInt(unix.IP_MULTICAST_LOOP, unix.IPV6_MULTICAST_LOOP, 0, "IP_MULTICAST_LOOP/IPV6_MULTICAST_LOOP"); err != nil {
		return err
	}
	if u.cfg.Dev == "" {
		return nil
	}
	ifi, err := net.InterfaceByName(u.cfg.Dev)
	if err != nil {
		return fmt.Errorf("device %s: %w", u.cfg.Dev, err)
	}
	if u.cfg.V6 {
		return s.setInt(unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index, "IPV6_MULTICAST_IF")
	}
	if err := unix.SetsockoptIPMreqn(s.fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)}); err != nil {
		return fmt.Errorf("udp socket: IP_MULTICAST_IF %s: %w", u.cfg.Dev, err)
	}
	return nil
}

// JoinGroup joins group on the underlay device (IGMP or MLD), on the
// first receive socket only.
func (u *udpUnderlay) JoinGroup(group netip.Addr) error {
	return u.membership(group, true)
}

// LeaveGroup leaves group on the underlay device.
func (u *udpUnderlay) LeaveGroup(group netip.Addr) error {
	return u.membership(group, false)
}

func (u *udpUnderlay) membership(group netip.Addr, join bool) error {
	what := "join"
	if !join {
		what = "leave"
	}
	if u.cfg.Dev == "" {
		return fmt.Errorf("group %s: needs an underlay device (--dev)", group)
	}
	if group.Is6() != u.cfg.V6 {
		return fmt.Errorf("group %s: address family differs from the underlay's", group)
	}
	ifi, err := net.InterfaceByName(u.cfg.Dev)
	if err != nil {
		return fmt.Errorf("%s group %s: device %s: %w", what, group, u.cfg.Dev, err)
	}
	pc, err := net.FilePacketConn(u.rx[0].file) // a duplicate of the same socket
	if err != nil {
		return fmt.Errorf("%s group %s: %w", what, group, err)
	}
	defer pc.Close()
	ga := &net.UDPAddr{IP: group.AsSlice()}
	switch {
	case group.Is4() && join:
		err = ipv4.NewPacketConn(pc).JoinGroup(ifi, ga)
	case group.Is4():
		err = ipv4.NewPacketConn(pc).LeaveGroup(ifi, ga)
	case join:
		err = ipv6.NewPacketConn(pc).JoinGroup(ifi, ga)
	default:
		err = ipv6.NewPacketConn(pc).LeaveGroup(ifi, ga)
	}
	if err != nil {
		return fmt.Errorf("%s group %s on %s: %w", what, group, u.cfg.Dev, err)
	}
	return nil
}

// Receivers implements netio.Underlay: the receive sockets.
func (u *udpUnderlay) Receivers() []netio.Receiver {
	rs := make([]netio.Receiver, len(u.rx))
	for i, s := range u.rx {
		rs[i] = s
	}
	return rs
}

// Caps implements netio.Underlay.
func (u *udpUnderlay) Caps() netio.UnderlayCaps { return u.caps }

// Port implements netio.Underlay.
func (u *udpUnderlay) Port() uint16 { return u.port }

// Tick implements netio.Underlay: the kernel's drop counts are read.
func (u *udpUnderlay) Tick() {
	for _, s := range u.rx {
		s.pollOverflow()
	}
}

// Close implements netio.Underlay.
func (u *udpUnderlay) Close() error {
	for _, s := range u.rx {
		s.close()
	}
	for _, s := range u.tx {
		s.close()
	}
	return nil
}

// NewSender implements netio.Underlay.
func (u *udpUnderlay) NewSender() netio.Sender {
	s := &udpSender{
		u:     u,
		msgs:  make([]unix.Mmsghdr, sendBatchLen),
		idx:   make([]int, sendBatchLen),
		iovs:  make([]unix.Iovec, sendIovecs),
		names: make([]unix.RawSockaddrInet6, sendBatchLen),
		oobs:  make([][cmsgSpace]byte, sendBatchLen),
		sock:  make([]uint16, maxSendCall),
		sent:  make([]bool, maxSendCall),
	}
	s.fn = s.sendOnce
	return s
}

// maxSendCall is how many messages one udpSender.Send handles per pass.
const maxSendCall = 1024

// udpSender is one goroutine's sender: it groups a batch's messages by
// the transmit socket their flow hash picks and sends each group with
// sendmmsg, gathering every message's parts.
type udpSender struct {
	u     *udpUnderlay
	msgs  []unix.Mmsghdr
	idx   []int // msgs[i] stands for the call's message idx[i]
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oobs  [][cmsgSpace]byte
	sock  []uint16 // the socket of each message of the pass
	sent  []bool   // whether each message of the pass was handled

	// sendmmsg state
	fd   *udpSocket
	n    int
	done int
	err  error
	fn   func(fd uintptr) bool
}

// Send implements netio.Sender.
func (s *udpSender) Send(msgs []netio.Datagram) (int, error) {
	total := 0
	for len(msgs) > 0 {
		pass := msgs[:min(len(msgs), maxSendCall)]
		msgs = msgs[len(pass):]
		n, err := s.sendPass(pass)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// sendPass sends msgs (at most maxSendCall), one socket's messages at a
// time in their order.
func (s *udpSender) sendPass(msgs []netio.Datagram) (int, error) {
	nsock := uint16(len(s.u.tx))
	for i := range msgs {
		s.sock[i] = encap.SourcePort(msgs[i].Flow, 0, nsock)
		s.sent[i] = false
		msgs[i].Err = nil
	}
	total := 0
	for first := range msgs {
		if s.sent[first] {
			continue
		}
		sock := s.sock[first]
		// Gather this socket's messages from first on, as many as fit.
		n, niov := 0, 0
		for i := first; i < len(msgs) && n < len(s.msgs); i++ {
			if s.sent[i] || s.sock[i] != sock {
				continue
			}
			m := &msgs[i]
			if len(m.Parts) == 0 || len(m.Parts) > len(s.iovs) {
				m.Err = unix.EINVAL
				s.sent[i] = true
				continue
			}
			if niov+len(m.Parts) > len(s.iovs) {
				break
			}
			s.fill(n, niov, m)
			s.idx[n] = i
			s.sent[i] = true
			niov += len(m.Parts)
			n++
		}
		got, err := s.flush(s.u.tx[sock], msgs, n)
		total += got
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// fill writes message m into mmsghdr slot i, its iovecs from iovs[iov].
func (s *udpSender) fill(i, iov int, m *netio.Datagram) {
	v := s.iovs[iov : iov+len(m.Parts)]
	for k, p := range m.Parts {
		v[k].Base = unsafe.SliceData(p)
		v[k].SetLen(len(p))
	}
	h := &s.msgs[i].Hdr
	h.Iov = &v[0]
	h.SetIovlen(len(v))
	h.Name = (*byte)(unsafe.Pointer(&s.names[i]))
	h.Namelen = putSockaddr(&s.names[i], m.Addr, s.u.cfg.V6)
	cl := putSendCmsgs(s.oobs[i][:], m.TOS, m.TTL, s.u.cfg.V6)
	if m.GSOSize > 0 {
		cl += putU16Cmsg(s.oobs[i][cl:], unix.SOL_UDP, unix.UDP_SEGMENT, uint16(m.GSOSize))
	}
	h.Control = &s.oobs[i][0]
	h.SetControllen(cl)
	s.msgs[i].Len = 0
}

// flush sends the n messages filled in, on sock. A message the kernel
// refuses gets its error and is skipped, so one unreachable destination
// does not hold up the others.
func (s *udpSender) flush(sock *udpSocket, msgs []netio.Datagram, n int) (sent int, err error) {
	s.fd, s.n, s.done = sock, n, 0
	for s.done < s.n {
		s.err = nil
		if werr := sock.rc.Write(s.fn); werr != nil {
			for i := s.done; i < s.n; i++ {
				msgs[s.idx[i]].Err = werr
			}
			return sent, werr
		}
		if s.err != nil {
			msgs[s.idx[s.done]].Err = s.err
			s.done++ // skip the datagram the kernel refused
		}
	}
	for i := 0; i < n; i++ {
		if s.msgs[i].Len > 0 || msgs[s.idx[i]].Err == nil {
			sent++
		}
	}
	return sent, nil
}

func (s *udpSender) sendOnce(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.msgs[s.done])), uintptr(s.n-s.done), 0, 0, 0)
	switch e {
	case 0:
		s.done += int(r)
		return true
	case unix.EAGAIN, unix.EINTR:
		return false
	}
	s.err = e // a bare errno: no allocation
	return true
}
