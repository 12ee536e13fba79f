package neigh

import (
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/fdb"
)

// Subscribe starts a stream of neighbour updates of one namespace, the
// current entries first (link.Handle.SubscribeNeigh); it closes ch when
// done closes or the subscription fails.
type Subscribe func(ch chan<- netlink.NeighUpdate, done <-chan struct{}, errf func(error)) error

// Follow mirrors the host's neighbour entries of interface ifindex into
// t's host entries until done closes, as the kernel's proxy reads the
// neighbour table of the vxlan device. When the subscription fails (the kernel dropped
// notifications, say) the host entries are cleared and listed again.
func Follow(t *Table, sub Subscribe, ifindex int, done <-chan struct{}, logf func(string, ...any)) {
	for {
		ch := make(chan netlink.NeighUpdate, 256)
		t.ClearHost()
		errf := func(err error) {
			select {
			case <-done: // the subscription's socket was closed on purpose
			default:
				logf("neighbour follower: %v", err)
			}
		}
		if err := sub(ch, done, errf); err != nil {
			logf("%v", err)
		} else {
			for u := range ch {
				t.Apply(u, ifindex)
			}
		}
		select {
		case <-done:
			return
		case <-time.After(time.Second):
		}
	}
}

// Apply records one netlink neighbour update if it concerns interface
// ifindex: an IPv4 or IPv6 entry is set in its state (the kernel finds
// entries in any state; only NUD_CONNECTED ones are Usable), a deletion
// removes it.
func (t *Table) Apply(u netlink.NeighUpdate, ifindex int) {
	n := &u.Neigh
	if n.LinkIndex != ifindex || (n.Family != unix.AF_INET && n.Family != unix.AF_INET6) {
		return
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return
	}
	if u.Type == unix.RTM_DELNEIGH || n.State == netlink.NUD_NONE {
		t.DelHost(ip)
		return
	}
	var mac fdb.MAC
	if len(n.HardwareAddr) == 6 {
		mac = fdb.MAC(n.HardwareAddr)
	}
	t.SetHost(ip, mac, n.Flags&netlink.NTF_ROUTER != 0, uint16(n.State))
}
