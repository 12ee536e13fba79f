package overlay

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/stats"
)

// DefaultMaxEndpoints bounds the local endpoints of one VNI, so that a
// guest sending from ever new source MACs cannot grow what this node
// announces without limit.
const DefaultMaxEndpoints = 4096

// LocalConfig describes one VNI's local view.
type LocalConfig struct {
	// VNI is the segment.
	VNI uint32
	// VTEP is this node's tunnel endpoint (Addrs may be updated later).
	VTEP VTEP
	// Ageing is how long a local endpoint lives after its last frame; 0
	// means never (as fdb.Options.Ageing).
	Ageing time.Duration
	// MaxEndpoints bounds the endpoints; 0 means DefaultMaxEndpoints.
	MaxEndpoints int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Local is what this node announces for one VNI: its VTEP, whose TAP
// addresses follow the TAP (SetAddrs), and the endpoints behind the TAP,
// the source MACs of frames read from it (ObserveFrame, ObserveSource),
// aged like learned forwarding entries, with the addresses their ARP and
// neighbour discovery announce. A control plane waits on Changed and
// publishes Snapshot.
type Local struct {
	cfg LocalConfig
	// macs holds the endpoints: an fdb.Table gives lock-free,
	// allocation-free refreshes on the packet path, ageing and a size
	// bound.
	macs *fdb.Table

	mu    sync.Mutex
	addrs []netip.Addr
	ips   map[fdb.MAC][]netip.Addr

	changed chan struct{}

	counters                  stats.Set
	learned, dropped, ipsFull *stats.Counter
}

// NewLocal returns the local view of one VNI.
func NewLocal(cfg LocalConfig) *Local {
	if cfg.MaxEndpoints <= 0 {
		cfg.MaxEndpoints = DefaultMaxEndpoints
	}
	l := &Local{
		cfg:     cfg,
		macs:    fdb.New(fdb.Options{Ageing: cfg.Ageing, MaxAddress: cfg.MaxEndpoints, Now: cfg.Now}),
		addrs:   SortAddrs(slices.Clone(cfg.VTEP.Addrs)),
		ips:     map[fdb.MAC][]netip.Addr{},
		changed: make(chan struct{}, 1),
	}
	l.learned = l.counters.New("local_endpoints_learned")
	l.dropped = l.counters.New("local_endpoints_full")
	l.ipsFull = l.counters.New("local_endpoint_ips_full")
	return l
}

// VNI returns the segment's VNI.
func (l *Local) VNI() uint32 { return l.cfg.VNI }

// Stats returns the local view's counters: local_endpoints_learned (new
// source MACs seen on the TAP), local_endpoints_full (not recorded: the
// bound was reached) and local_endpoint_ips_full (an address not recorded:
// the endpoint has MaxEndpointIPs).
func (l *Local) Stats() []stats.Value { return l.counters.Snapshot() }

// Changed is signalled (coalesced: one pending signal at most) each time
// what Snapshot returns may have changed.
func (l *Local) Changed() <-chan struct{} { return l.changed }

func (l *Local) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// ObserveSource records src, the source address of a frame read from the
// TAP. It is called on the packet path: for a known address it takes no
// lock and allocates nothing. The TAP's own address and group or all-zeros
// addresses are not endpoints.
func (l *Local) ObserveSource(src [6]byte) {
	mac := fdb.MAC(src)
	if mac == l.cfg.VTEP.MAC {
		return
	}
	switch l.macs.Learn(mac, fdb.Dest{}) {
	case fdb.Learned, fdb.Migrated:
		l.learned.Inc()
		l.signal()
	case fdb.Full:
		l.dropped.Inc()
	}
}

// SetEndpointIPs records the IP addresses an endpoint was seen to use (from
// its ARP, neighbour discovery or gratuitous announcements). Only endpoints
// already observed keep them.
func (l *Local) SetEndpointIPs(mac fdb.MAC, ips []netip.Addr) {
	ips = SortAddrs(slices.Clone(ips))
	l.mu.Lock()
	same := slices.Equal(l.ips[mac], ips)
	if !same {
		l.ips[mac] = ips
	}
	l.mu.Unlock()
	if !same {
		l.signal()
	}
}

// SetAddrs replaces the TAP's addresses (from netlink address events).
func (l *Local) SetAddrs(addrs []netip.Addr) {
	addrs = SortAddrs(slices.Clone(addrs))
	l.mu.Lock()
	same := slices.Equal(l.addrs, addrs)
	l.addrs = addrs
	l.mu.Unlock()
	if !same {
		l.signal()
	}
}

// Tick ages the endpoints (call it about once a second); an expiry
// signals Changed.
func (l *Local) Tick() {
	before := l.macs.Len()
	l.macs.Tick()
	if l.macs.Len() != before {
		l.signal()
	}
}

// Snapshot returns the VTEP and the endpoints as they are now, endpoints
// sorted by MAC.
func (l *Local) Snapshot() (VTEP, []Endpoint) {
	entries := l.macs.Entries()
	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.cfg.VTEP
	v.Addrs = slices.Clone(l.addrs)
	eps := make([]Endpoint, 0, len(entries))
	live := make(map[fdb.MAC]bool, len(entries))
	for _, e := range entries {
		live[e.MAC] = true
		eps = append(eps, Endpoint{MAC: e.MAC, IPs: slices.Clone(l.ips[e.MAC])})
	}
	for mac := range l.ips {
		if !live[mac] {
			delete(l.ips, mac) // aged out with its endpoint
		}
	}
	return v, eps
}
