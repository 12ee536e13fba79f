package learning_test

import (
	"net/netip"
	"testing"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/learning"
)

var (
	host  = fdb.MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	vtep1 = fdb.Dest{IP: netip.MustParseAddr("192.0.2.1"), Port: 4789, VNI: 42}
	vtep2 = fdb.Dest{IP: netip.MustParseAddr("198.51.100.2"), Port: 4789, VNI: 42}
	on    = learning.Policy{Enabled: true}
)

func TestLearnable(t *testing.T) {
	for m, want := range map[fdb.MAC]bool{
		host:                                 true,
		{0x00, 0x00, 0x00, 0x00, 0x00, 0x01}: true,
		{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff}: true,
		fdb.Zero:                             false,
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}: false, // broadcast
		{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}: false, // IPv4 multicast
		{0x33, 0x33, 0x00, 0x00, 0x00, 0x01}: false, // IPv6 multicast
		{0x03, 0x00, 0x00, 0x00, 0x00, 0x00}: false, // group bit on a local address
	} {
		if got := learning.Learnable(m); got != want {
			t.Errorf("Learnable(%s) = %v, want %v", m, got, want)
		}
	}
}

func TestGroupAndZeroSourcesNeverLearned(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	for _, m := range []fdb.MAC{fdb.Zero, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x01, 0x00, 0x5e, 0x7f, 0x00, 0x01}, {0x33, 0x33, 0xff, 0x00, 0x00, 0x01}} {
		r, v := on.Observe(tb, m, vtep1)
		if r != fdb.Skipped || v != learning.DropInvalidSource {
			t.Errorf("Observe(%s) = %v, %v; want skipped, drop-invalid-source", m, r, v)
		}
	}
	if tb.Len() != 0 {
		t.Fatalf("table learned group/zero sources: %v", tb.Entries())
	}
}

func TestDisabledNeverLearns(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	if err := tb.Add(host, vtep1, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	var off learning.Policy // zero value: learning off
	other := fdb.MAC{0x02, 0, 0, 0, 0, 2}
	for _, m := range []fdb.MAC{host, other} {
		if r, v := off.Observe(tb, m, vtep2); r != fdb.Skipped || v != learning.Deliver {
			t.Errorf("disabled Observe(%s) = %v, %v; want skipped, deliver", m, r, v)
		}
	}
	if tb.Len() != 1 || tb.Lookup(other) != nil {
		t.Fatalf("disabled policy changed the table: %v", tb.Entries())
	}
}

func TestVerdicts(t *testing.T) {
	tb := fdb.New(fdb.Options{MaxAddress: 2})
	pinned := fdb.MAC{0x02, 0, 0, 0, 0, 0x99}
	if err := tb.Add(pinned, vtep1, fdb.Static); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		src  fdb.MAC
		from fdb.Dest
		r    fdb.LearnResult
		v    learning.Verdict
	}{
		{host, vtep1, fdb.Learned, learning.Deliver},
		{host, vtep1, fdb.Refreshed, learning.Deliver},
		{host, vtep2, fdb.Migrated, learning.Deliver},
		{pinned, vtep2, fdb.Conflict, learning.Drop},
		{pinned, vtep1, fdb.Refreshed, learning.Deliver},
		{fdb.MAC{0x02, 0, 0, 0, 0, 3}, vtep1, fdb.Full, learning.Deliver},
	} {
		r, v := on.Observe(tb, step.src, step.from)
		if r != step.r || v != step.v {
			t.Errorf("Observe(%s from %s) = %v, %v; want %v, %v", step.src, step.from.IP, r, v, step.r, step.v)
		}
	}
	if got := tb.Lookup(pinned); len(got) != 1 || got[0] != vtep1 {
		t.Fatalf("static entry changed: %v", got)
	}
}

func TestObserveAllocations(t *testing.T) {
	tb := fdb.New(fdb.Options{})
	pinned := fdb.MAC{0x02, 0, 0, 0, 0, 0x99}
	if err := tb.Add(pinned, vtep1, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	on.Observe(tb, host, vtep1)
	var off learning.Policy
	for name, f := range map[string]func(){
		"refresh":  func() { on.Observe(tb, host, vtep1) },
		"conflict": func() { on.Observe(tb, pinned, vtep2) },
		"group":    func() { on.Observe(tb, fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, vtep1) },
		"disabled": func() { off.Observe(tb, host, vtep2) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocs/op, want 0", name, n)
		}
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[learning.Verdict]string{learning.Deliver: "deliver", learning.Drop: "drop", 7: "Verdict(7)"} {
		if got := v.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", v, got, want)
		}
	}
}

func BenchmarkObserveRefresh(b *testing.B) {
	tb := fdb.New(fdb.Options{})
	on.Observe(tb, host, vtep1)
	b.ReportAllocs()
	for b.Loop() {
		if _, v := on.Observe(tb, host, vtep1); v != learning.Deliver {
			b.Fatal(v)
		}
	}
}
