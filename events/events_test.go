package events

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/stats"
)

func newTestBus() (*Bus, *stats.Counter, *stats.Counter, *time.Time) {
	var set stats.Set
	dropped, coalesced := set.New("dropped"), set.New("coalesced")
	b := NewBus("vx0", 40, dropped, coalesced)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b.now = func() time.Time { return now }
	return b, dropped, coalesced, &now
}

func TestCoalesceMisses(t *testing.T) {
	b, _, coalesced, now := newTestBus()
	s := b.Subscribe()
	defer s.Close()
	mac := fdb.MAC{2, 0, 0, 0, 0, 9}
	ip := netip.MustParseAddr("203.0.113.99")
	if !b.L2Miss(mac) || b.L2Miss(mac) {
		t.Fatal("second l2miss within a second was not coalesced")
	}
	if !b.L3Miss(ip) {
		t.Fatal("an l3miss was coalesced with an l2miss")
	}
	*now = now.Add(999 * time.Millisecond)
	if b.L3Miss(ip) {
		t.Fatal("l3miss 999 ms later was published")
	}
	*now = now.Add(time.Second)
	if !b.L2Miss(mac) {
		t.Fatal("l2miss after the window was coalesced")
	}
	if got := coalesced.Load(); got != 2 {
		t.Errorf("coalesced %d, want 2", got)
	}
	want := []Event{
		{Kind: L2Miss, Dev: "vx0", VNI: 40, MAC: mac},
		{Kind: L3Miss, Dev: "vx0", VNI: 40, IP: ip},
		{Kind: L2Miss, Dev: "vx0", VNI: 40, MAC: mac},
	}
	for i, w := range want {
		select {
		case e := <-s.C():
			if e != w {
				t.Errorf("event %d: %+v, want %+v", i, e, w)
			}
		default:
			t.Fatalf("event %d missing", i)
		}
	}
}

// TestSlowSubscriber: a full queue never blocks the publisher; the
// overflow is counted and announced before the next event that fits, and
// another subscriber gets everything.
func TestSlowSubscriber(t *testing.T) {
	b, dropped, _, _ := newTestBus()
	slow, fast := b.Subscribe(), b.Subscribe()
	defer slow.Close()
	defer fast.Close()
	const extra = 10
	publish := func(n int) {
		for i := 0; i < n; i++ {
			b.FDBChange(fdb.Change{Kind: fdb.ChangeLearned, MAC: fdb.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)}})
		}
	}
	drain := func(s *Sub) int {
		n := 0
		for len(s.C()) > 0 {
			<-s.C()
			n++
		}
		return n
	}
	publish(QueueLen) // both queues full, nothing lost yet
	got := drain(fast)
	publish(extra) // slow has no room; fast has
	got += drain(fast)
	if got != QueueLen+extra {
		t.Errorf("the reading subscriber got %d events, want %d", got, QueueLen+extra)
	}
	if n := dropped.Load(); n != extra {
		t.Errorf("dropped %d, want %d", n, extra)
	}
	for i := 0; i < QueueLen; i++ {
		if e := <-slow.C(); e.Kind != FDB {
			t.Fatalf("event %d is %v", i, e.Kind)
		}
	}
	b.FDBChange(fdb.Change{Kind: fdb.ChangeAged})
	if e := <-slow.C(); e.Kind != Lost || e.Lost != extra {
		t.Fatalf("after the overflow: %+v, want lost %d", e, extra)
	}
	if e := <-slow.C(); e.Kind != FDB || e.Change.Kind != fdb.ChangeAged {
		t.Fatalf("after the loss notice: %+v", e)
	}
}

func TestNoSubscribers(t *testing.T) {
	b, dropped, _, _ := newTestBus()
	s := b.Subscribe()
	s.Close()
	s.Close()
	b.FDBChange(fdb.Change{})
	if dropped.Load() != 0 || len(s.C()) != 0 {
		t.Error("a closed subscriber still receives")
	}
}

func TestMissKeysBounded(t *testing.T) {
	b, _, _, _ := newTestBus()
	for i := 0; i < 3*maxMissKeys; i++ {
		b.L3Miss(netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}))
	}
	if n := len(b.misses); n > maxMissKeys {
		t.Errorf("%d keys remembered, bound %d", n, maxMissKeys)
	}
}
