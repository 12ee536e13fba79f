// Package link configures network interfaces through netlink: MTU, MAC
// address, addresses, bridge port and state of a TAP, in whichever network
// namespace it lives, and reads the underlay MTU that sizes it. Nothing here
// shells out to ip(8).
package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Settings are what Configure applies to an interface.
type Settings struct {
	// MTU, when non-zero.
	MTU int
	// MAC, when non-nil.
	MAC net.HardwareAddr
	// TxQueueLen, when non-zero.
	TxQueueLen int
	// Master is a bridge to enslave the interface to, when not empty.
	Master string
	// Addrs are added to the interface (prefix form, e.g. 203.0.113.1/24).
	Addrs []netip.Prefix
	// Up sets the interface administratively up.
	Up bool
}

// Handle talks netlink to one network namespace.
type Handle struct {
	nl *netlink.Handle
	ns netns.NsHandle // -1 for the daemon's own namespace
}

// NetnsPath resolves a namespace given as a name (under /run/netns, as
// `ip netns add` makes them) or as a path such as /proc/PID/ns/net.
func NetnsPath(spec string) string {
	if strings.ContainsRune(spec, '/') {
		return spec
	}
	return filepath.Join("/run/netns", spec)
}

// Open returns a handle for the namespace spec ("" for the daemon's own).
func Open(spec string) (*Handle, error) {
	if spec == "" {
		nl, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("netlink: %w", err)
		}
		return &Handle{nl: nl, ns: -1}, nil
	}
	path := NetnsPath(spec)
	ns, err := netns.GetFromPath(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("network namespace %s: %s does not exist", spec, path)
		}
		return nil, fmt.Errorf("network namespace %s: %w", spec, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(ns), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		ns.Close()
		return nil, fmt.Errorf("network namespace %s: %s is not a network namespace", spec, path)
	}
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("network namespace %s: netlink: %w", spec, err)
	}
	return &Handle{nl: nl, ns: ns}, nil
}

// Close releases the handle.
func (h *Handle) Close() {
	h.nl.Close()
	if h.ns >= 0 {
		h.ns.Close()
	}
}

// Do runs fn on a locked OS thread inside the handle's namespace, so that
// what fn creates (a TAP device, a socket) belongs to that namespace. The
// thread returns to its own namespace afterwards.
func (h *Handle) Do(fn func() error) error {
	if h.ns < 0 {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current network namespace: %w", err)
			return // the thread stays locked and is discarded
		}
		defer orig.Close()
		if err := netns.Set(h.ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave network namespace: %w", err))
			return // locked thread in the wrong namespace: let it die
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Configure applies s to the interface named name.
func (h *Handle) Configure(name string, s Settings) error {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if s.MAC != nil {
		if err := h.nl.LinkSetHardwareAddr(l, s.MAC); err != nil {
			return fmt.Errorf("link %s: set address %s: %w", name, s.MAC, err)
		}
	}
	if s.MTU != 0 {
		if err := h.nl.LinkSetMTU(l, s.MTU); err != nil {
			return fmt.Errorf("link %s: set mtu %d: %w", name, s.MTU, err)
		}
	}
	if s.TxQueueLen != 0 {
		if err := h.nl.LinkSetTxQLen(l, s.TxQueueLen); err != nil {
			return fmt.Errorf("link %s: set txqueuelen %d: %w", name, s.TxQueueLen, err)
		}
	}
	if s.Master != "" {
		br, err := h.nl.LinkByName(s.Master)
		if err != nil {
			return fmt.Errorf("link %s: master %s: no such device", name, s.Master)
		}
		if br.Type() != "bridge" {
			return fmt.Errorf("link %s: master %s is a %s, not a bridge", name, s.Master, br.Type())
		}
		if err := h.nl.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("link %s: set master %s: %w", name, s.Master, err)
		}
	}
	for _, p := range s.Addrs {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.nl.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("link %s: add address %s: %w", name, p, err)
		}
	}
	if s.Up {
		if err := h.nl.LinkSetUp(l); err != nil {
			return fmt.Errorf("link %s: set up: %w", name, err)
		}
	}
	return nil
}

// Exists reports whether an interface named name exists.
func (h *Handle) Exists(name string) bool {
	_, err := h.nl.LinkByName(name)
	return err == nil
}

// MTU returns the MTU of the interface named name.
func (h *Handle) MTU(name string) (int, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	return l.Attrs().MTU, nil
}

// Index returns the interface index of name.
func (h *Handle) Index(name string) (int, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	return l.Attrs().Index, nil
}

// RouteMTU returns the MTU of the interface the kernel would route dst
// through: the route's own MTU when it has one, else the device's.
func (h *Handle) RouteMTU(dst netip.Addr) (int, error) {
	routes, err := h.nl.RouteGet(dst.AsSlice())
	if err != nil {
		return 0, fmt.Errorf("route to %s: %w", dst, err)
	}
	if len(routes) == 0 {
		return 0, fmt.Errorf("no route to %s", dst)
	}
	r := routes[0]
	if r.MTU > 0 {
		return r.MTU, nil
	}
	l, err := h.nl.LinkByIndex(r.LinkIndex)
	if err != nil {
		return 0, fmt.Errorf("route to %s: device %d: %w", dst, r.LinkIndex, err)
	}
	return l.Attrs().MTU, nil
}

// DefaultRouteDev returns the device of the IPv4 default route.
func (h *Handle) DefaultRouteDev() (string, error) {
	routes, err := h.nl.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return "", fmt.Errorf("netlink: list routes: %w", err)
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified() && net.IP(r.Dst.Mask).IsUnspecified()) && r.LinkIndex > 0 {
			l, err := h.nl.LinkByIndex(r.LinkIndex)
			if err != nil {
				return "", fmt.Errorf("netlink: default route device: %w", err)
			}
			return l.Attrs().Name, nil
		}
	}
	return "", errors.New("no IPv4 default route")
}

// FirstIPv4 returns the first global IPv4 address of the interface name.
func (h *Handle) FirstIPv4(name string) (netip.Addr, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %w", name, err)
	}
	addrs, err := h.nl.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: list addresses: %w", name, err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap().IsGlobalUnicast() {
			return ip.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%s has no IPv4 address", name)
}

// SubscribeNeigh sends the neighbour table of the handle's namespace to
// ch: every current entry first, then each change, until done closes (ch
// is closed then, and when the subscription fails; errf hears why).
func (h *Handle) SubscribeNeigh(ch chan<- netlink.NeighUpdate, done <-chan struct{}, errf func(error)) error {
	opts := netlink.NeighSubscribeOptions{ListExisting: true, ErrorCallback: errf}
	if h.ns >= 0 {
		ns := h.ns
		opts.Namespace = &ns
	}
	if err := netlink.NeighSubscribeWithOptions(ch, done, opts); err != nil {
		return fmt.Errorf("netlink: neighbour notifications: %w", err)
	}
	return nil
}
