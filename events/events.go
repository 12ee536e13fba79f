// Package events carries a segment's control-plane events to the monitors
// that watch it (`vxlanctl monitor`): l2miss and l3miss, raised by the
// forwarding path as the kernel's vxlan_fdb_miss and vxlan_ip_miss send
// RTM_GETNEIGH notifications, and forwarding database changes, as
// `bridge monitor fdb` shows them.
//
// Publishing never blocks: each subscriber has a bounded queue, and an
// event that does not fit is dropped and counted, the subscriber told how
// many it lost. Repeated misses for one key are coalesced: at most one per
// key per second is published, the others counted.
package events

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/stats"
)

// Kind is what an event reports.
type Kind uint8

const (
	// L2Miss: a unicast frame's destination MAC has no forwarding entry
	// and there is no all-zeros entry; the frame was dropped.
	L2Miss Kind = iota
	// L3Miss: an address the proxy or route short-circuit looked up has
	// no neighbour entry.
	L3Miss
	// FDB: a forwarding entry changed (Change says how).
	FDB
	// Lost: the subscriber's queue overflowed; Lost events were dropped.
	Lost
)

// String returns "l2miss", "l3miss", "fdb" or "lost".
func (k Kind) String() string {
	switch k {
	case L2Miss:
		return "l2miss"
	case L3Miss:
		return "l3miss"
	case FDB:
		return "fdb"
	case Lost:
		return "lost"
	}
	return "kind?"
}

// Event is one event of one segment.
type Event struct {
	Kind Kind
	// Dev and VNI name the segment.
	Dev string
	VNI uint32
	// MAC is the missed address (L2Miss) or the entry's (FDB).
	MAC fdb.MAC
	// IP is the missed address (L3Miss).
	IP netip.Addr
	// Change is the forwarding entry's change (FDB).
	Change fdb.Change
	// Lost counts dropped events (Lost).
	Lost uint64
}

// QueueLen is how many events a subscriber may have waiting.
const QueueLen = 1024

// coalesceWindow is the least time between two published misses of one key.
const coalesceWindow = time.Second

// maxMissKeys bounds the coalescing memory; beyond it old keys are swept.
const maxMissKeys = 4096

type missKey struct {
	kind Kind
	mac  fdb.MAC
	ip   netip.Addr
}

// Bus distributes one segment's events. Create it with NewBus.
type Bus struct {
	dev string
	vni uint32
	now func() time.Time

	nsubs     atomic.Int32
	dropped   *stats.Counter
	coalesced *stats.Counter

	mu     sync.Mutex
	subs   map[*Sub]struct{}
	misses map[missKey]time.Time
}

// NewBus returns a bus for the segment dev, VNI vni. dropped counts events
// lost to full subscriber queues, coalesced the misses held back; either
// may be nil.
func NewBus(dev string, vni uint32, dropped, coalesced *stats.Counter) *Bus {
	return &Bus{dev: dev, vni: vni, now: time.Now, dropped: dropped, coalesced: coalesced,
		subs: map[*Sub]struct{}{}, misses: map[missKey]time.Time{}}
}

// Sub is one subscriber's queue.
type Sub struct {
	bus  *Bus
	c    chan Event
	lost atomic.Uint64
	once sync.Once
}

// Subscribe returns a new subscriber; Close it when done.
func (b *Bus) Subscribe() *Sub {
	s := &Sub{bus: b, c: make(chan Event, QueueLen)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.nsubs.Store(int32(len(b.subs)))
	b.mu.Unlock()
	return s
}

// C is the subscriber's queue. A Lost event comes before the first event
// that follows an overflow.
func (s *Sub) C() <-chan Event { return s.c }

// Close unsubscribes; C is never closed.
func (s *Sub) Close() {
	s.once.Do(func() {
		b := s.bus
		b.mu.Lock()
		delete(b.subs, s)
		b.nsubs.Store(int32(len(b.subs)))
		b.mu.Unlock()
	})
}

// Publish hands e to every subscriber without waiting.
func (b *Bus) Publish(e Event) {
	if b.nsubs.Load() == 0 {
		return
	}
	e.Dev, e.VNI = b.dev, b.vni
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.offer(e, b.dropped)
	}
}

// offer queues e, first telling of earlier losses. The bus lock is held.
func (s *Sub) offer(e Event, dropped *stats.Counter) {
	if n := s.lost.Load(); n > 0 {
		select {
		case s.c <- Event{Kind: Lost, Dev: e.Dev, VNI: e.VNI, Lost: n}:
			s.lost.Store(0)
		default:
			s.drop(dropped)
			return
		}
	}
	select {
	case s.c <- e:
	default:
		s.drop(dropped)
	}
}

func (s *Sub) drop(dropped *stats.Counter) {
	s.lost.Add(1)
	if dropped != nil {
		dropped.Inc()
	}
}

// FDBChange publishes a forwarding database change; it is an
// fdb.Options.Notify.
func (b *Bus) FDBChange(c fdb.Change) {
	b.Publish(Event{Kind: FDB, MAC: c.MAC, Change: c})
}

// L2Miss publishes an l2miss for mac unless one was published less than
// a second ago, and reports whether it did.
func (b *Bus) L2Miss(mac fdb.MAC) bool {
	return b.miss(missKey{kind: L2Miss, mac: mac}, Event{Kind: L2Miss, MAC: mac})
}

// L3Miss publishes an l3miss for ip unless one was published less than
// a second ago, and reports whether it did.
func (b *Bus) L3Miss(ip netip.Addr) bool {
	return b.miss(missKey{kind: L3Miss, ip: ip}, Event{Kind: L3Miss, IP: ip})
}

func (b *Bus) miss(k missKey, e Event) bool {
	now := b.now()
	b.mu.Lock()
	last, seen := b.misses[k]
	if seen && now.Sub(last) < coalesceWindow {
		b.mu.Unlock()
		if b.coalesced != nil {
			b.coalesced.Inc()
		}
		return false
	}
	if !seen && len(b.misses) >= maxMissKeys {
		for old, t := range b.misses {
			if now.Sub(t) >= coalesceWindow {
				delete(b.misses, old)
			}
		}
		if len(b.misses) >= maxMissKeys {
			clear(b.misses) // a flood of distinct keys: start afresh
		}
	}
	b.misses[k] = now
	b.mu.Unlock()
	b.Publish(e)
	return true
}
