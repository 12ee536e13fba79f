package overlay

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/stats"
)

// Neighbours is the neighbour side of an Installer: the per-VNI table of
// IP -> MAC bindings that ARP/ND proxy answers from. Sync sets the owner's
// bindings to exactly want; bindings of other owners stay.
type Neighbours interface {
	Sync(owner fdb.Owner, want map[netip.Addr]fdb.MAC) error
}

// Members receives the underlay addresses of the VNI's remote members each
// time they change (for a data plane that drops datagrams from others).
type Members interface {
	SetMembers(addrs []netip.Addr)
}

// InstallerConfig describes one VNI's installer.
type InstallerConfig struct {
	// Owner is the source whose state this installer holds ("cluster",
	// "evpn"); it owns what it installs.
	Owner fdb.Owner
	// VNI is the segment; destinations carry it.
	VNI uint32
	// Table is the segment's forwarding database.
	Table *fdb.Table
	// Self is this node's TAP MAC: a peer claiming it is ignored (a loop
	// or a forgery) and counted.
	Self fdb.MAC
	// SelfAddr is this node's underlay address: a peer with it is
	// ignored.
	SelfAddr netip.Addr
	// Neighbours, when set, receives the IP -> MAC bindings of the peers'
	// TAP addresses and endpoints.
	Neighbours Neighbours
	// Members, when set, receives the peers' underlay addresses.
	Members Members
	// NoFlood leaves the all-zeros flood list alone: the source's peers
	// receive no broadcast, multicast or unknown unicast (flannel's
	// devices have no all-zeros entry; its hosts route, they never ARP
	// across).
	NoFlood bool
}

// Installer reconciles the desired remote state of one VNI from one source
// into the data plane. Apply may be called as often as the source likes:
// it compares content and writes only differences, so a full re-list after
// a lost watch costs nothing when nothing changed. Safe for concurrent use
// (calls are serialised).
type Installer struct {
	cfg InstallerConfig

	mu    sync.Mutex
	peers []Peer // last applied, sorted by ID

	counters                                       stats.Set
	applies, conflicts, full, ignored, neighErrors *stats.Counter
}

// NewInstaller returns the installer of one VNI.
func NewInstaller(cfg InstallerConfig) *Installer {
	in := &Installer{cfg: cfg}
	n := in.counters.New
	in.applies = n("install_applies")
	in.conflicts = n("install_conflicts")
	in.full = n("install_full")
	in.ignored = n("install_ignored")
	in.neighErrors = n("install_neigh_errors")
	return in
}

// Stats returns the installer's counters: install_applies (reconciles),
// install_conflicts (an entry held by hand or by another source, left as
// it is), install_full (maxaddress reached), install_ignored (a peer or MAC
// that is this node's own), install_neigh_errors.
func (in *Installer) Stats() []stats.Value { return in.counters.Snapshot() }

// Peers returns the peers last applied, sorted by ID.
func (in *Installer) Peers() []Peer {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.peers)
}

// Apply makes the data plane hold exactly what peers say, for this
// installer's owner: the flood list (one destination per peer VTEP), a
// static entry per peer TAP MAC and per endpoint MAC, and the neighbour
// bindings of their addresses. What the owner installed before and peers no
// longer say is removed; entries of other owners and hand-made ones are
// never touched. A MAC claimed by two peers goes to the peer with the
// smaller ID. The returned error joins what could not be installed; the
// rest is installed regardless.
func (in *Installer) Apply(peers []Peer) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.applies.Inc()
	ps := slices.Clone(peers)
	slices.SortFunc(ps, func(a, b Peer) int { return cmpString(a.ID, b.ID) })

	var errs []error
	floods := make([]fdb.Dest, 0, len(ps))
	macs := map[fdb.MAC]fdb.Dest{}
	neigh := map[netip.Addr]fdb.MAC{}
	var members []netip.Addr
	claim := func(mac fdb.MAC, d fdb.Dest) {
		if mac == in.cfg.Self || mac == fdb.Zero || mac[0]&1 != 0 {
			in.ignored.Inc()
			return
		}
		if _, taken := macs[mac]; !taken {
			macs[mac] = d
		}
	}
	bind := func(ip netip.Addr, mac fdb.MAC) {
		if _, taken := neigh[ip]; !taken && ip.IsValid() && mac != fdb.Zero {
			neigh[ip] = mac
		}
	}
	for _, p := range ps {
		v := p.VTEP
		if !v.Addr.IsValid() || v.Addr == in.cfg.SelfAddr {
			in.ignored.Inc()
			continue
		}
		d := fdb.Dest{IP: v.Addr.Unmap(), Port: v.Port, VNI: in.cfg.VNI}
		if !slices.Contains(floods, d) {
			floods = append(floods, d)
			members = append(members, d.IP)
		}
		if v.MAC != fdb.Zero { // EVPN peers announce no TAP MAC of their own
			claim(v.MAC, d)
		}
		for _, a := range v.Addrs {
			bind(a, v.MAC)
		}
		for _, e := range p.Endpoints {
			claim(e.MAC, d)
			for _, ip := range e.IPs {
				bind(ip, e.MAC)
			}
		}
	}

	t, owner := in.cfg.Table, in.cfg.Owner
	if in.cfg.NoFlood {
		floods = nil
	}
	if err := t.Sync(owner, fdb.Zero, floods, fdb.Static); err != nil {
		errs = append(errs, in.count(err))
	}
	// Removals first, so that a MAC moving between entries frees room.
	for _, e := range t.Owned(owner) {
		if _, keep := macs[e.MAC]; !keep && e.MAC != fdb.Zero {
			if err := t.Sync(owner, e.MAC, nil, fdb.Static); err != nil {
				errs = append(errs, in.count(err))
			}
		}
	}
	for _, mac := range sortedMACs(macs) {
		if err := t.Sync(owner, mac, []fdb.Dest{macs[mac]}, fdb.Static); err != nil {
			errs = append(errs, in.count(err))
		}
	}
	if in.cfg.Neighbours != nil {
		if err := in.cfg.Neighbours.Sync(owner, neigh); err != nil {
			in.neighErrors.Inc()
			errs = append(errs, fmt.Errorf("vni %d: neighbours: %w", in.cfg.VNI, err))
		}
	}
	if in.cfg.Members != nil {
		in.cfg.Members.SetMembers(SortAddrs(members))
	}
	in.peers = ps
	return errors.Join(errs...)
}

// count counts a failed Sync by its cause and returns it with context.
func (in *Installer) count(err error) error {
	switch {
	case errors.Is(err, fdb.ErrOwned):
		in.conflicts.Inc()
	case errors.Is(err, fdb.ErrFull):
		in.full.Inc()
	}
	return fmt.Errorf("vni %d: %w", in.cfg.VNI, err)
}

// Withdraw removes everything the owner installed in this VNI (a source
// that stops serving it).
func (in *Installer) Withdraw() error {
	return in.Apply(nil)
}

func sortedMACs(m map[fdb.MAC]fdb.Dest) []fdb.MAC {
	out := make([]fdb.MAC, 0, len(m))
	for mac := range m {
		out = append(out, mac)
	}
	slices.SortFunc(out, cmpMAC)
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
