// Package cluster is vxland's etcd control plane: each node announces, per
// VNI, its VTEP and the endpoints behind its TAP under a lease, and
// installs what the other members announce through an overlay.Installer
// (flood list, owned forwarding entries, neighbour bindings). The key
// schema is in schema.go and docs/cluster.md.
//
// Faults: while etcd is unreachable the data plane keeps the last state it
// was given; nothing is flushed. The agent re-grants its lease and re-puts
// its keys when the lease is lost, resumes watches from the last revision
// seen, and re-lists (reconciling by content) after a compaction.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxland/vxland/overlay"
	"github.com/vxland/vxland/stats"
)

// Owner is the owner name of what the cluster installs (fdb show prints it).
const Owner = "cluster"

// DefaultLeaseTTL is the lease lifetime when none is configured: a node
// killed without revoking its lease disappears from the others this long
// after its last keepalive.
const DefaultLeaseTTL = 10 * time.Second

// Config configures an Agent.
type Config struct {
	// Prefix is the key prefix; "" means DefaultPrefix.
	Prefix string
	// LeaseTTL is the lease lifetime; 0 means DefaultLeaseTTL. etcd
	// rounds it to whole seconds (at least its minimum TTL).
	LeaseTTL time.Duration
	// Logf logs one line; nil discards.
	Logf func(format string, args ...any)
	// Backoff is the first retry delay after an etcd error (doubling up
	// to 2 s); 0 means 100 ms.
	Backoff time.Duration
	// PublishDelay gathers local changes for this long before one put;
	// 0 means 50 ms.
	PublishDelay time.Duration
}

// VNI is one segment the agent serves: what this node announces and where
// the others' state goes.
type VNI struct {
	Local     *overlay.Local
	Installer *overlay.Installer
}

// Agent announces this node and installs the others, for every VNI added.
type Agent struct {
	cfg    Config
	schema Schema
	cli    *clientv3.Client
	logf   func(string, ...any)

	mu    sync.Mutex
	vnis  map[uint32]*vniState
	lease clientv3.LeaseID // current lease, 0 when none
	state string           // connection state for Status
	err   string           // the last etcd error

	dirty chan struct{} // a local view changed

	refusedMu    sync.Mutex
	refusedAt    time.Time // when a refusal was last logged
	refusedQuiet int       // refusals not logged since

	counters                                                stats.Set
	watchEvents, relists, etcdErrors, invalid, puts, grants *stats.Counter
	applies, compactions, leasesLost                        *stats.Counter
}

// vniState is one VNI's published and installed state.
type vniState struct {
	vni       uint32
	local     *overlay.Local
	installer *overlay.Installer
	// guarded by Agent.mu:
	published []byte                      // the value last put, nil when none
	dirty     bool                        // the local view changed since
	members   map[netip.Addr]overlay.Peer // valid remote members by key address
	rev       int64                       // last etcd revision applied
	relist    chan struct{}               // the watch is to list again
}

// New returns an agent that keeps its state in etcd through cli (which the
// caller closes after Run has returned). Nothing is read or written until
// Run.
func New(cli *clientv3.Client, cfg Config) *Agent {
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.PublishDelay <= 0 {
		cfg.PublishDelay = 50 * time.Millisecond
	}
	a := &Agent{
		cfg: cfg, schema: NewSchema(cfg.Prefix), cli: cli, logf: cfg.Logf,
		vnis: map[uint32]*vniState{}, dirty: make(chan struct{}, 1), state: "connecting",
	}
	if a.logf == nil {
		a.logf = func(string, ...any) {}
	}
	n := a.counters.New
	a.watchEvents, a.relists, a.etcdErrors = n("cluster_watch_events"), n("cluster_relists"), n("cluster_etcd_errors")
	a.invalid, a.puts, a.grants = n("cluster_invalid_values"), n("cluster_puts"), n("cluster_lease_grants")
	a.applies, a.compactions, a.leasesLost = n("cluster_applies"), n("cluster_compactions"), n("cluster_leases_lost")
	return a
}

// Stats returns the agent's counters.
func (a *Agent) Stats() []stats.Value { return a.counters.Snapshot() }

// Schema returns the key schema in use.
func (a *Agent) Schema() Schema { return a.schema }

// Add serves a VNI; call it before Run.
func (a *Agent) Add(v VNI) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	id := v.Local.VNI()
	if _, dup := a.vnis[id]; dup {
		return fmt.Errorf("cluster: vni %d added twice", id)
	}
	a.vnis[id] = &vniState{vni: id, local: v.Local, installer: v.Installer, dirty: true,
		members: map[netip.Addr]overlay.Peer{}, relist: make(chan struct{}, 1)}
	return nil
}

// Run announces and watches until ctx is done, then revokes the lease (so
// that the other members drop this node at once) and returns. etcd errors
// never end it: it retries with backoff.
func (a *Agent) Run(ctx context.Context) {
	var wg sync.WaitGroup
	a.mu.Lock()
	vs := slices.Collect(maps.Values(a.vnis))
	a.mu.Unlock()
	for _, v := range vs {
		wg.Add(2)
		go func() { defer wg.Done(); a.watchVNI(ctx, v) }()
		go func() { defer wg.Done(); a.followLocal(ctx, v) }()
	}
	a.publish(ctx)
	wg.Wait()
}

// followLocal ages v's local endpoints once a second and marks v dirty
// each time its local view changes.
func (a *Agent) followLocal(ctx context.Context, v *vniState) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	v.local.Tick() // start the coarse clock the endpoints' ages are read from
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			v.local.Tick()
		case <-v.local.Changed():
			a.mu.Lock()
			v.dirty = true
			a.mu.Unlock()
			select {
			case a.dirty <- struct{}{}:
			default:
			}
		}
	}
}

// setState records the connection state; a change is logged once (the
// first error of an outage, the reconnection).
func (a *Agent) setState(state string, err error) {
	a.mu.Lock()
	old := a.state
	a.state = state
	if err != nil {
		a.err = err.Error()
	}
	a.mu.Unlock()
	switch {
	case state == old:
	case state == "disconnected":
		a.logf("cluster: etcd unreachable (%v); forwarding goes on with the last state, retrying", err)
	case old == "disconnected":
		a.logf("cluster: etcd reachable again")
	}
}

func (a *Agent) failed(what string, err error) {
	a.etcdErrors.Inc()
	a.setState("disconnected", fmt.Errorf("%s: %w", what, err))
}

// backoff waits d (or until ctx is done) and returns the next delay.
func (a *Agent) backoff(ctx context.Context, d time.Duration) time.Duration {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	return min(2*d, 2*time.Second)
}

// publish keeps a lease and this node's member keys under it: grant, put
// every VNI, keep alive; a lost lease is granted anew and every key put
// again; a local change is put under the current lease.
func (a *Agent) publish(ctx context.Context) {
	delay := a.cfg.Backoff
	for ctx.Err() == nil {
		lease, err := a.cli.Grant(ctx, int64(max(1, a.cfg.LeaseTTL/time.Second)))
		if err != nil {
			if ctx.Err() == nil {
				a.failed("grant lease", err)
				delay = a.backoff(ctx, delay)
			}
			continue
		}
		a.grants.Inc()
		kctx, kcancel := context.WithCancel(ctx)
		ka, err := a.cli.KeepAlive(kctx, lease.ID)
		if err != nil {
			kcancel()
			a.failed("keep lease alive", err)
			delay = a.backoff(ctx, delay)
			continue
		}
		a.mu.Lock()
		first := a.lease == 0
		a.lease = lease.ID
		for _, v := range a.vnis {
			v.dirty, v.published = true, nil
			if !first {
				select {
				case v.relist <- struct{}{}:
				default:
				}
			}
		}
		a.mu.Unlock()
		if first {
			a.logf("cluster: joined with lease %x (ttl %ds)", int64(lease.ID), lease.TTL)
		} else {
			a.logf("cluster: re-registered with lease %x", int64(lease.ID))
		}
		delay = a.cfg.Backoff
		a.keep(ctx, lease.ID, ka)
		kcancel()
		if ctx.Err() != nil {
			a.revoke(lease.ID)
			return
		}
		a.leasesLost.Inc()
		a.logf("cluster: lease %x lost; granting a new one", int64(lease.ID))
	}
}

// keep puts dirty VNIs and drains the keepalive channel until it closes
// (the lease expired or was revoked) or ctx is done.
func (a *Agent) keep(ctx context.Context, lease clientv3.LeaseID, ka <-chan *clientv3.LeaseKeepAliveResponse) {
	retry := time.NewTimer(0) // put at once
	defer retry.Stop()
	delay := a.cfg.Backoff
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ka:
			if !ok {
				return
			}
			a.setState("connected", nil)
		case <-a.dirty:
			retry.Reset(a.cfg.PublishDelay)
		case <-retry.C:
			if err := a.putDirty(ctx, lease); err != nil {
				if ctx.Err() != nil {
					return
				}
				a.failed("put", err)
				retry.Reset(delay)
				delay = min(2*delay, 2*time.Second)
				continue
			}
			delay = a.cfg.Backoff
		}
	}
}

// putDirty puts the member value of every VNI whose local view changed,
// under lease. A value equal to the one last put is not written again.
func (a *Agent) putDirty(ctx context.Context, lease clientv3.LeaseID) error {
	a.mu.Lock()
	var todo []*vniState
	for _, v := range a.vnis {
		if v.dirty {
			todo = append(todo, v)
		}
	}
	a.mu.Unlock()
	for _, v := range todo {
		vtep, eps := v.local.Snapshot()
		val, err := EncodeMember(vtep, eps)
		if err != nil {
			return err
		}
		a.mu.Lock()
		same := slices.Equal(val, v.published)
		a.mu.Unlock()
		if !same {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err = a.cli.Put(pctx, a.schema.MemberKey(v.vni, vtep.Addr), string(val), clientv3.WithLease(lease))
			cancel()
			if err != nil {
				return fmt.Errorf("vni %d: %w", v.vni, err)
			}
			a.puts.Inc()
		}
		a.mu.Lock()
		v.published, v.dirty = val, false
		a.mu.Unlock()
		a.setState("connected", nil)
	}
	return nil
}

// revoke gives the lease back on shutdown, so that the keys go at once.
func (a *Agent) revoke(lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := a.cli.Revoke(ctx, lease); err != nil {
		a.logf("cluster: revoke lease %x: %v (the others drop this node when it expires)", int64(lease), err)
		return
	}
	a.logf("cluster: left (lease %x revoked)", int64(lease))
}

// watchVNI lists the members of v, installs them and follows changes:
// after a broken watch it resumes from the last revision seen; after a
// compaction (that revision is gone) it lists again and reconciles by
// content, so deletes missed meanwhile are applied too.
func (a *Agent) watchVNI(ctx context.Context, v *vniState) {
	a.watchFrom(ctx, v, 0)
}

// watchFrom is watchVNI resuming after revision rev; 0 lists first.
func (a *Agent) watchFrom(ctx context.Context, v *vniState, rev int64) {
	prefix := a.schema.VNIPrefix(v.vni)
	delay := a.cfg.Backoff
	for ctx.Err() == nil {
		if rev == 0 {
			var err error
			if rev, err = a.list(ctx, v, prefix); err != nil {
				if ctx.Err() == nil {
					a.failed(fmt.Sprintf("vni %d: list", v.vni), err)
					delay = a.backoff(ctx, delay)
				}
				rev = 0
				continue
			}
			delay = a.cfg.Backoff
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := a.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	watching:
		for {
			var wr clientv3.WatchResponse
			var open bool
			select {
			case wr, open = <-wch:
			case <-v.relist:
				// A new lease: etcd may have lost its data, and its
				// revisions restarted below the one this watch waits for.
				a.logf("cluster: vni %d: listing again after re-registering", v.vni)
				rev = 0
			}
			if !open || rev == 0 {
				break watching
			}
			if wr.CompactRevision != 0 || errors.Is(wr.Err(), rpctypes.ErrCompacted) {
				a.compactions.Inc()
				a.logf("cluster: vni %d: revision %d compacted away; listing again", v.vni, rev+1)
				rev = 0
				break watching
			}
			if err := wr.Err(); err != nil {
				a.failed(fmt.Sprintf("vni %d: watch", v.vni), err)
				break watching
			}
			if len(wr.Events) == 0 {
				continue
			}
			a.mu.Lock()
			for _, ev := range wr.Events {
				a.watchEvents.Inc()
				a.event(v, ev)
			}
			a.mu.Unlock()
			rev = wr.Header.Revision
			a.install(v, rev)
			delay = a.cfg.Backoff
		}
		cancel()
		if ctx.Err() == nil && rev != 0 {
			delay = a.backoff(ctx, delay)
		}
	}
}

// list reads every member of v and installs them; it returns the revision
// read.
func (a *Agent) list(ctx context.Context, v *vniState, prefix string) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := a.cli.Get(lctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	a.relists.Inc()
	members := map[netip.Addr]overlay.Peer{}
	for _, kv := range resp.Kvs {
		if p, ok := a.decode(v, kv); ok {
			members[p.VTEP.Addr] = p
		}
	}
	a.mu.Lock()
	a.diffLog(v, members)
	v.members = members
	a.mu.Unlock()
	a.install(v, resp.Header.Revision)
	a.setState("connected", nil)
	return resp.Header.Revision, nil
}

// event applies one watch event to v.members. The caller holds a.mu.
func (a *Agent) event(v *vniState, ev *clientv3.Event) {
	addr, err := a.schema.ParseMemberKey(v.vni, string(ev.Kv.Key))
	if err != nil {
		a.refused(v.vni, err)
		return
	}
	old, had := v.members[addr]
	if ev.Type == mvccpb.DELETE {
		if had {
			delete(v.members, addr)
			a.logf("cluster: vni %d: member %s left", v.vni, addr)
		}
		return
	}
	p, ok := a.decode(v, ev.Kv)
	switch {
	case !ok:
		delete(v.members, addr) // what it says now is unusable
	case !had:
		v.members[addr] = p
		a.logf("cluster: vni %d: member %s joined (mac %s)", v.vni, addr, p.VTEP.MAC)
	default:
		v.members[addr] = p
		if old.VTEP.MAC != p.VTEP.MAC {
			a.logf("cluster: vni %d: member %s changed its mac %s -> %s", v.vni, addr, old.VTEP.MAC, p.VTEP.MAC)
		}
	}
}

// refused counts and logs a key or value refused; the log says at most one
// a second, so that a writer flooding etcd with garbage cannot flood the
// log too.
func (a *Agent) refused(vni uint32, err error) {
	a.invalid.Inc()
	now := time.Now()
	a.refusedMu.Lock()
	quiet := now.Sub(a.refusedAt) < time.Second
	if quiet {
		a.refusedQuiet++
	} else {
		a.refusedAt = now
	}
	n := a.refusedQuiet
	if !quiet {
		a.refusedQuiet = 0
	}
	a.refusedMu.Unlock()
	if quiet {
		return
	}
	if n > 0 {
		a.logf("cluster: vni %d: refused: %v (and %d more not logged; see cluster_invalid_values)", vni, err, n)
		return
	}
	a.logf("cluster: vni %d: refused: %v", vni, err)
}

// decode validates one member key and value written by another node;
// refusals are counted and logged, never fatal.
func (a *Agent) decode(v *vniState, kv *mvccpb.KeyValue) (overlay.Peer, bool) {
	addr, err := a.schema.ParseMemberKey(v.vni, string(kv.Key))
	if err == nil {
		var p overlay.Peer
		if p, err = DecodeMember(addr, kv.Value); err == nil {
			return p, true
		}
	}
	a.refused(v.vni, err)
	return overlay.Peer{}, false
}

// diffLog logs joins and departures between v.members and next. The caller
// holds a.mu.
func (a *Agent) diffLog(v *vniState, next map[netip.Addr]overlay.Peer) {
	for addr, p := range next {
		if _, had := v.members[addr]; !had {
			a.logf("cluster: vni %d: member %s joined (mac %s)", v.vni, addr, p.VTEP.MAC)
		}
	}
	for addr := range v.members {
		if _, has := next[addr]; !has {
			a.logf("cluster: vni %d: member %s left", v.vni, addr)
		}
	}
}

// install hands v's members to its installer.
func (a *Agent) install(v *vniState, rev int64) {
	a.mu.Lock()
	peers := slices.Collect(maps.Values(v.members))
	v.rev = rev
	a.mu.Unlock()
	a.applies.Inc()
	if err := v.installer.Apply(peers); err != nil {
		a.logf("cluster: vni %d: %v", v.vni, err)
	}
}

// Status is what `vxlanctl cluster show` prints.
type Status struct {
	Endpoints []string
	Prefix    string
	State     string // "connecting", "connected", "disconnected"
	LastError string
	Lease     int64 // current lease ID, 0 when none
	VNIs      []VNIStatus
}

// VNIStatus is one VNI's part of Status.
type VNIStatus struct {
	VNI       uint32
	Local     overlay.Peer   // what this node announces
	Published bool           // the announcement is in etcd under the current lease
	Revision  int64          // last etcd revision applied
	Members   []overlay.Peer // remote members, by address
}

// Status returns the agent's state now.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{Endpoints: a.cli.Endpoints(), Prefix: a.schema.prefix, State: a.state, LastError: a.err, Lease: int64(a.lease)}
	for _, v := range a.vnis {
		vtep, eps := v.local.Snapshot()
		vs := VNIStatus{VNI: v.vni, Local: overlay.Peer{ID: vtep.Addr.String(), VTEP: vtep, Endpoints: eps},
			Published: v.published != nil && !v.dirty, Revision: v.rev}
		for addr, p := range v.members {
			if addr != vtep.Addr {
				vs.Members = append(vs.Members, p)
			}
		}
		slices.SortFunc(vs.Members, func(x, y overlay.Peer) int { return x.VTEP.Addr.Compare(y.VTEP.Addr) })
		st.VNIs = append(st.VNIs, vs)
	}
	slices.SortFunc(st.VNIs, func(x, y VNIStatus) int { return int(x.VNI) - int(y.VNI) })
	return st
}
