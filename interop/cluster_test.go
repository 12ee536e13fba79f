package interop

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxland/vxland/internal/testnet"
)

// clusterWorld is an underlay switch (a bridge in a hub namespace) with
// etcd on it at 192.0.2.254, and the hosts plugged into it.
type clusterWorld struct {
	t    *testing.T
	sw   *testnet.Switch
	etcd *testnet.Etcd
	cli  *clientv3.Client
}

const clusterTTL = 3 // seconds: the lease of the daemons in these tests

func newClusterWorld(t *testing.T) *clusterWorld { return newClusterWorldTLS(t, nil) }

// newClusterWorldTLS is newClusterWorld with etcd serving TLS and
// requiring client certificates when tls is set.
func newClusterWorldTLS(t *testing.T, tls *testnet.EtcdTLS) *clusterWorld {
	testnet.RequireRoot(t)
	sw := testnet.NewSwitch(t)
	hub := sw.NS
	hub.Addr(t, "br0", "192.0.2.254/24")
	var e *testnet.Etcd
	if tls != nil {
		e = testnet.StartEtcdTLS(t, hub, "192.0.2.254", tls)
	} else {
		e = testnet.StartEtcd(t, hub, "192.0.2.254")
	}
	return &clusterWorld{t: t, sw: sw, etcd: e, cli: e.Client(t)}
}

// host plugs a new namespace into the switch as 192.0.2.i (device ul0).
func (w *clusterWorld) host(i int) *testnet.NS {
	return w.sw.PlugN(w.t, i)
}

// member runs vxland on host i in the cluster: VNI 40, TAP vx0, no remote.
func (w *clusterWorld) member(ns *testnet.NS, i int, extra ...string) *daemon {
	args := append([]string{"--vni", "40", "--local", fmt.Sprintf("192.0.2.%d", i), "--up",
		"--etcd-endpoints", w.etcd.Endpoint, "--etcd-lease-ttl", fmt.Sprint(clusterTTL)}, extra...)
	return startShared(w.t, ns, w.t.TempDir(), args...)
}

// value returns what etcd holds at key ("" when absent).
func (w *clusterWorld) value(key string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := w.cli.Get(ctx, key)
	if err != nil {
		w.t.Fatal(err)
	}
	if len(r.Kvs) == 0 {
		return ""
	}
	return string(r.Kvs[0].Value)
}

// fdbHas polls until d's `fdb show` contains every line of want and none
// of gone.
func fdbHas(t *testing.T, d *daemon, timeout time.Duration, want, gone []string) {
	t.Helper()
	testnet.Eventually(t, timeout, func() error {
		out, err := d.ctlTry("fdb", "show", "dev", "vx0")
		if err != nil {
			return err
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				return fmt.Errorf("fdb of %s lacks %q:\n%s", d.ns, w, out)
			}
		}
		for _, g := range gone {
			if strings.Contains(out, g) {
				return fmt.Errorf("fdb of %s still has %q:\n%s", d.ns, g, out)
			}
		}
		return nil
	})
}

func owned(mac, dst string) string {
	return mac + " dst " + dst + " self extern_learn static owner cluster"
}

// TestClusterThreeNodes: three daemons with no --remote find each other
// through a real etcd and carry ping and TCP; a container behind a bridge
// on one host is announced (with the address its ARP revealed) and
// installed on the others; the TAP addresses
// are announced as they change; cluster entries are owned; a stranger on
// the underlay is dropped until it is a member; a kernel vxlan peer whose
// membership is written by hand interoperates; a graceful stop and a
// kill -9 remove a node from the others, and a restart with another MAC
// brings it back with the old MAC's entries gone.
func TestClusterThreeNodes(t *testing.T) {
	w := newClusterWorld(t)
	h1, h2, h3 := w.host(1), w.host(2), w.host(3)
	// Host 1 bridges a container: its TAP is a bridge port.
	h1.Exec(t, "ip", "link", "add", "br1", "type", "bridge")
	h1.Addr(t, "br1", "203.0.113.1/24")
	c1 := testnet.NewNS(t)
	testnet.Link(t, h1, "c1", c1, "eth0")
	h1.Exec(t, "ip", "link", "set", "c1", "master", "br1")
	c1.Addr(t, "eth0", "203.0.113.11/24")
	d1 := w.member(h1, 1, "--master", "br1")
	d2 := w.member(h2, 2, "--addr", "203.0.113.2/24")
	d3 := w.member(h3, 3, "--addr", "203.0.113.3/24")
	m1, m2, m3 := macOf(t, h1, "vx0"), macOf(t, h2, "vx0"), macOf(t, h3, "vx0")
	mc1 := macOf(t, c1, "eth0")

	const converge = 20 * time.Second
	fdbHas(t, d1, converge, []string{owned(m2, "192.0.2.2"), owned(m3, "192.0.2.3"),
		owned("00:00:00:00:00:00", "192.0.2.2"), owned("00:00:00:00:00:00", "192.0.2.3")}, nil)
	for _, p := range []struct {
		from *testnet.NS
		to   string
	}{{h1, "203.0.113.2"}, {h1, "203.0.113.3"}, {h2, "203.0.113.3"}, {c1, "203.0.113.2"}, {h3, "203.0.113.11"}} {
		testnet.Eventually(t, converge, func() error { _, err := p.from.TryPing(p.to, 1); return err })
		p.from.Ping(t, p.to, 3)
	}
	transfer(t, h2, h3, "203.0.113.3", 4<<20, d2, d3)
	transfer(t, c1, h2, "203.0.113.2", 4<<20, d1, d2)

	// The container's MAC, seen on host 1's TAP, is announced with the
	// address its ARP revealed, and installed on the others; nobody
	// learned anything. (rx_not_member
	// may count datagrams of a member sent before the receiver heard of
	// it, while the cluster converges.)
	fdbHas(t, d2, converge, []string{owned(mc1, "192.0.2.1"), owned(m1, "192.0.2.1")}, nil)
	fdbHas(t, d3, converge, []string{owned(mc1, "192.0.2.1")}, nil)
	for _, d := range []*daemon{d1, d2, d3} {
		if st := d.stats(t); st["fdb_learned"] != 0 || st["install_applies"] == 0 || st["install_conflicts"] != 0 {
			t.Errorf("%s: fdb_learned %d, install_applies %d, install_conflicts %d", d.ns, st["fdb_learned"], st["install_applies"], st["install_conflicts"])
		}
	}
	// The endpoints behind host 1's TAP: the container, and the bridge
	// unless it took the TAP's MAC (a bridge takes its smallest port's).
	want := uint64(2)
	if macOf(t, h1, "br1") == m1 {
		want = 1
	}
	if n := d1.stats(t)["local_endpoints_learned"]; n != want {
		t.Errorf("host 1: local_endpoints_learned %d, want %d (the container and the bridge)", n, want)
	}
	// vxlanctl cluster show: connected, with the members and their endpoints.
	testnet.Eventually(t, converge, func() error {
		out, err := d2.ctlTry("cluster", "show")
		if err != nil {
			return err
		}
		for _, want := range []string{"state connected lease ", "vni 40 dev vx0 revision ", " published\n",
			"local  192.0.2.2 port 4789 mac " + m2 + " addrs 203.0.113.2\n",
			"member 192.0.2.1 port 4789 mac " + m1 + "\n", "endpoint " + mc1 + " 203.0.113.11\n", "member 192.0.2.3 port 4789 mac " + m3,
			"cluster_watch_events"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("cluster show lacks %q:\n%s", want, out)
			}
		}
		return nil
	})
	// TAP addresses follow netlink: added at run time, announced.
	key3 := "/vxland/v1/vni/40/member/192.0.2.3"
	h3.Exec(t, "ip", "addr", "add", "203.0.113.33/24", "dev", "vx0")
	testnet.Eventually(t, converge, func() error {
		if v := w.value(key3); !strings.Contains(v, `"addrs":["203.0.113.3","203.0.113.33"]`) || !strings.Contains(v, `"mac":"`+m3+`"`) {
			return fmt.Errorf("etcd %s = %s", key3, v)
		}
		return nil
	})
	// Owned entries are not removed by hand.
	if out, err := d1.ctlTry("fdb", "del", m2, "dev", "vx0"); err == nil || !strings.Contains(out, "owned") {
		t.Errorf("fdb del of a cluster entry: %v\n%s", err, out)
	}

	// A stranger on the underlay: a kernel vxlan device at 192.0.2.9 that
	// sends to host 2. Dropped and counted before anything else.
	notMember := d2.stats(t)["rx_not_member"]
	h9 := w.host(9)
	testnet.KernelVXLAN(t, h9, testnet.VXLANOpts{VNI: 40, Remote: "192.0.2.2", Local: "192.0.2.9", Dev: "ul0",
		Addr: "203.0.113.9/24", Defaults: []string{"192.0.2.1", "192.0.2.3"}, NoLearning: true})
	if _, err := h9.TryPing("203.0.113.2", 2); err == nil {
		t.Error("a non-member reached a cluster node")
	}
	testnet.Eventually(t, converge, func() error {
		if n := d2.stats(t)["rx_not_member"]; n <= notMember {
			return fmt.Errorf("rx_not_member %d, was %d", n, notMember)
		}
		return nil
	})
	// Written into etcd as a member (as a static host would be), the
	// kernel peer is installed everywhere and interoperates.
	m9 := macOf(t, h9, "vxlan40")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := w.cli.Put(ctx, "/vxland/v1/vni/40/member/192.0.2.9",
		`{"v":1,"addr":"192.0.2.9","port":4789,"mac":"`+m9+`","addrs":["203.0.113.9"]}`)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	fdbHas(t, d1, converge, []string{owned(m9, "192.0.2.9")}, nil)
	testnet.Eventually(t, converge, func() error { _, err := h9.TryPing("203.0.113.2", 1); return err })
	h1.Ping(t, "203.0.113.9", 3)
	c1.Ping(t, "203.0.113.9", 3)

	// Graceful stop: the lease is revoked, the others drop host 3 at once.
	stopped := time.Now()
	d3.stop(t)
	fdbHas(t, d1, time.Duration(clusterTTL)*time.Second, nil, []string{"192.0.2.3"})
	fdbHas(t, d2, time.Duration(clusterTTL)*time.Second, nil, []string{"192.0.2.3", mc1 + " dst 192.0.2.3"})
	t.Logf("graceful leave seen after %v", time.Since(stopped).Round(time.Millisecond))

	// kill -9: the lease expires; host 2 goes from host 1 within the TTL
	// (and the keepalive period before it).
	if err := d2.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	fdbHas(t, d1, time.Duration(clusterTTL+3)*time.Second, nil, []string{"192.0.2.2"})
	t.Logf("kill -9 seen after %v (lease ttl %ds)", time.Since(killed).Round(time.Millisecond), clusterTTL)
	if _, err := h1.TryPing("203.0.113.9", 1); err != nil {
		t.Errorf("remaining members lost each other: %v", err)
	}
	// Restarted, host 2 is back, with a new MAC: its old entry goes
	// everywhere, the new one comes, traffic follows.
	const newMAC = "02:00:5e:10:00:22"
	d2 = w.member(h2, 2, "--addr", "203.0.113.2/24", "--mac", newMAC)
	fdbHas(t, d1, converge, []string{owned(newMAC, "192.0.2.2"), owned("00:00:00:00:00:00", "192.0.2.2")}, []string{m2})
	// The container's ARP cache still holds the old MAC, which nobody
	// answers to any more; Linux would take up to a minute to find out.
	c1.Exec(t, "ip", "neigh", "flush", "dev", "eth0")
	testnet.Eventually(t, converge, func() error { _, err := c1.TryPing("203.0.113.2", 1); return err })
	h2.Ping(t, "203.0.113.9", 3)
}

// TestClusterEtcdOutage stops etcd while two members exchange traffic:
// forwarding goes on with the last state, every echo answered, through
// the loss of the members' leases; once etcd is back they re-register and
// a third node that joins reaches both.
func TestClusterEtcdOutage(t *testing.T) {
	w := newClusterWorld(t)
	h1, h2, h3 := w.host(1), w.host(2), w.host(3)
	d1 := w.member(h1, 1, "--addr", "203.0.113.1/24")
	d2 := w.member(h2, 2, "--addr", "203.0.113.2/24")
	const converge = 20 * time.Second
	testnet.Eventually(t, converge, func() error { _, err := h1.TryPing("203.0.113.2", 1); return err })

	w.etcd.Stop()
	// Traffic flows until both daemons have lost their lease (etcd gone
	// past the TTL), and on.
	lost := func(d *daemon) bool { return strings.Contains(d.proc.Output(), "lost; granting a new one") }
	pings := 0
	for deadline := time.Now().Add(30 * time.Second); !(lost(d1) && lost(d2)); pings++ {
		if time.Now().After(deadline) {
			t.Fatalf("leases not lost 30 s into the outage:\n%s\n%s", d1.proc.Output(), d2.proc.Output())
		}
		h1.Ping(t, "203.0.113.2", 5)
		h2.Ping(t, "203.0.113.1", 5)
	}
	h1.Ping(t, "203.0.113.2", 10)
	fdbHas(t, d1, time.Second, []string{owned(macOf(t, h2, "vx0"), "192.0.2.2")}, nil)
	t.Logf("%d rounds of 10 echoes during the outage, none lost", pings)

	w.etcd.Start()
	d3 := w.member(h3, 3, "--addr", "203.0.113.3/24")
	for _, p := range []struct {
		from *testnet.NS
		to   string
	}{{h3, "203.0.113.1"}, {h1, "203.0.113.3"}, {h2, "203.0.113.3"}} {
		testnet.Eventually(t, converge, func() error { _, err := p.from.TryPing(p.to, 1); return err })
	}
	for _, d := range []*daemon{d1, d2} {
		if !strings.Contains(d.proc.Output(), "re-registered with lease") {
			t.Errorf("%s did not re-register:\n%s", d.ns, d.proc.Output())
		}
	}
	fdbHas(t, d3, converge, []string{owned(macOf(t, h1, "vx0"), "192.0.2.1"), owned(macOf(t, h2, "vx0"), "192.0.2.2")}, nil)
}

// TestClusterTLS: etcd serves TLS and requires client certificates. Two
// members with certificates of its CA find each other and carry traffic;
// a node whose certificate another CA signed is refused by etcd: it never
// becomes a member, and says why in cluster show.
func TestClusterTLS(t *testing.T) {
	certs := testnet.NewEtcdTLS(t, "192.0.2.254")
	w := newClusterWorldTLS(t, certs)
	h1, h2, h3 := w.host(1), w.host(2), w.host(3)
	good := []string{"--etcd-cafile", certs.CAFile, "--etcd-certfile", certs.ClientCert, "--etcd-keyfile", certs.ClientKey}
	d1 := w.member(h1, 1, append([]string{"--addr", "203.0.113.1/24"}, good...)...)
	w.member(h2, 2, append([]string{"--addr", "203.0.113.2/24"}, good...)...)
	d3 := w.member(h3, 3, "--addr", "203.0.113.3/24",
		"--etcd-cafile", certs.CAFile, "--etcd-certfile", certs.OtherCert, "--etcd-keyfile", certs.OtherKey)
	const converge = 20 * time.Second
	testnet.Eventually(t, converge, func() error { _, err := h1.TryPing("203.0.113.2", 1); return err })
	h2.Ping(t, "203.0.113.1", 3)
	testnet.Eventually(t, converge, func() error {
		out, err := d3.ctlTry("cluster", "show")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "state disconnected") || !strings.Contains(out, "last error:") {
			return fmt.Errorf("refused node's cluster show:\n%s", out)
		}
		t.Logf("refused node: %s", strings.SplitN(out, "\n", 3)[1])
		return nil
	})
	if v := w.value("/vxland/v1/vni/40/member/192.0.2.3"); v != "" {
		t.Errorf("a node with a foreign certificate got in: %s", v)
	}
	fdbHas(t, d1, time.Second, []string{owned("00:00:00:00:00:00", "192.0.2.2")}, []string{"192.0.2.3"})
}

// TestClusterScale starts N members (VXLAND_CLUSTER_NODES, default 5) on
// one etcd and records what the README's table shows: time to a full mesh,
// time for a leave and a join to be seen by every member, etcd writes at
// steady state, and the daemons' resident memory. Every member must hold
// every other, and a ring of pings must pass.
func TestClusterScale(t *testing.T) {
	n := 5
	if s := os.Getenv("VXLAND_CLUSTER_NODES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 3 || v > 200 {
			t.Fatalf("VXLAND_CLUSTER_NODES=%q: want 3-200", s)
		}
		n = v
	}
	w := newClusterWorld(t)
	hosts := make([]*testnet.NS, n+1)
	ds := make([]*daemon, n+1)
	for i := 1; i <= n; i++ {
		hosts[i] = w.host(i)
	}
	// floods counts the cluster's flood destinations in d's table.
	floods := func(d *daemon) (int, error) {
		out, err := d.ctlTry("fdb", "show", "dev", "vx0")
		return strings.Count(out, "00:00:00:00:00:00 dst "), err
	}
	// allSee waits until every running member floods to want others.
	allSee := func(want int, skip int) time.Duration {
		start := time.Now()
		testnet.Eventually(t, 60*time.Second, func() error {
			for i := 1; i <= n; i++ {
				if i == skip {
					continue
				}
				if got, err := floods(ds[i]); err != nil || got != want {
					return fmt.Errorf("member %d floods to %d of %d (%v)", i, got, want, err)
				}
			}
			return nil
		})
		return time.Since(start)
	}
	member := func(i int) *daemon {
		return w.member(hosts[i], i, "--addr", fmt.Sprintf("203.0.113.%d/24", i))
	}
	start := time.Now()
	for i := 1; i <= n; i++ {
		ds[i] = member(i)
	}
	started := time.Since(start)
	mesh := allSee(n-1, 0) + started
	for i := 1; i <= n; i++ {
		next := i%n + 1
		hosts[i].Ping(t, fmt.Sprintf("203.0.113.%d", next), 1)
	}

	// Steady state: no member writes while nothing changes (keepalives
	// are not writes).
	rev := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := w.cli.Get(ctx, "/vxland/steady-probe")
		if err != nil {
			t.Fatal(err)
		}
		return r.Header.Revision
	}
	const window = 10 * time.Second
	r0 := rev()
	quiet := time.NewTimer(window) // a measurement window, not a barrier
	<-quiet.C
	writes := float64(rev()-r0) / float64(n) / window.Minutes()

	leaving := time.Now()
	ds[n].stop(t)
	allSee(n-2, n)
	leave := time.Since(leaving)
	joining := time.Now()
	ds[n] = member(n)
	allSee(n-1, 0)
	join := time.Since(joining)

	var rss []int
	for i := 1; i <= n; i++ {
		rss = append(rss, rssKiB(t, ds[i].proc.Pid()))
	}
	slices.Sort(rss)
	t.Logf("| %d | %v | %v | %v | %.1f | %d / %d MiB |", n, mesh.Round(10*time.Millisecond),
		leave.Round(10*time.Millisecond), join.Round(10*time.Millisecond), writes, rss[len(rss)/2]>>10, rss[len(rss)-1]>>10)
}

// rssKiB returns a process's resident set size in KiB.
func rssKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// TestClusterIPv6Underlay: two members whose underlay is IPv6 (etcd
// reached over IPv4) find each other; keys and member lists carry IPv6
// addresses.
func TestClusterIPv6Underlay(t *testing.T) {
	w := newClusterWorld(t)
	var ds []*daemon
	for i := 1; i <= 2; i++ {
		h := w.host(i)
		h.Addr(t, "ul0", fmt.Sprintf("2001:db8::%d/64", i))
		ds = append(ds, startShared(t, h, t.TempDir(), "--vni", "40", "--local", fmt.Sprintf("2001:db8::%d", i), "--up",
			"--addr", fmt.Sprintf("203.0.113.%d/24", i), "--etcd-endpoints", w.etcd.Endpoint))
	}
	fdbHas(t, ds[0], 20*time.Second, []string{owned("00:00:00:00:00:00", "2001:db8::2")}, nil)
	testnet.Eventually(t, 20*time.Second, func() error { _, err := ds[0].ns.TryPing("203.0.113.2", 1); return err })
	ds[1].ns.Ping(t, "203.0.113.1", 3)
	if v := w.value("/vxland/v1/vni/40/member/2001:db8::1"); !strings.Contains(v, `"addr":"2001:db8::1"`) {
		t.Errorf("etcd holds %q for the IPv6 member", v)
	}
}

// TestClusterMembersOnlyOff: with --cluster-members-only=false and
// learning turned back on, a kernel vxlan host that is not a member
// reaches a member, which learns it; nothing counts as rx_not_member.
func TestClusterMembersOnlyOff(t *testing.T) {
	w := newClusterWorld(t)
	h1, h9 := w.host(1), w.host(9)
	d1 := w.member(h1, 1, "--addr", "203.0.113.1/24", "--cluster-members-only=false", "--learning")
	testnet.KernelVXLAN(t, h9, testnet.VXLANOpts{VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.9", Dev: "ul0", Addr: "203.0.113.9/24"})
	testnet.Eventually(t, 20*time.Second, func() error { _, err := h9.TryPing("203.0.113.1", 1); return err })
	h1.Ping(t, "203.0.113.9", 3)
	if st := d1.stats(t); st["rx_not_member"] != 0 || st["fdb_learned"] == 0 {
		t.Errorf("rx_not_member %d, fdb_learned %d", st["rx_not_member"], st["fdb_learned"])
	}
	fdbHas(t, d1, time.Second, []string{macOf(t, h9, "vxlan40") + " dst 192.0.2.9 self\n"}, nil)
}

// TestClusterProxy: with --proxy, a member answers ARP for the other
// members' TAP addresses itself, from the neighbour entries the cluster
// installed: no ARP request crosses the underlay, and vxlanctl neigh show
// names the cluster as their source.
func TestClusterProxy(t *testing.T) {
	w := newClusterWorld(t)
	h1, h2 := w.host(1), w.host(2)
	d1 := w.member(h1, 1, "--addr", "203.0.113.1/24", "--proxy")
	w.member(h2, 2, "--addr", "203.0.113.2/24", "--proxy")
	m2 := macOf(t, h2, "vx0")
	testnet.Eventually(t, 20*time.Second, func() error {
		out, err := d1.ctlTry("neigh", "show", "dev", "vx0")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "203.0.113.2 lladdr "+m2+" PERMANENT proto cluster") {
			return fmt.Errorf("neigh show:\n%s", out)
		}
		return nil
	})
	capture := h2.Capture(t, "ul0", "udp port 4789")
	h1.Exec(t, "ip", "neigh", "flush", "dev", "vx0")
	h1.Ping(t, "203.0.113.2", 3)
	if n := d1.stats(t)["proxy_answered"]; n == 0 {
		t.Errorf("proxy_answered 0: the ARP request was not answered locally")
	}
	for _, p := range capture.Stop() {
		if l := p.Layer(layers.LayerTypeARP); l != nil {
			t.Errorf("an ARP packet crossed the underlay: %v", p)
		}
	}
}
