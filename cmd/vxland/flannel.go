package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxland/vxland/config"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/flannel"
	"github.com/vxland/vxland/internal/etcdconn"
	"github.com/vxland/vxland/link"
)

// flannelJoinTimeout bounds reading the network and leasing a subnet at
// start.
const flannelJoinTimeout = 30 * time.Second

// flannelNode is the daemon's membership of a flannel network: the etcd
// client, the lease, and what follows the other nodes.
type flannelNode struct {
	cli    *clientv3.Client
	agent  *flannel.Agent
	nl     *netlink.Handle
	host   *flannel.Host
	cancel context.CancelFunc
	done   chan struct{}
	closed bool
}

// joinFlannel reads the flannel network configuration from etcd, leases a
// subnet, and fills cfg with the one VNI flanneld's device would be:
// TAP flannel.<VNI>, the subnet's network address as /32, learning off,
// VtepMAC the stable MAC of that TAP.
func joinFlannel(cfg *config.Config) (_ *flannelNode, err error) {
	cli, err := etcdconn.New(cfg.Etcd)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cli.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), flannelJoinTimeout)
	defer cancel()
	n, err := flannel.ReadNetwork(ctx, cli, cfg.Etcd.Prefix)
	if err != nil {
		return nil, fmt.Errorf("%w (etcd %v)", err, cfg.Etcd.Endpoints)
	}
	own, err := link.Open("")
	if err != nil {
		return nil, err
	}
	defer own.Close()
	iface, public := cfg.Flannel.Iface, cfg.Flannel.PublicIP
	if iface == "" && !public.IsValid() {
		if iface, err = own.DefaultRouteDev(); err != nil {
			return nil, fmt.Errorf("flannel: %w; give --iface or --public-ip", err)
		}
	}
	if !public.IsValid() {
		if public, err = own.FirstIPv4(iface); err != nil {
			return nil, fmt.Errorf("flannel: public IP: %w; give --public-ip", err)
		}
	}
	if iface != "" && !own.Exists(iface) {
		return nil, fmt.Errorf("--iface %s: no such device", iface)
	}

	v := config.NewVNI(n.VNI)
	v.TAP = fmt.Sprintf("flannel.%d", n.VNI)
	v.Local, v.Dev, v.Port = public, iface, n.Port
	v.Learning, v.Up = false, true
	if n.MTU > 0 {
		v.MTU = n.MTU - 50
	}
	v.MAC = stableMAC(hostMACIdentity(&v))
	agent, err := flannel.Join(ctx, flannel.Config{
		Client: cli, Prefix: cfg.Etcd.Prefix, PublicIP: public, VtepMAC: v.MAC, Network: n, Logf: log.Printf,
	})
	if err != nil {
		return nil, err
	}
	subnet := agent.Lease().Subnet
	v.Addrs = []netip.Prefix{netip.PrefixFrom(subnet.Addr(), 32)}
	if v.MTU == 0 {
		v.MTU = defaultMTU(&v, own, false)
	}
	cfg.VNIs = []config.VNI{v}
	cfg.FillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("flannel: the network's VNI: %w", err)
	}
	if err := flannel.WriteSubnetEnv(cfg.Flannel.SubnetFile, n, subnet, v.MTU); err != nil {
		return nil, err
	}
	log.Printf("flannel: node %s of network %s: subnet %s, vni %d, port %d, vtep mac %s, %s written",
		public, n.Network, subnet, n.VNI, n.Port, v.MAC, cfg.Flannel.SubnetFile)
	return &flannelNode{cli: cli, agent: agent}, nil
}

// run follows the other nodes once the TAP exists: their forwarding
// entries in table, their neighbour entries and routes in the host. A
// lease lost for good ends the daemon through stop.
func (f *flannelNode) run(v *config.VNI, table *fdb.Table, stop chan<- error) error {
	nl, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("flannel: netlink: %w", err)
	}
	tap, err := nl.LinkByName(v.TAP)
	if err != nil {
		nl.Close()
		return fmt.Errorf("flannel: %s: %w", v.TAP, err)
	}
	f.nl = nl
	f.host = flannel.NewHost(nl, tap.Attrs().Index, f.agent.Network().DirectRouting)
	sink := &flannelSink{host: f.host, table: table, vni: v.ID, port: v.Port, applied: map[fdb.MAC]netip.Addr{}}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.done = cancel, make(chan struct{})
	go func() {
		defer close(f.done)
		if err := f.agent.Run(ctx, sink); err != nil {
			select {
			case stop <- err:
			default:
			}
		}
	}()
	return nil
}

// close stops following and removes the routes and neighbour entries
// installed in the host; a nil or closed node is left alone. The lease stays in etcd until it expires, so a
// restarted node gets its subnet back, as with flanneld.
func (f *flannelNode) close() {
	if f == nil || f.closed {
		return
	}
	f.closed = true
	if f.cancel != nil {
		f.cancel()
		<-f.done
	}
	if f.host != nil {
		if err := f.host.Close(); err != nil {
			log.Printf("flannel: cleanup: %v", err)
		}
		f.nl.Close()
	}
	f.cli.Close()
}

// flannelSink installs the other nodes' leases: a static forwarding entry
// VtepMAC -> PublicIP for each one reached through the tunnel (the old
// entry goes when a VtepMAC changes, which flanneld forgets), then the
// host's neighbour entries and routes.
type flannelSink struct {
	host    *flannel.Host
	table   *fdb.Table
	vni     uint32
	port    uint16
	applied map[fdb.MAC]netip.Addr
}

func (s *flannelSink) SetLeases(leases []flannel.Lease) error {
	want := map[fdb.MAC]netip.Addr{}
	for _, l := range leases {
		if !s.host.Direct(l) {
			want[fdb.MAC(l.VtepMAC)] = l.PublicIP
		}
	}
	var errs []error
	for mac, ip := range s.applied {
		if want[mac] != ip {
			if err := s.table.Del(mac, nil); err != nil && !errors.Is(err, fdb.ErrNotFound) {
				errs = append(errs, fmt.Errorf("fdb del %s: %w", mac, err))
			}
			delete(s.applied, mac)
		}
	}
	for mac, ip := range want {
		if _, ok := s.applied[mac]; ok {
			continue
		}
		if err := s.table.Replace(mac, fdb.Dest{IP: ip, Port: s.port, VNI: s.vni}, fdb.Static); err != nil {
			errs = append(errs, fmt.Errorf("fdb %s dst %s: %w", mac, ip, err))
			continue
		}
		s.applied[mac] = ip
	}
	if err := s.host.Apply(leases); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
