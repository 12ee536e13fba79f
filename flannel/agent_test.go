package flannel

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxland/vxland/internal/testnet"
	"github.com/vxland/vxland/stats"
)

func TestMain(m *testing.M) { testnet.Main(m) }

const testNetwork = `{"Network":"198.51.100.0/24","SubnetLen":27,"Backend":{"Type":"vxlan"}}`

// startEtcd runs etcd in a namespace of its own with the network
// configuration written.
func startEtcd(t *testing.T) (*testnet.Etcd, *clientv3.Client) {
	ns := testnet.NewNS(t)
	ns.Addr(t, "lo", "192.0.2.254/32")
	e := testnet.StartEtcd(t, ns, "192.0.2.254")
	cli := e.Client(t)
	if _, err := cli.Put(context.Background(), DefaultPrefix+"/config", testNetwork); err != nil {
		t.Fatal(err)
	}
	return e, cli
}

func mac(i int) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, 0, byte(i)} }

func join(t *testing.T, cli *clientv3.Client, i int) *Agent {
	t.Helper()
	a, err := Join(context.Background(), Config{Client: cli, PublicIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}),
		VtepMAC: mac(i), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// recorder is a Sink that keeps the last set.
type recorder struct {
	mu   sync.Mutex
	last []Lease
}

func (r *recorder) SetLeases(ls []Lease) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = ls
	return nil
}

// holds waits until the sink holds exactly the leases of the given
// public IPs' last octets (in subnet order is not required).
func (r *recorder) holds(t *testing.T, octets ...int) []Lease {
	t.Helper()
	var got []Lease
	testnet.Eventually(t, 10*time.Second, func() error {
		r.mu.Lock()
		got = r.last
		r.mu.Unlock()
		want := map[netip.Addr]bool{}
		for _, o := range octets {
			want[netip.AddrFrom4([4]byte{192, 0, 2, byte(o)})] = true
		}
		if len(got) != len(want) {
			return fmt.Errorf("sink holds %v, want the leases of %v", got, octets)
		}
		for _, l := range got {
			if !want[l.PublicIP] {
				return fmt.Errorf("sink holds %v, want the leases of %v", got, octets)
			}
		}
		return nil
	})
	return got
}

func run(t *testing.T, a *Agent, sink Sink) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, sink) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return stop
}

func counter(vals []stats.Value, name string) uint64 {
	for _, v := range vals {
		if v.Name == name {
			return v.Value
		}
	}
	return 0
}

// A node's lease is flanneld's: key, value, a 24-hour etcd lease; a
// restart with the same public IP gets the same subnet back.
func TestJoinWritesFlannelsLease(t *testing.T) {
	_, cli := startEtcd(t)
	a := join(t, cli, 1)
	l := a.Lease()
	if !a.Network().Contains(l.Subnet) {
		t.Fatalf("leased %s, outside the network", l.Subnet)
	}
	resp, err := cli.Get(context.Background(), SubnetKey(DefaultPrefix, l.Subnet))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("lease key: %v %v", resp, err)
	}
	want := `{"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:01"}}`
	if got := string(resp.Kvs[0].Value); got != want {
		t.Errorf("lease value\n got %s\nwant %s", got, want)
	}
	ttl, err := cli.TimeToLive(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease))
	if err != nil || ttl.TTL < int64((DefaultLeaseTTL-time.Minute)/time.Second) {
		t.Errorf("lease TTL %v %v, want about 24 h", ttl, err)
	}

	again := join(t, cli, 1)
	if again.Lease().Subnet != l.Subnet {
		t.Errorf("restart leased %s, want the same %s", again.Lease().Subnet, l.Subnet)
	}
	other := join(t, cli, 2)
	if other.Lease().Subnet == l.Subnet {
		t.Errorf("two nodes share %s", l.Subnet)
	}

	path := filepath.Join(t.TempDir(), "run", "flannel", "subnet.env")
	if err := WriteSubnetEnv(path, a.Network(), l.Subnet, 1450); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	wantEnv := fmt.Sprintf("FLANNEL_NETWORK=198.51.100.0/24\nFLANNEL_SUBNET=%s/27\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n", l.Subnet.Addr().Next())
	if err != nil || string(data) != wantEnv {
		t.Errorf("subnet.env %q %v, want %q", data, err, wantEnv)
	}
}

// Run follows the others' leases: added, changed, removed; hostile values
// are counted and ignored; a node's own lease deleted by hand is taken
// back.
func TestRunFollowsLeases(t *testing.T) {
	_, cli := startEtcd(t)
	ctx := context.Background()
	a, b := join(t, cli, 1), join(t, cli, 2)
	var sink recorder
	run(t, a, &sink)
	got := sink.holds(t, 2)
	if got[0].Subnet != b.Lease().Subnet || got[0].VtepMAC.String() != mac(2).String() {
		t.Errorf("lease of b: %+v, want %+v", got[0], b.Lease())
	}

	// A third node, written as flanneld would (no vxland involved).
	var free []netip.Prefix // subnets neither a nor b holds
	for s := range a.Network().subnets {
		if s != a.Lease().Subnet && s != b.Lease().Subnet {
			free = append(free, s)
		}
	}
	c := Lease{Subnet: free[0], PublicIP: netip.MustParseAddr("192.0.2.3"), VNI: 1, VtepMAC: mac(3)}
	v, _ := c.Value()
	if _, err := cli.Put(ctx, SubnetKey(DefaultPrefix, c.Subnet), string(v)); err != nil {
		t.Fatal(err)
	}
	sink.holds(t, 2, 3)

	// Hostile and foreign values change nothing.
	refused := counter(a.Stats(), "flannel_leases_refused")
	key := func(s netip.Prefix) string { return fmt.Sprintf("%s-%d", s.Addr(), s.Bits()) }
	for k, v := range map[string]string{
		key(free[1]):     `{"PublicIP":"192.0.2.9","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"ff:ff:ff:ff:ff:ff"}}`,
		"203.0.113.0-27": string(v),
		"garbage":        "{",
		key(free[2]):     `{"PublicIP":"192.0.2.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:09"}}`,
	} {
		if _, err := cli.Put(ctx, DefaultPrefix+"/subnets/"+k, v); err != nil {
			t.Fatal(err)
		}
	}
	testnet.Eventually(t, 10*time.Second, func() error {
		if n := counter(a.Stats(), "flannel_leases_refused"); n < refused+4 {
			return fmt.Errorf("flannel_leases_refused %d, want %d", n, refused+4)
		}
		return nil
	})
	sink.holds(t, 2, 3)

	// A VtepMAC change reaches the sink.
	c.VtepMAC = mac(33)
	v, _ = c.Value()
	cli.Put(ctx, SubnetKey(DefaultPrefix, c.Subnet), string(v))
	testnet.Eventually(t, 10*time.Second, func() error {
		for _, l := range sink.holds(t, 2, 3) {
			if l.PublicIP == c.PublicIP && l.VtepMAC.String() != mac(33).String() {
				return fmt.Errorf("still %s", l.VtepMAC)
			}
		}
		return nil
	})

	// A node leaving removes its lease.
	if _, err := cli.Delete(ctx, SubnetKey(DefaultPrefix, c.Subnet)); err != nil {
		t.Fatal(err)
	}
	sink.holds(t, 2)

	// Our own lease deleted by hand: taken back, same subnet.
	own := SubnetKey(DefaultPrefix, a.Lease().Subnet)
	if _, err := cli.Delete(ctx, own); err != nil {
		t.Fatal(err)
	}
	testnet.Eventually(t, 10*time.Second, func() error {
		resp, err := cli.Get(ctx, own)
		if err != nil || len(resp.Kvs) != 1 {
			return fmt.Errorf("own lease %s not back: %v", own, err)
		}
		return nil
	})
}

// While etcd is down the sink keeps what it has; when it is back, changes
// made meanwhile arrive.
func TestRunSurvivesEtcdRestart(t *testing.T) {
	e, cli := startEtcd(t)
	a, _ := join(t, cli, 1), join(t, cli, 2)
	var sink recorder
	run(t, a, &sink)
	sink.holds(t, 2)
	e.Stop()
	if got := sink.holds(t, 2); len(got) != 1 {
		t.Fatalf("lost state during the outage: %v", got)
	}
	e.Start()
	join(t, e.Client(t), 3)
	sink.holds(t, 2, 3)
}
