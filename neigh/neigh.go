// Package neigh is the neighbour table of one vxland segment: IP address ->
// Ethernet address, what the kernel's vxlan driver reads from the
// neighbour table of its own device to answer ARP and Neighbor
// Solicitations (proxy) and to short-circuit routed frames (rsc).
//
// Entries come from two sources, kept apart so that neither overwrites
// the other: the host's neighbour entries on the TAP (followed through
// netlink, in whatever state; only those in a NUD_CONNECTED state are
// Usable, as in the kernel) and entries added through
// the control socket (`vxlanctl neigh add`), which the host never sees.
// A control entry wins over a host entry for the same address.
//
// Readers (Lookup) take no lock and do not allocate: each source is an
// immutable map published through an atomic.Pointer and copied on write.
package neigh

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/vxland/vxland/fdb"
)

// Errors returned (wrapped) by the Table methods.
var (
	// ErrExists: Add of an address that has a control entry.
	ErrExists = errors.New("entry exists")
	// ErrNotFound: Del of an address without a control entry.
	ErrNotFound = errors.New("entry not found")
	// ErrInvalid: an address that cannot have a neighbour (invalid,
	// unspecified, multicast, with a zone) or a group Ethernet address.
	ErrInvalid = errors.New("invalid argument")
)

// Source says where an entry comes from.
type Source uint8

const (
	// Control entries were added through the control socket.
	Control Source = iota
	// Host entries mirror the host's neighbour table on the TAP.
	Host
	// Owned entries were installed by a control plane (the cluster, BGP
	// EVPN) with Sync; Entry.Owner names it.
	Owned
)

// String returns "control", "host" or "owned".
func (s Source) String() string {
	switch s {
	case Host:
		return "host"
	case Owned:
		return "owned"
	}
	return "control"
}

// Entry is one neighbour.
type Entry struct {
	IP  netip.Addr
	MAC fdb.MAC
	// Router marks a neighbour that is a router (ip-neighbour's
	// "router", NTF_ROUTER): an NA answering for it has the router flag.
	Router bool
	Source Source
	// Owner is the control plane of an Owned entry.
	Owner fdb.Owner
	// State is the entry's neighbour state, a NUD_* value: NUDPermanent
	// for control entries, the host's for host entries.
	State uint16
}

// Neighbour states (NUD_*, linux/neighbour.h).
const (
	NUDIncomplete uint16 = 0x01
	NUDReachable  uint16 = 0x02
	NUDStale      uint16 = 0x04
	NUDDelay      uint16 = 0x08
	NUDProbe      uint16 = 0x10
	NUDFailed     uint16 = 0x20
	NUDNoARP      uint16 = 0x40
	NUDPermanent  uint16 = 0x80
	// NUDConnected are the states in which the kernel uses an entry.
	NUDConnected = NUDPermanent | NUDNoARP | NUDReachable
)

// Usable reports whether the entry is in a NUD_CONNECTED state, the only
// ones in which the kernel's proxy answers from it.
func (e Entry) Usable() bool { return e.State&NUDConnected != 0 }

// StateName is how ip-neighbour(8) shows state s: PERMANENT, REACHABLE,
// STALE, ...
func StateName(s uint16) string {
	for _, n := range []struct {
		s    uint16
		name string
	}{
		{NUDIncomplete, "INCOMPLETE"}, {NUDReachable, "REACHABLE"}, {NUDStale, "STALE"},
		{NUDDelay, "DELAY"}, {NUDProbe, "PROBE"}, {NUDFailed, "FAILED"}, {NUDNoARP, "NOARP"},
		{NUDPermanent, "PERMANENT"},
	} {
		if s == n.s {
			return n.name
		}
	}
	return "NUD(" + strconv.Itoa(int(s)) + ")"
}

type table = map[netip.Addr]Entry

// Table is a segment's neighbour table. The zero value is not usable;
// create it with New. All methods are safe for concurrent use.
type Table struct {
	ctl, host atomic.Pointer[table]
	owned     atomic.Pointer[table] // installed by control planes (Sync)
	mu        sync.Mutex            // serialises writers
}

// New returns an empty table.
func New() *Table {
	t := &Table{}
	empty := table{}
	t.ctl.Store(&empty)
	t.host.Store(&empty)
	t.owned.Store(&empty)
	return t
}

// Lookup returns the entry for ip: the control entry if there is one,
// else a control plane's (Owned), else the host's. It takes no lock and
// does not allocate.
func (t *Table) Lookup(ip netip.Addr) (Entry, bool) {
	if e, ok := (*t.ctl.Load())[ip]; ok {
		return e, true
	}
	if e, ok := (*t.owned.Load())[ip]; ok {
		return e, true
	}
	e, ok := (*t.host.Load())[ip]
	return e, ok
}

// Sync makes owner's entries exactly want (IP -> MAC), each PERMANENT:
// what a control plane knows of its members' addresses. Other owners'
// entries stay, and an address another owner holds is left to it; control
// entries (vxlanctl neigh) still win over owned ones at Lookup, owned ones
// over the host's. Invalid bindings are skipped; the first is returned
// (wrapped ErrInvalid) after the rest is installed.
func (t *Table) Sync(owner fdb.Owner, want map[netip.Addr]fdb.MAC) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.owned.Load()
	m := make(table, len(old)+len(want))
	for ip, e := range old {
		if e.Owner != owner {
			m[ip] = e
		}
	}
	var bad error
	for ip, mac := range want {
		ip = ip.Unmap()
		if err := Check(ip, mac); err != nil {
			if bad == nil {
				bad = fmt.Errorf("neigh: sync %s: %w", ip, err)
			}
			continue
		}
		if _, taken := m[ip]; !taken {
			m[ip] = Entry{IP: ip, MAC: mac, Source: Owned, Owner: owner, State: NUDPermanent}
		}
	}
	same := len(m) == len(old)
	for ip, e := range m {
		if o, ok := old[ip]; !ok || o != e {
			same = false
			break
		}
	}
	if !same {
		t.owned.Store(&m)
	}
	return bad
}

// Check validates an entry's addresses.
func Check(ip netip.Addr, mac fdb.MAC) error {
	if err := checkIP(ip); err != nil {
		return err
	}
	if mac[0]&1 != 0 || mac == fdb.Zero {
		return fmt.Errorf("%w: lladdr %s is not a unicast address", ErrInvalid, mac)
	}
	return nil
}

// checkIP validates a neighbour's address.
func checkIP(ip netip.Addr) error {
	switch {
	case !ip.IsValid() || ip.IsUnspecified():
		return fmt.Errorf("%w: no address", ErrInvalid)
	case ip.Zone() != "":
		return fmt.Errorf("%w: %s has a zone", ErrInvalid, ip)
	case ip.IsMulticast():
		return fmt.Errorf("%w: %s is a multicast address", ErrInvalid, ip)
	}
	return nil
}

// Add creates a control entry (`ip neigh add`); ErrExists when ip has one.
func (t *Table) Add(ip netip.Addr, mac fdb.MAC, router bool) error {
	return t.put(ip, mac, router, false)
}

// Replace creates or overwrites a control entry (`ip neigh replace`).
func (t *Table) Replace(ip netip.Addr, mac fdb.MAC, router bool) error {
	return t.put(ip, mac, router, true)
}

func (t *Table) put(ip netip.Addr, mac fdb.MAC, router, replace bool) error {
	ip = ip.Unmap()
	if err := Check(ip, mac); err != nil {
		return fmt.Errorf("neigh: %s: %w", ip, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.ctl.Load()
	if _, ok := old[ip]; ok && !replace {
		return fmt.Errorf("neigh: add %s: %w", ip, ErrExists)
	}
	t.ctl.Store(with(old, Entry{IP: ip, MAC: mac, Router: router, Source: Control, State: NUDPermanent}))
	return nil
}

// Del removes ip's control entry; ErrNotFound when it has none. Host
// entries go only when the host removes them.
func (t *Table) Del(ip netip.Addr) error {
	ip = ip.Unmap()
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.ctl.Load()
	if _, ok := old[ip]; !ok {
		return fmt.Errorf("neigh: del %s: %w", ip, ErrNotFound)
	}
	t.ctl.Store(without(old, ip))
	return nil
}

// SetHost records or updates the host's entry for ip, in NUD state
// state. An entry that is not Usable may lack a MAC (the zero MAC);
// entries with an invalid address, or Usable ones with an invalid MAC, are
// ignored.
func (t *Table) SetHost(ip netip.Addr, mac fdb.MAC, router bool, state uint16) {
	ip = ip.Unmap()
	if state&NUDConnected == 0 {
		if checkIP(ip) != nil {
			return
		}
	} else if Check(ip, mac) != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.host.Load()
	e := Entry{IP: ip, MAC: mac, Router: router, Source: Host, State: state}
	if cur, ok := old[ip]; ok && cur == e {
		return
	}
	t.host.Store(with(old, e))
}

// DelHost forgets the host's entry for ip, if any.
func (t *Table) DelHost(ip netip.Addr) {
	ip = ip.Unmap()
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.host.Load()
	if _, ok := old[ip]; ok {
		t.host.Store(without(old, ip))
	}
}

// ClearHost forgets every host entry (before the host's table is listed
// again).
func (t *Table) ClearHost() {
	t.mu.Lock()
	defer t.mu.Unlock()
	empty := table{}
	t.host.Store(&empty)
}

// Entries returns every entry, control entries first, then owned ones,
// then the host's, each group sorted by address. Shadowed entries are
// listed too.
func (t *Table) Entries() []Entry {
	var out []Entry
	for _, p := range []*atomic.Pointer[table]{&t.ctl, &t.owned, &t.host} {
		m := *p.Load()
		start := len(out)
		for _, e := range m {
			out = append(out, e)
		}
		slices.SortFunc(out[start:], func(a, b Entry) int { return a.IP.Compare(b.IP) })
	}
	return out
}

func with(old table, e Entry) *table {
	m := make(table, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[e.IP] = e
	return &m
}

func without(old table, ip netip.Addr) *table {
	m := make(table, len(old))
	for k, v := range old {
		if k != ip {
			m[k] = v
		}
	}
	return &m
}
