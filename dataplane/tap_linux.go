package dataplane

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/offload"
)

// TUN offload flags for TUNSETOFFLOAD (linux/if_tun.h).
const (
	tunFCsum = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
	tunFUSO4 = 0x20
	tunFUSO6 = 0x40
	// Linux 6.17: GSO over UDP tunnels, with a 24-byte virtio-net header.
	tunFUDPTunnelGSO     = 0x80
	tunFUDPTunnelGSOCsum = 0x100
)

// errTunnelGSORefused is returned by OpenTAPQueues when the kernel does not
// take the tunnel GSO offloads TAPOptions.TunnelGSO asks for.
var errTunnelGSORefused = errors.New("kernel refuses UDP tunnel GSO on a TAP (TUN_F_UDP_TUNNEL_GSO needs Linux 6.17 or later)")

// TAP is a Linux TAP device opened through /dev/net/tun. It is not
// persistent: the kernel removes it when the descriptor closes, so nothing
// is left behind even if the process is killed.
type TAP struct {
	name     string
	file     *os.File
	rc       syscall.RawConn
	vnetHdr  bool // frames carry a virtio-net header in front
	gso      bool // the kernel may hand over TSO super-frames
	offloads string

	// batch read state, reused on every call
	rbufs  [][]byte
	rsizes []int
	rn     int
	rerr   error
	rfn    func(fd uintptr) bool

	// Write state: one writer at a time (the receive loop's frames and
	// the transmit loop's proxy replies share it; replies are rare).
	wmu  sync.Mutex
	wiov [maxWriteParts]unix.Iovec
	wn   int
	werr error
	wfn  func(fd uintptr) bool
}

// TAPOptions says how to open a TAP.
type TAPOptions struct {
	// Name is the interface name; empty lets the kernel choose.
	Name string
	// VnetHdr opens the TAP with IFF_VNET_HDR so that checksum state can be
	// handed over in a virtio-net header.
	VnetHdr bool
	// GSO additionally enables TSO (and USO where available) so the kernel
	// hands over super-frames; requires VnetHdr.
	GSO bool
	// Queues is how many queues (descriptors) the device has; more than
	// one makes it a multiqueue TAP (IFF_MULTI_QUEUE), whose queue the
	// kernel picks per flow for frames the host sends.
	Queues int
	// TunnelGSO opens a TAP that takes encapsulated frames: a 24-byte
	// virtio-net header (tunnelHdrLen) and TSO over UDP tunnels; VnetHdr
	// and GSO are implied. The kernel refusing it is errTunnelGSORefused.
	TunnelGSO bool
}

// maxWriteParts bounds the parts of one gathered frame write.
const maxWriteParts = 128

// ErrTUNPermission is returned when /dev/net/tun cannot be opened for lack
// of privilege.
var ErrTUNPermission = errors.New("no permission to open /dev/net/tun: run as root or grant CAP_NET_ADMIN")

type ifreqFlags struct {
	name  [unix.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

// OpenTAPQueues creates the TAP device described by o and returns its
// queues (one unless o.Queues asks for more). The device goes when the
// last queue is closed.
func OpenTAPQueues(o TAPOptions) ([]*TAP, error) {
	n := max(o.Queues, 1)
	var qs []*TAP
	for i := 0; i < n; i++ {
		t, err := openTAP(o, n > 1, i == 0)
		if err != nil {
			for _, q := range qs {
				q.Close()
			}
			return nil, err
		}
		o.Name = t.name // the kernel's choice, when o.Name was empty
		qs = append(qs, t)
	}
	return qs, nil
}

// OpenTAP creates the single-queue TAP device described by o.
func OpenTAP(o TAPOptions) (*TAP, error) { return openTAP(o, false, true) }

// openTAP opens one queue of the TAP o names. The first queue is opened
// with IFF_TUN_EXCL: a TAP of that name that exists already is refused
// (EBUSY), where a multiqueue open would otherwise add a queue to it (a
// second daemon taking a share of another's frames).
func openTAP(o TAPOptions, multiqueue, first bool) (*TAP, error) {
	if len(o.Name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tap name %q is longer than %d characters", o.Name, unix.IFNAMSIZ-1)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return nil, ErrTUNPermission
		}
		if errors.Is(err, unix.ENOENT) {
			return nil, errors.New("/dev/net/tun does not exist: load the tun module (modprobe tun)")
		}
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	var req ifreqFlags
	copy(req.name[:], o.Name)
	req.flags = unix.IFF_TAP | unix.IFF_NO_PI
	if o.VnetHdr || o.TunnelGSO {
		req.flags |= unix.IFF_VNET_HDR
	}
	if multiqueue {
		req.flags |= unix.IFF_MULTI_QUEUE
	}
	if first {
		req.flags |= unix.IFF_TUN_EXCL
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); e != 0 {
		switch e {
		case unix.EPERM, unix.EACCES:
			return nil, ErrTUNPermission
		case unix.EBUSY:
			// IFF_TUN_EXCL refuses any existing device with EBUSY, a TAP or
			// not (the caller's thread is in the TAP's namespace).
			if l, err := netlink.LinkByName(o.Name); err == nil && l.Type() != "tuntap" {
				return nil, fmt.Errorf("tap %s: a device with this name exists and is not a TAP", o.Name)
			}
			return nil, fmt.Errorf("tap %s: a device of this name is in use or exists already (another vxland, or a TAP made with ip tuntap?); vxland creates its own", o.Name)
		case unix.EINVAL:
			return nil, fmt.Errorf("tap %s: a device with this name exists and is not a TAP", o.Name)
		}
		return nil, fmt.Errorf("tap %s: TUNSETIFF: %w", o.Name, e)
	}
	t := &TAP{name: unix.ByteSliceToString(req.name[:]), vnetHdr: o.VnetHdr || o.TunnelGSO}
	if o.TunnelGSO {
		if err := t.setTunnelOffload(fd); err != nil {
			return nil, err
		}
	} else if o.VnetHdr {
		sz := offload.VirtioNetHdrLen
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETVNETHDRSZ, uintptr(unsafe.Pointer(&sz))); e != 0 {
			return nil, fmt.Errorf("tap %s: TUNSETVNETHDRSZ: %w", t.name, e)
		}
		if o.GSO {
			t.setOffload(fd)
		} else if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETOFFLOAD, 0); e != 0 {
			return nil, fmt.Errorf("tap %s: TUNSETOFFLOAD: %w", t.name, e)
		}
	}
	t.file = os.NewFile(uintptr(fd), "/dev/net/tun")
	t.rc, err = t.file.SyscallConn()
	if err != nil {
		t.file.Close()
		return nil, fmt.Errorf("tap %s: %w", t.name, err)
	}
	ok = true
	t.rfn = t.readMany
	t.wfn = t.writevOnce
	return t, nil
}

// setOffload asks for checksum and segmentation offload, falling back to
// fewer offloads on kernels that refuse some (USO needs Linux 6.2). When
// every set is refused the TAP works without offloads.
func (t *TAP) setOffload(fd int) {
	for _, o := range []struct {
		flags uintptr
		desc  string
	}{
		{tunFCsum | tunFTSO4 | tunFTSO6 | tunFUSO4 | tunFUSO6, "csum tso4 tso6 uso4 uso6"},
		{tunFCsum | tunFTSO4 | tunFTSO6, "csum tso4 tso6"},
		{tunFCsum, "csum"},
	} {
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETOFFLOAD, o.flags); e == 0 {
			t.gso = o.flags&tunFTSO4 != 0
			t.offloads = o.desc
			return
		}
	}
	t.offloads = "none"
}

// setTunnelOffload sets the 24-byte virtio-net header and the tunnel GSO
// offloads.
func (t *TAP) setTunnelOffload(fd int) error {
	sz := int32(tunnelHdrLen)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETVNETHDRSZ, uintptr(unsafe.Pointer(&sz))); e != 0 {
		return fmt.Errorf("tap %s: TUNSETVNETHDRSZ %d: %w", t.name, tunnelHdrLen, e)
	}
	flags := uintptr(tunFCsum | tunFTSO4 | tunFTSO6 | tunFUDPTunnelGSO | tunFUDPTunnelGSOCsum)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETOFFLOAD, flags); e != 0 {
		return fmt.Errorf("tap %s: TUNSETOFFLOAD %#x: %w (%w)", t.name, flags, errTunnelGSORefused, e)
	}
	t.gso = true
	t.offloads = "csum tso4 tso6 udp_tunnel_gso udp_tunnel_gso_csum"
	return nil
}

// Offloads describes the offloads the kernel accepted.
func (t *TAP) Offloads() string { return t.offloads }

// Name returns the interface name.
func (t *TAP) Name() string { return t.name }

// VnetHdr reports whether frames carry a virtio-net header.
func (t *TAP) VnetHdr() bool { return t.vnetHdr }

// GSO reports whether the kernel may hand over TSO super-frames.
func (t *TAP) GSO() bool { return t.gso }

// Close closes the device; the kernel removes the interface.
func (t *TAP) Close() error { return t.file.Close() }

// Read reads up to len(bufs) frames, blocking until at least one is there,
// and then taking whatever else is already queued without blocking. Frame i
// is stored at bufs[i][offset:] and its length in sizes[i].
func (t *TAP) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if cap(t.rbufs) < len(bufs) {
		t.rbufs = make([][]byte, len(bufs))
	}
	t.rbufs = t.rbufs[:len(bufs)]
	for i := range bufs {
		t.rbufs[i] = bufs[i][offset:]
	}
	t.rsizes = sizes
	t.rn = 0
	t.rerr = nil
	err := t.rc.Read(t.rfn)
	if err != nil {
		return 0, err
	}
	if t.rn == 0 && t.rerr != nil {
		return 0, t.rerr
	}
	return t.rn, nil
}

func (t *TAP) readMany(fd uintptr) bool {
	for t.rn < len(t.rbufs) {
		b := t.rbufs[t.rn]
		n, _, e := unix.Syscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e == unix.EINTR {
			continue
		}
		if e == unix.EAGAIN {
			return t.rn > 0
		}
		if e == unix.EBADFD {
			t.rerr = fmt.Errorf("tap %s was removed (ip link del?): %w", t.name, e)
			return true
		}
		if e != 0 {
			t.rerr = fmt.Errorf("tap %s: read: %w", t.name, e)
			return true
		}
		t.rsizes[t.rn] = int(n)
		t.rn++
	}
	return true
}

// Write implements netio.FrameDevice: one writev of the frame's parts.
func (t *TAP) Write(parts [][]byte) error {
	if len(parts) > maxWriteParts {
		return fmt.Errorf("tap %s: frame of %d parts: %w", t.name, len(parts), unix.EINVAL)
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	n := 0
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		t.wiov[n].Base = &p[0]
		t.wiov[n].SetLen(len(p))
		n++
	}
	t.wn = n
	t.werr = nil
	if err := t.rc.Write(t.wfn); err != nil {
		return err
	}
	return t.werr
}

func (t *TAP) writevOnce(fd uintptr) bool {
	_, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&t.wiov[0])), uintptr(t.wn))
	switch e {
	case 0:
		return true
	case unix.EINTR, unix.EAGAIN:
		return false
	}
	t.werr = e // a bare errno: no allocation when writes fail (TAP down)
	return true
}

// Caps implements netio.FrameDevice.
func (t *TAP) Caps() netio.FrameCaps {
	return netio.FrameCaps{VnetHdr: t.vnetHdr, TSO: t.gso, Offloads: t.offloads}
}

var _ netio.FrameDevice = (*TAP)(nil)
