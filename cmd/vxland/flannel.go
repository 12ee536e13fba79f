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
	"github.com/vxland/vxland/dataplane"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/flannel"
	"github.com/vxland/vxland/internal/etcdconn"
	"github.com/vxland/vxland/link"
	"github.com/vxland/vxland/overlay"
	"github.com/vxland/vxland/stats"
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

	vni       *config.VNI        // the VNI served, once attached
	installer *overlay.Installer // its forwarding entries, once attached
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

// attach takes the flannel VNI once its TAP exists: an installer owns the
// forwarding entries of the other nodes in its table (no flood list, as
// flanneld's device has none). It returns the VNI's counters: the
// segment's, the installer's and the agent's.
func (f *flannelNode) attach(d *daemon, s *vniSetup, seg *dataplane.Segment) func() []stats.Value {
	f.vni, f.installer = s.v, overlay.NewInstaller(overlay.InstallerConfig{
		Owner: flannel.Owner, VNI: s.v.ID, Table: s.table,
		Self: fdb.MAC(s.mac), SelfAddr: s.v.Local.Unmap(), NoFlood: true,
	})
	in, agent := f.installer, f.agent
	d.vniStats[seg] = func() []stats.Value {
		return append(append(seg.Counters(), in.Stats()...), agent.Stats()...)
	}
	return func() []stats.Value {
		return append(append(seg.Stats(), in.Stats()...), agent.Stats()...)
	}
}

// run follows the other nodes once the VNI is attached: their forwarding
// entries through the installer, their neighbour entries and routes in
// the host. A lease lost for good ends the daemon through stop.
func (f *flannelNode) run(stop chan<- error) error {
	v := f.vni
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
	sink := &flannelSink{host: f.host, installer: f.installer, port: v.Port}
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

// flannelSink installs the other nodes' leases: through the installer, a
// forwarding entry VtepMAC -> PublicIP owned by flannel for each node
// reached through the tunnel (when a VtepMAC changes the old entry goes,
// which flanneld forgets), then the host's neighbour entries and routes.
type flannelSink struct {
	host      *flannel.Host
	installer *overlay.Installer
	port      uint16
}

func (s *flannelSink) SetLeases(leases []flannel.Lease) error {
	plan := s.host.Plan(leases)
	peers := make([]overlay.Peer, 0, len(plan))
	for _, r := range plan {
		if r.Direct {
			continue
		}
		l := r.Lease
		peers = append(peers, overlay.Peer{
			ID:   l.Subnet.String(),
			VTEP: overlay.VTEP{Addr: l.PublicIP, Port: s.port, MAC: fdb.MAC(l.VtepMAC)},
		})
	}
	return errors.Join(s.installer.Apply(peers), s.host.Apply(plan))
}
