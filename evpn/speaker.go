package evpn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/overlay"
	"github.com/vxland/vxland/stats"
)

// Defaults of the session timers: FRR's "datacenter" profile, so that a
// dead peer's routes go within seconds.
const (
	DefaultHoldTime     = 9 * time.Second
	DefaultKeepalive    = 3 * time.Second
	DefaultConnectRetry = 2 * time.Second
	// DefaultPort is the BGP port.
	DefaultPort = 179
	// resyncInterval is the period of the reconcile that runs without
	// an event.
	resyncInterval = 10 * time.Second
)

// Neighbor is one BGP peer.
type Neighbor struct {
	// Addr is the peer's address.
	Addr netip.Addr
	// ASN is the peer's AS; 0 means the local AS (iBGP).
	ASN uint32
	// Password enables TCP MD5 signatures (RFC 2385) with this key.
	Password string
	// Port is the peer's BGP port; 0 means DefaultPort.
	Port uint16
}

// String formats the neighbor as the --bgp-neighbor flag takes it.
func (n Neighbor) String() string {
	if n.ASN == 0 {
		return n.Addr.String()
	}
	return n.Addr.String() + ":" + strconv.FormatUint(uint64(n.ASN), 10)
}

// Config configures a Speaker.
type Config struct {
	// ASN is the local AS.
	ASN uint32
	// RouterID is the BGP identifier (an IPv4 address); it is also the
	// administrator part of every route distinguisher.
	RouterID netip.Addr
	// Port is the TCP port to listen on; 0 means DefaultPort, a negative
	// value not to listen (sessions are then opened by this side only).
	Port int
	// ListenAddrs limits the listening sockets to these addresses; none
	// means every address. With exactly one, sessions are opened from it
	// too.
	ListenAddrs []netip.Addr
	// Neighbors are the peers.
	Neighbors []Neighbor
	// HoldTime, Keepalive and ConnectRetry are the session timers; 0
	// means the defaults above.
	HoldTime, Keepalive, ConnectRetry time.Duration
	// Settle gathers changes for this long before one reconcile; 0 means
	// 50 ms.
	Settle time.Duration
	// Logf logs one line; nil discards.
	Logf func(format string, args ...any)
}

// VNI is one segment the speaker serves.
type VNI struct {
	// Local is what this node advertises; its VTEP address is the next
	// hop of every route, its port the port of the installed peers. The
	// speaker ages its endpoints (Tick, every second).
	Local *overlay.Local
	// Installer receives the other VTEPs (owner Owner).
	Installer *overlay.Installer
}

// Speaker is a BGP EVPN speaker: a GoBGP server in this process, with
// the configured neighbors, advertising and installing the VNIs added.
type Speaker struct {
	cfg  Config
	logf func(string, ...any)
	srv  *server.BgpServer

	mu      sync.Mutex
	vnis    map[uint32]*vniState
	bad     map[string]string // ignored routes of the last reconcile: key -> reason
	states  map[netip.Addr]bgp.FSMState
	running bool

	started chan struct{} // closed once the server listens and has its neighbors
	kick    chan struct{} // received routes or sessions changed
	dirty   chan struct{} // a local view changed

	counters                           stats.Set
	reconciles, advertised, withdrawn  *stats.Counter
	sessionsUp, sessionsDown, addFails *stats.Counter
	ignored                            map[string]*stats.Counter
}

// vniState is one VNI's advertised and installed state. The fields after
// installer are used by the reconcile goroutine only, except where noted.
type vniState struct {
	vni       uint32
	rdIndex   uint16
	local     *overlay.Local
	installer *overlay.Installer

	advertised map[string]advertisedPath // by NLRI
	seq        map[fdb.MAC]uint32        // MAC mobility sequence of local MACs
	yielded    map[fdb.MAC]bool          // local MACs a remote claim beats
	present    map[fdb.MAC]bool          // local MACs of the last snapshot
	remote     map[fdb.MAC]Claim         // the best remote claim per MAC

	// guarded by Speaker.mu (for Status):
	routesIn, routesOut int
	localMACs           int
	peers               []overlay.Peer
}

type advertisedPath struct {
	path *apiutil.Path
	sig  string
}

// ignoredReasons are the reasons counted, in counter order.
var ignoredReasons = []string{
	ReasonUnsupported, ReasonNoPMSI, ReasonEncap, ReasonNoRT, ReasonVNI,
	ReasonNextHop, ReasonMAC, ReasonUnknownVNI, ReasonOwnVTEP, ReasonMalformed,
}

// New returns a speaker; nothing is opened until Run.
func New(cfg Config) (*Speaker, error) {
	if cfg.ASN == 0 {
		return nil, errors.New("evpn: no local AS")
	}
	if !cfg.RouterID.Is4() || cfg.RouterID.IsUnspecified() {
		return nil, fmt.Errorf("evpn: router id %v is not an IPv4 address", cfg.RouterID)
	}
	seen := map[netip.Addr]bool{}
	for _, n := range cfg.Neighbors {
		if !n.Addr.IsValid() || n.Addr.IsUnspecified() || n.Addr.IsMulticast() {
			return nil, fmt.Errorf("evpn: neighbor %v is not a unicast address", n.Addr)
		}
		if seen[n.Addr] {
			return nil, fmt.Errorf("evpn: neighbor %s given twice", n.Addr)
		}
		seen[n.Addr] = true
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Port > 65535 {
		return nil, fmt.Errorf("evpn: port %d out of range", cfg.Port)
	}
	if cfg.HoldTime <= 0 {
		cfg.HoldTime = DefaultHoldTime
	}
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = min(DefaultKeepalive, cfg.HoldTime/3)
	}
	if cfg.ConnectRetry <= 0 {
		cfg.ConnectRetry = DefaultConnectRetry
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 50 * time.Millisecond
	}
	s := &Speaker{
		cfg: cfg, logf: cfg.Logf, vnis: map[uint32]*vniState{}, bad: map[string]string{}, states: map[netip.Addr]bgp.FSMState{},
		started: make(chan struct{}), kick: make(chan struct{}, 1), dirty: make(chan struct{}, 1), ignored: map[string]*stats.Counter{},
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	n := s.counters.New
	s.reconciles, s.advertised, s.withdrawn = n("evpn_reconciles"), n("evpn_paths_advertised"), n("evpn_paths_withdrawn")
	s.sessionsUp, s.sessionsDown, s.addFails = n("evpn_sessions_established"), n("evpn_sessions_lost"), n("evpn_path_errors")
	for _, r := range ignoredReasons {
		s.ignored[r] = n("evpn_ignored_" + r)
	}
	return s, nil
}

// Stats returns the speaker's counters: evpn_reconciles,
// evpn_paths_advertised and evpn_paths_withdrawn (local routes handed to
// BGP), evpn_sessions_established and evpn_sessions_lost,
// evpn_path_errors (local routes BGP refused), and evpn_ignored_REASON
// (received routes ignored, each counted once until it changes).
func (s *Speaker) Stats() []stats.Value { return s.counters.Snapshot() }

// Add serves a VNI; call it before Run.
func (s *Speaker) Add(v VNI) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return errors.New("evpn: Add after Run")
	}
	id := v.Local.VNI()
	if id == 0 || id > maxVNI {
		return fmt.Errorf("evpn: vni %d out of range", id)
	}
	if _, dup := s.vnis[id]; dup {
		return fmt.Errorf("evpn: vni %d added twice", id)
	}
	s.vnis[id] = &vniState{
		vni: id, local: v.Local, installer: v.Installer,
		advertised: map[string]advertisedPath{}, seq: map[fdb.MAC]uint32{},
		yielded: map[fdb.MAC]bool{}, present: map[fdb.MAC]bool{}, remote: map[fdb.MAC]Claim{},
	}
	return nil
}

// logWriter hands GoBGP's log lines to Logf.
type logWriter func(string, ...any)

func (w logWriter) Write(b []byte) (int, error) {
	w("evpn: gobgp: %s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// Run starts the BGP server, opens the sessions and keeps advertising
// and installing until ctx is done; then it closes the sessions (the
// peers withdraw this node's routes at once) and returns. It returns an
// error only when the server cannot start (the port is taken, say).
func (s *Speaker) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("evpn: Run called twice")
	}
	s.running = true
	ids := slices.Sorted(maps.Keys(s.vnis))
	idx := RDIndexes(ids)
	for _, id := range ids {
		s.vnis[id].rdIndex = idx[id]
	}
	vs := slices.Collect(maps.Values(s.vnis))
	s.mu.Unlock()

	lvl := new(slog.LevelVar)
	lvl.Set(slog.LevelWarn)
	logger := slog.New(slog.NewTextHandler(logWriter(s.logf), &slog.HandlerOptions{Level: lvl}))
	srv := server.NewBgpServer(server.LoggerOption(logger, lvl))
	go srv.Serve()
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	g := &api.Global{Asn: s.cfg.ASN, RouterId: s.cfg.RouterID.String(), ListenPort: int32(s.cfg.Port)}
	for _, a := range s.cfg.ListenAddrs {
		g.ListenAddresses = append(g.ListenAddresses, a.String())
	}
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: g}); err != nil {
		srv.Stop()
		return fmt.Errorf("evpn: start BGP (AS %d, port %d): %w", s.cfg.ASN, s.cfg.Port, err)
	}
	defer s.stop()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{
		OnBestPath:   func([]*apiutil.Path, time.Time) { s.poke(s.kick) },
		OnPathUpdate: func([]*apiutil.Path, time.Time) { s.poke(s.kick) },
		OnPeerUpdate: s.peerEvent,
	}, server.WatchBestPath(false), server.WatchUpdate(false, "", ""), server.WatchPeer())
	if err != nil {
		return fmt.Errorf("evpn: watch: %w", err)
	}
	for _, n := range s.cfg.Neighbors {
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peerConfig(n)}); err != nil {
			return fmt.Errorf("evpn: neighbor %s: %w", n, err)
		}
	}
	close(s.started)
	s.logf("evpn: BGP AS %d router-id %s, port %d, neighbors %v, vnis %v", s.cfg.ASN, s.cfg.RouterID, s.cfg.Port, s.cfg.Neighbors, ids)
	var wg sync.WaitGroup
	for _, v := range vs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-wctx.Done():
					return
				case <-v.local.Changed():
					s.poke(s.dirty)
				}
			}
		}()
	}
	defer wg.Wait()
	defer cancel()

	s.reconcile()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	// A periodic pass retries what BGP refused and catches anything a
	// lost event left behind; it costs nothing when nothing changed.
	resync := time.NewTicker(resyncInterval)
	defer resync.Stop()
	age := time.NewTicker(time.Second)
	defer age.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-age.C:
			for _, v := range vs {
				v.local.Tick() // an expiry signals Changed
			}
		case <-resync.C:
			s.reconcile()
		case <-s.kick:
			settle.Reset(s.cfg.Settle)
		case <-s.dirty:
			settle.Reset(s.cfg.Settle)
		case <-settle.C:
			s.reconcile()
		}
	}
}

// Started is closed once Run has the server listening and its neighbors
// configured.
func (s *Speaker) Started() <-chan struct{} { return s.started }

// stop closes the sessions and the server.
func (s *Speaker) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
		s.logf("evpn: stop BGP: %v", err)
	}
	s.mu.Lock()
	s.srv = nil
	s.mu.Unlock()
	s.logf("evpn: BGP stopped")
}

func (s *Speaker) poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// peerConfig is the GoBGP configuration of a neighbor.
func (s *Speaker) peerConfig(n Neighbor) *api.Peer {
	asn := n.ASN
	if asn == 0 {
		asn = s.cfg.ASN
	}
	tr := &api.Transport{RemotePort: uint32(n.Port)}
	if len(s.cfg.ListenAddrs) == 1 {
		tr.LocalAddress = s.cfg.ListenAddrs[0].String()
	}
	return &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: n.Addr.String(), PeerAsn: asn, AuthPassword: n.Password},
		Transport: tr,
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          uint64(s.cfg.HoldTime / time.Second),
			KeepaliveInterval: uint64(max(1, s.cfg.Keepalive/time.Second)),
			ConnectRetry:      uint64(max(1, s.cfg.ConnectRetry/time.Second)),
		}},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{
			Family:  &api.Family{Afi: api.Family_AFI_L2VPN, Safi: api.Family_SAFI_EVPN},
			Enabled: true,
		}}},
	}
}

// peerEvent logs session changes and counts them.
func (s *Speaker) peerEvent(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	st := ev.Peer.State
	s.mu.Lock()
	was := s.states[st.NeighborAddress]
	s.states[st.NeighborAddress] = st.SessionState
	s.mu.Unlock()
	switch {
	case st.SessionState == bgp.BGP_FSM_ESTABLISHED && was != bgp.BGP_FSM_ESTABLISHED:
		s.sessionsUp.Inc()
		s.logf("evpn: session with %s (AS %d, router-id %s) established", st.NeighborAddress, st.PeerASN, st.RouterID)
	case st.SessionState != bgp.BGP_FSM_ESTABLISHED && was == bgp.BGP_FSM_ESTABLISHED:
		s.sessionsDown.Inc()
		s.logf("evpn: session with %s down: %s", st.NeighborAddress, st.DisconnectMessage)
	}
	s.poke(s.kick)
}

// reconcile installs what the others advertise and advertises what this
// node has; MAC mobility ties the two, so installing runs again when the
// local claims changed.
func (s *Speaker) reconcile() {
	s.reconciles.Inc()
	s.install()
	if s.advertise() {
		s.install()
	}
}

// install lists the EVPN routes BGP holds, validates them and hands each
// VNI's peers to its installer.
func (s *Speaker) install() {
	s.mu.Lock()
	vnis := maps.Clone(s.vnis)
	s.mu.Unlock()
	byVNI := map[uint32][]Route{}
	bad := map[string]string{}
	err := s.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: bgp.RF_EVPN},
		func(_ bgp.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				if !p.PeerAddress.IsValid() || p.Withdrawal {
					continue // ours
				}
				r, err := DecodePath(p)
				if err == nil {
					v, ok := vnis[r.VNI]
					switch {
					case !ok:
						err = refuse(ReasonUnknownVNI, "vni %d", r.VNI)
					case r.VTEP == v.localAddr():
						err = refuse(ReasonOwnVTEP, "vni %d: VTEP %s", r.VNI, r.VTEP)
					}
				}
				if err != nil {
					bad[p.PeerAddress.String()+" "+p.Nlri.String()] = err.Error()
					continue
				}
				byVNI[r.VNI] = append(byVNI[r.VNI], r)
			}
		})
	if err != nil {
		s.logf("evpn: list routes: %v", err)
		return
	}
	s.mu.Lock()
	for k, why := range bad {
		if s.bad[k] != why {
			s.ignored[ReasonOf(asRouteError(why))].Inc()
			s.logf("evpn: route %s from %s ignored", k[strings.IndexByte(k, ' ')+1:], why)
		}
	}
	s.bad = bad
	s.mu.Unlock()
	for _, v := range vnis {
		routes := byVNI[v.vni]
		vtep, _ := v.local.Snapshot()
		local := map[fdb.MAC]Claim{}
		for mac := range v.present {
			if !v.yielded[mac] {
				local[mac] = Claim{VTEP: vtep.Addr, Seq: v.seq[mac]}
			}
		}
		peers, best := Peers(routes, vtep.Port, local)
		v.remote = best
		if err := v.installer.Apply(peers); err != nil {
			s.logf("evpn: vni %d: %v", v.vni, err)
		}
		s.mu.Lock()
		v.routesIn, v.peers = len(routes), peers
		s.mu.Unlock()
	}
}

// asRouteError turns the text of a RouteError back into one (the bad map
// keeps text, so that a changed reason counts again).
func asRouteError(text string) error {
	reason, detail, _ := strings.Cut(text, ": ")
	return &RouteError{Reason: reason, Detail: detail}
}

// localAddr is the VTEP address of v.
func (v *vniState) localAddr() netip.Addr {
	vtep, _ := v.local.Snapshot()
	return vtep.Addr.Unmap()
}

// advertise hands BGP the routes of every VNI's local view that changed
// and withdraws those that went. It reports whether a local claim on a
// MAC changed (a MAC moved here, or away).
func (s *Speaker) advertise() bool {
	s.mu.Lock()
	vnis := slices.Collect(maps.Values(s.vnis))
	s.mu.Unlock()
	changed := false
	for _, v := range vnis {
		if s.advertiseVNI(v) {
			changed = true
		}
	}
	return changed
}

func (s *Speaker) advertiseVNI(v *vniState) (claimsChanged bool) {
	vtep, eps := v.local.Snapshot()
	now := map[fdb.MAC]bool{}
	if validMAC(vtep.MAC) {
		now[vtep.MAC] = true
	}
	for _, e := range eps {
		now[e.MAC] = true
	}
	for mac := range now {
		r, remote := v.remote[mac]
		if !v.present[mac] && remote {
			// Newly here while another VTEP holds it: a move.
			v.seq[mac] = r.Seq + 1
			claimsChanged = true
			s.logf("evpn: vni %d: %s moved here from %s (sequence %d)", v.vni, mac, r.VTEP, v.seq[mac])
		}
		mine := Claim{VTEP: vtep.Addr, Seq: v.seq[mac]}
		yield := remote && r.Wins(mine)
		if remote && !yield && v.seq[mac] <= r.Seq {
			// A tie this node wins by its lower address. GoBGP refuses a
			// local route whose sequence number is not above every other
			// claim in the same route target, so claim the next one, as
			// a move would (the other VTEP then yields).
			v.seq[mac] = r.Seq + 1
			claimsChanged = true
		}
		if yield != v.yielded[mac] {
			claimsChanged = true
			if yield {
				s.logf("evpn: vni %d: %s moved to %s (sequence %d)", v.vni, mac, r.VTEP, r.Seq)
			}
		}
		v.yielded[mac] = yield
	}
	for mac := range v.present {
		if !now[mac] {
			delete(v.seq, mac)
			delete(v.yielded, mac)
			claimsChanged = true
		}
	}
	v.present = now

	a := Advert{
		Origin: Origin{ASN: s.cfg.ASN, RouterID: s.cfg.RouterID}, VNI: v.vni, RDIndex: v.rdIndex,
		VTEP: vtep, Seq: v.seq,
	}
	if v.yielded[vtep.MAC] {
		a.VTEP.MAC = fdb.Zero
	}
	for _, e := range eps {
		if !v.yielded[e.MAC] {
			a.Endpoints = append(a.Endpoints, e)
		}
	}
	want := map[string]advertisedPath{}
	if vtep.Addr.IsValid() {
		paths, err := a.Paths()
		if err != nil {
			s.logf("evpn: vni %d: %v", v.vni, err)
		}
		for _, p := range paths {
			key := p.Nlri.String()
			want[key] = advertisedPath{path: p, sig: pathSig(p)}
		}
	}
	var add, del []*apiutil.Path
	for k, p := range want {
		if old, ok := v.advertised[k]; !ok || old.sig != p.sig {
			add = append(add, p.path)
		}
	}
	for k, p := range v.advertised {
		if _, ok := want[k]; !ok {
			del = append(del, p.path)
		}
	}
	if len(del) > 0 {
		// Withdrawals name the NLRI only: GoBGP checks the MAC mobility
		// community of a withdrawn route against the routes it holds, and
		// refuses to withdraw a route another VTEP has since outbid.
		bare := make([]*apiutil.Path, len(del))
		for i, p := range del {
			bare[i] = &apiutil.Path{Family: p.Family, Nlri: p.Nlri, Withdrawal: true}
		}
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: bare}); err != nil {
			s.addFails.Inc()
			s.logf("evpn: vni %d: withdraw: %v", v.vni, err)
		} else {
			s.withdrawn.Add(uint64(len(del)))
			for _, p := range del {
				delete(v.advertised, p.Nlri.String())
			}
		}
	}
	if len(add) > 0 {
		// On an error GoBGP does not say which paths it took: all count
		// as refused and are handed over again on the next pass
		// (re-adding a path replaces it).
		_, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: add})
		for _, p := range add {
			if err != nil {
				s.addFails.Inc()
				continue
			}
			k := p.Nlri.String()
			v.advertised[k] = want[k]
			s.advertised.Inc()
		}
		if err != nil {
			s.logf("evpn: vni %d: advertise: %v", v.vni, err)
		}
	}
	s.mu.Lock()
	v.routesOut, v.localMACs = len(v.advertised), len(now)
	s.mu.Unlock()
	return claimsChanged
}

// pathSig is what distinguishes two versions of one route: its attributes.
func pathSig(p *apiutil.Path) string {
	var b strings.Builder
	for _, a := range p.Attrs {
		b.WriteString(a.String())
		b.WriteByte(';')
	}
	return b.String()
}

// Status is what `vxlanctl bgp show` prints.
type Status struct {
	ASN      uint32
	RouterID netip.Addr
	Port     int
	Sessions []Session
	VNIs     []VNIStatus
}

// Session is one neighbor's session.
type Session struct {
	Neighbor netip.Addr
	ASN      uint32
	// State is the BGP FSM state in lower case: idle, connect, active,
	// opensent, openconfirm, established.
	State string
	// Received, Accepted and Advertised count EVPN paths.
	Received, Accepted, Advertised uint64
}

// VNIStatus is one VNI's part of Status.
type VNIStatus struct {
	VNI uint32
	RD  string // router-id:index
	RT  string // ASN:VNI
	// RoutesOut counts the routes advertised, RoutesIn the valid routes
	// received.
	RoutesOut, RoutesIn int
	// LocalMACs counts the local MACs (the TAP's and the endpoints')
	// as the last reconcile saw them.
	LocalMACs int
	// Peers are the remote VTEPs installed, with their endpoints.
	Peers []overlay.Peer
}

// Status returns the speaker's state now (no sessions before Run).
func (s *Speaker) Status(ctx context.Context) Status {
	st := Status{ASN: s.cfg.ASN, RouterID: s.cfg.RouterID, Port: s.cfg.Port}
	s.mu.Lock()
	srv := s.srv
	for _, v := range s.vnis {
		st.VNIs = append(st.VNIs, VNIStatus{
			VNI: v.vni, RD: fmt.Sprintf("%s:%d", s.cfg.RouterID, v.rdIndex), RT: fmt.Sprintf("%d:%d", uint16(s.cfg.ASN), v.vni),
			RoutesOut: v.routesOut, RoutesIn: v.routesIn, LocalMACs: v.localMACs, Peers: slices.Clone(v.peers),
		})
	}
	s.mu.Unlock()
	slices.SortFunc(st.VNIs, func(x, y VNIStatus) int { return int(x.VNI) - int(y.VNI) })
	if srv != nil {
		err := srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
			se := Session{}
			if p.Conf != nil {
				se.Neighbor, _ = netip.ParseAddr(p.Conf.NeighborAddress)
				se.ASN = p.Conf.PeerAsn
			}
			if p.State != nil {
				se.State = strings.ToLower(strings.TrimPrefix(p.State.SessionState.String(), "SESSION_STATE_"))
			}
			for _, af := range p.AfiSafis {
				if af.State != nil && af.State.Family != nil && af.State.Family.Afi == api.Family_AFI_L2VPN && af.State.Family.Safi == api.Family_SAFI_EVPN {
					se.Received, se.Accepted, se.Advertised = af.State.Received, af.State.Accepted, af.State.Advertised
				}
			}
			st.Sessions = append(st.Sessions, se)
		})
		if err != nil {
			s.logf("evpn: list neighbors: %v", err)
		}
	}
	if len(st.Sessions) == 0 {
		for _, n := range s.cfg.Neighbors {
			asn := n.ASN
			if asn == 0 {
				asn = s.cfg.ASN
			}
			st.Sessions = append(st.Sessions, Session{Neighbor: n.Addr, ASN: asn, State: "idle"})
		}
	}
	slices.SortFunc(st.Sessions, func(x, y Session) int { return x.Neighbor.Compare(y.Neighbor) })
	return st
}
