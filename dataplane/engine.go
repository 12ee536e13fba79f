// Package dataplane moves Ethernet frames between frame devices (TAP
// queues) and VXLAN over an underlay (UDP sockets), through the batch
// interfaces of package netio. Each segment (one VNI) has a device and a
// forwarding table; an endpoint owns the underlay that segments sharing a
// local address and port use. Work is spread over workers: one transmit
// worker per device queue, one receive worker per underlay receive queue,
// each with its own buffers (allocated once) and its own counts, added to
// the shared counters once per batch.
package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/events"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/learning"
	"github.com/vxland/vxland/neigh"
	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/stats"
)

const (
	// DefaultPort is the IANA VXLAN port.
	DefaultPort = 4789
	// defaultBatch is how many frames or datagrams one system call moves.
	defaultBatch = 64
	// bufSize holds the largest frame or datagram: 64 KiB plus headroom.
	bufSize = 65536 + 64
)

// Config describes an endpoint and the segments it serves.
type Config struct {
	// Local is the underlay address to bind and send from; the zero Addr
	// binds to any address and lets routing pick the source.
	Local netip.Addr
	// Dev, when set, binds every socket to this underlay device.
	Dev string
	// V6 selects an IPv6 underlay.
	V6 bool
	// Port is the UDP destination port (and receive port); 0 means 4789.
	Port uint16
	// SrcPortMin and SrcPortMax bound the outer UDP source ports,
	// [min, max). Both zero means the kernel's local port range.
	SrcPortMin, SrcPortMax uint16
	// TxSockets is the transmit socket pool size, the number of distinct
	// outer source ports flows spread over; 0 means DefaultTxSockets.
	TxSockets int
	// Queues is how many workers move frames each way: the TAPs get as
	// many queues (IFF_MULTI_QUEUE) and the receive port as many sockets
	// (SO_REUSEPORT), one worker each; a flow stays on one. 0 means one
	// per CPU.
	Queues int
	// Underlay, when set, is used instead of the UDP sockets the fields
	// above describe (tests use netio/memio); the endpoint closes it.
	Underlay netio.Underlay
	// TAPUnderlay sends unicast IPv4 through an underlay TAP that the
	// host forwards from, TCP super-frames whole (UDP tunnel GSO, Linux
	// 6.17); receiving and multicast stay on the UDP sockets. It needs
	// Local and an IPv4 underlay; a kernel without tunnel GSO on TAPs
	// falls back to the sockets alone (logged).
	TAPUnderlay bool
	// Offload enables UDP GSO on transmit and UDP GRO on receive where the
	// kernel has them.
	Offload bool
	// AllowRemote, when not empty, are the only underlay sources whose
	// datagrams are received: those from any other address are dropped
	// before their header is read (rx_not_allowed). SetAllowRemote
	// changes it while the endpoint runs.
	AllowRemote []netip.Prefix
	// Segments are the VNIs served by this endpoint.
	Segments []SegmentConfig
	// Logf logs one line; nil discards.
	Logf func(format string, args ...any)
}

// SegmentConfig describes one VXLAN segment.
type SegmentConfig struct {
	VNI uint32
	// TAP names the TAP device to create.
	TAP string
	// MAC is the TAP's address; received frames with this source MAC are
	// loops and dropped.
	MAC [6]byte
	// Table is the forwarding database.
	Table *fdb.Table
	// Learning enables source learning from received frames.
	Learning bool
	// LearnRate bounds the entries learning creates or migrates per
	// second (a flood of random source MACs cannot churn the table faster);
	// 0 means no bound.
	LearnRate int
	// TTL of outer packets; 0 means 64 for unicast and 1 for multicast
	// destinations.
	TTL uint8
	// TTLInherit copies the inner IPv4 TTL or IPv6 hop limit instead (64
	// for frames that carry neither).
	TTLInherit bool
	// TOS of outer packets, or the inner DS field when TOSInherit. ECN
	// follows RFC 6040 either way.
	TOS        uint8
	TOSInherit bool
	// Offload opens the TAP with a virtio-net header and TSO: super-frames
	// in, GSO frames and checksum hand-over out (instead of software
	// checksum completion, one frame per write).
	Offload bool
	// MTU of the TAP, for re-segmenting oversized received frames.
	MTU int
	// Group is a multicast group joined on the endpoint's Dev; it is also
	// the segment's flood destination (an all-zeros FDB entry the caller
	// adds).
	Group netip.Addr
	// InNetns runs a function inside the namespace where the TAP is to be
	// created; nil creates it in the daemon's own namespace. The UDP
	// sockets stay in the daemon's namespace either way.
	InNetns func(func() error) error
	// Neigh is the segment's neighbour table, which the proxy and route
	// short-circuit read; nil gives the segment an empty one.
	Neigh *neigh.Table
	// Proxy answers ARP requests and IPv6 Neighbor Solicitations from the
	// TAP out of Neigh, and floods none of them (ip-link's "proxy").
	Proxy bool
	// L2Miss raises an event for a unicast frame dropped for want of a
	// forwarding entry; L3Miss for an address the proxy or the route
	// short-circuit does not find in Neigh.
	L2Miss, L3Miss bool
	// RSC rewrites the destination MAC of IP frames sent to a forwarding
	// entry flagged router to the neighbour of their destination address
	// (ip-link's "rsc").
	RSC bool
	// Frames, when set, is shown every frame read from the TAP (a control
	// plane announces their source MACs, and the addresses their ARP and
	// neighbour discovery reveal, as local endpoints).
	Frames FrameObserver
	// Devices, when set, are the segment's device queues, used instead of
	// the TAP the fields above describe (tests use netio/memio); the
	// segment closes them.
	Devices []netio.FrameDevice
}

// FrameObserver is shown each Ethernet frame read from a TAP, before it is
// forwarded. It is called on the packet path, by every transmit worker
// (one per TAP queue) at once: it must be safe for concurrent use, must
// not block, modify or keep the frame, and should not allocate for frames
// it has seen before.
type FrameObserver interface {
	ObserveFrame(frame []byte)
}

// Endpoint is a running VTEP. Segments may be added and removed while it
// runs (AddSegment, RemoveSegment).
type Endpoint struct {
	cfg    Config
	port   uint16
	ul     netio.Underlay
	ulCaps netio.UnderlayCaps
	// queues is how many device queues each segment has.
	queues int
	// tab is the segments, replaced as a whole (copy on write) when one is
	// added or removed, so that the packet path reads it without a lock.
	tab atomic.Pointer[segTable]
	// allow is the source allowlist (AllowRemote), replaced as a whole;
	// nil or empty allows every source.
	allow atomic.Pointer[[]netip.Prefix]

	// mu serialises AddSegment, RemoveSegment, SetGroup, Run's start and
	// Close; it guards groups and running.
	mu      sync.Mutex
	groups  map[netip.Addr]int // joined groups, by how many segments use each
	bindAny bool               // the receive port is bound to any address (a group needs it)
	running bool               // Run has started the loops
	errc    chan error         // the first loop failure

	// gsoLimit is the largest segment sent as a UDP_SEGMENT train; it
	// drops below a size the kernel refused (segment plus outer headers
	// over the device MTU), and such segments go one by one.
	gsoLimit atomic.Int64

	// counters are the socket's (see initCounters); rxDrops holds those
	// of the drop reasons decided before the VNI is known, nil for the
	// others, which each segment counts.
	counters   stats.Set
	rxDrops    [encap.NumReasons]*stats.Counter
	rxPackets  *stats.Counter
	notAllowed *stats.Counter // datagrams from a source outside AllowRemote
	rxOverflow *stats.Counter // datagrams the kernel dropped: the socket's queue was full
	panics     *stats.Counter

	closing chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	panicMu     sync.Mutex
	panicWindow time.Time
	panicCount  int
}

// Segment is one VNI's device, table and counters.
type Segment struct {
	cfg   SegmentConfig
	ep    *Endpoint
	devs  []netio.FrameDevice    // the device's queues
	name  string                 // the device's name
	vnet  bool                   // frames carry a virtio-net header
	tune  atomic.Pointer[tuning] // what SetTuning may change while running
	group netip.Addr             // the joined group; guarded by ep.mu
	// removed is set by RemoveSegment before it closes the device, so the
	// transmit workers end quietly whatever error the closed queues return.
	removed atomic.Bool

	// rx is each receive worker's state for this segment, by worker.
	rx []*segRx

	// members, when set, are the only underlay sources accepted for the
	// segment's VNI (SetMembers); nil accepts any.
	members atomic.Pointer[map[netip.Addr]struct{}]

	counters stats.Set
	c        segmentCounters
	// rxDrops holds the counters of the receive drops decided once the
	// VNI is known (perVNI), nil for the others, which the endpoint counts.
	rxDrops [encap.NumReasons]*stats.Counter

	neigh *neigh.Table
	bus   *events.Bus
}

// segmentCounters are a segment's counters. tx_messages counts send
// messages: a UDP GSO train of up to 64 wire datagrams is one.
type segmentCounters struct {
	txFrames, txBytes, txMessages, txNoDest, txShort, txErrors, txBadGSO *stats.Counter
	rxFrames, rxBytes, rxBadSource, tapWrites, tapWriteErr               *stats.Counter
	learned, migrated, learnFull, learnLimited                           *stats.Counter
	proxyAnswered, proxyConsumed, proxyInvalid                           *stats.Counter
	l2miss, l3miss, rscRewrites, eventsDropped, eventsCoalesced          *stats.Counter
	rxNotMember                                                          *stats.Counter
}

// segTable is an immutable set of an endpoint's segments.
type segTable struct {
	list  []*Segment
	byVNI map[uint32]*Segment
	one   *Segment // the only segment, when there is one (fast path)
}

// newSegTable indexes list, which it keeps.
func newSegTable(list []*Segment) *segTable {
	t := &segTable{list: list, byVNI: make(map[uint32]*Segment, len(list))}
	for _, s := range list {
		t.byVNI[s.cfg.VNI] = s
	}
	if len(list) == 1 {
		t.one = list[0]
	}
	return t
}

// Tuning is the part of a segment's configuration that SetTuning changes
// while it forwards (see SegmentConfig for each field).
type Tuning struct {
	TTL        uint8
	TTLInherit bool
	TOS        uint8
	TOSInherit bool
	Learning   bool
	// LearnRate bounds the entries learning creates or migrates per
	// second; 0 means no bound.
	LearnRate int
	Proxy     bool
	L2Miss    bool
	L3Miss    bool
	RSC       bool
}

// tuning is a published Tuning and what derives from it.
type tuning struct {
	Tuning
	learn learning.Policy
}

func newTuning(t Tuning) *tuning {
	return &tuning{Tuning: t, learn: learning.Policy{Enabled: t.Learning, Limit: learning.NewLimiter(t.LearnRate)}}
}

// tuningOf extracts the Tuning part of sc.
func tuningOf(sc *SegmentConfig) Tuning {
	return Tuning{TTL: sc.TTL, TTLInherit: sc.TTLInherit, TOS: sc.TOS, TOSInherit: sc.TOSInherit, Learning: sc.Learning, LearnRate: sc.LearnRate,
		Proxy: sc.Proxy, L2Miss: sc.L2Miss, L3Miss: sc.L3Miss, RSC: sc.RSC}
}

// New opens the underlay and devices of cfg. Nothing forwards until Run.
func New(cfg Config) (_ *Endpoint, err error) {
	if len(cfg.Segments) == 0 {
		return nil, errors.New("no segment configured")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.SrcPortMin > cfg.SrcPortMax || (cfg.SrcPortMin == cfg.SrcPortMax && cfg.SrcPortMin != 0) {
		return nil, fmt.Errorf("source port range %d-%d is empty", cfg.SrcPortMin, cfg.SrcPortMax)
	}
	if cfg.Queues < 0 {
		return nil, fmt.Errorf("queues %d: must be positive", cfg.Queues)
	}
	if cfg.Queues == 0 {
		cfg.Queues = runtime.NumCPU()
	}
	ep := &Endpoint{cfg: cfg, closing: make(chan struct{}), groups: map[netip.Addr]int{}, errc: make(chan error, 1), queues: cfg.Queues}
	ep.tab.Store(newSegTable(nil))
	ep.gsoLimit.Store(maxGSOPayload)
	ep.SetAllowRemote(cfg.AllowRemote)
	defer func() {
		if err != nil {
			ep.Close() // ep, not the nil the failed return carries
		}
	}()
	ep.initCounters()

	// Multicast datagrams are addressed to the group, not to Local: like
	// the kernel's vxlan socket, bind to any address when a group is used.
	bindAddr := cfg.Local
	for _, sc := range cfg.Segments {
		if sc.Group.IsValid() {
			bindAddr = netip.Addr{}
		}
	}
	ep.bindAny = !bindAddr.IsValid() || bindAddr.IsUnspecified()
	if cfg.TAPUnderlay && cfg.Underlay == nil {
		if err := checkTAPUnderlay(cfg.Local, cfg.V6); err != nil {
			return nil, err
		}
	}
	if cfg.Underlay != nil {
		ep.ul = cfg.Underlay
	} else {
		ul, err := openUnderlay(udpConfig{Bind: bindAddr, Local: cfg.Local, Dev: cfg.Dev, V6: cfg.V6, Port: cfg.Port,
			SrcPortMin: cfg.SrcPortMin, SrcPortMax: cfg.SrcPortMax, TxSockets: cfg.TxSockets, Queues: cfg.Queues,
			Offload: cfg.Offload, Overflow: ep.rxOverflow, Logf: cfg.Logf})
		if err != nil {
			return nil, err
		}
		ep.ul = ul
		if cfg.TAPUnderlay {
			if err := ep.openTAPUnderlay(ul); err != nil {
				return nil, err
			}
		}
	}
	ep.port = ep.ul.Port()
	ep.ulCaps = ep.ul.Caps()
	for _, sc := range cfg.Segments {
		if _, err := ep.AddSegment(sc); err != nil {
			return nil, err
		}
	}
	return ep, nil
}

// openTAPUnderlay puts the underlay TAP in front of ul's sends (see
// TAPUnderlay); a kernel that refuses tunnel GSO leaves ul alone.
func (ep *Endpoint) openTAPUnderlay(ul *udpUnderlay) error {
	cfg := ep.cfg
	name := fmt.Sprintf("vxu%d", ul.Port())
	if tap := cfg.Segments[0].TAP; tap != "" {
		name = tap[:min(len(tap), 14)] + "u"
	}
	t, err := openTAPUnderlay(ul, tapUnderlayConfig{Name: name, Local: cfg.Local,
		SrcPortMin: cfg.SrcPortMin, SrcPortMax: cfg.SrcPortMax, Queues: cfg.Queues, Logf: cfg.Logf})
	if errors.Is(err, errTunnelGSORefused) {
		cfg.Logf("underlay tap: %v; sending through the UDP sockets", err)
		return nil
	}
	if err != nil {
		return err
	}
	ep.ul = t
	return nil
}

// AddSegment opens the TAP of sc and serves it on ep, running or not. It
// joins sc.Group unless another segment of ep has joined it already; a
// group needs the receive socket bound to any address (BindsAny). The
// segments already served are not disturbed.
func (ep *Endpoint) AddSegment(sc SegmentConfig) (*Segment, error) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	select {
	case <-ep.closing:
		return nil, fmt.Errorf("vni %d: endpoint closed", sc.VNI)
	default:
	}
	old := ep.tab.Load()
	if _, dup := old.byVNI[sc.VNI]; dup {
		return nil, fmt.Errorf("vni %d configured twice", sc.VNI)
	}
	if err := ep.useGroup(sc.Group); err != nil {
		return nil, err
	}
	s, err := ep.newSegment(sc)
	if err != nil {
		ep.unuseGroup(sc.Group)
		return nil, err
	}
	s.group = sc.Group
	ep.tab.Store(newSegTable(append(old.list[:len(old.list):len(old.list)], s)))
	if ep.running {
		s.spawnTransmit()
	}
	return s, nil
}

// RemoveSegment stops serving s: its TAP closes (the kernel removes the
// device, and its transmit loop ends), its group is left unless another
// segment uses it. Datagrams for its VNI are dropped as unknown from then
// on. It returns how many segments ep still serves; the caller closes an
// endpoint that serves none.
func (ep *Endpoint) RemoveSegment(s *Segment) (int, error) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	old := ep.tab.Load()
	list := make([]*Segment, 0, len(old.list))
	for _, o := range old.list {
		if o != s {
			list = append(list, o)
		}
	}
	if len(list) == len(old.list) {
		return len(list), fmt.Errorf("vni %d: not served by this endpoint", s.cfg.VNI)
	}
	ep.tab.Store(newSegTable(list))
	s.removed.Store(true) // before the close its transmit workers see
	err := s.closeDevices()
	ep.unuseGroup(s.group)
	s.group = netip.Addr{}
	return len(list), err
}

// SetGroup makes g the multicast group of s (the zero Addr: none), joining
// it unless another segment has and leaving the old one unless another
// segment uses it. The flood destination is the caller's: the all-zeros
// entry of the segment's table.
func (s *Segment) SetGroup(g netip.Addr) error {
	ep := s.ep
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if g == s.group {
		return nil
	}
	if err := ep.useGroup(g); err != nil {
		return err
	}
	ep.unuseGroup(s.group)
	s.group = g
	return nil
}

// SetMembers restricts the underlay sources whose datagrams the segment
// accepts to addrs (a control plane's members); others are dropped before
// anything else looks at them and counted as rx_not_member. nil accepts
// every source again; an empty, non-nil list accepts none.
func (s *Segment) SetMembers(addrs []netip.Addr) {
	if addrs == nil {
		s.members.Store(nil)
		return
	}
	m := make(map[netip.Addr]struct{}, len(addrs))
	for _, a := range addrs {
		m[a.Unmap()] = struct{}{}
	}
	s.members.Store(&m)
}

// SetTuning changes the outer TTL and TOS and learning of a forwarding
// segment; the next frame uses them.
func (s *Segment) SetTuning(t Tuning) { s.tune.Store(newTuning(t)) }

// SetAllowRemote makes prefixes the underlay sources the endpoint receives
// from (none: every source); the next datagram is checked against them.
func (ep *Endpoint) SetAllowRemote(prefixes []netip.Prefix) {
	list := make([]netip.Prefix, len(prefixes))
	for i, p := range prefixes {
		list[i] = p.Masked()
	}
	ep.allow.Store(&list)
}

// allowed reports whether a datagram from src passes the allowlist.
func (ep *Endpoint) allowed(src netip.Addr) bool {
	list := ep.allow.Load()
	if list == nil || len(*list) == 0 {
		return true
	}
	for _, p := range *list {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// BindsAny reports whether the receive socket is bound to any address, as
// a segment with a multicast group needs.
func (ep *Endpoint) BindsAny() bool { return ep.bindAny }

// useGroup counts one more segment using g, joining it for the first.
// The caller holds ep.mu.
func (ep *Endpoint) useGroup(g netip.Addr) error {
	if !g.IsValid() {
		return nil
	}
	if !ep.bindAny {
		return fmt.Errorf("group %s: the socket is bound to %s, not to any address as a group needs", g, ep.cfg.Local)
	}
	if ep.groups[g] == 0 {
		if err := ep.joinGroup(g); err != nil {
			return err
		}
	}
	ep.groups[g]++
	return nil
}

// unuseGroup counts one segment less using g, leaving it after the last.
// The caller holds ep.mu.
func (ep *Endpoint) unuseGroup(g netip.Addr) {
	if !g.IsValid() || ep.groups[g] == 0 {
		return
	}
	ep.groups[g]--
	if ep.groups[g] == 0 {
		delete(ep.groups, g)
		if err := ep.leaveGroup(g); err != nil {
			ep.cfg.Logf("%v", err)
		}
	}
}

// joinGroup joins group on the underlay.
func (ep *Endpoint) joinGroup(group netip.Addr) error {
	if err := ep.ul.JoinGroup(group); err != nil {
		return err
	}
	ep.cfg.Logf("joined group %s on %s", group, ep.cfg.Dev)
	return nil
}

// leaveGroup leaves group on the underlay.
func (ep *Endpoint) leaveGroup(group netip.Addr) error {
	if err := ep.ul.LeaveGroup(group); err != nil {
		return err
	}
	ep.cfg.Logf("left group %s on %s", group, ep.cfg.Dev)
	return nil
}

func (ep *Endpoint) newSegment(sc SegmentConfig) (s *Segment, err error) {
	if sc.VNI > encap.MaxVNI {
		return nil, fmt.Errorf("vni %d out of range 0-%d", sc.VNI, encap.MaxVNI)
	}
	if sc.Table == nil {
		return nil, fmt.Errorf("vni %d: no forwarding table", sc.VNI)
	}
	devs := sc.Devices
	if devs == nil {
		var taps []*TAP
		open := func() (err error) {
			taps, err = OpenTAPQueues(TAPOptions{Name: sc.TAP, VnetHdr: sc.Offload, GSO: sc.Offload, Queues: ep.queues})
			return err
		}
		if sc.InNetns != nil {
			err = sc.InNetns(open)
		} else {
			err = open()
		}
		if err != nil {
			return nil, err
		}
		for _, t := range taps {
			devs = append(devs, t)
		}
	}
	if len(devs) == 0 {
		return nil, fmt.Errorf("vni %d: no device", sc.VNI)
	}
	caps := devs[0].Caps()
	s = &Segment{cfg: sc, ep: ep, devs: devs, name: devs[0].Name(), vnet: caps.VnetHdr}
	s.tune.Store(newTuning(tuningOf(&sc)))
	if sc.Offload && !caps.TSO {
		ep.cfg.Logf("tap %s: kernel refused TSO offloads (accepted: %s); frames are taken one by one", s.name, caps.Offloads)
	}
	s.initCounters()
	for i := range ep.ul.Receivers() {
		s.rx = append(s.rx, s.newSegRx(devs[i%len(devs)]))
	}
	s.initHooks()
	return s, nil
}

// closeDevices closes the segment's device queues.
func (s *Segment) closeDevices() error {
	var first error
	for _, d := range s.devs {
		if err := d.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// initHooks sets up the segment's neighbour table and event bus, and has
// the forwarding table report its changes to the bus.
func (s *Segment) initHooks() {
	s.neigh = s.cfg.Neigh
	if s.neigh == nil {
		s.neigh = neigh.New()
	}
	s.bus = events.NewBus(s.name, s.cfg.VNI, s.c.eventsDropped, s.c.eventsCoalesced)
	s.cfg.Table.SetNotify(s.bus.FDBChange)
}

// Neigh returns the segment's neighbour table.
func (s *Segment) Neigh() *neigh.Table { return s.neigh }

// Events returns the segment's event bus: misses and forwarding changes.
func (s *Segment) Events() *events.Bus { return s.bus }

// Segments returns the endpoint's segments, in the order they were added.
func (ep *Endpoint) Segments() []*Segment { return ep.tab.Load().list }

// TAPName returns the segment's interface name.
func (s *Segment) TAPName() string { return s.name }

// Stats returns the segment's counters followed by those of the endpoint's
// socket (datagrams received, and dropped before their VNI was known).
func (s *Segment) Stats() []stats.Value {
	return append(s.counters.Snapshot(), s.ep.counters.Snapshot()...)
}

// Run forwards until Close is called or a loop fails. It returns nil after
// Close.
func (ep *Endpoint) Run() error {
	ep.mu.Lock()
	select {
	case <-ep.closing:
		ep.mu.Unlock()
		return nil
	default:
	}
	ep.running = true
	for _, s := range ep.tab.Load().list {
		s.spawnTransmit()
	}
	for i, r := range ep.ul.Receivers() {
		w := newRxWorker(ep, i, r)
		ep.spawn(w.loop)
	}
	ep.spawn(ep.tickLoop)
	ep.mu.Unlock()
	select {
	case err := <-ep.errc:
		ep.Close()
		ep.wg.Wait()
		return err
	case <-ep.closing:
		ep.wg.Wait()
		return nil
	}
}

// spawn runs the forwarding loop f under guard; its failure ends Run. The
// caller holds ep.mu and has checked that ep is not closed.
func (ep *Endpoint) spawn(f func() error) {
	ep.wg.Add(1)
	go func() {
		defer ep.wg.Done()
		if err := ep.guard(f); err != nil {
			select {
			case <-ep.closing:
			case ep.errc <- err:
			default: // another loop failed first
			}
		}
	}()
}

// maxPanics bounds how many panics a minute the loops may recover from
// before the endpoint gives up.
const maxPanics = 100

// lowerGSOLimit records that the kernel refused a UDP_SEGMENT train of
// segments of size g: larger and equal segments go one by one from now on.
func (ep *Endpoint) lowerGSOLimit(g int) {
	for {
		cur := ep.gsoLimit.Load()
		if int64(g) > cur {
			return
		}
		if ep.gsoLimit.CompareAndSwap(cur, int64(g-1)) {
			ep.cfg.Logf("udp: kernel refused a GSO train of %d-byte datagrams (over the underlay MTU?); sending those one by one", g)
			return
		}
	}
}

// guard runs a forwarding loop and restarts it if it panics: a bug hit by
// one odd packet must not take the tunnel down. Each panic is logged with
// its stack and counted (loop_panics).
func (ep *Endpoint) guard(loop func() error) error {
	for {
		err, panicked := func() (err error, panicked bool) {
			defer func() {
				if r := recover(); r != nil {
					ep.panics.Inc()
					ep.cfg.Logf("internal error, restarting loop: %v\n%s", r, debug.Stack())
					panicked = true
				}
			}()
			return loop(), false
		}()
		if !panicked {
			return err
		}
		select {
		case <-ep.closing:
			return nil
		default:
		}
		now := time.Now()
		ep.panicMu.Lock()
		if now.Sub(ep.panicWindow) > time.Minute {
			ep.panicWindow, ep.panicCount = now, 0
		}
		ep.panicCount++
		n := ep.panicCount
		ep.panicMu.Unlock()
		if n > maxPanics {
			return fmt.Errorf("giving up after %d internal errors within a minute", n)
		}
	}
}

// Close stops forwarding and releases the TAPs (the kernel removes them)
// and the sockets. It is safe to call more than once.
func (ep *Endpoint) Close() error {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	ep.once.Do(func() {
		close(ep.closing)
		if ep.ul != nil {
			ep.ul.Close()
		}
		for _, s := range ep.tab.Load().list {
			s.closeDevices()
		}
	})
	return nil
}

func (ep *Endpoint) tickLoop() error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ep.closing:
			return nil
		case <-t.C:
			for _, s := range ep.tab.Load().list {
				s.cfg.Table.Tick()
			}
			ep.ul.Tick()
		}
	}
}

// isClosed reports whether err comes from a descriptor closed by Close.
func isClosed(err error) bool { return netio.IsClosed(err) }
