package stats

import (
	"sync"
	"testing"
)

func TestSet(t *testing.T) {
	var s Set
	a, b := s.New("a"), s.New("b")
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				a.Inc()
				b.Add(2)
			}
		}()
	}
	wg.Wait()
	snap := s.Snapshot()
	if len(snap) != 2 || snap[0] != (Value{"a", 4000}) || snap[1] != (Value{"b", 8000}) {
		t.Errorf("snapshot %v", snap)
	}
	if v, ok := s.Get("b"); !ok || v != 8000 {
		t.Errorf("Get(b) = %d, %v", v, ok)
	}
	if _, ok := s.Get("c"); ok {
		t.Error("Get of an unknown counter succeeded")
	}
	if a.Name() != "a" {
		t.Errorf("name %q", a.Name())
	}
	if n := testing.AllocsPerRun(100, func() { a.Inc() }); n != 0 {
		t.Errorf("Inc allocates %v times", n)
	}
}
