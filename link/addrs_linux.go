package link

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Addrs returns the IP addresses on the interface named name (without
// prefix lengths), leaving out IPv6 link-local ones (derived from the MAC,
// and of no use to a peer across the underlay).
func (h *Handle) Addrs(name string) ([]netip.Addr, error) {
	l, err := h.nl.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", name, err)
	}
	as, err := h.nl.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("addresses of %s: %w", name, err)
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.IsLinkLocalUnicast() {
			out = append(out, ip.Unmap())
		}
	}
	return out, nil
}

// WatchAddrs calls fn with the addresses of the interface named name now,
// and again after every netlink address event for it in the handle's
// namespace, until done is closed. It returns once the subscription is
// in place; fn runs on a goroutine of its own, one call at a time. A
// netlink error (the subscription lost) is reported to fail, and the
// watch ends.
func (h *Handle) WatchAddrs(name string, done <-chan struct{}, fn func([]netip.Addr), fail func(error)) error {
	idx, err := h.Index(name)
	if err != nil {
		return err
	}
	ch := make(chan netlink.AddrUpdate, 64)
	opts := netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case <-done: // the socket closing as the watch ends
			default:
				if fail != nil {
					fail(err)
				}
			}
		},
		ListExisting: true,
	}
	if h.ns >= 0 {
		ns := netns.NsHandle(h.ns)
		opts.Namespace = &ns
	}
	if err := netlink.AddrSubscribeWithOptions(ch, done, opts); err != nil {
		return fmt.Errorf("subscribe to address events of %s: %w", name, err)
	}
	first, err := h.Addrs(name)
	if err != nil {
		return err
	}
	go func() {
		fn(first)
		for {
			select {
			case <-done:
				return
			case u, ok := <-ch:
				if !ok {
					return
				}
				if u.LinkIndex != idx {
					continue
				}
				as, err := h.Addrs(name)
				if err != nil {
					if fail != nil {
						fail(err)
					}
					continue
				}
				fn(as)
			}
		}
	}()
	return nil
}
