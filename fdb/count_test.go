package fdb_test

import (
	"maps"
	"testing"
	"time"

	"github.com/vxland/vxland/fdb"
)

// TestStateCounts follows entries through adds, state changes, learning,
// deletion and ageing, and checks the counts against Entries each time.
func TestStateCounts(t *testing.T) {
	clk := newFakeClock()
	tb := fdb.New(fdb.Options{Ageing: time.Minute, Now: clk.Now})
	check := func(step string, want map[fdb.State]int) {
		t.Helper()
		got := tb.StateCounts()
		if !maps.Equal(got, want) {
			t.Fatalf("%s: StateCounts = %v, want %v", step, got, want)
		}
		fromEntries := map[fdb.State]int{fdb.Dynamic: 0, fdb.Static: 0, fdb.Permanent: 0}
		for _, e := range tb.Entries() {
			fromEntries[e.State]++
		}
		if !maps.Equal(got, fromEntries) {
			t.Fatalf("%s: StateCounts = %v, Entries count %v", step, got, fromEntries)
		}
	}
	check("empty", map[fdb.State]int{fdb.Dynamic: 0, fdb.Static: 0, fdb.Permanent: 0})

	if err := tb.Append(fdb.Zero, d1, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if err := tb.Append(fdb.Zero, d2, fdb.Permanent); err != nil { // one entry, two destinations
		t.Fatal(err)
	}
	if err := tb.Add(macA, d1, fdb.Static); err != nil {
		t.Fatal(err)
	}
	tb.Learn(macB, d2)
	tb.Learn(macC, d3)
	check("added", map[fdb.State]int{fdb.Dynamic: 2, fdb.Static: 1, fdb.Permanent: 1})

	if err := tb.Replace(macB, d2, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	check("replaced", map[fdb.State]int{fdb.Dynamic: 1, fdb.Static: 1, fdb.Permanent: 2})

	if err := tb.Del(macA, nil); err != nil {
		t.Fatal(err)
	}
	check("deleted", map[fdb.State]int{fdb.Dynamic: 1, fdb.Static: 0, fdb.Permanent: 2})

	clk.Advance(2 * time.Minute)
	tb.Tick()
	check("aged", map[fdb.State]int{fdb.Dynamic: 0, fdb.Static: 0, fdb.Permanent: 2})
}
