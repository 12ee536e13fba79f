package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxland/vxland/internal/testnet"
)

// The flannel network of these tests, written as an operator would with
// etcdctl: /27 subnets of 198.51.100.0/24, vxlan backend with flannel's
// defaults (VNI 1, port 8472).
const (
	flannelPrefix  = "/coreos.com/network"
	flannelNetwork = `{"Network":"198.51.100.0/24","SubnetLen":27,"Backend":{"Type":"vxlan"}}`
	flannelEtcdIP  = "192.0.2.254"
)

// flannelLAN is an underlay switch with etcd on it and node namespaces
// plugged in.
type flannelLAN struct {
	sw   *testnet.Switch
	etcd *testnet.Etcd
	cli  *clientv3.Client
}

func newFlannelLAN(t *testing.T) *flannelLAN {
	t.Helper()
	sw := testnet.NewSwitch(t)
	sw.NS.Addr(t, "br0", flannelEtcdIP+"/24")
	e := testnet.StartEtcd(t, sw.NS, flannelEtcdIP)
	cli := e.Client(t)
	if _, err := cli.Put(context.Background(), flannelPrefix+"/config", flannelNetwork); err != nil {
		t.Fatal(err)
	}
	return &flannelLAN{sw: sw, etcd: e, cli: cli}
}

// node plugs a new namespace into the switch as 192.0.2.<i> on eth0, with
// forwarding on (it routes for its containers).
func (l *flannelLAN) node(t *testing.T, i int) *testnet.NS {
	t.Helper()
	n := l.sw.Plug(t, fmt.Sprintf("p%d", i), "eth0", fmt.Sprintf("192.0.2.%d/24", i))
	n.SetSysctl(t, "net.ipv4.ip_forward", "1")
	return n
}

// podOn gives a node the flannel CNI plugin's layout: bridge cni0 with the
// subnet's first address, and a container on it with the second, routed
// through cni0. It returns the container and its address.
func podOn(t *testing.T, node *testnet.NS, subnet netip.Prefix, mtu int) (*testnet.NS, string) {
	t.Helper()
	gw := subnet.Addr().Next()
	ip := gw.Next()
	newBridge(t, node, "cni0")
	node.Addr(t, "cni0", netip.PrefixFrom(gw, subnet.Bits()).String())
	c := container(t, node, "cni0", "veth0", mtu, netip.PrefixFrom(ip, subnet.Bits()).String())
	c.Exec(t, "ip", "route", "add", "default", "via", gw.String())
	return c, ip.String()
}

// flannelDouble is a flannel node written from flanneld's vxlan backend
// (pkg/backend/vxlan, pkg/subnet/etcd): it leases its subnet with
// flanneld's key and JSON, serves it on a kernel vxlan flannel.1 created
// as flanneld creates it, and installs the other nodes' neighbour, FDB and
// route entries as flanneld does, following etcd with a watch.
type flannelDouble struct {
	ns     *testnet.NS
	ip     string
	subnet netip.Prefix
	mac    string

	mu     sync.Mutex
	errs   []string
	cancel context.CancelFunc
	done   chan struct{}
}

// flannelLeaseJSON is a lease value as flanneld's encoding/json writes it.
type flannelLeaseJSON struct {
	PublicIP    string
	BackendType string
	BackendData struct {
		VNI     int
		VtepMAC string
	}
}

func startFlannelDouble(t *testing.T, l *flannelLAN, ns *testnet.NS, i int, subnet string) *flannelDouble {
	t.Helper()
	d := &flannelDouble{ns: ns, ip: fmt.Sprintf("192.0.2.%d", i), subnet: netip.MustParsePrefix(subnet)}
	ns.Exec(t, "ip", "link", "add", "flannel.1", "type", "vxlan", "id", "1", "local", d.ip,
		"dev", "eth0", "dstport", "8472", "nolearning")
	ns.Exec(t, "ip", "link", "set", "flannel.1", "mtu", "1450", "up")
	ns.Addr(t, "flannel.1", d.subnet.Addr().String()+"/32")
	d.mac = macOf(t, ns, "flannel.1")

	ctx := context.Background()
	grant, err := l.cli.Grant(ctx, 24*3600)
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("%s/subnets/%s-%d", flannelPrefix, d.subnet.Addr(), d.subnet.Bits())
	value := fmt.Sprintf(`{"PublicIP":%q,"PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":%q}}`, d.ip, d.mac)
	resp, err := l.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(key), "=", 0)).
		Then(clientv3.OpPut(key, value, clientv3.WithLease(grant.ID))).Commit()
	if err != nil || !resp.Succeeded {
		t.Fatalf("flannel double: lease %s: %v (taken: %v)", key, err, resp != nil && !resp.Succeeded)
	}

	wctx, cancel := context.WithCancel(ctx)
	d.cancel, d.done = cancel, make(chan struct{})
	go d.follow(wctx, l.cli)
	t.Cleanup(func() {
		d.stop()
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, e := range d.errs {
			t.Errorf("flannel double %s: %s", d.ip, e)
		}
	})
	return d
}

func (d *flannelDouble) stop() {
	if d.cancel != nil {
		d.cancel()
		<-d.done
		d.cancel = nil
	}
}

// follow re-reads the leases on every change and reconciles flannel.1's
// entries, as flanneld's handleSubnetEvents does for each event.
func (d *flannelDouble) follow(ctx context.Context, cli *clientv3.Client) {
	defer close(d.done)
	applied := map[string]flannelLeaseJSON{} // subnet -> lease
	watch := cli.Watch(ctx, flannelPrefix+"/subnets/", clientv3.WithPrefix())
	for {
		resp, err := cli.Get(ctx, flannelPrefix+"/subnets/", clientv3.WithPrefix())
		if err == nil {
			want := map[string]flannelLeaseJSON{}
			for _, kv := range resp.Kvs {
				var lj flannelLeaseJSON
				name := strings.Replace(path.Base(string(kv.Key)), "-", "/", 1)
				if json.Unmarshal(kv.Value, &lj) != nil || lj.BackendType != "vxlan" || lj.PublicIP == d.ip {
					continue
				}
				want[name] = lj
			}
			for sn, old := range applied {
				if now, ok := want[sn]; !ok || now != old {
					d.remove(sn, old)
					delete(applied, sn)
				}
			}
			for sn, lj := range want {
				if _, ok := applied[sn]; !ok {
					d.add(sn, lj)
					applied[sn] = lj
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-watch:
			if !ok {
				return
			}
		}
	}
}

func (d *flannelDouble) run(args ...string) {
	if out, err := d.ns.Try(args...); err != nil {
		d.mu.Lock()
		d.errs = append(d.errs, fmt.Sprintf("%s: %v: %s", strings.Join(args, " "), err, out))
		d.mu.Unlock()
	}
}

// add installs a lease in flanneld's order: neighbour, FDB, then route.
func (d *flannelDouble) add(subnet string, l flannelLeaseJSON) {
	gw := strings.Split(subnet, "/")[0]
	d.run("ip", "neigh", "replace", gw, "lladdr", l.BackendData.VtepMAC, "dev", "flannel.1", "nud", "permanent")
	d.run("bridge", "fdb", "replace", l.BackendData.VtepMAC, "dev", "flannel.1", "dst", l.PublicIP, "self", "permanent")
	d.run("ip", "route", "replace", subnet, "via", gw, "dev", "flannel.1", "onlink")
}

func (d *flannelDouble) remove(subnet string, l flannelLeaseJSON) {
	gw := strings.Split(subnet, "/")[0]
	d.run("ip", "route", "del", subnet, "via", gw, "dev", "flannel.1", "onlink")
	d.run("ip", "neigh", "del", gw, "dev", "flannel.1")
	d.run("bridge", "fdb", "del", l.BackendData.VtepMAC, "dev", "flannel.1", "dst", l.PublicIP, "self")
}

// startFlannelVxland runs vxland in flannel mode on node i and returns it
// with the subnet it leased (from its subnet.env).
func startFlannelVxland(t *testing.T, node *testnet.NS, envDir string) (*daemon, netip.Prefix) {
	t.Helper()
	env := filepath.Join(envDir, "subnet.env")
	d := startTopo(t, node, map[string]*testnet.NS{"flannel.1": node}, "--flannel",
		"--etcd-endpoints", "http://"+flannelEtcdIP+":2379", "--iface", "eth0", "--subnet-file", env)
	data, err := os.ReadFile(env)
	if err != nil {
		t.Fatal(err)
	}
	var subnet netip.Prefix
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "FLANNEL_SUBNET="); ok {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				t.Fatalf("subnet.env: %q: %v", line, err)
			}
			subnet = p.Masked()
		}
	}
	want := fmt.Sprintf("FLANNEL_NETWORK=198.51.100.0/24\nFLANNEL_SUBNET=%s/27\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n", subnet.Addr().Next())
	if string(data) != want {
		t.Errorf("subnet.env:\n%s\nwant:\n%s", data, want)
	}
	return d, subnet
}

// Two flannel nodes (kernel vxlan, flanneld's entries) and two vxland
// nodes on one etcd: every container reaches every other; a vxland node
// restarts with its subnet and VtepMAC; a flannel node leaving takes its
// entries with it; forwarding survives an etcd outage.
func TestFlannelCluster(t *testing.T) {
	requireBridge(t, testnet.NewNS(t))
	lan := newFlannelLAN(t)
	n1, n2, n3, n4 := lan.node(t, 1), lan.node(t, 2), lan.node(t, 3), lan.node(t, 4)
	f1 := startFlannelDouble(t, lan, n1, 1, "198.51.100.32/27")
	f2 := startFlannelDouble(t, lan, n2, 2, "198.51.100.64/27")
	v3, s3 := startFlannelVxland(t, n3, t.TempDir())
	env4 := t.TempDir()
	v4, s4 := startFlannelVxland(t, n4, env4)
	if s3 == s4 || s3 == f1.subnet || s3 == f2.subnet || s4 == f1.subnet || s4 == f2.subnet {
		t.Fatalf("subnets collide: %s %s %s %s", f1.subnet, f2.subnet, s3, s4)
	}

	// The vxland nodes look like flanneld's: flannel.1 with the subnet's
	// address as /32, MTU 1450, and flanneld's entries for every other node.
	for _, n := range []struct {
		ns     *testnet.NS
		subnet netip.Prefix
	}{{n3, s3}, {n4, s4}} {
		out := n.ns.Exec(t, "ip", "-4", "addr", "show", "dev", "flannel.1")
		if !strings.Contains(out, n.subnet.Addr().String()+"/32") || !strings.Contains(out, "mtu 1450") {
			t.Errorf("flannel.1 on %s:\n%s", n.ns, out)
		}
	}
	routeOK := func(ns *testnet.NS, subnet netip.Prefix, mac string) error {
		out, _ := ns.Try("ip", "route", "show", subnet.String())
		if !strings.Contains(out, "via "+subnet.Addr().String()+" dev flannel.1 onlink") {
			return fmt.Errorf("%s: route to %s: %q", ns, subnet, out)
		}
		out, _ = ns.Try("ip", "neigh", "show", subnet.Addr().String(), "dev", "flannel.1")
		if !strings.Contains(out, "lladdr "+mac) || !strings.Contains(out, "PERMANENT") {
			return fmt.Errorf("%s: neighbour %s: %q", ns, subnet.Addr(), out)
		}
		return nil
	}
	testnet.Eventually(t, 10*time.Second, func() error {
		for _, f := range []*flannelDouble{f1, f2} {
			if err := routeOK(n3, f.subnet, f.mac); err != nil {
				return err
			}
		}
		return nil
	})
	// flanneld's FDB entries, owned by flannel, and no flood list: the
	// kernel's flannel.1 has none either.
	out := v3.ctl(t, "fdb", "show", "dev", "flannel.1")
	for _, f := range []*flannelDouble{f1, f2} {
		if !hasLine(out, f.mac, "dst "+f.ip, "owner flannel") {
			t.Errorf("vxland fdb on node 3 has no flannel-owned entry %s dst %s:\n%s", f.mac, f.ip, out)
		}
	}
	if strings.Contains(out, "00:00:00:00:00:00") {
		t.Errorf("vxland floods in flannel mode:\n%s", out)
	}
	if st := v3.stats(t); st["install_applies"] == 0 {
		t.Errorf("no flannel install counted: %v", st)
	} else if _, ok := st["flannel_leases_refused"]; !ok {
		t.Errorf("flannel counters missing from vxlanctl stats: %v", st)
	}

	// Containers everywhere; each pings each.
	c1, ip1 := podOn(t, n1, f1.subnet, 1450)
	c2, ip2 := podOn(t, n2, f2.subnet, 1450)
	c3, ip3 := podOn(t, n3, s3, 1450)
	c4, ip4 := podOn(t, n4, s4, 1450)
	pods := []struct {
		ns *testnet.NS
		ip string
	}{{c1, ip1}, {c2, ip2}, {c3, ip3}, {c4, ip4}}
	testnet.Eventually(t, 15*time.Second, func() error {
		for _, a := range pods {
			for _, b := range pods {
				if a.ns == b.ns {
					continue
				}
				if out, err := a.ns.TryPing(b.ip, 1); err != nil {
					return fmt.Errorf("%s -> %s: %v %s", a.ip, b.ip, err, out)
				}
			}
		}
		return nil
	})
	testnet.TCPTransfer(t, c3, c1, ip1, 4<<20) // vxland -> flannel
	testnet.TCPTransfer(t, c2, c4, ip4, 4<<20) // flannel -> vxland
	testnet.TCPTransfer(t, c3, c4, ip4, 4<<20) // vxland -> vxland

	// A vxland node restarts: same subnet, same VtepMAC, so the flannel
	// nodes' entries stay right with nothing reprogrammed.
	mac4 := macOf(t, n4, "flannel.1")
	v4.stop(t)
	v4, again := startFlannelVxland(t, n4, env4)
	if again != s4 || macOf(t, n4, "flannel.1") != mac4 {
		t.Fatalf("restart: subnet %s mac %s, want %s %s", again, macOf(t, n4, "flannel.1"), s4, mac4)
	}
	if err := routeOK(n1, s4, mac4); err != nil {
		t.Error(err)
	}
	testnet.Eventually(t, 10*time.Second, func() error {
		_, err := c1.TryPing(ip4, 1)
		return err
	})
	testnet.TCPTransfer(t, c1, c4, ip4, 4<<20)

	// A flannel node leaves: its lease goes, and so do its entries on the
	// vxland nodes.
	f2.stop()
	if _, err := lan.cli.Delete(context.Background(), fmt.Sprintf("%s/subnets/%s-27", flannelPrefix, f2.subnet.Addr())); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*testnet.NS{n3, n4} {
		testnet.Eventually(t, 10*time.Second, func() error {
			if out, _ := n.Try("ip", "route", "show", f2.subnet.String()); strings.TrimSpace(out) != "" {
				return fmt.Errorf("%s: route to %s still there: %s", n, f2.subnet, out)
			}
			if out, _ := n.Try("ip", "neigh", "show", f2.subnet.Addr().String(), "dev", "flannel.1"); strings.TrimSpace(out) != "" {
				return fmt.Errorf("%s: neighbour %s still there: %s", n, f2.subnet.Addr(), out)
			}
			return nil
		})
	}
	if out := v3.ctl(t, "fdb", "show", "dev", "flannel.1"); strings.Contains(out, f2.mac) {
		t.Errorf("fdb entry of the departed node left on node 3:\n%s", out)
	}

	// etcd down: the nodes keep forwarding with what they have.
	lan.etcd.Stop()
	testnet.TCPTransfer(t, c3, c1, ip1, 4<<20)
	testnet.TCPTransfer(t, c4, c3, ip3, 4<<20)
	lan.etcd.Start()
	c1.Ping(t, ip4, 2)
	for _, d := range []*daemon{v3, v4} {
		if d.proc.Exited() {
			t.Fatalf("vxland exited: %s", d.proc.Output())
		}
	}
}
