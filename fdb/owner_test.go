package fdb_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vxland/vxland/fdb"
)

const cluster, evpn fdb.Owner = "cluster", "evpn"

func TestSyncOrdinaryEntry(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	if err := tb.Sync(cluster, macA, []fdb.Dest{d1}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	es := tb.Owned(cluster)
	if len(es) != 1 || es[0].MAC != macA || !slices.Equal(es[0].Dests, []fdb.Dest{d1}) || es[0].State != fdb.Static {
		t.Fatalf("owned = %+v", es)
	}
	// Learning from another VTEP cannot move it; from its own it refreshes.
	if r := tb.Learn(macA, d2); r != fdb.Conflict {
		t.Fatalf("learn from another VTEP = %v, want conflict", r)
	}
	if r := tb.Learn(macA, d1); r != fdb.Refreshed {
		t.Fatalf("learn from its VTEP = %v", r)
	}
	// By hand: append and del refused, add exists.
	if err := tb.Append(macA, d2, fdb.Permanent); !errors.Is(err, fdb.ErrOwned) {
		t.Fatalf("append by hand: %v", err)
	}
	if err := tb.Del(macA, nil); !errors.Is(err, fdb.ErrOwned) {
		t.Fatalf("del by hand: %v", err)
	}
	if err := tb.Del(macA, &d1); !errors.Is(err, fdb.ErrOwned) {
		t.Fatalf("del dst by hand: %v", err)
	}
	if err := tb.Add(macA, d2, fdb.Permanent); !errors.Is(err, fdb.ErrExists) {
		t.Fatalf("add by hand: %v", err)
	}
	// Another owner cannot take it.
	if err := tb.Sync(evpn, macA, []fdb.Dest{d3}, fdb.Static); !errors.Is(err, fdb.ErrOwned) {
		t.Fatalf("sync by another owner: %v", err)
	}
	// The owner moves it; an unchanged sync is accepted.
	if err := tb.Sync(cluster, macA, []fdb.Dest{d2}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if err := tb.Sync(cluster, macA, []fdb.Dest{d2}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if got := tb.Lookup(macA); !slices.Equal(got, []fdb.Dest{d2}) {
		t.Fatalf("lookup = %v", got)
	}
	// Replace by hand takes it over: no owner any more, and the old owner
	// cannot take it back nor remove it.
	if err := tb.Replace(macA, d3, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if es := tb.Owned(cluster); len(es) != 0 {
		t.Fatalf("owned after replace = %+v", es)
	}
	if err := tb.Sync(cluster, macA, []fdb.Dest{d2}, fdb.Static); !errors.Is(err, fdb.ErrOwned) {
		t.Fatalf("sync over a hand-made entry: %v", err)
	}
	if err := tb.Sync(cluster, macA, nil, fdb.Static); !errors.Is(err, fdb.ErrOwned) {
		t.Fatalf("sync removal of a hand-made entry: %v", err)
	}
	if got := tb.Lookup(macA); !slices.Equal(got, []fdb.Dest{d3}) {
		t.Fatalf("hand-made entry changed: %v", got)
	}
}

func TestSyncReplacesLearnedAndRemoves(t *testing.T) {
	tb := fdb.New(fdb.Options{MaxAddress: 2})
	if r := tb.Learn(macB, d1); r != fdb.Learned {
		t.Fatal(r)
	}
	if err := tb.Sync(cluster, macB, []fdb.Dest{d2}, fdb.Static); err != nil {
		t.Fatalf("sync over a learned entry: %v", err)
	}
	es := tb.Entries()
	if len(es) != 1 || es[0].State != fdb.Static || es[0].OwnerOf(0) != cluster {
		t.Fatalf("entries = %+v", es)
	}
	if err := tb.Sync(cluster, macA, []fdb.Dest{d1}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if err := tb.Sync(cluster, macC, []fdb.Dest{d1}, fdb.Static); !errors.Is(err, fdb.ErrFull) {
		t.Fatalf("sync beyond maxaddress: %v", err)
	}
	if err := tb.Sync(cluster, macB, nil, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if tb.Lookup(macB) != nil || tb.Len() != 1 {
		t.Fatalf("entry not removed: len %d", tb.Len())
	}
	if err := tb.Sync(cluster, macA, []fdb.Dest{d1}, fdb.Dynamic); !errors.Is(err, fdb.ErrInvalid) {
		t.Fatalf("dynamic owned entry: %v", err)
	}
	if err := tb.Sync(fdb.NoOwner, macA, []fdb.Dest{d1}, fdb.Static); !errors.Is(err, fdb.ErrInvalid) {
		t.Fatalf("sync without owner: %v", err)
	}
}

func TestSyncFloodListShared(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	// The configuration's remote, then two control planes.
	if err := tb.Append(fdb.Zero, d1, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if err := tb.Sync(cluster, fdb.Zero, []fdb.Dest{d2, d3, d1}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if err := tb.Sync(evpn, fdb.Zero, []fdb.Dest{d6, d2}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if got := tb.Defaults(); !slices.Equal(got, []fdb.Dest{d1, d2, d3, d6}) {
		t.Fatalf("flood list = %v", got)
	}
	es := tb.Entries()
	if es[0].State != fdb.Permanent || !slices.Equal(es[0].Owners, []fdb.Owner{fdb.NoOwner, cluster, cluster, evpn}) {
		t.Fatalf("zero entry = %+v", es[0])
	}
	// By hand: an owned destination cannot be deleted, the whole list
	// neither; one's own can, and more can be appended.
	if err := tb.Del(fdb.Zero, &d2); !errors.Is(err, fdb.ErrOwned) {
		t.Fatalf("del owned flood dst: %v", err)
	}
	if err := tb.Del(fdb.Zero, nil); !errors.Is(err, fdb.ErrOwned) {
		t.Fatalf("del flood list: %v", err)
	}
	d7 := dst("192.0.2.7")
	if err := tb.Append(fdb.Zero, d7, fdb.Permanent); err != nil {
		t.Fatalf("append by hand beside owned: %v", err)
	}
	if err := tb.Del(fdb.Zero, &d1); err != nil {
		t.Fatalf("del hand-made flood dst: %v", err)
	}
	// The cluster's set shrinks: only its own destinations go.
	if err := tb.Sync(cluster, fdb.Zero, []fdb.Dest{d3}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if got := tb.Defaults(); !slices.Equal(got, []fdb.Dest{d3, d6, d7}) {
		t.Fatalf("flood list after shrink = %v", got)
	}
	if got := tb.Owned(cluster); len(got) != 1 || !slices.Equal(got[0].Dests, []fdb.Dest{d3}) {
		t.Fatalf("owned by cluster = %+v", got)
	}
	if err := tb.Sync(cluster, fdb.Zero, nil, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if err := tb.Sync(evpn, fdb.Zero, nil, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if got := tb.Defaults(); !slices.Equal(got, []fdb.Dest{d7}) {
		t.Fatalf("flood list after both left = %v", got)
	}
	if es := tb.Entries(); es[0].Owners != nil {
		t.Fatalf("owners kept after owned dsts left: %+v", es[0])
	}
	if err := tb.Del(fdb.Zero, nil); err != nil {
		t.Fatal(err)
	}
	// A new list from a control plane alone, then gone entirely.
	if err := tb.Sync(cluster, fdb.Zero, []fdb.Dest{d2}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if err := tb.Sync(cluster, fdb.Zero, nil, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if tb.Defaults() != nil || tb.Len() != 0 {
		t.Fatalf("flood list left: %v", tb.Defaults())
	}
}

// TestSyncNotifies checks that owned changes are heard like the others:
// destinations added, moved and removed, nothing when nothing changes.
func TestSyncNotifies(t *testing.T) {
	var got []string
	tb := fdb.New(fdb.Options{Notify: func(c fdb.Change) {
		got = append(got, c.Kind.String()+" "+c.MAC.String()+" "+c.Dest.IP.String())
	}})
	tb.Sync(cluster, macA, []fdb.Dest{d1}, fdb.Static)
	tb.Sync(cluster, macA, []fdb.Dest{d1}, fdb.Static) // unchanged: nothing
	tb.Sync(cluster, macA, []fdb.Dest{d2}, fdb.Static)
	tb.Sync(cluster, fdb.Zero, []fdb.Dest{d1, d3}, fdb.Static)
	tb.Sync(cluster, fdb.Zero, []fdb.Dest{d3}, fdb.Static)
	tb.Sync(cluster, macA, nil, fdb.Static)
	want := []string{
		"added 02:00:00:00:00:0a 192.0.2.1",
		"deleted 02:00:00:00:00:0a 192.0.2.1",
		"added 02:00:00:00:00:0a 198.51.100.2",
		"added 00:00:00:00:00:00 192.0.2.1",
		"added 00:00:00:00:00:00 203.0.113.3",
		"deleted 00:00:00:00:00:00 192.0.2.1",
		"deleted 02:00:00:00:00:0a 198.51.100.2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("heard\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
