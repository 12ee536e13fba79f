package fdb_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vxland/vxland/fdb"
)

// fakeClock is an injectable clock that only moves when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mac(t testing.TB, s string) fdb.MAC {
	t.Helper()
	m, err := fdb.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func dst(ip string) fdb.Dest {
	return fdb.Dest{IP: netip.MustParseAddr(ip), Port: 4789, VNI: 42}
}

var (
	macA = fdb.MAC{0x02, 0, 0, 0, 0, 0x0a}
	macB = fdb.MAC{0x02, 0, 0, 0, 0, 0x0b}
	macC = fdb.MAC{0x02, 0, 0, 0, 0, 0x0c}
	d1   = dst("192.0.2.1")
	d2   = dst("198.51.100.2")
	d3   = dst("203.0.113.3")
	d6   = dst("2001:db8::6")
)

func mustLookup(t *testing.T, tb *fdb.Table, m fdb.MAC, want ...fdb.Dest) {
	t.Helper()
	if got := tb.Lookup(m); !slices.Equal(got, want) {
		t.Fatalf("Lookup(%s) = %v, want %v", m, got, want)
	}
}

func TestStaticAndPermanentWinOverLearning(t *testing.T) {
	for _, s := range []fdb.State{fdb.Static, fdb.Permanent} {
		t.Run(s.String(), func(t *testing.T) {
			clk := newFakeClock()
			tb := fdb.New(fdb.Options{Now: clk.Now})
			if err := tb.Add(macA, d1, s); err != nil {
				t.Fatal(err)
			}
			before := tb.Entries()
			clk.Advance(10 * time.Second)
			tb.Tick()
			if r := tb.Learn(macA, d2); r != fdb.Conflict {
				t.Fatalf("Learn from another IP = %v, want conflict", r)
			}
			mustLookup(t, tb, macA, d1)
			if after := tb.Entries(); !entriesEqual(before, after) {
				t.Fatalf("entry changed by a conflicting learn:\nbefore %v\nafter  %v", before, after)
			}
			// From its own IP (any port or VNI): refreshed, still static.
			if r := tb.Learn(macA, fdb.Dest{IP: d1.IP, Port: 1, VNI: 7}); r != fdb.Refreshed {
				t.Fatalf("Learn from own IP = %v, want refreshed", r)
			}
			if e := tb.Entries()[0]; e.State != s || !slices.Equal(e.Dests, []fdb.Dest{d1}) {
				t.Fatalf("entry after refresh = %+v", e)
			}
		})
	}
}

func entriesEqual(a, b []fdb.Entry) bool {
	return slices.EqualFunc(a, b, func(x, y fdb.Entry) bool {
		return x.MAC == y.MAC && x.State == y.State && x.Updated.Equal(y.Updated) && slices.Equal(x.Dests, y.Dests)
	})
}

func TestLearnAndMigrate(t *testing.T) {
	clk := newFakeClock()
	tb := fdb.New(fdb.Options{Now: clk.Now})
	if r := tb.Learn(macA, d1); r != fdb.Learned {
		t.Fatalf("first Learn = %v, want learned", r)
	}
	mustLookup(t, tb, macA, d1)
	if e := tb.Entries()[0]; e.State != fdb.Dynamic {
		t.Fatalf("learned entry state = %v, want dynamic", e.State)
	}
	if r := tb.Learn(macA, d1); r != fdb.Refreshed {
		t.Fatalf("second Learn = %v, want refreshed", r)
	}
	clk.Advance(5 * time.Second)
	tb.Tick()
	// Migration changes only the first destination's IP; port and VNI stay.
	if r := tb.Learn(macA, fdb.Dest{IP: d6.IP, Port: 9999, VNI: 9}); r != fdb.Migrated {
		t.Fatalf("Learn from new IP = %v, want migrated", r)
	}
	mustLookup(t, tb, macA, fdb.Dest{IP: d6.IP, Port: d1.Port, VNI: d1.VNI})
	if e := tb.Entries()[0]; !e.Updated.Equal(clk.Now()) || e.State != fdb.Dynamic {
		t.Fatalf("migrated entry = %+v, want dynamic updated at %v", e, clk.Now())
	}
	if r := tb.Learn(macA, d6); r != fdb.Refreshed {
		t.Fatalf("Learn after migration = %v, want refreshed", r)
	}

	// An entry added as dynamic migrates too, first destination only.
	if err := tb.Append(macB, d1, fdb.Dynamic); err != nil {
		t.Fatal(err)
	}
	if err := tb.Append(macB, d2, fdb.Dynamic); err != nil {
		t.Fatal(err)
	}
	if r := tb.Learn(macB, d3); r != fdb.Migrated {
		t.Fatalf("Learn on added dynamic entry = %v, want migrated", r)
	}
	mustLookup(t, tb, macB, d3, d2)
	if tb.Len() != 2 {
		t.Fatalf("Len = %d, want 2", tb.Len())
	}
}

func TestLearnSkipsGroupAndZero(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	if err := tb.Add(fdb.Zero, d1, fdb.Dynamic); err != nil {
		t.Fatal(err)
	}
	for _, m := range []fdb.MAC{fdb.Zero, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x01, 0x00, 0x5e, 0, 0, 1}, {0x33, 0x33, 0, 0, 0, 1}} {
		if r := tb.Learn(m, d2); r != fdb.Skipped {
			t.Errorf("Learn(%s) = %v, want skipped", m, r)
		}
	}
	mustLookup(t, tb, fdb.Zero, d1) // the dynamic default list did not migrate
	if tb.Len() != 1 {
		t.Fatalf("Len = %d, want 1", tb.Len())
	}
}

func TestIPv4MappedFolded(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	if err := tb.Add(macA, d1, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	mapped := fdb.Dest{IP: netip.AddrFrom16(d1.IP.As16()), Port: d1.Port, VNI: d1.VNI}
	if r := tb.Learn(macA, mapped); r != fdb.Refreshed {
		t.Fatalf("Learn from ::ffff:%s = %v, want refreshed", d1.IP, r)
	}
	if err := tb.Add(macB, mapped, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	mustLookup(t, tb, macB, d1)
	if err := tb.Del(macB, &mapped); err != nil {
		t.Fatal(err)
	}
}

func TestAgeing(t *testing.T) {
	const ageing = 300 * time.Second
	for _, opt := range []time.Duration{ageing} {
		t.Run(fmt.Sprint(opt), func(t *testing.T) {
			clk := newFakeClock()
			tb := fdb.New(fdb.Options{Ageing: opt, Now: clk.Now})
			tb.Learn(macA, d1)
			if err := tb.Add(macB, d2, fdb.Dynamic); err != nil {
				t.Fatal(err)
			}
			tb.Learn(macC, d3)

			clk.Advance(ageing - time.Second)
			tb.Tick()
			mustLookup(t, tb, macA, d1)
			mustLookup(t, tb, macB, d2)
			mustLookup(t, tb, macC, d3)
			if r := tb.Learn(macC, d3); r != fdb.Refreshed { // keeps C alive
				t.Fatalf("refresh = %v", r)
			}

			clk.Advance(2 * time.Second) // ageing + 1 s
			tb.Tick()
			mustLookup(t, tb, macA)
			mustLookup(t, tb, macB)
			mustLookup(t, tb, macC, d3)
			if tb.Len() != 1 {
				t.Fatalf("Len = %d, want 1", tb.Len())
			}

			clk.Advance(ageing - 3*time.Second) // C refreshed ageing-1 s ago
			tb.Tick()
			mustLookup(t, tb, macC, d3)
			clk.Advance(2 * time.Second)
			tb.Tick()
			mustLookup(t, tb, macC)
			if tb.Len() != 0 || len(tb.Entries()) != 0 {
				t.Fatalf("table not empty: %v", tb.Entries())
			}
		})
	}
}

func TestStaticAndPermanentNeverAge(t *testing.T) {
	clk := newFakeClock()
	tb := fdb.New(fdb.Options{Ageing: 10 * time.Second, Now: clk.Now})
	if err := tb.Add(macA, d1, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if err := tb.Add(macB, d2, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if err := tb.Append(fdb.Zero, d3, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	tb.Learn(macC, d3)
	for range 10 {
		clk.Advance(time.Hour)
		tb.Tick()
	}
	mustLookup(t, tb, macA, d1)
	mustLookup(t, tb, macB, d2)
	mustLookup(t, tb, macC)
	if got := tb.Defaults(); !slices.Equal(got, []fdb.Dest{d3}) {
		t.Fatalf("Defaults = %v", got)
	}
}

// TestZeroAgeingNeverExpires: ageing 0 means never, as ip-link's, and so
// does a negative value.
func TestZeroAgeingNeverExpires(t *testing.T) {
	for _, ageing := range []time.Duration{0, -1} {
		clk := newFakeClock()
		tb := fdb.New(fdb.Options{Ageing: ageing, Now: clk.Now})
		tb.Learn(macA, d1)
		clk.Advance(1000 * time.Hour)
		tb.Tick()
		mustLookup(t, tb, macA, d1)
	}
}

func TestMaxAddress(t *testing.T) {
	tb := fdb.New(fdb.Options{MaxAddress: 3})
	// The all-zeros entry counts, as in the kernel.
	if err := tb.Add(fdb.Zero, d1, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if r := tb.Learn(macA, d1); r != fdb.Learned {
		t.Fatalf("Learn A = %v", r)
	}
	if err := tb.Add(macB, d2, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if r := tb.Learn(macC, d3); r != fdb.Full {
		t.Fatalf("Learn C on full table = %v, want full", r)
	}
	mustLookup(t, tb, macC)
	for name, op := range map[string]func(fdb.MAC, fdb.Dest, fdb.State) error{
		"add": tb.Add, "append": tb.Append, "replace": tb.Replace,
	} {
		if err := op(macC, d3, fdb.Static); !errors.Is(err, fdb.ErrFull) {
			t.Errorf("%s on full table: err = %v, want ErrFull", name, err)
		}
	}
	// Changing existing entries is still allowed when full.
	if r := tb.Learn(macA, d2); r != fdb.Migrated {
		t.Fatalf("migrate on full table = %v", r)
	}
	if err := tb.Append(fdb.Zero, d2, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if err := tb.Replace(macB, d3, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if tb.Len() != 3 {
		t.Fatalf("Len = %d, want 3", tb.Len())
	}
	if err := tb.Del(macA, nil); err != nil {
		t.Fatal(err)
	}
	if r := tb.Learn(macC, d3); r != fdb.Learned {
		t.Fatalf("Learn C after delete = %v, want learned", r)
	}
	if r := tb.Learn(macA, d1); r != fdb.Full {
		t.Fatalf("Learn A = %v, want full", r)
	}
}

func TestHeadEndList(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	if got := tb.Defaults(); got != nil {
		t.Fatalf("Defaults of empty table = %v", got)
	}
	for _, d := range []fdb.Dest{d1, d2, d6, d3} {
		if err := tb.Append(fdb.Zero, d, fdb.Permanent); err != nil {
			t.Fatal(err)
		}
	}
	if tb.Len() != 1 {
		t.Fatalf("Len = %d, want 1 entry", tb.Len())
	}
	want := []fdb.Dest{d1, d2, d6, d3}
	if got := tb.Defaults(); !slices.Equal(got, want) {
		t.Fatalf("Defaults = %v, want %v", got, want)
	}
	mustLookup(t, tb, fdb.Zero, want...)

	err := tb.Append(fdb.Zero, d2, fdb.Permanent)
	if !errors.Is(err, fdb.ErrExists) {
		t.Fatalf("duplicate append: err = %v, want ErrExists", err)
	}
	// Same IP, other port or VNI: a different destination.
	other := d2
	other.VNI++
	if err := tb.Append(fdb.Zero, other, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	want = append(want, other)

	if err := tb.Del(fdb.Zero, &d2); err != nil {
		t.Fatal(err)
	}
	want = slices.DeleteFunc(want, func(d fdb.Dest) bool { return d == d2 })
	if got := tb.Defaults(); !slices.Equal(got, want) {
		t.Fatalf("Defaults after del = %v, want %v", got, want)
	}
	if err := tb.Del(fdb.Zero, &d2); !errors.Is(err, fdb.ErrNotFound) {
		t.Fatalf("del of removed dest: err = %v, want ErrNotFound", err)
	}
	for _, d := range want {
		if err := tb.Del(fdb.Zero, &d); err != nil {
			t.Fatal(err)
		}
	}
	if got := tb.Defaults(); got != nil || tb.Len() != 0 {
		t.Fatalf("after deleting every dest: Defaults = %v, Len = %d", got, tb.Len())
	}
}

func TestAppendChangesState(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	if err := tb.Append(fdb.Zero, d1, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if err := tb.Append(fdb.Zero, d2, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if e := tb.Entries()[0]; e.State != fdb.Static || len(e.Dests) != 2 {
		t.Fatalf("entry = %+v, want static with 2 dests", e)
	}
}

func TestAddExisting(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	if err := tb.Add(macA, d1, fdb.Static); err != nil {
		t.Fatal(err)
	}
	err := tb.Add(macA, d2, fdb.Permanent)
	if !errors.Is(err, fdb.ErrExists) {
		t.Fatalf("err = %v, want ErrExists", err)
	}
	if !strings.Contains(err.Error(), macA.String()) || !strings.HasPrefix(err.Error(), "fdb: add ") {
		t.Errorf("error lacks context: %q", err)
	}
	mustLookup(t, tb, macA, d1)
}

func TestReplace(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	if err := tb.Replace(macA, d1, fdb.Dynamic); err != nil { // creates
		t.Fatal(err)
	}
	mustLookup(t, tb, macA, d1)
	if err := tb.Append(macA, d2, fdb.Dynamic); err != nil {
		t.Fatal(err)
	}
	if err := tb.Replace(macA, d3, fdb.Static); err != nil {
		t.Fatal(err)
	}
	mustLookup(t, tb, macA, d3)
	es := tb.Entries()
	if len(es) != 1 || es[0].State != fdb.Static {
		t.Fatalf("Entries = %+v", es)
	}
	if tb.Len() != 1 {
		t.Fatalf("Len = %d", tb.Len())
	}
}

func TestDelNotFound(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	if err := tb.Del(macA, nil); !errors.Is(err, fdb.ErrNotFound) {
		t.Fatalf("del absent MAC: err = %v", err)
	}
	if err := tb.Del(macA, &d1); !errors.Is(err, fdb.ErrNotFound) {
		t.Fatalf("del absent MAC with dest: err = %v", err)
	}
	if err := tb.Add(macA, d1, fdb.Static); err != nil {
		t.Fatal(err)
	}
	err := tb.Del(macA, &d2)
	if !errors.Is(err, fdb.ErrNotFound) || !strings.Contains(err.Error(), d2.IP.String()) {
		t.Fatalf("del absent dest: err = %v", err)
	}
	mustLookup(t, tb, macA, d1)
	if err := tb.Del(macA, &d1); err != nil { // last dest: entry goes
		t.Fatal(err)
	}
	mustLookup(t, tb, macA)
	if tb.Len() != 0 {
		t.Fatalf("Len = %d", tb.Len())
	}
}

func TestInvalidArguments(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	for _, tc := range []struct {
		d fdb.Dest
		s fdb.State
	}{
		{fdb.Dest{Port: 4789}, fdb.Static},
		{fdb.Dest{IP: d1.IP, VNI: 1 << 24}, fdb.Static},
		{d1, fdb.State(7)},
	} {
		for name, op := range map[string]func(fdb.MAC, fdb.Dest, fdb.State) error{
			"add": tb.Add, "append": tb.Append, "replace": tb.Replace,
		} {
			if err := op(macA, tc.d, tc.s); !errors.Is(err, fdb.ErrInvalid) {
				t.Errorf("%s(%v, %v): err = %v, want ErrInvalid", name, tc.d, tc.s, err)
			}
		}
	}
	if tb.Len() != 0 {
		t.Fatalf("Len = %d", tb.Len())
	}
}

func TestEntriesOrder(t *testing.T) {
	clk := newFakeClock()
	tb := fdb.New(fdb.Options{Now: clk.Now})
	macs := []string{"02:00:00:00:00:10", "00:00:00:00:00:00", "ff:00:00:00:00:01", "02:00:00:00:00:02", "0a:00:00:00:00:00"}
	for i, s := range macs {
		if err := tb.Add(mac(t, s), dst(fmt.Sprintf("192.0.2.%d", i+1)), fdb.Permanent); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.Append(mac(t, macs[1]), d6, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if err := tb.Append(mac(t, macs[1]), d3, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	es := tb.Entries()
	var got []string
	for _, e := range es {
		got = append(got, e.MAC.String())
	}
	want := []string{"00:00:00:00:00:00", "02:00:00:00:00:02", "02:00:00:00:00:10", "0a:00:00:00:00:00", "ff:00:00:00:00:01"}
	if !slices.Equal(got, want) {
		t.Fatalf("Entries order = %v, want %v", got, want)
	}
	if wantD := []fdb.Dest{dst("192.0.2.2"), d6, d3}; !slices.Equal(es[0].Dests, wantD) {
		t.Fatalf("zero entry dests = %v, want insertion order %v", es[0].Dests, wantD)
	}
	if !es[0].Updated.Equal(clk.Now()) {
		t.Fatalf("Updated = %v, want %v", es[0].Updated, clk.Now())
	}
	// Entries returns copies.
	es[0].Dests[0] = d1
	if tb.Defaults()[0] == d1 {
		t.Fatal("Entries shares its destination slices with the table")
	}
}

func TestStrings(t *testing.T) {
	for v, want := range map[fmt.Stringer]string{
		fdb.Dynamic: "dynamic", fdb.Static: "static", fdb.Permanent: "permanent", fdb.State(9): "State(9)",
		fdb.Skipped: "skipped", fdb.Refreshed: "refreshed", fdb.Learned: "learned", fdb.Migrated: "migrated",
		fdb.Conflict: "conflict", fdb.Full: "full", fdb.LearnResult(99): "LearnResult(99)",
		d6: "dst 2001:db8::6 port 4789 vni 42",
	} {
		if got := v.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

// TestConcurrent runs lock-free readers and learners against writers; run
// it with -race. Readers check invariants of every snapshot they see.
func TestConcurrent(t *testing.T) {
	clk := newFakeClock()
	tb := fdb.New(fdb.Options{Ageing: 30 * time.Second, MaxAddress: 200, Now: clk.Now})
	pinned := fdb.MAC{0x02, 0xaa, 0, 0, 0, 1}
	if err := tb.Add(pinned, d1, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if err := tb.Append(fdb.Zero, d1, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	macN := func(i int) fdb.MAC { return fdb.MAC{0x02, 0xbb, 0, 0, byte(i >> 8), byte(i)} }
	ips := []fdb.Dest{d1, d2, d3, d6}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
		stop.Store(true)
	}
	for w := range 3 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if got := tb.Lookup(pinned); len(got) != 1 || got[0] != d1 {
					fail(fmt.Errorf("pinned entry = %v", got))
					return
				}
				if r := tb.Learn(pinned, d2); r != fdb.Conflict {
					fail(fmt.Errorf("Learn(pinned) = %v", r))
					return
				}
				defs := tb.Defaults()
				if len(defs) == 0 || defs[0] != d1 {
					fail(fmt.Errorf("Defaults = %v", defs))
					return
				}
				if got := tb.Lookup(macN(i % 300)); got != nil && (len(got) == 0 || !got[0].IP.IsValid()) {
					fail(fmt.Errorf("Lookup = %v", got))
					return
				}
				tb.Learn(macN((i+w)%300), ips[(i/7+w)%len(ips)])
			}
		})
	}
	for i := range 2000 {
		m := macN(i % 300)
		switch i % 6 {
		case 0:
			_ = tb.Add(m, d2, fdb.Dynamic)
		case 1:
			_ = tb.Del(m, nil)
		case 2:
			_ = tb.Append(fdb.Zero, dst(fmt.Sprintf("203.0.113.%d", i%200+1)), fdb.Permanent)
		case 3:
			d := dst(fmt.Sprintf("203.0.113.%d", (i+100)%200+1))
			_ = tb.Del(fdb.Zero, &d)
		case 4:
			clk.Advance(time.Second)
			tb.Tick()
		case 5:
			if n, es := tb.Len(), tb.Entries(); n > 200 || len(es) > 200 {
				fail(fmt.Errorf("Len %d, Entries %d beyond MaxAddress", n, len(es)))
			}
		}
		if stop.Load() {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if n := tb.Len(); n != len(tb.Entries()) {
		t.Fatalf("Len %d != len(Entries) %d", n, len(tb.Entries()))
	}
}
