package control

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vxland/vxland/fdb"
)

// fakeFDB is a small map-backed FDB with bridge semantics, recording nothing
// but its contents. Adding or deleting panicMAC panics, to test recovery.
type fakeFDB struct {
	mu      sync.Mutex
	entries map[fdb.MAC]fdb.Entry
}

var panicMAC = fdb.MAC{0x66, 0x66, 0x66, 0x66, 0x66, 0x66}

func newFake() *fakeFDB { return &fakeFDB{entries: map[fdb.MAC]fdb.Entry{}} }

func (f *fakeFDB) check(mac fdb.MAC) {
	if mac == panicMAC {
		panic("fake fdb: boom")
	}
}

func (f *fakeFDB) Set(op fdb.Op, mac fdb.MAC, d fdb.Dest, s fdb.State, router bool) error {
	f.check(mac)
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[mac]
	ds := []fdb.Dest{d}
	switch op {
	case fdb.OpAdd:
		if ok {
			return fmt.Errorf("fake: add %s: %w", mac, fdb.ErrExists)
		}
	case fdb.OpAppend:
		if slices.Contains(e.Dests, d) {
			return fmt.Errorf("fake: append %s: %w", mac, fdb.ErrExists)
		}
		ds = append(slices.Clone(e.Dests), d)
	}
	f.entries[mac] = fdb.Entry{MAC: mac, Dests: ds, State: s, Router: router, Updated: time.Unix(1, 0)}
	return nil
}

func (f *fakeFDB) Del(mac fdb.MAC, d *fdb.Dest) error {
	f.check(mac)
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[mac]
	if !ok {
		return fmt.Errorf("fake: del %s: %w", mac, fdb.ErrNotFound)
	}
	if d == nil {
		delete(f.entries, mac)
		return nil
	}
	i := slices.Index(e.Dests, *d)
	if i < 0 {
		return fmt.Errorf("fake: del %s %s: %w", mac, *d, fdb.ErrNotFound)
	}
	e.Dests = slices.Delete(slices.Clone(e.Dests), i, i+1)
	if len(e.Dests) == 0 {
		delete(f.entries, mac)
	} else {
		f.entries[mac] = e
	}
	return nil
}

// Entries returns the entries in reverse MAC order, so that the server's
// sorting is exercised.
func (f *fakeFDB) Entries() []fdb.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]fdb.Entry, 0, len(f.entries))
	for _, e := range f.entries {
		e.Dests = slices.Clone(e.Dests)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b fdb.Entry) int { return -bytes.Compare(a.MAC[:], b.MAC[:]) })
	return out
}

// snapshot renders the contents for before/after comparisons.
func (f *fakeFDB) snapshot() string {
	es := f.Entries()
	slices.SortFunc(es, func(a, b fdb.Entry) int { return bytes.Compare(a.MAC[:], b.MAC[:]) })
	return fmt.Sprint(es)
}

// get returns mac's entry (zero Entry when absent).
func (f *fakeFDB) get(mac fdb.MAC) fdb.Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.entries[mac]
}

// has reports whether mac has an entry.
func (f *fakeFDB) has(mac fdb.MAC) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.entries[mac]
	return ok
}

// len returns the number of entries.
func (f *fakeFDB) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}
