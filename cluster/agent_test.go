package cluster

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/internal/testnet"
	"github.com/vxland/vxland/overlay"
	"github.com/vxland/vxland/stats"
)

func TestMain(m *testing.M) { testnet.Main(m) }

const testVNI = 40

// world is an etcd server in a namespace with a bridge, and the nodes'
// namespaces plugged into it.
type world struct {
	t    *testing.T
	hub  *testnet.NS
	etcd *testnet.Etcd
	cli  *clientv3.Client // the test's own client, as another writer
	// ageing is the local endpoints' lifetime in nodes added from now on.
	ageing time.Duration
}

// put writes key as another writer would and returns the revision.
func (w *world) put(key, value string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := w.cli.Put(ctx, key, value)
	if err != nil {
		w.t.Fatal(err)
	}
	return r.Header.Revision
}

func newWorld(t *testing.T) *world {
	hub := testnet.NewNS(t)
	hub.Exec(t, "ip", "link", "add", "br0", "type", "bridge")
	hub.Addr(t, "br0", "192.0.2.254/24")
	e := testnet.StartEtcd(t, hub, "192.0.2.254")
	return &world{t: t, hub: hub, etcd: e, cli: e.Client(t)}
}

// neighbours records what the installer hands the neighbour table.
type neighbours struct {
	mu sync.Mutex
	m  map[netip.Addr]fdb.MAC
}

func (n *neighbours) Sync(_ fdb.Owner, want map[netip.Addr]fdb.MAC) error {
	n.mu.Lock()
	n.m = maps.Clone(want)
	n.mu.Unlock()
	return nil
}

func (n *neighbours) get() map[netip.Addr]fdb.MAC {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.m)
}

type node struct {
	i      int
	ns     *testnet.NS
	addr   netip.Addr
	mac    fdb.MAC
	table  *fdb.Table
	local  *overlay.Local
	neigh  *neighbours
	agent  *Agent
	cli    *clientv3.Client
	cancel context.CancelFunc
	done   chan struct{}
	logs   *logBuf
}

type logBuf struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// addNode plugs node i (underlay 192.0.2.i) into the hub and runs an agent
// for one VNI in it.
func (w *world) addNode(i int) *node {
	t := w.t
	ns := testnet.NewNS(t)
	hubIf := "e" + strconv.Itoa(i)
	testnet.Link(t, w.hub, hubIf, ns, "u0")
	w.hub.Exec(t, "ip", "link", "set", hubIf, "master", "br0")
	ns.Addr(t, "u0", fmt.Sprintf("192.0.2.%d/24", i))
	n := &node{i: i, ns: ns, addr: netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i)), mac: fdb.MAC{2, 0, 0, 0, 0, byte(i)},
		table: fdb.New(fdb.Options{}), neigh: &neighbours{}, logs: &logBuf{}}
	n.local = overlay.NewLocal(overlay.LocalConfig{VNI: testVNI, VTEP: overlay.VTEP{Addr: n.addr, Port: 4789, MAC: n.mac}, Ageing: w.ageing})
	in := overlay.NewInstaller(overlay.InstallerConfig{Owner: Owner, VNI: testVNI, Table: n.table, Self: n.mac, SelfAddr: n.addr, Neighbours: n.neigh})
	// The host's client dials from inside its namespace, with the daemon's
	// keepalive so that a cut link is noticed.
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: []string{w.etcd.Endpoint}, DialTimeout: 5 * time.Second,
		DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second,
		Logger: zap.NewNop(), DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return ns.DialContext(ctx, "tcp", addr) })},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := New(cli, Config{LeaseTTL: 3 * time.Second, Logf: n.logs.logf})
	n.cli = cli
	if err := a.Add(VNI{Local: n.local, Installer: in}); err != nil {
		t.Fatal(err)
	}
	n.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan struct{})
	go func() { defer close(n.done); a.Run(ctx) }()
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("node %d log:\n%v", i, n.logs.lines)
		}
	})
	return n
}

// stop ends the agent gracefully (revoking its lease).
func (n *node) stop() {
	n.cancel()
	<-n.done
	n.cli.Close()
}

func (n *node) counter(name string) uint64 {
	return value(n.agent.Stats(), name)
}

func value(vs []stats.Value, name string) uint64 {
	for _, v := range vs {
		if v.Name == name {
			return v.Value
		}
	}
	return 0
}

// hasPeers checks that n's table holds exactly the given peers as cluster
// flood destinations and owned entries for their MACs.
func (n *node) hasPeers(peers ...*node) func() error {
	return func() error {
		var want []fdb.Dest
		for _, p := range peers {
			want = append(want, fdb.Dest{IP: p.addr, Port: 4789, VNI: testVNI})
		}
		slices.SortFunc(want, func(a, b fdb.Dest) int { return a.IP.Compare(b.IP) })
		got := n.table.Defaults()
		if !slices.Equal(got, want) {
			return fmt.Errorf("node %d: flood list %v, want %v", n.i, got, want)
		}
		for _, p := range peers {
			if d := n.table.Lookup(p.mac); len(d) != 1 || d[0].IP != p.addr {
				return fmt.Errorf("node %d: %s -> %v, want %s", n.i, p.mac, d, p.addr)
			}
		}
		if owned := n.table.Owned(Owner); len(owned) != len(peers)+min(len(peers), 1)+n.extraOwned(peers) {
			return fmt.Errorf("node %d: owned entries %+v", n.i, owned)
		}
		return nil
	}
}

// extraOwned counts the endpoint entries the peers announce.
func (n *node) extraOwned(peers []*node) int {
	c := 0
	for _, p := range peers {
		_, eps := p.local.Snapshot()
		c += len(eps)
	}
	return c
}

// TestAgents runs three agents against a real etcd: they find each other,
// announce endpoints and TAP addresses, refuse hostile values, drop a node
// that leaves at once and one that is cut off after its lease, keep their
// state while cut off, and converge again once back, although the history
// they missed was compacted away (they list again: after re-registering,
// or when their resumed watch finds its revision compacted).
func TestAgents(t *testing.T) {
	w := newWorld(t)
	n1, n2, n3 := w.addNode(1), w.addNode(2), w.addNode(3)
	const wait = 15 * time.Second
	testnet.Eventually(t, wait, n1.hasPeers(n2, n3))
	testnet.Eventually(t, wait, n2.hasPeers(n1, n3))
	testnet.Eventually(t, wait, n3.hasPeers(n1, n2))

	// An endpoint behind node 1's TAP and node 1's TAP address reach the
	// others: a forwarding entry and neighbour bindings.
	ep := fdb.MAC{0x0a, 0, 0, 0, 0, 1}
	tapIP := netip.MustParseAddr("203.0.113.1")
	n1.local.ObserveSource(ep)
	n1.local.SetAddrs([]netip.Addr{tapIP})
	for _, n := range []*node{n2, n3} {
		testnet.Eventually(t, wait, func() error {
			if d := n.table.Lookup(ep); len(d) != 1 || d[0].IP != n1.addr {
				return fmt.Errorf("node %d: endpoint -> %v", n.i, d)
			}
			if got := n.neigh.get(); got[tapIP] != n1.mac {
				return fmt.Errorf("node %d: neighbours %v", n.i, got)
			}
			return nil
		})
	}

	// Hostile values under the prefix: refused, counted, nothing installed.
	before := n2.counter("cluster_invalid_values")
	w.put("/vxland/v1/vni/40/member/192.0.2.66", `{"v":1,"addr":"192.0.2.66","port":4789,"mac":"ff:ff:ff:ff:ff:ff"}`)
	w.put("/vxland/v1/vni/40/member/not-an-address", `{}`)
	testnet.Eventually(t, wait, func() error {
		if got := n2.counter("cluster_invalid_values"); got < before+2 {
			return fmt.Errorf("invalid values counted %d, want %d", got, before+2)
		}
		return nil
	})
	if err := n2.hasPeers(n1, n3)(); err != nil {
		t.Fatalf("after hostile values: %v", err)
	}

	// Node 2 is cut off from etcd. It keeps forwarding with what it has.
	w.hub.Exec(t, "ip", "link", "set", "e2", "down")
	// Node 3 leaves gracefully: node 1 drops it at once (well within the
	// lease), node 2 cannot hear it.
	left := time.Now()
	n3.stop()
	testnet.Eventually(t, wait, n1.hasPeers(n2))
	if d := time.Since(left); d > 3*time.Second {
		t.Errorf("graceful leave seen after %v", d)
	}
	// Node 2's lease runs out: node 1 drops it within the TTL plus a second
	// or so (from the cut, its last keepalive).
	cut := time.Now()
	testnet.Eventually(t, wait, n1.hasPeers())
	if d := time.Since(cut); d > 3*time.Second+2*time.Second {
		t.Errorf("expired member dropped after %v", d)
	}
	if err := n2.hasPeers(n1, n3)(); err != nil {
		t.Fatalf("cut-off node lost state: %v", err)
	}
	// The history node 2 missed is compacted away.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := w.cli.Compact(ctx, w.put("/vxland/other", "x")); err != nil {
		t.Fatal(err)
	}
	w.hub.Exec(t, "ip", "link", "set", "e2", "up")
	testnet.Eventually(t, 30*time.Second, n2.hasPeers(n1))
	testnet.Eventually(t, wait, n1.hasPeers(n2))
	if n2.counter("cluster_leases_lost") == 0 || n2.counter("cluster_lease_grants") < 2 {
		t.Errorf("node 2: leases lost %d, granted %d", n2.counter("cluster_leases_lost"), n2.counter("cluster_lease_grants"))
	}
	st := n2.agent.Status()
	if st.State != "connected" || len(st.VNIs) != 1 || len(st.VNIs[0].Members) != 1 || st.VNIs[0].Members[0].VTEP.Addr != n1.addr || !st.VNIs[0].Published {
		t.Errorf("status %+v", st)
	}
}

// TestEndpointAgeing: an endpoint that stops sending ages out of the node
// that announced it, and so out of the others' tables.
func TestEndpointAgeing(t *testing.T) {
	w := newWorld(t)
	w.ageing = 2 * time.Second
	n1, n2 := w.addNode(1), w.addNode(2)
	ep := fdb.MAC{0x0a, 0, 0, 0, 0, 7}
	n1.local.ObserveSource(ep)
	testnet.Eventually(t, 15*time.Second, func() error {
		if d := n2.table.Lookup(ep); len(d) != 1 || d[0].IP != n1.addr {
			return fmt.Errorf("endpoint -> %v", d)
		}
		return nil
	})
	seen := time.Now()
	testnet.Eventually(t, 15*time.Second, func() error {
		if d := n2.table.Lookup(ep); d != nil {
			return fmt.Errorf("endpoint still installed: %v", d)
		}
		return nil
	})
	t.Logf("aged out %v after it was installed (ageing %v)", time.Since(seen).Round(100*time.Millisecond), w.ageing)
	if d := n2.table.Lookup(n1.mac); len(d) != 1 {
		t.Errorf("the member itself went too: %v", d)
	}
}

// TestEtcdDataLoss: etcd restarts empty (its data lost). The members
// re-register under new leases, list again (the revisions they were
// watching from are gone: they start from 1 again) and a node that joins
// afterwards is seen by all.
func TestEtcdDataLoss(t *testing.T) {
	w := newWorld(t)
	n1, n2 := w.addNode(1), w.addNode(2)
	testnet.Eventually(t, 15*time.Second, n1.hasPeers(n2))
	// The members watch from a revision well above what the new etcd
	// will reach soon (the events are refused, but seen).
	for i := 0; i < 50; i++ {
		w.put("/vxland/v1/vni/40/member/not-an-address", strconv.Itoa(i))
	}
	testnet.Eventually(t, 15*time.Second, func() error {
		if n := n1.counter("cluster_invalid_values"); n < 50 {
			return fmt.Errorf("node 1 saw %d of the 50 events", n)
		}
		return nil
	})
	w.etcd.Stop()
	w.etcd.Wipe(t)
	w.etcd.Start()
	n3 := w.addNode(3)
	testnet.Eventually(t, 30*time.Second, n1.hasPeers(n2, n3))
	testnet.Eventually(t, 15*time.Second, n2.hasPeers(n1, n3))
	testnet.Eventually(t, 15*time.Second, n3.hasPeers(n1, n2))
}

// TestWatchResumesIntoCompaction: a watch that resumes from a revision
// etcd has compacted away gets ErrCompacted; the agent counts it, lists
// the members again and reconciles by content, so a member deleted in the
// gap goes and one added in it comes.
func TestWatchResumesIntoCompaction(t *testing.T) {
	w := newWorld(t)
	n1 := w.addNode(1)
	gone := `{"v":1,"addr":"192.0.2.7","port":4789,"mac":"02:00:00:00:00:07"}`
	w.put("/vxland/v1/vni/40/member/192.0.2.7", gone)
	testnet.Eventually(t, 15*time.Second, func() error {
		if d := n1.table.Lookup(fdb.MAC{2, 0, 0, 0, 0, 7}); len(d) != 1 {
			return fmt.Errorf("member 7 not installed: %v", d)
		}
		return nil
	})
	// A second agent of node 1's VNI state, resuming from the revision
	// member 7 was written at, after the gap: 7 deleted, 8 added,
	// compacted.
	from := w.put("/vxland/other", "x")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := w.cli.Delete(ctx, "/vxland/v1/vni/40/member/192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	w.put("/vxland/v1/vni/40/member/192.0.2.8", `{"v":1,"addr":"192.0.2.8","port":4789,"mac":"02:00:00:00:00:08"}`)
	if _, err := w.cli.Compact(ctx, w.put("/vxland/other", "y")); err != nil {
		t.Fatal(err)
	}
	tb := fdb.New(fdb.Options{})
	if err := tb.Sync(Owner, fdb.MAC{2, 0, 0, 0, 0, 7}, []fdb.Dest{{IP: netip.MustParseAddr("192.0.2.7"), Port: 4789, VNI: testVNI}}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	a := New(n1.cli, Config{Logf: t.Logf})
	v := &vniState{vni: testVNI, members: map[netip.Addr]overlay.Peer{}, relist: make(chan struct{}, 1),
		local:     n1.local,
		installer: overlay.NewInstaller(overlay.InstallerConfig{Owner: Owner, VNI: testVNI, Table: tb, Self: n1.mac, SelfAddr: n1.addr})}
	wctx, wcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.watchFrom(wctx, v, from) }()
	defer func() { wcancel(); <-done }()
	testnet.Eventually(t, 15*time.Second, func() error {
		if tb.Lookup(fdb.MAC{2, 0, 0, 0, 0, 7}) != nil || len(tb.Lookup(fdb.MAC{2, 0, 0, 0, 0, 8})) != 1 {
			return fmt.Errorf("after the compaction: %+v", tb.Entries())
		}
		return nil
	})
	if value(a.Stats(), "cluster_compactions") != 1 || value(a.Stats(), "cluster_relists") != 1 {
		t.Errorf("compactions %d, relists %d", value(a.Stats(), "cluster_compactions"), value(a.Stats(), "cluster_relists"))
	}
}
