package control

import (
	"bytes"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxland/vxland/events"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/neigh"
	"github.com/vxland/vxland/stats"
)

// *neigh.Table is what the daemon hands to Device.Neigh.
var _ Neigh = (*neigh.Table)(nil)

func hookDevice(t *testing.T) (*Device, *fdb.Table, *neigh.Table, *events.Bus, *stats.Counter) {
	var set stats.Set
	dropped := set.New("events_dropped")
	bus := events.NewBus("vx0", 42, dropped, nil)
	table := fdb.New(fdb.Options{Notify: bus.FDBChange})
	nt := neigh.New()
	d := testDevice("vx0", table)
	d.Neigh, d.Events = nt, bus
	return d, table, nt, bus, dropped
}

func TestNeighOps(t *testing.T) {
	d, _, nt, _, _ := hookDevice(t)
	path := filepath.Join(t.TempDir(), "vx0.sock")
	startServer(t, path, nil, d)
	c := dial(t, path)
	ipT := netip.MustParseAddr("203.0.113.2")
	if err := c.NeighAdd("vx0", ipT, macA, true); err != nil {
		t.Fatal(err)
	}
	if err := c.NeighAdd("vx0", ipT, macB, false); !errors.Is(err, neigh.ErrExists) {
		t.Errorf("second add: %v, want neigh.ErrExists", err)
	}
	if e, ok := nt.Lookup(ipT); !ok || e.MAC != macA || !e.Router {
		t.Errorf("table has %+v %v", e, ok)
	}
	nt.SetHost(netip.MustParseAddr("2001:db8::7"), macB, false, neigh.NUDReachable)
	devs, err := c.NeighShow("")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	FormatNeigh(&out, devs[0], false)
	want := "203.0.113.2 lladdr 02:00:5e:10:00:01 router PERMANENT\n" +
		"2001:db8::7 lladdr 02:00:5e:10:00:02 REACHABLE proto host\n"
	if out.String() != want {
		t.Errorf("neigh show:\n%s\nwant\n%s", out.String(), want)
	}
	if err := c.NeighReplace("vx0", ipT, macB, false); err != nil {
		t.Fatal(err)
	}
	if err := c.NeighDel("vx0", ipT); err != nil {
		t.Fatal(err)
	}
	if err := c.NeighDel("vx0", ipT); !errors.Is(err, neigh.ErrNotFound) {
		t.Errorf("second del: %v, want neigh.ErrNotFound", err)
	}
	for _, bad := range []string{
		`{"v":1,"op":"neigh.add","dev":"vx0","ip":"203.0.113.2"}`,
		`{"v":1,"op":"neigh.add","dev":"vx0","lladdr":"02:00:00:00:00:01"}`,
		`{"v":1,"op":"neigh.add","dev":"vx0","ip":"nope","lladdr":"02:00:00:00:00:01"}`,
		`{"v":1,"op":"neigh.add","dev":"vx0","ip":"239.1.1.1","lladdr":"02:00:00:00:00:01"}`,
		`{"v":1,"op":"neigh.add","dev":"vx0","ip":"203.0.113.3","lladdr":"01:00:00:00:00:01"}`,
		`{"v":1,"op":"neigh.add","dev":"vx0","ip":"203.0.113.3","lladdr":"02:00:00:00:00:01","mac":"02:00:00:00:00:01"}`,
		`{"v":1,"op":"neigh.del","dev":"vx0","ip":"203.0.113.3","router":true}`,
		`{"v":1,"op":"fdb.add","dev":"vx0","mac":"02:00:00:00:00:01","dst":"192.0.2.2","ip":"203.0.113.3"}`,
		`{"v":1,"op":"neigh.show","dev":"vx0","ip":"203.0.113.3"}`,
	} {
		if rep := roundTrip(t, path, []byte(bad+"\n")); rep.OK || rep.Code != CodeInvalid {
			t.Errorf("%s: %+v, want an invalid-request error", bad, rep)
		}
	}
}

func TestFDBRouterFlag(t *testing.T) {
	d, table, _, _, _ := hookDevice(t)
	path := filepath.Join(t.TempDir(), "vx0.sock")
	startServer(t, path, nil, d)
	c := dial(t, path)
	if err := c.FDBSet(fdb.OpAdd, "vx0", macA, Remote{IP: ip2}, fdb.Permanent, true); err != nil {
		t.Fatal(err)
	}
	if _, r := table.LookupRouter(macA); !r {
		t.Fatal("router flag not set")
	}
	devs, err := c.FDBShow("vx0")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	FormatFDB(&out, devs[0], false)
	if want := "02:00:5e:10:00:01 dst 192.0.2.2 self router permanent\n"; out.String() != want {
		t.Errorf("fdb show %q, want %q", out.String(), want)
	}
}

// TestMonitor: two monitors see the same events in order, formatted as
// bridge monitor and ip monitor print them; a monitor that stops reading
// loses events (counted, and told) without slowing the publisher.
func TestMonitor(t *testing.T) {
	d, table, _, bus, dropped := hookDevice(t)
	path := filepath.Join(t.TempDir(), "vx0.sock")
	startServer(t, path, nil, d)
	c := dial(t, path)

	type stream struct {
		lines chan string
		done  chan struct{}
		err   chan error
	}
	watch := func() *stream {
		s := &stream{lines: make(chan string, 100), done: make(chan struct{}), err: make(chan error, 1)}
		go func() {
			s.err <- c.Monitor("vx0", s.done, func(e MonitorEvent) error {
				var b bytes.Buffer
				FormatEvent(&b, e)
				select {
				case s.lines <- strings.TrimSuffix(b.String(), "\n"):
				case <-s.done:
				}
				return nil
			})
		}()
		return s
	}
	a, b := watch(), watch()
	// Wait until both are subscribed: a sentinel miss through the same path.
	sentinel := fdb.MAC{0x02, 0, 0, 0, 0, 0x77}
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range []*stream{a, b} {
		for got := false; !got; {
			bus.L2Miss(sentinel)
			select {
			case <-s.lines:
				got = true
			case <-time.After(1100 * time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatal("monitor never subscribed")
				}
			}
		}
	}
	// Skip what the handshake left in flight, up to a last marker.
	bus.L3Miss(netip.MustParseAddr("203.0.113.250"))
	for _, s := range []*stream{a, b} {
		for l := ""; l != "l3miss 203.0.113.250 dev vx0 vni 42"; {
			select {
			case l = <-s.lines:
			case <-time.After(5 * time.Second):
				t.Fatal("marker missing")
			}
		}
	}
	table.Add(macA, fdb.Dest{IP: ip2, Port: 4789, VNI: 42}, fdb.Permanent)
	table.Learn(macB, fdb.Dest{IP: ip3, Port: 4789, VNI: 42})
	table.Del(macA, nil)
	bus.L3Miss(netip.MustParseAddr("203.0.113.99"))
	bus.L2Miss(fdb.MAC{0x02, 0, 0, 0, 0, 0x09})
	want := []string{
		"02:00:5e:10:00:01 dev vx0 dst 192.0.2.2 self permanent",
		"02:00:5e:10:00:02 dev vx0 dst 192.0.2.3 self",
		"Deleted 02:00:5e:10:00:01 dev vx0 dst 192.0.2.2 self permanent",
		"l3miss 203.0.113.99 dev vx0 vni 42",
		"l2miss 02:00:00:00:00:09 dev vx0 vni 42",
	}
	for name, s := range map[string]*stream{"a": a, "b": b} {
		for i, w := range want {
			select {
			case got := <-s.lines:
				if got != w {
					t.Errorf("monitor %s line %d: %q, want %q", name, i, got, w)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("monitor %s: line %d missing", name, i)
			}
		}
	}
	close(a.done)
	if err := <-a.err; err != nil {
		t.Errorf("monitor a ended with %v", err)
	}

	// b stops reading: its lines channel fills, its handler blocks, the
	// socket and the daemon's queue fill; publishing goes on regardless.
	start := time.Now()
	for i := 0; i < 20000; i++ {
		table.Learn(fdb.MAC{0x02, 1, 0, byte(i >> 16), byte(i >> 8), byte(i)}, fdb.Dest{IP: ip2, Port: 4789, VNI: 42})
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("publishing to a stalled monitor took %v", el)
	}
	if dropped.Load() == 0 {
		t.Fatal("no event dropped for the stalled monitor")
	}
	// Reading again, b hears how many it lost once an event follows.
	lost := make(chan string, 1)
	go func() {
		for l := range b.lines {
			if strings.HasPrefix(l, "lost ") {
				lost <- l
				return
			}
		}
	}()
	for i, seen := 0, false; !seen; i++ {
		table.Learn(fdb.MAC{0x02, 2, 0, 0, byte(i >> 8), byte(i)}, fdb.Dest{IP: ip2, Port: 4789, VNI: 42})
		select {
		case l := <-lost:
			seen = true
			if !strings.HasSuffix(l, " events dev vx0 vni 42") {
				t.Errorf("lost line %q", l)
			}
		case <-time.After(10 * time.Millisecond):
			if time.Now().After(deadline.Add(30 * time.Second)) {
				t.Fatal("the stalled monitor was never told of its losses")
			}
		}
	}
	close(b.done)
	<-b.err

	// A fresh monitor after an overflow of a stalled one gets everything.
	s := &stream{lines: make(chan string, 100), done: make(chan struct{}), err: make(chan error, 1)}
	var sawLost bool
	go func() {
		s.err <- c.Monitor("", s.done, func(e MonitorEvent) error {
			if e.Event == "lost" {
				sawLost = true
			}
			s.lines <- e.Event
			return nil
		})
	}()
	for got := false; !got; {
		bus.L2Miss(sentinel)
		select {
		case <-s.lines:
			got = true
		case <-time.After(1100 * time.Millisecond):
		}
	}
	close(s.done)
	<-s.err
	if sawLost {
		t.Error("a fresh monitor was told of losses it did not have")
	}
}

// TestMonitorLostNotice: a subscriber that overflows is told how many
// events it lost, in the stream, before the next one.
func TestMonitorLostNotice(t *testing.T) {
	var b bytes.Buffer
	FormatEvent(&b, monitorEvent(events.Event{Kind: events.Lost, Dev: "vx0", VNI: 42, Lost: 12}, 4789))
	if b.String() != "lost 12 events dev vx0 vni 42\n" {
		t.Errorf("lost line %q", b.String())
	}
}

func TestMonitorBadRequest(t *testing.T) {
	d, _, _, _, _ := hookDevice(t)
	path := filepath.Join(t.TempDir(), "vx0.sock")
	startServer(t, path, nil, d)
	if rep := roundTrip(t, path, []byte(`{"v":1,"op":"monitor","dev":"nope"}`+"\n")); rep.OK || rep.Code != CodeNoDev {
		t.Errorf("monitor of a missing device: %+v", rep)
	}
	if rep := roundTrip(t, path, []byte(`{"v":1,"op":"monitor","mac":"02:00:00:00:00:01"}`+"\n")); rep.OK || rep.Code != CodeInvalid {
		t.Errorf("monitor with a mac: %+v", rep)
	}
}
