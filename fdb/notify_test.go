package fdb_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vxland/vxland/fdb"
)

// TestNotify checks that every change is heard once, in order, with the
// destination it concerns.
func TestNotify(t *testing.T) {
	clk := newFakeClock()
	var got []string
	tb := fdb.New(fdb.Options{Ageing: 10 * time.Second, Now: clk.Now, Notify: func(c fdb.Change) {
		got = append(got, fmt.Sprintf("%s %s %s %s %v", c.Kind, c.MAC, c.Dest.IP, c.State, c.Router))
	}})
	tb.Set(fdb.OpAdd, macA, d1, fdb.Permanent, true)
	tb.Append(macA, d2, fdb.Static)
	tb.Del(macA, &d1)
	tb.Learn(macB, d1)
	tb.Learn(macB, d3)
	tb.Learn(macB, d3) // refresh: nothing to tell
	tb.Replace(macC, d1, fdb.Dynamic)
	tb.Append(macC, d2, fdb.Dynamic)
	tb.Del(macA, nil)
	tb.Add(macA, d1, fdb.Permanent)
	tb.Add(macA, d2, fdb.Permanent) // fails: nothing to tell
	clk.Advance(11 * time.Second)
	tb.Tick()
	want := []string{
		"added 02:00:00:00:00:0a 192.0.2.1 permanent true",
		"added 02:00:00:00:00:0a 198.51.100.2 static false",
		"deleted 02:00:00:00:00:0a 192.0.2.1 static false",
		"learned 02:00:00:00:00:0b 192.0.2.1 dynamic false",
		"migrated 02:00:00:00:00:0b 203.0.113.3 dynamic false",
		"added 02:00:00:00:00:0c 192.0.2.1 dynamic false",
		"added 02:00:00:00:00:0c 198.51.100.2 dynamic false",
		"deleted 02:00:00:00:00:0a 198.51.100.2 static false",
		"added 02:00:00:00:00:0a 192.0.2.1 permanent false",
	}
	if !slices.Equal(got[:len(want)], want) {
		t.Fatalf("changes\n%q\nwant\n%q", got, want)
	}
	aged := got[len(want):]
	slices.Sort(aged)
	wantAged := []string{
		"aged 02:00:00:00:00:0b 203.0.113.3 dynamic false",
		"aged 02:00:00:00:00:0c 192.0.2.1 dynamic false",
		"aged 02:00:00:00:00:0c 198.51.100.2 dynamic false",
	}
	if !slices.Equal(aged, wantAged) {
		t.Errorf("aged %q, want %q", aged, wantAged)
	}
}

// TestRouterFlag: the flag follows each Set (as the kernel takes a
// request's flags), survives migration and shows in Entries.
func TestRouterFlag(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	if err := tb.Set(fdb.OpAdd, macA, d1, fdb.Dynamic, true); err != nil {
		t.Fatal(err)
	}
	if ds, r := tb.LookupRouter(macA); !r || !slices.Equal(ds, []fdb.Dest{d1}) {
		t.Fatalf("LookupRouter = %v %v", ds, r)
	}
	tb.Learn(macA, d2)
	if _, r := tb.LookupRouter(macA); !r {
		t.Error("migration lost the router flag")
	}
	if es := tb.Entries(); len(es) != 1 || !es[0].Router {
		t.Errorf("Entries %+v", es)
	}
	tb.Set(fdb.OpReplace, macA, d1, fdb.Permanent, false)
	if _, r := tb.LookupRouter(macA); r {
		t.Error("replace without router kept the flag")
	}
	if _, r := tb.LookupRouter(macB); r {
		t.Error("absent entry is a router")
	}
	n := testing.AllocsPerRun(100, func() { tb.LookupRouter(macA) })
	if n != 0 {
		t.Errorf("%v allocations per LookupRouter", n)
	}
}
