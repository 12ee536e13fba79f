// Package link configures network interfaces through netlink: MTU, MAC
// address, addresses and state of the TAP, and the underlay MTU that sizes
// it. Nothing here shells out to ip(8).
package link

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Settings are what Configure applies to an interface.
type Settings struct {
	// MTU, when non-zero.
	MTU int
	// MAC, when non-nil.
	MAC net.HardwareAddr
	// Addrs are added to the interface (prefix form, e.g. 203.0.113.1/24).
	Addrs []netip.Prefix
	// Up sets the interface administratively up.
	Up bool
}

// Configure applies s to the interface named name.
func Configure(name string, s Settings) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if s.MAC != nil {
		if err := netlink.LinkSetHardwareAddr(l, s.MAC); err != nil {
			return fmt.Errorf("link %s: set address %s: %w", name, s.MAC, err)
		}
	}
	if s.MTU != 0 {
		if err := netlink.LinkSetMTU(l, s.MTU); err != nil {
			return fmt.Errorf("link %s: set mtu %d: %w", name, s.MTU, err)
		}
	}
	for _, p := range s.Addrs {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if err := netlink.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("link %s: add address %s: %w", name, p, err)
		}
	}
	if s.Up {
		if err := netlink.LinkSetUp(l); err != nil {
			return fmt.Errorf("link %s: set up: %w", name, err)
		}
	}
	return nil
}

// MTU returns the MTU of the interface named name.
func MTU(name string) (int, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	return l.Attrs().MTU, nil
}

// Exists reports whether an interface named name exists.
func Exists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// RouteMTU returns the MTU of the interface the kernel would route dst
// through: the route's own MTU when it has one, else the device's.
func RouteMTU(dst netip.Addr) (int, error) {
	routes, err := netlink.RouteGet(dst.AsSlice())
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
	l, err := netlink.LinkByIndex(r.LinkIndex)
	if err != nil {
		return 0, fmt.Errorf("route to %s: device %d: %w", dst, r.LinkIndex, err)
	}
	return l.Attrs().MTU, nil
}
