package flannel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxland/vxland/stats"
)

// Owner owns the forwarding entries flannel mode installs.
const Owner = "flannel"

// Lease timing, as flanneld's: a subnet lease lives 24 hours and is renewed
// an hour before it expires.
const (
	DefaultLeaseTTL    = 24 * time.Hour
	DefaultRenewMargin = time.Hour
)

// acquireRetries bounds the attempts to create a lease when other nodes
// take the chosen subnet first (flanneld's raceRetries).
const acquireRetries = 10

// candidates is how many free subnets one is picked from at random, as
// flanneld does, so nodes starting together rarely collide.
const candidates = 100

// Sink receives the other nodes' vxlan leases, the whole set each time it
// changes (sorted by subnet), and installs them. It is called from one
// goroutine at a time.
type Sink interface {
	SetLeases(leases []Lease) error
}

// Config is what a node needs to join a flannel network.
type Config struct {
	// Client is a connected etcd client.
	Client *clientv3.Client
	// Prefix is the etcd prefix (DefaultPrefix when empty).
	Prefix string
	// PublicIP is this node's underlay address, written in its lease.
	PublicIP netip.Addr
	// VtepMAC is the MAC of this node's TAP, written in its lease. It must
	// stay the same across restarts: peers' neighbour entries point at it.
	VtepMAC net.HardwareAddr
	// LeaseTTL and RenewMargin default to DefaultLeaseTTL and
	// DefaultRenewMargin.
	LeaseTTL, RenewMargin time.Duration
	// Network is the network configuration, when already read
	// (ReadNetwork); nil makes Join read it.
	Network *Network
	// Logf logs; nil logs nothing.
	Logf func(format string, args ...any)
}

// Agent is a node's membership of a flannel network: its lease and its
// view of the others'.
type Agent struct {
	cfg     Config
	network *Network
	own     Lease

	counters                                             stats.Set
	refused, otherBackend, relists, renewals, sinkErrors *stats.Counter
}

// Join reads the network configuration and acquires this node's subnet
// lease as flanneld does: the lease that already carries PublicIP is
// reused (so a restarted node keeps its subnet), otherwise a free subnet
// is picked and created only if still absent.
func Join(ctx context.Context, cfg Config) (*Agent, error) {
	cfg.Prefix = cmp.Or(cfg.Prefix, DefaultPrefix)
	cfg.LeaseTTL = cmp.Or(cfg.LeaseTTL, DefaultLeaseTTL)
	cfg.RenewMargin = cmp.Or(cfg.RenewMargin, DefaultRenewMargin)
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if !cfg.PublicIP.Is4() {
		return nil, fmt.Errorf("flannel: public IP %s: want an IPv4 address", cfg.PublicIP)
	}
	a := &Agent{cfg: cfg}
	n := a.counters.New
	a.refused = n("flannel_leases_refused")
	a.otherBackend = n("flannel_leases_other_backend")
	a.relists = n("flannel_relists")
	a.renewals = n("flannel_renewals")
	a.sinkErrors = n("flannel_install_errors")

	a.network = cfg.Network
	if a.network == nil {
		var err error
		if a.network, err = ReadNetwork(ctx, cfg.Client, cfg.Prefix); err != nil {
			return nil, err
		}
	}
	if err := a.acquire(ctx, netip.Prefix{}); err != nil {
		return nil, err
	}
	return a, nil
}

// ReadNetwork reads and checks the network configuration at
// <prefix>/config.
func ReadNetwork(ctx context.Context, cli *clientv3.Client, prefix string) (*Network, error) {
	key := path.Join(cmp.Or(prefix, DefaultPrefix), "config")
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("flannel: read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("flannel: no network configuration at %s (etcdctl put %s '{\"Network\":\"10.5.0.0/16\",\"Backend\":{\"Type\":\"vxlan\"}}')", key, key)
	}
	n, err := ParseNetwork(resp.Kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("flannel: %s: %w", key, err)
	}
	return n, nil
}

// Network returns the network configuration.
func (a *Agent) Network() *Network { return a.network }

// Lease returns this node's lease.
func (a *Agent) Lease() Lease { return a.own }

// Stats returns the agent's counters: flannel_leases_refused (leases of
// others that do not parse, ignored), flannel_leases_other_backend,
// flannel_relists (full re-reads after a lost watch), flannel_renewals,
// flannel_install_errors (the sink failed).
func (a *Agent) Stats() []stats.Value { return a.counters.Snapshot() }

// ownValue is this node's lease value.
func (a *Agent) ownValue(subnet netip.Prefix) (Lease, string, error) {
	l := Lease{Subnet: subnet, PublicIP: a.cfg.PublicIP, VNI: a.network.VNI, VtepMAC: a.cfg.VtepMAC}
	v, err := l.Value()
	return l, string(v), err
}

// acquire takes a lease: want when it is valid and free (after a lost
// lease), else the one carrying our PublicIP, else a free subnet.
func (a *Agent) acquire(ctx context.Context, want netip.Prefix) error {
	cli := a.cfg.Client
	for range acquireRetries {
		resp, err := cli.Get(ctx, path.Join(a.cfg.Prefix, "subnets")+"/", clientv3.WithPrefix())
		if err != nil {
			return fmt.Errorf("flannel: list leases: %w", err)
		}
		var taken []netip.Prefix
		for _, kv := range resp.Kvs {
			subnet, err := ParseSubnetKey(string(kv.Key))
			if err != nil {
				continue
			}
			taken = append(taken, subnet)
			if !want.IsValid() && publicIPOf(kv.Value) == a.cfg.PublicIP {
				if a.network.Contains(subnet) {
					a.cfg.Logf("flannel: reusing the lease of %s for %s", subnet, a.cfg.PublicIP)
					return a.put(ctx, subnet, false)
				}
				a.cfg.Logf("flannel: deleting lease %s of %s: not in network %s", subnet, a.cfg.PublicIP, a.network.Network)
				if _, err := cli.Delete(ctx, string(kv.Key)); err != nil {
					return fmt.Errorf("flannel: delete stale lease: %w", err)
				}
				taken = taken[:len(taken)-1]
			}
		}
		subnet := want
		if !subnet.IsValid() {
			var free []netip.Prefix
			for s := range a.network.subnets {
				if !slices.ContainsFunc(taken, s.Overlaps) {
					free = append(free, s)
				}
				if len(free) == candidates {
					break
				}
			}
			if len(free) == 0 {
				return fmt.Errorf("flannel: network %s has no free /%d subnet", a.network.Network, a.network.SubnetLen)
			}
			subnet = free[rand.IntN(len(free))]
		} else if slices.ContainsFunc(taken, subnet.Overlaps) {
			return fmt.Errorf("flannel: lease for %s lost: %w", subnet, errSubnetTaken)
		}
		err = a.put(ctx, subnet, true)
		if errors.Is(err, errTaken) {
			continue
		}
		if err == nil {
			a.cfg.Logf("flannel: leased %s for %s", subnet, a.cfg.PublicIP)
		}
		return err
	}
	return errors.New("flannel: could not acquire a subnet: other nodes kept taking the chosen ones")
}

var (
	// errTaken: another node created the chosen subnet's lease first.
	errTaken = errors.New("subnet taken")
	// errSubnetTaken: this node's subnet went to another node while its
	// lease was gone.
	errSubnetTaken = errors.New("the subnet is now another node's; restart vxland to lease a new one")
)

// put writes this node's lease for subnet under a new etcd lease of
// LeaseTTL: only if the key is absent when create, else unconditionally
// (a renewal), as flanneld does.
func (a *Agent) put(ctx context.Context, subnet netip.Prefix, create bool) error {
	cli := a.cfg.Client
	l, value, err := a.ownValue(subnet)
	if err != nil {
		return err
	}
	grant, err := cli.Grant(ctx, int64(a.cfg.LeaseTTL/time.Second))
	if err != nil {
		return fmt.Errorf("flannel: grant lease: %w", err)
	}
	key := SubnetKey(a.cfg.Prefix, subnet)
	put := clientv3.OpPut(key, value, clientv3.WithLease(grant.ID))
	if create {
		resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(key), "=", 0)).Then(put).Commit()
		if err == nil && !resp.Succeeded {
			err = errTaken
		}
		if err != nil {
			cli.Revoke(context.WithoutCancel(ctx), grant.ID)
			if errors.Is(err, errTaken) {
				return err
			}
			return fmt.Errorf("flannel: create lease %s: %w", key, err)
		}
	} else if _, err := cli.Do(ctx, put); err != nil {
		cli.Revoke(context.WithoutCancel(ctx), grant.ID)
		return fmt.Errorf("flannel: renew lease %s: %w", key, err)
	}
	a.own = l
	return nil
}

// publicIPOf reads only the PublicIP of a lease value, of any backend.
func publicIPOf(value []byte) netip.Addr {
	const field = `"PublicIP":"`
	s := string(value)
	i := strings.Index(s, field)
	if i < 0 {
		return netip.Addr{}
	}
	s = s[i+len(field):]
	j := strings.IndexByte(s, '"')
	if j < 0 {
		return netip.Addr{}
	}
	ip, _ := netip.ParseAddr(s[:j])
	return ip
}

// Run follows the other nodes' leases into sink and renews this node's
// lease, until ctx ends (nil) or the lease is lost for good (an error: its
// subnet went to another node). While etcd is unreachable the sink keeps
// the last state, so forwarding goes on; the watch resumes where it
// stopped, and re-reads everything when etcd compacted past it.
func (a *Agent) Run(ctx context.Context, sink Sink) error {
	renew := time.NewTimer(a.renewIn())
	defer renew.Stop()
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		}
		err := a.follow(ctx, sink, renew)
		if ctx.Err() != nil {
			return nil
		}
		var fatal *lostError
		if errors.As(err, &fatal) {
			return fatal.err
		}
		a.cfg.Logf("flannel: %v; re-reading the leases", err)
		a.relists.Inc()
		backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
	}
	return nil
}

// lostError ends Run: the node's lease is gone and cannot be taken back.
type lostError struct{ err error }

func (e *lostError) Error() string { return e.err.Error() }

func (a *Agent) renewIn() time.Duration {
	return max(a.cfg.LeaseTTL-a.cfg.RenewMargin, time.Second)
}

// follow lists the leases, hands them to sink, then watches from the
// listed revision until the watch fails.
func (a *Agent) follow(ctx context.Context, sink Sink, renew *time.Timer) error {
	cli := a.cfg.Client
	prefix := path.Join(a.cfg.Prefix, "subnets") + "/"
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	leases := map[string]Lease{}
	ownSeen := false
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		if key == SubnetKey(a.cfg.Prefix, a.own.Subnet) {
			ownSeen = true
			continue
		}
		if l, ok := a.parse(key, kv.Value); ok {
			leases[key] = l
		}
	}
	if !ownSeen {
		if err := a.reacquire(ctx); err != nil {
			return err
		}
	}
	a.install(sink, leases)

	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	watch := cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-renew.C:
			if err := a.put(ctx, a.own.Subnet, false); err != nil {
				a.cfg.Logf("%v; retrying", err)
				renew.Reset(5 * time.Second)
				continue
			}
			a.renewals.Inc()
			renew.Reset(a.renewIn())
		case wr, ok := <-watch:
			if !ok {
				return errors.New("watch closed")
			}
			if err := wr.Err(); err != nil {
				return fmt.Errorf("watch: %w", err)
			}
			changed := false
			for _, ev := range wr.Events {
				key := string(ev.Kv.Key)
				if key == SubnetKey(a.cfg.Prefix, a.own.Subnet) {
					if ev.Type == clientv3.EventTypeDelete {
						if err := a.reacquire(ctx); err != nil {
							return err
						}
					}
					continue
				}
				old, had := leases[key]
				delete(leases, key)
				if ev.Type == clientv3.EventTypePut {
					if l, ok := a.parse(key, ev.Kv.Value); ok {
						leases[key] = l
					}
				}
				now, has := leases[key]
				changed = changed || had != has || (had && !old.Equal(now))
			}
			if changed {
				a.install(sink, leases)
			}
		}
	}
}

// reacquire takes the node's subnet back after its lease went (expired
// during an etcd outage, or deleted by hand); the subnet must still be
// free.
func (a *Agent) reacquire(ctx context.Context) error {
	a.cfg.Logf("flannel: the lease for %s is gone; taking it again", a.own.Subnet)
	err := a.acquire(ctx, a.own.Subnet)
	if errors.Is(err, errSubnetTaken) {
		return &lostError{err}
	}
	return err
}

// parse reads another node's lease, counting and logging what is refused.
func (a *Agent) parse(key string, value []byte) (Lease, bool) {
	l, err := ParseLease(a.network, key, value)
	switch {
	case errors.Is(err, errNotVXLAN):
		a.otherBackend.Inc()
		return Lease{}, false
	case err != nil:
		a.refused.Inc()
		a.cfg.Logf("flannel: ignoring %s: %v", key, err)
		return Lease{}, false
	case l.PublicIP == a.cfg.PublicIP:
		a.refused.Inc()
		a.cfg.Logf("flannel: ignoring %s: it claims this node's public IP %s", key, l.PublicIP)
		return Lease{}, false
	}
	return l, true
}

// install hands the sorted set to sink.
func (a *Agent) install(sink Sink, leases map[string]Lease) {
	out := make([]Lease, 0, len(leases))
	for _, l := range leases {
		out = append(out, l)
	}
	slices.SortFunc(out, func(x, y Lease) int { return x.Subnet.Addr().Compare(y.Subnet.Addr()) })
	if err := sink.SetLeases(out); err != nil {
		a.sinkErrors.Inc()
		a.cfg.Logf("flannel: installing leases: %v", err)
	}
}
