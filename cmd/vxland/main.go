// Command vxland is a userspace VXLAN endpoint: it creates TAP devices and
// forwards their frames over UDP in the VXLAN encapsulation, interoperating
// with the Linux kernel's vxlan driver. Run `vxland --help` for usage.
package main

import (
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/vxland/vxland/config"
	"github.com/vxland/vxland/control"
	"github.com/vxland/vxland/dataplane"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/link"
	"github.com/vxland/vxland/neigh"
	"github.com/vxland/vxland/overlay"
	"github.com/vxland/vxland/stats"
)

// tapTxQueueLen replaces the TAP's default transmit queue of 500 frames,
// which bursts from a fast local sender overflow.
const tapTxQueueLen = 4096

func main() {
	log.SetFlags(0)
	log.SetPrefix("vxland: ")
	cfg, err := parseFlags(os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vxland: %v\nRun 'vxland --help' for usage.\n", err)
		os.Exit(2)
	}
	if cfg == nil { // --help
		return
	}
	os.Exit(run(cfg)) // run returns only after its deferred cleanup
}

// run starts the daemon and serves until a signal. It returns the exit
// status.
func run(cfg *config.Config) int {
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			log.Print(err)
			return 2
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Print(err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ms, err := listenMetrics(cfg.Daemon.Metrics) // before start: a taken address creates no TAP
	if err != nil {
		log.Print(err)
		return 2
	}
	defer ms.close()
	var fl *flannelNode
	if cfg.Flannel.Enable { // the VNI comes from the flannel network in etcd
		if fl, err = joinFlannel(cfg); err != nil {
			log.Print(err)
			return 2
		}
		defer fl.close() // after a failed start; otherwise already closed
	}
	d, err := start(cfg, fl)
	if err != nil {
		log.Print(err)
		return 2
	}
	if fl != nil {
		if err := fl.run(d.done); err != nil {
			log.Print(err)
			d.close()
			return 2
		}
	}
	ms.serve(d)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	d.mu.Lock()
	for _, ep := range d.eps {
		d.runEndpoint(ep)
	}
	d.mu.Unlock()
	for {
		select {
		case <-hup:
			if sum, err := d.reload(); err != nil {
				log.Printf("SIGHUP: reload of %s refused or incomplete:\n%v", d.file, err)
			} else {
				log.Printf("SIGHUP: reloaded %s: %s", d.file, sum)
			}
		case s := <-sigs:
			log.Printf("%v: shutting down", s)
			fl.close() // its routes and neighbours go while the TAP still exists
			d.close()
			return 0
		case err := <-d.done:
			fl.close()
			d.close()
			if err != nil {
				log.Print(err)
				return 1
			}
			return 0
		}
	}
}

// daemon is a running vxland: its endpoints (one per shared socket), the
// control servers (one per VNI) and the netlink handles it holds. mu
// guards every field that a reload changes; the metrics collector and
// reloads take it.
type daemon struct {
	mu      sync.Mutex
	eps     []*dataplane.Endpoint
	ctls    []*control.Server
	handles []*link.Handle
	own     *link.Handle // the daemon's own namespace

	file    string                             // the --config file, "" when started with flags
	running *config.Config                     // the configuration being served
	vnis    map[vniIdentity]*vniRun            // what serves each VNI
	epKeys  map[*dataplane.Endpoint]epIdentity // how each endpoint was opened
	retired map[*dataplane.Endpoint]bool       // closed by a reload, not failed
	done    chan error                         // the first endpoint that stopped by itself
	closed  bool

	clusterVNIs []clusterVNI // the VNIs that join the cluster
	// vniStats are the counters of the segments with more than their own
	// (a cluster VNI's installer and local view), for the metrics.
	vniStats map[*dataplane.Segment]func() []stats.Value
	flannel  *flannelNode               // flannel mode's membership, or nil
	cluster  atomic.Pointer[clusterRun] // the etcd agent, nil without a cluster
	evpnVNIs []evpnVNI                  // the VNIs served by EVPN
	evpn     atomic.Pointer[evpnRun]    // the BGP speaker, nil without BGP
	queues   int                        // workers each way per endpoint (read at start)
	tapUL    bool                       // --underlay tap (read at start)
}

// close stops everything; the kernel removes the TAPs as their descriptors
// close, and each control server removes its socket file. A reload in
// progress finishes first; none starts after.
func (d *daemon) close() {
	d.mu.Lock()
	d.closed = true
	ctls, eps, handles := d.ctls, d.eps, d.handles
	for _, r := range d.vnis {
		close(r.stop)
	}
	clear(d.vnis)
	d.mu.Unlock()
	d.cluster.Load().close() // first: the others drop this node while it still forwards
	d.evpn.Load().close()    // likewise: the peers withdraw this node's routes
	for _, c := range ctls {
		c.Close()
	}
	for _, ep := range eps {
		ep.Close()
	}
	for _, h := range handles {
		h.Close()
	}
}

// vniSetup is what start prepares for one VNI before its endpoint opens.
type vniSetup struct {
	v     *config.VNI
	table *fdb.Table
	h     *link.Handle // the TAP's namespace
	netns *link.Handle // h when opened for this VNI (--netns), else nil
	mtu   int
	mac   net.HardwareAddr
	local *overlay.Local // what the VNI announces, when it joins the cluster
}

// start opens every endpoint and TAP, configures the TAPs and opens the
// control sockets; fl, when not nil, is the flannel membership that takes
// the VNI. On error everything opened so far is closed again.
func start(cfg *config.Config, fl *flannelNode) (_ *daemon, err error) {
	d := &daemon{
		file: cfg.Source, running: cfg,
		vnis:     map[vniIdentity]*vniRun{},
		epKeys:   map[*dataplane.Endpoint]epIdentity{},
		retired:  map[*dataplane.Endpoint]bool{},
		vniStats: map[*dataplane.Segment]func() []stats.Value{},
		done:     make(chan error, 1),
		flannel:  fl,
		queues:   cfg.Daemon.Queues,
		tapUL:    cfg.Daemon.Underlay == config.UnderlayTAP,
	}
	defer func() {
		if err != nil {
			d.close() // d, not the nil the failed return carries
		}
	}()
	own, err := link.Open("")
	if err != nil {
		return nil, err
	}
	d.handles = append(d.handles, own)
	d.own = own
	for _, key := range cfg.Endpoints() {
		if err := checkDev(own, key); err != nil {
			return nil, err
		}
		dc := d.endpointConfig(key)
		var setups []*vniSetup
		for _, i := range key.VNIs {
			v := &cfg.VNIs[i]
			s, err := d.prepare(v, own, key.V6)
			if err != nil {
				return nil, err
			}
			setups = append(setups, s)
			dc.Segments = append(dc.Segments, s.segmentConfig())
		}
		ep, err := dataplane.New(dc)
		if err != nil {
			return nil, err
		}
		d.eps = append(d.eps, ep)
		d.epKeys[ep] = endpointIdentity(key)
		for i, seg := range ep.Segments() {
			if err := d.finish(setups[i], ep, seg); err != nil {
				return nil, err
			}
		}
	}
	if err := d.startCluster(cfg); err != nil {
		return nil, err
	}
	if err := d.startEVPN(cfg); err != nil {
		return nil, err
	}
	return d, nil
}

// endpointConfig is the dataplane configuration of the endpoint key
// describes, without segments.
func (d *daemon) endpointConfig(key config.EndpointKey) dataplane.Config {
	return dataplane.Config{
		Local: key.Local, V6: key.V6, Port: key.Port, Dev: key.Dev,
		SrcPortMin: key.SrcPortMin, SrcPortMax: key.SrcPortMax, Queues: d.queues, TAPUnderlay: d.tapUL,
		Offload: key.Offload, AllowRemote: key.AllowRemote, Logf: log.Printf,
	}
}

// checkDev reports an underlay device the endpoint names that does not
// exist in the daemon's namespace.
func checkDev(own *link.Handle, key config.EndpointKey) error {
	if key.Dev != "" && !own.Exists(key.Dev) {
		return fmt.Errorf("--dev %s: no such device", key.Dev)
	}
	return nil
}

// segmentConfig is the dataplane configuration of the prepared VNI.
func (s *vniSetup) segmentConfig() dataplane.SegmentConfig {
	v := s.v
	sc := dataplane.SegmentConfig{
		VNI: v.ID, TAP: v.TAP, MAC: [6]byte(s.mac), Table: s.table,
		Learning: v.Learning, LearnRate: v.LearnRate, TTL: v.TTL, TTLInherit: v.TTLInherit, TOS: v.TOS, TOSInherit: v.TOSInherit,
		Offload: v.Offload, MTU: s.mtu, Group: v.Group, InNetns: s.h.Do,
		Proxy: v.Proxy, L2Miss: v.L2Miss, L3Miss: v.L3Miss, RSC: v.RSC,
	}
	if s.local != nil {
		sc.Frames = s.local // the endpoints behind the TAP
	}
	return sc
}

// prepare builds a VNI's forwarding table and works out its namespace,
// MTU and MAC address.
func (d *daemon) prepare(v *config.VNI, own *link.Handle, v6 bool) (*vniSetup, error) {
	s := &vniSetup{v: v, table: fdb.New(fdb.Options{Ageing: v.Ageing, MaxAddress: v.MaxAddress})}
	flood := v.Remotes
	if v.Group.IsValid() {
		flood = []netip.Addr{v.Group}
	}
	for _, r := range flood {
		if err := s.table.Append(fdb.Zero, fdb.Dest{IP: r, Port: v.Port, VNI: v.ID}, fdb.Permanent); err != nil {
			return nil, fmt.Errorf("vni %d: remote %s: %w", v.ID, r, err)
		}
	}
	s.h = own
	if v.Netns != "" {
		h, err := link.Open(v.Netns)
		if err != nil {
			return nil, fmt.Errorf("vni %d: %w", v.ID, err)
		}
		d.handles = append(d.handles, h)
		s.h, s.netns = h, h
	}
	if v.Master != "" && !s.h.Exists(v.Master) {
		return nil, fmt.Errorf("vni %d: --master %s: no such bridge", v.ID, v.Master)
	}
	s.mtu = v.MTU
	if s.mtu == 0 {
		s.mtu = defaultMTU(v, own, v6)
	}
	s.mac = v.MAC
	if s.mac == nil {
		s.mac = stableMAC(hostMACIdentity(v))
	}
	if d.running.InCluster(v) || d.running.InEVPN(v) {
		s.local = newLocal(v, fdb.MAC(s.mac))
	}
	return s, nil
}

// finish configures a VNI's TAP where it lives and opens its control socket.
func (d *daemon) finish(s *vniSetup, ep *dataplane.Endpoint, seg *dataplane.Segment) error {
	v := s.v
	err := s.h.Configure(seg.TAPName(), link.Settings{
		MTU: s.mtu, MAC: s.mac, TxQueueLen: tapTxQueueLen, Master: v.Master, Addrs: v.Addrs, Up: v.Up,
	})
	if err != nil {
		return err
	}
	path := v.Control
	if path == "" {
		path = control.SocketPath(seg.TAPName())
	}
	idx, err := s.h.Index(seg.TAPName())
	if err != nil {
		return err
	}
	counters := seg.Stats
	switch {
	case s.local != nil && d.running.InEVPN(v):
		counters = d.joinEVPN(s, seg)
	case s.local != nil:
		counters = d.joinCluster(s, seg)
	case d.flannel != nil:
		counters = d.flannel.attach(d, s, seg)
	}
	ctl, err := control.Listen(path, &control.Device{
		Name: seg.TAPName(), VNI: v.ID, Port: v.Port, FDB: s.table, Stats: counters,
		Neigh: seg.Neigh(), Events: seg.Events(),
	})
	if err != nil {
		return err // already says "control: ..."
	}
	// The proxy reads the host's neighbour entries on the TAP, as the
	// kernel's reads those of the vxlan device.
	stop := make(chan struct{})
	go neigh.Follow(seg.Neigh(), s.h.SubscribeNeigh, idx, stop, log.Printf)
	d.ctls = append(d.ctls, ctl)
	ctl.Reload = d.reload
	if d.running.ClusterMode() {
		ctl.ClusterShow = d.clusterShow // the daemon's status, on every socket
	}
	if d.running.BGP.Enabled() {
		ctl.BGPShow = d.bgpShow // likewise
	}
	d.vnis[identityOf(v)] = &vniRun{v: *v, ep: ep, seg: seg, ctl: ctl, table: s.table, netns: s.netns, stop: stop}
	go func() {
		if err := ctl.Serve(); err != nil {
			log.Printf("control socket %s: %v", path, err)
		}
	}()
	where := ""
	if v.Netns != "" {
		where = " in netns " + v.Netns
	}
	flood := "none (FDB entries only)"
	switch {
	case s.local != nil && d.running.InEVPN(v):
		flood = "the EVPN peers (BGP)"
	case s.local != nil:
		flood = "the cluster's members (etcd)"
	case v.Group.IsValid():
		flood = "group " + v.Group.String()
	case len(v.Remotes) > 0:
		var rs []string
		for _, r := range v.Remotes {
			rs = append(rs, r.String())
		}
		flood = strings.Join(rs, ", ")
	}
	log.Printf("vni %d on %s%s (mtu %d, mac %s), udp port %d, remotes %s, control %s",
		v.ID, seg.TAPName(), where, s.mtu, s.mac, v.Port, flood, path)
	return nil
}

// defaultMTU is the underlay MTU less the VXLAN overhead (50 bytes over
// IPv4, 70 over IPv6), as the kernel sizes a vxlan device; a 1500-byte
// underlay is assumed when it cannot be found.
func defaultMTU(v *config.VNI, own *link.Handle, v6 bool) int {
	overhead := 50
	if v6 {
		overhead = 70
	}
	under := 0
	switch {
	case v.Dev != "":
		under, _ = own.MTU(v.Dev)
	case len(v.Remotes) > 0:
		under, _ = own.RouteMTU(v.Remotes[0])
	}
	if under <= overhead+68 {
		under = 1500
	}
	return under - overhead
}
