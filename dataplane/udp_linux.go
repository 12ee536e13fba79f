package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/stats"
)

// cmsgSpace is room for the control messages of one datagram: the outer TOS
// (or traffic class) and UDP_GRO size in, or TOS, TTL and UDP_SEGMENT out.
const cmsgSpace = 128

// udpSocket is a UDP socket received from through recvmmsg on
// preallocated message arrays, so a batch costs one system call and no
// allocation (one receiving goroutine). Senders use a udpSender each.
type udpSocket struct {
	fd   int
	file *os.File // keeps fd in Go's poller
	rc   syscall.RawConn
	v6   bool
	port uint16

	// receive side
	rmsgs  []unix.Mmsghdr
	riovs  []unix.Iovec
	rnames []unix.RawSockaddrInet6 // large enough for either family
	roobs  [][cmsgSpace]byte
	rn     int   // result of the last recvmmsg
	rerr   error // error of the last recvmmsg
	rfn    func(fd uintptr) bool
	// overflow counts the datagrams the kernel dropped because the
	// receive queue was full; nil when not asked for. pollOverflow
	// updates it.
	overflow *stats.Counter
	// kernelDrops is the socket's drop count when pollOverflow last read
	// it; the kernel's count is cumulative, overflow gets what it grew by.
	kernelDrops atomic.Uint32
}

// openUDP opens a UDP socket bound to local:port (local may be the zero
// Addr: any address of the family v6 selects). The socket is not connected:
// kernel peers vary their source port per flow.
func openUDP(local netip.Addr, port uint16, v6 bool, batch int) (*udpSocket, error) {
	return openUDPReuse(local, port, v6, batch, false)
}

// openUDPReuse is openUDP, with SO_REUSEPORT set before the bind when reuse
// is: sockets bound so to one address and port share its datagrams, each
// flow (4-tuple) always to the same socket.
func openUDPReuse(local netip.Addr, port uint16, v6 bool, batch int, reuse bool) (*udpSocket, error) {
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("udp socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if v6 {
		// One family per socket keeps addresses unambiguous.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return nil, fmt.Errorf("udp socket: IPV6_V6ONLY: %w", err)
		}
	}
	if reuse {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return nil, fmt.Errorf("udp socket: SO_REUSEPORT: %w", err)
		}
	}
	var sa unix.Sockaddr
	if v6 {
		s := &unix.SockaddrInet6{Port: int(port)}
		if local.IsValid() {
			s.Addr = local.As16()
		}
		sa = s
	} else {
		s := &unix.SockaddrInet4{Port: int(port)}
		if local.IsValid() {
			s.Addr = local.As4()
		}
		sa = s
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, &BindError{Addr: local, Port: port, Err: err}
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("udp socket: getsockname: %w", err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		port = uint16(a.Port)
	case *unix.SockaddrInet6:
		port = uint16(a.Port)
	}
	file := os.NewFile(uintptr(fd), "udp")
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("udp socket: %w", err)
	}
	ok = true
	s := &udpSocket{fd: fd, file: file, rc: rc, v6: v6, port: port}
	s.rmsgs = make([]unix.Mmsghdr, batch)
	s.riovs = make([]unix.Iovec, batch)
	s.rnames = make([]unix.RawSockaddrInet6, batch)
	s.roobs = make([][cmsgSpace]byte, batch)
	s.rfn = s.recvOnce
	return s, nil
}

// BindError reports that the UDP port could not be bound.
type BindError struct {
	Addr netip.Addr
	Port uint16
	Err  error
}

func (e *BindError) Error() string {
	where := fmt.Sprintf("port %d", e.Port)
	if e.Addr.IsValid() {
		where = fmt.Sprintf("%s port %d", e.Addr, e.Port)
	}
	switch e.Err {
	case unix.EADDRINUSE:
		return fmt.Sprintf("udp %s is already in use (another vxland, or a kernel vxlan device with the same dstport?)", where)
	case unix.EADDRNOTAVAIL:
		return fmt.Sprintf("udp %s: local address is not configured on this host", where)
	}
	return fmt.Sprintf("udp %s: bind: %v", where, e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

func (s *udpSocket) setInt(level, opt, v int, what string) error {
	if err := unix.SetsockoptInt(s.fd, level, opt, v); err != nil {
		return fmt.Errorf("udp socket: %s: %w", what, err)
	}
	return nil
}

// setIPInt sets an IP-level option of the socket's family: opt4 at
// IPPROTO_IP on an IPv4 socket, opt6 at IPPROTO_IPV6 on an IPv6 one;
// what names the pair in errors.
func (s *udpSocket) setIPInt(opt4, opt6, v int, what string) error {
	if s.v6 {
		return s.setInt(unix.IPPROTO_IPV6, opt6, v, what)
	}
	return s.setInt(unix.IPPROTO_IP, opt4, v, what)
}

// close closes the socket and unblocks pending reads.
func (s *udpSocket) close() error { return s.file.Close() }

// Recv implements netio.Receiver: one recvmmsg of up to len(msgs)
// datagrams, with the outer TOS and the UDP_GRO segment size from their
// control messages.
func (s *udpSocket) Recv(msgs []netio.Datagram) (int, error) {
	n := min(len(msgs), len(s.rmsgs))
	for i := 0; i < n; i++ {
		s.riovs[i].Base = &msgs[i].Buf[0]
		s.riovs[i].SetLen(len(msgs[i].Buf))
		h := &s.rmsgs[i].Hdr
		h.Iov = &s.riovs[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&s.rnames[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Control = &s.roobs[i][0]
		h.SetControllen(cmsgSpace)
		h.Flags = 0
		s.rmsgs[i].Len = 0
	}
	s.rn = n
	if err := s.rc.Read(s.rfn); err != nil {
		return 0, err
	}
	if s.rerr != nil {
		return 0, s.rerr
	}
	got := s.rn
	for i := 0; i < got; i++ {
		m := &msgs[i]
		m.N = int(s.rmsgs[i].Len)
		if s.rmsgs[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
			m.N = -1 // larger than the buffer: the caller drops it
		}
		m.Addr = sockaddrToAddrPort(&s.rnames[i])
		m.TOS, m.GSOSize = parseRecvCmsgs(s.roobs[i][:s.rmsgs[i].Hdr.Controllen])
	}
	return got, nil
}

// countOverflow makes pollOverflow add the datagrams the kernel drops for
// this socket (its receive queue full) to c.
//
// The drop count is read with getsockopt(SO_MEMINFO), not received with
// every datagram (SO_RXQ_OVFL): with SO_RXQ_OVFL set, a socket of this
// kernel stopped being served after a burst of drops (a UDP flood left the
// receive loop waiting with datagrams queued); a read once a second costs
// nothing per packet.
func (s *udpSocket) countOverflow(c *stats.Counter) error {
	s.overflow = c
	d, err := s.drops()
	if err != nil {
		return err
	}
	s.kernelDrops.Store(d)
	return nil
}

// pollOverflow adds to the overflow counter what the kernel's drop count
// grew by since the last call. Safe to call from one goroutine at a time.
func (s *udpSocket) pollOverflow() {
	if s.overflow == nil {
		return
	}
	d, err := s.drops()
	if err != nil {
		return
	}
	if n := dropsDelta(s.kernelDrops.Load(), d); n > 0 {
		s.overflow.Add(uint64(n))
		s.kernelDrops.Store(d)
	}
}

// skMeminfoDrops is SK_MEMINFO_DROPS, the index of the drop count in what
// SO_MEMINFO returns.
const skMeminfoDrops = 8

// drops returns the socket's cumulative count of datagrams the kernel
// dropped (SO_MEMINFO's SK_MEMINFO_DROPS).
func (s *udpSocket) drops() (uint32, error) {
	var mem [skMeminfoDrops + 1]uint32
	l := uint32(unsafe.Sizeof(mem))
	// The descriptor directly, not through rc.Control, whose closure would
	// allocate; a read after Close fails with EBADF and changes nothing.
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		return 0, fmt.Errorf("getsockopt(SO_MEMINFO): %w", e)
	}
	return mem[skMeminfoDrops], nil
}

// dropsDelta returns how much the kernel's cumulative 32-bit drop count
// grew from last to cur, across a wrap. The count only grows and
// datagrams are received in the order they were queued, so a cur behind
// last (a difference of 2^31 or more) is not growth and gives 0.
func dropsDelta(last, cur uint32) uint32 {
	d := cur - last
	if d >= 1<<31 {
		return 0
	}
	return d
}

func (s *udpSocket) recvOnce(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.rmsgs[0])), uintptr(s.rn), unix.MSG_DONTWAIT, 0, 0)
	if e == unix.EAGAIN {
		return false
	}
	if e == unix.EINTR {
		return false
	}
	if e != 0 {
		s.rerr = e
		s.rn = 0
		return true
	}
	s.rerr = nil
	s.rn = int(r)
	return true
}

func sockaddrToAddrPort(rsa *unix.RawSockaddrInet6) netip.AddrPort {
	switch rsa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), binary.BigEndian.Uint16(p[:]))
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&rsa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(rsa.Addr).Unmap(), binary.BigEndian.Uint16(p[:]))
	}
	return netip.AddrPort{}
}

// parseRecvCmsgs returns the outer TOS (IP_TOS or IPV6_TCLASS) and the
// UDP_GRO segment size (0 when the datagram was not coalesced) from a
// received datagram's control messages.
func parseRecvCmsgs(oob []byte) (tos uint8, gso int) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			break
		}
		data := oob[unix.SizeofCmsghdr:l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_TOS && len(data) >= 1:
			tos = data[0]
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_TCLASS && len(data) >= 4:
			tos = uint8(binary.NativeEndian.Uint32(data))
		case h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && len(data) >= 4:
			gso = int(binary.NativeEndian.Uint32(data))
		}
		adv := cmsgAlign(l)
		if adv > len(oob) {
			break
		}
		oob = oob[adv:]
	}
	return tos, gso
}

func cmsgAlign(n int) int { return (n + 7) &^ 7 }

func putSockaddr(rsa *unix.RawSockaddrInet6, to netip.AddrPort, v6 bool) uint32 {
	port := to.Port()
	if !v6 {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		sa4.Family = unix.AF_INET
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		binary.BigEndian.PutUint16(p[:], port)
		sa4.Addr = to.Addr().As4()
		return unix.SizeofSockaddrInet4
	}
	rsa.Family = unix.AF_INET6
	p := (*[2]byte)(unsafe.Pointer(&rsa.Port))
	binary.BigEndian.PutUint16(p[:], port)
	rsa.Flowinfo = 0
	rsa.Addr = to.Addr().As16()
	rsa.Scope_id = 0
	return unix.SizeofSockaddrInet6
}

// putSendCmsgs writes the per-datagram TOS (traffic class) and TTL (hop
// limit) control messages into b and returns their length.
func putSendCmsgs(b []byte, tos, ttl uint8, v6 bool) int {
	if v6 {
		n := putIntCmsg(b, unix.IPPROTO_IPV6, unix.IPV6_TCLASS, int32(tos))
		return n + putIntCmsg(b[n:], unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, int32(ttl))
	}
	n := putIntCmsg(b, unix.IPPROTO_IP, unix.IP_TOS, int32(tos))
	return n + putIntCmsg(b[n:], unix.IPPROTO_IP, unix.IP_TTL, int32(ttl))
}

// putU16Cmsg writes one u16-valued control message (UDP_SEGMENT) and
// returns its space.
func putU16Cmsg(b []byte, level, typ int32, v uint16) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = level
	h.Type = typ
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.SizeofCmsghdr:], v)
	return unix.CmsgSpace(2)
}

// putIntCmsg writes one int-valued control message and returns its space.
func putIntCmsg(b []byte, level, typ int32, v int32) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = level
	h.Type = typ
	h.SetLen(unix.CmsgLen(4))
	binary.NativeEndian.PutUint32(b[unix.SizeofCmsghdr:], uint32(v))
	return unix.CmsgSpace(4)
}
