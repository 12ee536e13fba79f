// Package fdb is vxland's forwarding database: inner Ethernet address ->
// VXLAN destinations, with the semantics of the Linux vxlan driver
// (drivers/net/vxlan/vxlan_core.c) and its `bridge fdb` interface.
//
// An entry is static, permanent or dynamic. Dynamic entries are learned from
// received frames (or added as "dynamic") and expire when not refreshed
// within the ageing time; static and permanent entries never expire and are
// never overridden by learning. The all-zeros entry (Zero) holds the default
// destinations used for head-end replication.
//
// Concurrency: the table is split into shards, each an immutable
// map[MAC]*entry published through an atomic.Pointer. Readers (Lookup,
// Defaults, and Learn when the entry is already correct) take no lock and do
// not allocate. Writers serialise on a mutex and copy the affected shard on
// write; an entry's destinations and state never change in place, only its
// timestamp, which is an atomic written at most about once a second per
// entry. Time comes from a coarse clock that only Tick advances, so the
// packet path never reads the system clock: call Tick periodically (about
// once a second).
package fdb

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned (wrapped, with context) by the Table methods.
var (
	// ErrExists: Add of a MAC that is present, or Append of a destination
	// the entry already has.
	ErrExists = errors.New("entry exists")
	// ErrNotFound: Del of a MAC or destination that is not present.
	ErrNotFound = errors.New("entry not found")
	// ErrFull: a new entry would exceed Options.MaxAddress (the kernel's ENOSPC).
	ErrFull = errors.New("maxaddress reached")
	// ErrInvalid: a malformed argument (bad MAC string, invalid destination
	// address, VNI above 2^24-1, unknown State).
	ErrInvalid = errors.New("invalid argument")
	// ErrOwned: a change by hand (Append, Del) to an entry or destination a
	// control plane owns, or a Sync to an entry that another owner, or a
	// static or permanent entry made by hand, holds. Replace by hand takes
	// an owned entry over.
	ErrOwned = errors.New("entry owned by another source")
)

// Owner names the source that installed an entry or destination: a control
// plane such as "cluster" (etcd) or "evpn" (BGP). NoOwner ("") is
// everything else: the configuration (remote, group), vxlanctl, learning.
// Owned destinations are installed and removed with Sync only.
type Owner string

// NoOwner is the owner of entries made by configuration, by hand or by
// learning.
const NoOwner Owner = ""

// maxVNI is the largest 24-bit VXLAN network identifier.
const maxVNI = 1<<24 - 1

// Dest is one VXLAN destination: the remote VTEP, its UDP port and the VNI
// to send with. Callers resolve it fully (default port and VNI filled in);
// the table compares destinations field by field. The table stores and
// compares IPv4-mapped IPv6 addresses (::ffff:192.0.2.1) as plain IPv4, so
// a dual-stack socket's source addresses match entries added as IPv4.
type Dest struct {
	IP   netip.Addr
	Port uint16
	VNI  uint32
}

// String formats d like `bridge fdb` does: "dst 192.0.2.1 port 4789 vni 42".
func (d Dest) String() string {
	return "dst " + d.IP.String() + " port " + strconv.Itoa(int(d.Port)) + " vni " + strconv.FormatUint(uint64(d.VNI), 10)
}

// State is the kind of an entry.
type State uint8

const (
	// Dynamic entries are learned, or added with bridge's "dynamic"
	// (NUD_REACHABLE); they age out and learning may migrate them.
	Dynamic State = iota
	// Static entries are bridge's "static" (NUD_NOARP): never aged, never
	// overridden by learning.
	Static
	// Permanent entries are bridge's "permanent" (NUD_PERMANENT), also what
	// `bridge fdb add` assumes without a state keyword and what `remote`
	// creates: never aged, never overridden by learning.
	Permanent
)

// String returns "dynamic", "static" or "permanent".
func (s State) String() string {
	switch s {
	case Dynamic:
		return "dynamic"
	case Static:
		return "static"
	case Permanent:
		return "permanent"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// LearnResult is what Learn did with a received frame's source address.
type LearnResult uint8

const (
	// Skipped: nothing was looked at or learned (group or all-zeros source
	// address; also what learning.Policy.Observe reports when learning is
	// off). The zero value.
	Skipped LearnResult = iota
	// Refreshed: the entry exists with this IP first; its timestamp was renewed.
	Refreshed
	// Learned: a new dynamic entry was created.
	Learned
	// Migrated: a dynamic entry's first destination moved to the new IP.
	Migrated
	// Conflict: a static or permanent entry points elsewhere; the entry is
	// unchanged and the caller drops the frame (as the kernel does).
	Conflict
	// Full: the address is unknown and MaxAddress is reached; nothing was
	// learned, the frame is still delivered.
	Full
	// Limited: a new entry or a migration was refused by the learning rate
	// limit (see LearnGated); the frame is still delivered.
	Limited
)

// String returns a lower-case name usable as a counter name.
func (r LearnResult) String() string {
	switch r {
	case Skipped:
		return "skipped"
	case Refreshed:
		return "refreshed"
	case Learned:
		return "learned"
	case Migrated:
		return "migrated"
	case Conflict:
		return "conflict"
	case Full:
		return "full"
	case Limited:
		return "limited"
	}
	return "LearnResult(" + strconv.Itoa(int(r)) + ")"
}

// Entry is a copy of one table entry, as listed by Entries.
type Entry struct {
	MAC   MAC
	Dests []Dest // in the order they were added
	// Owners holds the owner of each destination, parallel to Dests; nil
	// when no destination has an owner.
	Owners []Owner
	State  State
	// Router is bridge fdb's "router" flag (NTF_ROUTER): the MAC is a
	// router's, and with route short-circuiting frames sent to it are
	// redirected to the neighbour of their inner destination IP.
	Router bool
	// Updated is when the entry was created, changed or last refreshed, at
	// the resolution of the coarse clock (see Tick).
	Updated time.Time
}

// Options configures a Table.
type Options struct {
	// Ageing is how long a dynamic entry lives without being refreshed;
	// 0 (or less) means never, as ip-link's `ageing 0`. The daemon's
	// default, 300 s, is config.DefaultAgeing.
	Ageing time.Duration
	// MaxAddress caps the number of entries, all of them counted (static,
	// permanent, dynamic, and the all-zeros entry), as the kernel's
	// `maxaddress` counts vxlan->addrcnt. 0 (or negative) means unlimited.
	MaxAddress int
	// Now is the clock; nil means time.Now. Tests inject a fake clock.
	Now func() time.Time
	// Notify, when set, hears every change: entries added, replaced,
	// appended to, deleted, learned, migrated and aged out. It is called
	// with the table's write lock held, in the order of the changes, and
	// must neither block nor call back into the table.
	Notify func(Change)
}

// ChangeKind says what happened to an entry.
type ChangeKind uint8

const (
	// ChangeAdded: Add, Append or Replace set Dest (the entry's new state
	// and flags are in the Change).
	ChangeAdded ChangeKind = iota
	// ChangeDeleted: Del removed Dest (one Change per destination when
	// the whole entry goes).
	ChangeDeleted
	// ChangeLearned: a received frame created a dynamic entry.
	ChangeLearned
	// ChangeMigrated: a dynamic entry moved to Dest.
	ChangeMigrated
	// ChangeAged: a dynamic entry expired (one Change per destination).
	ChangeAged
)

// String returns "added", "deleted", "learned", "migrated" or "aged".
func (k ChangeKind) String() string {
	switch k {
	case ChangeAdded:
		return "added"
	case ChangeDeleted:
		return "deleted"
	case ChangeLearned:
		return "learned"
	case ChangeMigrated:
		return "migrated"
	case ChangeAged:
		return "aged"
	}
	return "ChangeKind(" + strconv.Itoa(int(k)) + ")"
}

// Change is one change of the table, as Options.Notify hears it.
type Change struct {
	Kind   ChangeKind
	MAC    MAC
	Dest   Dest
	State  State
	Router bool
}

const (
	shardBits = 8
	numShards = 1 << shardBits
)

// emptyShard is the initial (nil, read-only) map of every shard.
var emptyShard map[MAC]*entry

// entry is immutable once published, except for updated.
type entry struct {
	updated atomic.Int64 // coarse clock reading (ns since Table.base)
	dests   []Dest       // never empty, never modified
	owners  []Owner      // parallel to dests; nil when none is owned
	state   State
	router  bool
}

// owner returns the owner of destination i.
func (e *entry) owner(i int) Owner {
	if e.owners == nil {
		return NoOwner
	}
	return e.owners[i]
}

// owned reports whether any destination of e has an owner.
func (e *entry) owned() bool {
	for _, o := range e.owners {
		if o != NoOwner {
			return true
		}
	}
	return false
}

// OwnerOf returns the owner of destination i of e.
func (e Entry) OwnerOf(i int) Owner {
	if i < len(e.Owners) {
		return e.Owners[i]
	}
	return NoOwner
}

// Table is the forwarding database of one VXLAN device. Create it with New.
// All methods are safe for concurrent use.
type Table struct {
	// Read-mostly fields used on the packet path.
	shards       [numShards]atomic.Pointer[map[MAC]*entry]
	zero         atomic.Pointer[entry] // the Zero entry, or nil
	now          atomic.Int64          // coarse clock: ns since base, set by Tick
	count        atomic.Int64          // number of entries; written under mu
	refreshEvery int64                 // minimum ns between timestamp writes
	max          int64
	ageing       time.Duration
	base         time.Time
	clock        func() time.Time
	notify       func(Change)

	mu sync.Mutex // serialises writers
}

// New returns an empty table configured by o.
func New(o Options) *Table {
	t := &Table{
		clock:  o.Now,
		notify: o.Notify,
		ageing: o.Ageing,
		max:    int64(max(o.MaxAddress, 0)),
	}
	if t.clock == nil {
		t.clock = time.Now
	}
	// Write a refreshed timestamp at most once a second, and often enough
	// for very short ageing times to still work.
	t.refreshEvery = int64(time.Second)
	if t.ageing > 0 {
		t.refreshEvery = max(1, min(t.refreshEvery, int64(t.ageing/4)))
	}
	t.base = t.clock()
	for i := range t.shards {
		t.shards[i].Store(&emptyShard)
	}
	return t
}

// shardOf spreads MACs over the shards (Fibonacci hashing of the 48 bits).
func shardOf(m MAC) int {
	k := uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 |
		uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
	return int(k * 0x9e3779b97f4a7c15 >> (64 - shardBits))
}

func (t *Table) get(mac MAC) *entry {
	return (*t.shards[shardOf(mac)].Load())[mac]
}

// Lookup returns the destinations for mac, or nil when there is no entry.
// It takes no lock and does not allocate. The returned slice is shared and
// must not be modified; it stays valid (as a snapshot) after later changes.
func (t *Table) Lookup(mac MAC) []Dest {
	if e := t.get(mac); e != nil {
		return e.dests
	}
	return nil
}

// SetNotify makes fn hear every later change, as Options.Notify does;
// nil stops notifications.
func (t *Table) SetNotify(fn func(Change)) {
	t.mu.Lock()
	t.notify = fn
	t.mu.Unlock()
}

// LookupRouter is Lookup that also reports the entry's router flag.
func (t *Table) LookupRouter(mac MAC) ([]Dest, bool) {
	if e := t.get(mac); e != nil {
		return e.dests, e.router
	}
	return nil, false
}

// Defaults returns the destinations of the all-zeros entry, the head-end
// replication list, or nil when there is none. Like Lookup, it is lock-free
// and allocation-free, and the result must not be modified.
func (t *Table) Defaults() []Dest {
	if e := t.zero.Load(); e != nil {
		return e.dests
	}
	return nil
}

// Len returns the number of entries (the count MaxAddress limits).
func (t *Table) Len() int {
	return int(t.count.Load())
}

// Learn records that a frame with source address mac arrived from d.IP, as
// the kernel's vxlan_snoop does. When the entry exists and its first
// destination has d.IP, only its timestamp is renewed (no lock, no
// allocation). A dynamic entry with another IP migrates: its first
// destination takes d.IP and keeps its port and VNI. A static or permanent
// entry with another IP is a Conflict and stays unchanged. An unknown mac
// becomes a dynamic entry with the single destination d, unless MaxAddress
// is reached (Full).
//
// Group (multicast, broadcast) and all-zeros addresses are never learned and
// give Skipped; learning.Learnable is the same test.
func (t *Table) Learn(mac MAC, d Dest) LearnResult { return t.LearnGated(mac, d, nil) }

// Gate decides whether learning may change the table once more (a new
// entry or a migration); see learning.Limiter.
type Gate interface {
	Allow() bool
}

// LearnGated is Learn, asking gate (when not nil) before it creates or
// migrates an entry; a refusal gives Limited and changes nothing. Refreshes
// and conflicts do not ask.
func (t *Table) LearnGated(mac MAC, d Dest, gate Gate) LearnResult {
	if mac[0]&1 != 0 || mac == Zero {
		return Skipped
	}
	d.IP = d.IP.Unmap()
	if e := t.get(mac); e != nil {
		if e.dests[0].IP == d.IP {
			t.refresh(e)
			return Refreshed
		}
		if e.state != Dynamic {
			return Conflict
		}
	} else if t.full() {
		return Full
	}
	if gate != nil && !gate.Allow() {
		return Limited
	}
	return t.learnLocked(mac, d)
}

func (t *Table) learnLocked(mac MAC, d Dest) LearnResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.get(mac) // again: the table may have changed before we locked
	switch {
	case e == nil:
		if t.full() {
			return Full
		}
		t.set(mac, t.newEntry([]Dest{d}, Dynamic))
		t.tell(ChangeLearned, mac, d, Dynamic, false)
		return Learned
	case e.dests[0].IP == d.IP:
		t.refresh(e)
		return Refreshed
	case e.state != Dynamic:
		return Conflict
	}
	ds := slices.Clone(e.dests)
	ds[0].IP = d.IP
	ne := t.newEntry(ds, Dynamic)
	ne.router = e.router
	t.set(mac, ne)
	t.tell(ChangeMigrated, mac, ds[0], Dynamic, e.router)
	return Migrated
}

// refresh renews e's timestamp, writing it only when it is at least
// refreshEvery old so that hot entries' cache lines are rarely dirtied.
func (t *Table) refresh(e *entry) {
	now := t.now.Load()
	if now-e.updated.Load() >= t.refreshEvery {
		e.updated.Store(now)
	}
}

// Op is a way to set an entry, as bridge fdb's add, append and replace.
type Op uint8

const (
	// OpAdd creates an entry with a single destination; ErrExists when the
	// MAC has one (bridge fdb add).
	OpAdd Op = iota
	// OpAppend adds a destination, creating the entry when absent; ErrExists
	// when the entry has that destination (bridge fdb append).
	OpAppend
	// OpReplace makes the destination the entry's only one, creating the
	// entry when absent (bridge fdb replace).
	OpReplace
)

// String returns "add", "append" or "replace".
func (o Op) String() string {
	switch o {
	case OpAdd:
		return "add"
	case OpAppend:
		return "append"
	case OpReplace:
		return "replace"
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// Add creates an entry with the single destination d (`bridge fdb add`).
// It fails with ErrExists when mac has an entry and with ErrFull when
// MaxAddress is reached.
func (t *Table) Add(mac MAC, d Dest, s State) error { return t.Set(OpAdd, mac, d, s, false) }

// Append adds d as one more destination of mac (`bridge fdb append`),
// creating the entry when absent (subject to MaxAddress, ErrFull). The
// entry takes state s and a fresh timestamp. Appending a destination the
// entry already has fails with ErrExists and changes nothing.
func (t *Table) Append(mac MAC, d Dest, s State) error { return t.Set(OpAppend, mac, d, s, false) }

// Replace makes mac's entry have the single destination d and state s
// (`bridge fdb replace`), creating it when absent (subject to MaxAddress,
// ErrFull) and otherwise dropping any other destinations. It is how a
// change by hand takes over an entry a control plane owns: the new entry
// has no owner.
func (t *Table) Replace(mac MAC, d Dest, s State) error { return t.Set(OpReplace, mac, d, s, false) }

// Set is Add, Append or Replace as op says, with the router flag: the
// entry takes state s and flag router whatever it had, as the kernel
// takes a request's flags.
func (t *Table) Set(op Op, mac MAC, d Dest, s State, router bool) error {
	d.IP = d.IP.Unmap()
	if err := validate(d, s); err != nil {
		return fmt.Errorf("fdb: %s %s %s: %w", op, mac, d, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.get(mac)
	if e == nil && t.full() {
		return fmt.Errorf("fdb: %s %s: %w", op, mac, ErrFull)
	}
	ds := []Dest{d}
	var owners []Owner
	switch {
	case op == OpAdd && e != nil:
		return fmt.Errorf("fdb: add %s: %w", mac, ErrExists)
	case op == OpAppend && e != nil:
		if slices.Contains(e.dests, d) {
			return fmt.Errorf("fdb: append %s %s: %w", mac, d, ErrExists)
		}
		if mac != Zero && e.owned() {
			return fmt.Errorf("fdb: append %s: %w (%s)", mac, ErrOwned, e.owner(0))
		}
		ds = make([]Dest, len(e.dests), len(e.dests)+1)
		copy(ds, e.dests)
		ds = append(ds, d)
		if e.owners != nil { // the shared all-zeros entry keeps its owners
			owners = append(slices.Clone(e.owners), NoOwner)
		}
	case op > OpReplace:
		return fmt.Errorf("fdb: %s: %w", op, ErrInvalid)
	}
	ne := t.newEntry(ds, s)
	ne.owners = owners
	ne.router = router
	t.set(mac, ne)
	t.tell(ChangeAdded, mac, d, s, router)
	return nil
}

// Del removes mac's entry when d is nil, otherwise only the destination *d;
// the entry goes when its last destination does (`bridge fdb del`). It fails
// with ErrNotFound when the entry or the destination is absent.
func (t *Table) Del(mac MAC, d *Dest) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.get(mac)
	if e == nil {
		return fmt.Errorf("fdb: del %s: %w", mac, ErrNotFound)
	}
	if d == nil {
		if e.owned() {
			return fmt.Errorf("fdb: del %s: %w (%s; replace takes it over)", mac, ErrOwned, firstOwner(e))
		}
		t.set(mac, nil)
		t.tellAll(ChangeDeleted, mac, e)
		return nil
	}
	dd := *d
	dd.IP = dd.IP.Unmap()
	i := slices.Index(e.dests, dd)
	if i < 0 {
		return fmt.Errorf("fdb: del %s %s: %w", mac, dd, ErrNotFound)
	}
	if o := e.owner(i); o != NoOwner {
		return fmt.Errorf("fdb: del %s %s: %w (%s; replace takes it over)", mac, dd, ErrOwned, o)
	}
	if len(e.dests) == 1 {
		t.set(mac, nil)
	} else {
		ne := &entry{dests: slices.Delete(slices.Clone(e.dests), i, i+1), state: e.state, router: e.router}
		if e.owners != nil {
			ne.owners = slices.Delete(slices.Clone(e.owners), i, i+1)
		}
		ne.updated.Store(e.updated.Load())
		t.set(mac, ne)
	}
	t.tell(ChangeDeleted, mac, dd, e.state, e.router)
	return nil
}

// Entries returns a copy of the table for `fdb show`, sorted by MAC; each
// entry lists its destinations in the order they were added. Every entry
// is as one moment saw it; entries changed while the copy is made may be
// seen before or after the change.
func (t *Table) Entries() []Entry {
	// No lock: shards are copy-on-write maps of immutable entries, so each
	// shard read is consistent and a listing of 100k entries never holds
	// up learning or the control socket's writes.
	out := make([]Entry, 0, max(t.count.Load(), 0))
	for i := range t.shards {
		for mac, e := range *t.shards[i].Load() {
			out = append(out, Entry{
				MAC:     mac,
				Dests:   slices.Clone(e.dests),
				Owners:  slices.Clone(e.owners),
				State:   e.state,
				Router:  e.router,
				Updated: t.base.Add(time.Duration(e.updated.Load())),
			})
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return bytes.Compare(a.MAC[:], b.MAC[:]) })
	return out
}

// Tick advances the coarse clock to Options.Now and removes the dynamic
// entries not created, changed or refreshed within the ageing time (an entry
// expires once now - updated >= ageing, as in the kernel's vxlan_cleanup).
// Static and permanent entries never expire. Call it about once a second:
// timestamps come from the clock Tick sets, and a refresh is recorded only
// when the stored one is at least a second old (a quarter of the ageing time
// if that is shorter), so expiry is accurate to about a second plus the
// interval between Ticks.
func (t *Table) Tick() {
	now := int64(t.clock().Sub(t.base))
	t.now.Store(now)
	if t.ageing <= 0 {
		return
	}
	for i := range t.shards {
		if t.hasExpired(*t.shards[i].Load(), now) {
			t.expire(i, now)
		}
	}
}

func (t *Table) hasExpired(m map[MAC]*entry, now int64) bool {
	for _, e := range m {
		if t.expired(e, now) {
			return true
		}
	}
	return false
}

func (t *Table) expired(e *entry, now int64) bool {
	return e.state == Dynamic && now-e.updated.Load() >= int64(t.ageing)
}

func (t *Table) expire(i int, now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.shards[i].Load()
	m := make(map[MAC]*entry, len(old))
	for k, e := range old {
		if !t.expired(e, now) {
			m[k] = e
		}
	}
	t.publish(i, old, m)
	for k, e := range old {
		if _, kept := m[k]; !kept {
			t.tellAll(ChangeAged, k, e)
		}
	}
}

// tell reports a change to Options.Notify. The caller holds t.mu.
func (t *Table) tell(k ChangeKind, mac MAC, d Dest, s State, router bool) {
	if t.notify != nil {
		t.notify(Change{Kind: k, MAC: mac, Dest: d, State: s, Router: router})
	}
}

// tellAll reports a change of each of e's destinations.
func (t *Table) tellAll(k ChangeKind, mac MAC, e *entry) {
	for _, d := range e.dests {
		t.tell(k, mac, d, e.state, e.router)
	}
}

// full reports whether another entry would exceed MaxAddress.
func (t *Table) full() bool {
	return t.max > 0 && t.count.Load() >= t.max
}

func (t *Table) newEntry(ds []Dest, s State) *entry {
	e := &entry{dests: ds, state: s}
	e.updated.Store(t.now.Load())
	return e
}

// set publishes a copy of mac's shard with mac mapped to e, or removed when
// e is nil. The caller holds t.mu.
func (t *Table) set(mac MAC, e *entry) {
	i := shardOf(mac)
	old := *t.shards[i].Load()
	m := make(map[MAC]*entry, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if e == nil {
		delete(m, mac)
	} else {
		m[mac] = e
	}
	t.publish(i, old, m)
}

// publish installs m as shard i, replacing old. The caller holds t.mu.
func (t *Table) publish(i int, old, m map[MAC]*entry) {
	t.shards[i].Store(&m)
	t.count.Add(int64(len(m) - len(old)))
	if i == shardOf(Zero) {
		t.zero.Store(m[Zero])
	}
}

func validate(d Dest, s State) error {
	switch {
	case s > Permanent:
		return fmt.Errorf("%w: state %d", ErrInvalid, s)
	case !d.IP.IsValid():
		return fmt.Errorf("%w: no destination address", ErrInvalid)
	case d.VNI > maxVNI:
		return fmt.Errorf("%w: vni %d above %d", ErrInvalid, d.VNI, maxVNI)
	}
	return nil
}
