package fdb

import (
	"fmt"
	"slices"
)

// firstOwner returns the first owner of e's destinations.
func firstOwner(e *entry) Owner {
	for _, o := range e.owners {
		if o != NoOwner {
			return o
		}
	}
	return NoOwner
}

// Sync makes the destinations that owner has in mac's entry exactly dests,
// installing, changing or removing them (an empty dests removes them all).
// Nothing is written when the table already says so.
//
// For an ordinary MAC the entry belongs to one source: Sync replaces a
// dynamic (learned) entry or one owner already holds, and refuses with
// ErrOwned an entry that another owner holds or that was made static or
// permanent by hand (the hand-made entry wins; Replace by hand takes an
// owned entry over). The entry gets state s.
//
// The all-zeros entry (Zero, the flood list) is shared: the destinations
// of other owners and those added by configuration or by hand stay, and a
// destination of dests that is already there under another owner is left
// to it. A new all-zeros entry gets state s; an existing one keeps its
// state.
//
// ErrFull when a new entry would exceed MaxAddress; ErrInvalid for an
// empty owner, state Dynamic (owned entries never age), a bad state or
// destination.
func (t *Table) Sync(owner Owner, mac MAC, dests []Dest, s State) error {
	if owner == NoOwner {
		return fmt.Errorf("fdb: sync %s: %w: no owner", mac, ErrInvalid)
	}
	if s == Dynamic {
		return fmt.Errorf("fdb: sync %s: %w: owned entries are static or permanent", mac, ErrInvalid)
	}
	want := make([]Dest, 0, len(dests))
	for _, d := range dests {
		d.IP = d.IP.Unmap()
		if err := validate(d, s); err != nil {
			return fmt.Errorf("fdb: sync %s %s: %w", mac, d, err)
		}
		if !slices.Contains(want, d) {
			want = append(want, d)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if mac == Zero {
		return t.syncShared(owner, mac, want, s)
	}
	e := t.get(mac)
	if e != nil {
		if o := firstOwner(e); o != NoOwner && o != owner {
			return fmt.Errorf("fdb: sync %s: %w (%s)", mac, ErrOwned, o)
		}
		if !e.owned() && e.state != Dynamic {
			return fmt.Errorf("fdb: sync %s: %w (a %s entry made by hand)", mac, ErrOwned, e.state)
		}
	}
	if len(want) == 0 {
		if e != nil && e.owned() {
			t.set(mac, nil)
			t.tellAll(ChangeDeleted, mac, e)
		}
		return nil
	}
	if e != nil && e.owned() && e.state == s && slices.Equal(e.dests, want) {
		return nil
	}
	if e == nil && t.full() {
		return fmt.Errorf("fdb: sync %s: %w", mac, ErrFull)
	}
	ne := t.newEntry(want, s)
	ne.owners = make([]Owner, len(want))
	for i := range ne.owners {
		ne.owners[i] = owner
	}
	t.set(mac, ne)
	t.tellDiff(mac, e, ne)
	return nil
}

// tellDiff reports the destinations old (nil: none) had and ne (nil:
// none) has not as deleted, and those ne has and old had not, or had in
// another state, as added. The caller holds t.mu.
func (t *Table) tellDiff(mac MAC, old, ne *entry) {
	if old != nil {
		for _, d := range old.dests {
			if ne == nil || !slices.Contains(ne.dests, d) {
				t.tell(ChangeDeleted, mac, d, old.state, old.router)
			}
		}
	}
	if ne != nil {
		for _, d := range ne.dests {
			if old == nil || !slices.Contains(old.dests, d) || old.state != ne.state {
				t.tell(ChangeAdded, mac, d, ne.state, ne.router)
			}
		}
	}
}

// syncShared is Sync of an entry whose destinations may have different
// owners. The caller holds t.mu and has validated want.
func (t *Table) syncShared(owner Owner, mac MAC, want []Dest, s State) error {
	e := t.get(mac)
	var ds []Dest
	var os []Owner
	changed := false
	if e != nil {
		for i, d := range e.dests {
			o := e.owner(i)
			if o == owner && !slices.Contains(want, d) {
				changed = true
				continue
			}
			ds = append(ds, d)
			os = append(os, o)
		}
		s = e.state
	}
	for _, d := range want {
		if !slices.Contains(ds, d) {
			ds = append(ds, d)
			os = append(os, owner)
			changed = true
		}
	}
	switch {
	case !changed:
		return nil
	case len(ds) == 0:
		t.set(mac, nil)
		t.tellDiff(mac, e, nil)
		return nil
	case e == nil && t.full():
		return fmt.Errorf("fdb: sync %s: %w", mac, ErrFull)
	}
	ne := t.newEntry(ds, s)
	if slices.ContainsFunc(os, func(o Owner) bool { return o != NoOwner }) {
		ne.owners = os
	}
	if e != nil {
		ne.router = e.router
	}
	t.set(mac, ne)
	t.tellDiff(mac, e, ne)
	return nil
}

// Owned returns the entries in which owner has destinations, each listing
// only those destinations (Owners all owner), sorted by MAC.
func (t *Table) Owned(owner Owner) []Entry {
	var out []Entry
	for _, e := range t.Entries() {
		var ds []Dest
		for i, d := range e.Dests {
			if e.OwnerOf(i) == owner {
				ds = append(ds, d)
			}
		}
		if len(ds) == 0 {
			continue
		}
		os := make([]Owner, len(ds))
		for i := range os {
			os[i] = owner
		}
		e.Dests, e.Owners = ds, os
		out = append(out, e)
	}
	return out
}
