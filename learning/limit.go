package learning

import (
	"sync/atomic"
	"time"
)

// Limiter bounds how fast learning may change a forwarding table: new
// entries and migrations, at most Rate per second with a burst of one
// second's worth. Refreshing an entry that is already right is never
// limited. It is the generic cell rate algorithm: one atomic timestamp,
// no lock, no allocation, safe for concurrent use. A nil *Limiter allows
// everything.
type Limiter struct {
	interval int64 // nanoseconds per change
	tau      int64 // how far ahead of now the theoretical arrival time may run: the burst
	tat      atomic.Int64
	now      func() int64
}

// NewLimiter returns a limiter of perSecond changes a second, or nil (no
// limit) when perSecond is 0.
func NewLimiter(perSecond int) *Limiter {
	if perSecond <= 0 {
		return nil
	}
	interval := int64(time.Second) / int64(perSecond)
	return &Limiter{
		interval: max(interval, 1),
		tau:      int64(time.Second) - max(interval, 1),
		now:      func() int64 { return time.Now().UnixNano() },
	}
}

// Allow reports whether one more change may be made now, and if so takes
// it.
func (l *Limiter) Allow() bool {
	if l == nil {
		return true
	}
	now := l.now()
	for {
		tat := l.tat.Load()
		start := max(tat, now)
		if start-now > l.tau {
			return false
		}
		if l.tat.CompareAndSwap(tat, start+l.interval) {
			return true
		}
	}
}
