// Package stats holds the named packet counters that the data plane keeps and
// that vxlanctl shows. Counters are plain atomics: incrementing one costs a
// single uncontended add and never allocates.
package stats

import (
	"sync/atomic"
)

// Counter is one named, monotonically increasing count.
type Counter struct {
	name string
	v    atomic.Uint64
}

// Add increases the counter by n.
func (c *Counter) Add(n uint64) { c.v.Add(n) }

// Inc increases the counter by one.
func (c *Counter) Inc() { c.v.Add(1) }

// Load returns the current value.
func (c *Counter) Load() uint64 { return c.v.Load() }

// Name returns the counter's name as shown by vxlanctl stats.
func (c *Counter) Name() string { return c.name }

// Value is a counter read at one moment.
type Value struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

// Set is an ordered group of counters. Counters are created once, at start,
// and read concurrently with their updates.
type Set struct {
	counters []*Counter
}

// New registers and returns a counter named name. Call it only during setup.
func (s *Set) New(name string) *Counter {
	c := &Counter{name: name}
	s.counters = append(s.counters, c)
	return c
}

// Snapshot returns every counter's current value, in registration order.
func (s *Set) Snapshot() []Value {
	out := make([]Value, len(s.counters))
	for i, c := range s.counters {
		out[i] = Value{Name: c.name, Value: c.Load()}
	}
	return out
}

// Get returns the value of the counter named name, and whether it exists.
func (s *Set) Get(name string) (uint64, bool) {
	for _, c := range s.counters {
		if c.name == name {
			return c.Load(), true
		}
	}
	return 0, false
}
