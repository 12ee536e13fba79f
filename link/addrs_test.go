package link

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vxland/vxland/internal/testnet"
)

// TestWatchAddrs follows the addresses of an interface in another
// namespace through netlink events.
func TestWatchAddrs(t *testing.T) {
	ns := testnet.NewNS(t)
	ns.Exec(t, "ip", "link", "add", "wa0", "type", "veth", "peer", "name", "wa1")
	ns.Addr(t, "wa0", "203.0.113.1/24")
	h, err := Open(ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var mu sync.Mutex
	var got []netip.Addr
	done := make(chan struct{})
	defer close(done)
	err = h.WatchAddrs("wa0", done, func(a []netip.Addr) {
		mu.Lock()
		got = a
		mu.Unlock()
	}, func(err error) { t.Errorf("watch: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	want := func(addrs ...string) func() error {
		return func() error {
			var w []netip.Addr
			for _, a := range addrs {
				w = append(w, netip.MustParseAddr(a))
			}
			mu.Lock()
			defer mu.Unlock()
			g := slices.Clone(got)
			slices.SortFunc(g, netip.Addr.Compare)
			if !slices.Equal(g, w) {
				return &mismatch{g, w}
			}
			return nil
		}
	}
	testnet.Eventually(t, 5*time.Second, want("203.0.113.1"))
	ns.Addr(t, "wa0", "2001:db8::1/64")
	ns.Addr(t, "wa1", "198.51.100.1/24") // another interface: not ours
	ns.Exec(t, "ip", "addr", "del", "203.0.113.1/24", "dev", "wa0")
	testnet.Eventually(t, 5*time.Second, want("2001:db8::1"))
}

type mismatch struct{ got, want []netip.Addr }

func (m *mismatch) Error() string {
	return "addresses " + fmtAddrs(m.got) + ", want " + fmtAddrs(m.want)
}

func fmtAddrs(a []netip.Addr) string {
	s := "["
	for i, x := range a {
		if i > 0 {
			s += " "
		}
		s += x.String()
	}
	return s + "]"
}
