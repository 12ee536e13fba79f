package fdb_test

import (
	"fmt"
	"testing"

	"github.com/vxland/vxland/fdb"
)

const benchEntries = 1024

// benchTable returns a table with benchEntries learned MACs, a head-end
// list of four destinations, and the MACs.
func benchTable(b testing.TB) (*fdb.Table, []fdb.MAC) {
	tb := fdb.New(fdb.Options{})
	for _, d := range []fdb.Dest{d1, d2, d3, d6} {
		if err := tb.Append(fdb.Zero, d, fdb.Permanent); err != nil {
			b.Fatal(err)
		}
	}
	macs := make([]fdb.MAC, benchEntries)
	for i := range macs {
		macs[i] = fdb.MAC{0x02, 0x42, 0xac, 0x11, byte(i >> 8), byte(i)}
		if r := tb.Learn(macs[i], dst(fmt.Sprintf("192.0.2.%d", i%250+1))); r != fdb.Learned {
			b.Fatalf("Learn = %v", r)
		}
	}
	return tb, macs
}

func TestHotPathAllocations(t *testing.T) {
	tb, macs := benchTable(t)
	miss := fdb.MAC{0x02, 0xff, 0, 0, 0, 1}
	from := dst("192.0.2.1") // macs[0] was learned from 192.0.2.1
	pinned := fdb.MAC{0x02, 0xee, 0, 0, 0, 1}
	if err := tb.Add(pinned, d2, fdb.Static); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(){
		"Lookup hit":      func() { _ = tb.Lookup(macs[7]) },
		"Lookup miss":     func() { _ = tb.Lookup(miss) },
		"Defaults":        func() { _ = tb.Defaults() },
		"Learn refreshed": func() { _ = tb.Learn(macs[0], from) },
		"Learn conflict":  func() { _ = tb.Learn(pinned, from) },
		"Learn skipped":   func() { _ = tb.Learn(fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, from) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	tb, macs := benchTable(b)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if tb.Lookup(macs[i&(benchEntries-1)]) == nil {
			b.Fatal("miss")
		}
		i++
	}
}

func BenchmarkLookupParallel(b *testing.B) {
	tb, macs := benchTable(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if tb.Lookup(macs[i&(benchEntries-1)]) == nil {
				b.Error("miss")
				return
			}
			i++
		}
	})
}

func BenchmarkDefaults(b *testing.B) {
	tb, _ := benchTable(b)
	b.ReportAllocs()
	for b.Loop() {
		if len(tb.Defaults()) != 4 {
			b.Fatal("defaults")
		}
	}
}

func BenchmarkLearnRefresh(b *testing.B) {
	tb, macs := benchTable(b)
	from := make([]fdb.Dest, benchEntries)
	for i := range from {
		from[i] = tb.Lookup(macs[i])[0]
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		j := i & (benchEntries - 1)
		if tb.Learn(macs[j], from[j]) != fdb.Refreshed {
			b.Fatal("not refreshed")
		}
		i++
	}
}

func BenchmarkLearnRefreshParallel(b *testing.B) {
	tb, macs := benchTable(b)
	from := tb.Lookup(macs[0])[0]
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if tb.Learn(macs[0], from) != fdb.Refreshed {
				b.Error("not refreshed")
				return
			}
		}
	})
}
