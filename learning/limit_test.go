package learning

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vxland/vxland/fdb"
)

var testVTEP = fdb.Dest{IP: netip.MustParseAddr("192.0.2.2"), Port: 4789, VNI: 1}

func fakeClock(l *Limiter) *int64 {
	var now int64 = 1e12
	l.now = func() int64 { return now }
	return &now
}

// tries asks l n times at one instant and returns how many it allowed.
func tries(l *Limiter, n int) int {
	allowed := 0
	for range n {
		if l.Allow() {
			allowed++
		}
	}
	return allowed
}

func TestLimiterBurstThenRate(t *testing.T) {
	l := NewLimiter(100)
	now := fakeClock(l)
	if allowed := tries(l, 1000); allowed != 100 {
		t.Errorf("burst: %d allowed, want one second's worth, 100", allowed)
	}
	*now += int64(50 * time.Millisecond) // five more earned
	if allowed := tries(l, 1000); allowed != 5 {
		t.Errorf("after 50 ms: %d allowed, want 5", allowed)
	}
	*now += int64(10 * time.Second) // idle: the burst refills, no more
	if allowed := tries(l, 1000); allowed != 100 {
		t.Errorf("after idling: %d allowed, want 100", allowed)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter(1000)
	fakeClock(l)
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := tries(l, 1000)
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != 1000 {
		t.Errorf("%d allowed by 8 goroutines, want exactly 1000", allowed)
	}
}

func TestNoLimit(t *testing.T) {
	var l *Limiter = NewLimiter(0)
	if l != nil || !l.Allow() {
		t.Error("a zero rate is no limit")
	}
}

// Only changes are limited: refreshing known entries never is, and a
// refused change still delivers the frame.
func TestObserveLimited(t *testing.T) {
	l := NewLimiter(2)
	fakeClock(l)
	p := Policy{Enabled: true, Limit: l}
	tab := fdb.New(fdb.Options{})
	from := testVTEP
	macs := []fdb.MAC{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}, {2, 0, 0, 0, 0, 3}}
	var got []fdb.LearnResult
	for _, m := range macs {
		r, v := p.Observe(tab, m, from)
		if v != Deliver {
			t.Errorf("%v: verdict %v", m, v)
		}
		got = append(got, r)
	}
	if got[0] != fdb.Learned || got[1] != fdb.Learned || got[2] != fdb.Limited {
		t.Errorf("results %v, want learned, learned, limited", got)
	}
	for range 100 {
		if r, _ := p.Observe(tab, macs[0], from); r != fdb.Refreshed {
			t.Fatalf("refresh of a known entry: %v", r)
		}
	}
	if tab.Len() != 2 {
		t.Errorf("table holds %d entries, want 2", tab.Len())
	}
}

func BenchmarkObserveRefresh(b *testing.B) {
	p := Policy{Enabled: true, Limit: NewLimiter(10)}
	tab := fdb.New(fdb.Options{})
	from := testVTEP
	mac := fdb.MAC{2, 0, 0, 0, 0, 1}
	p.Observe(tab, mac, from)
	b.ReportAllocs()
	for b.Loop() {
		p.Observe(tab, mac, from)
	}
}
