package flannel

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
)

// Host programs the host's side of flannel's data plane for the other
// nodes' leases, as flanneld's vxlan backend does on flannel.<VNI>: a
// permanent neighbour entry (the subnet's network address -> VtepMAC) and
// an onlink route to the subnet via that address. With DirectRouting, a
// node whose PublicIP is on a directly connected subnet gets a plain route
// via its PublicIP instead, and no encapsulation. It works in the
// namespace of the handle it is given.
type Host struct {
	handle        *netlink.Handle
	link          int // the TAP's index
	directRouting bool
	applied       map[netip.Prefix]Route
}

// Route is how the host reaches one lease's subnet: through the tunnel, or
// directly via its PublicIP.
type Route struct {
	Lease  Lease
	Direct bool
}

// NewHost returns a Host for the TAP with index link, reached through
// handle (netlink.NewHandle() for the daemon's own namespace).
func NewHost(handle *netlink.Handle, link int, directRouting bool) *Host {
	return &Host{handle: handle, link: link, directRouting: directRouting, applied: map[netip.Prefix]Route{}}
}

// Plan decides how each lease is reached, asking the kernel's routing
// once per lease: directly when DirectRouting is on and the route to its
// PublicIP has no gateway, through the tunnel otherwise.
func (h *Host) Plan(leases []Lease) []Route {
	out := make([]Route, len(leases))
	for i, l := range leases {
		out[i] = Route{Lease: l, Direct: h.direct(l)}
	}
	return out
}

func (h *Host) direct(l Lease) bool {
	if !h.directRouting {
		return false
	}
	routes, err := h.handle.RouteGet(l.PublicIP.AsSlice())
	return err == nil && len(routes) > 0 && routes[0].Gw == nil && routes[0].LinkIndex != h.link
}

// Apply makes the host hold exactly the entries of plan: what changed or
// went is removed first (route, then neighbour), then what is new is added
// (neighbour, then route, so the kernel never resolves the gateway itself).
func (h *Host) Apply(plan []Route) error {
	want := make(map[netip.Prefix]Route, len(plan))
	for _, r := range plan {
		want[r.Lease.Subnet] = r
	}
	var errs []error
	for subnet, old := range h.applied {
		if now, ok := want[subnet]; ok && now.Lease.Equal(old.Lease) && now.Direct == old.Direct {
			continue
		}
		if err := h.remove(old); err != nil {
			errs = append(errs, err)
		}
		delete(h.applied, subnet)
	}
	for subnet, e := range want {
		if _, ok := h.applied[subnet]; ok {
			continue
		}
		if err := h.add(e); err != nil {
			errs = append(errs, err)
			continue
		}
		h.applied[subnet] = e
	}
	return errors.Join(errs...)
}

// Close removes every entry Host installed.
func (h *Host) Close() error { return h.Apply(nil) }

func (h *Host) route(e Route) *netlink.Route {
	dst := &net.IPNet{IP: e.Lease.Subnet.Addr().AsSlice(), Mask: net.CIDRMask(e.Lease.Subnet.Bits(), 32)}
	if e.Direct {
		return &netlink.Route{Dst: dst, Gw: e.Lease.PublicIP.AsSlice()}
	}
	r := &netlink.Route{LinkIndex: h.link, Scope: netlink.SCOPE_UNIVERSE, Dst: dst, Gw: e.Lease.Subnet.Addr().AsSlice()}
	r.SetFlag(syscall.RTNH_F_ONLINK)
	return r
}

func (h *Host) neigh(e Route) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    h.link,
		Family:       netlink.FAMILY_V4,
		State:        netlink.NUD_PERMANENT,
		Type:         netlink.NDA_DST,
		IP:           e.Lease.Subnet.Addr().AsSlice(),
		HardwareAddr: e.Lease.VtepMAC,
	}
}

func (h *Host) add(e Route) error {
	if !e.Direct {
		if err := h.handle.NeighSet(h.neigh(e)); err != nil {
			return fmt.Errorf("flannel: neighbour %s lladdr %s: %w", e.Lease.Subnet.Addr(), e.Lease.VtepMAC, err)
		}
	}
	if err := h.handle.RouteReplace(h.route(e)); err != nil {
		return fmt.Errorf("flannel: route %s: %w", e.Lease.Subnet, err)
	}
	return nil
}

func (h *Host) remove(e Route) error {
	var errs []error
	if err := h.handle.RouteDel(h.route(e)); err != nil && !errors.Is(err, syscall.ESRCH) {
		errs = append(errs, fmt.Errorf("flannel: delete route %s: %w", e.Lease.Subnet, err))
	}
	if !e.Direct {
		if err := h.handle.NeighDel(h.neigh(e)); err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("flannel: delete neighbour %s: %w", e.Lease.Subnet.Addr(), err))
		}
	}
	return errors.Join(errs...)
}
