package fdb

import (
	"net/netip"
	"testing"
)

// Entries takes no lock: it completes while a writer holds the table's
// mutex (a listing of a large table never stalls learning), and it sees
// every entry of a table being written to concurrently (run with -race).
func TestEntriesWithoutWriterLock(t *testing.T) {
	tab := New(Options{})
	for i := range 1000 {
		tab.Learn(MAC{2, 0, 0, 0, byte(i >> 8), byte(i)}, Dest{IP: netip.MustParseAddr("192.0.2.2"), Port: 4789, VNI: 1})
	}
	tab.mu.Lock()
	got := tab.Entries() // would deadlock if Entries locked
	tab.mu.Unlock()
	if len(got) != 1000 {
		t.Fatalf("%d entries, want 1000", len(got))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			tab.Learn(MAC{2, 1, 0, 0, byte(i >> 8), byte(i)}, Dest{IP: netip.MustParseAddr("192.0.2.3"), Port: 4789, VNI: 1})
		}
	}()
	for range 50 {
		if n := len(tab.Entries()); n < 1000 || n > 3000 {
			t.Fatalf("%d entries while learning, want 1000 to 3000", n)
		}
	}
	<-done
}
