package main

import (
	"errors"
	"fmt"
	"log"
	"reflect"
	"slices"
	"strings"

	"github.com/vxland/vxland/config"
	"github.com/vxland/vxland/control"
	"github.com/vxland/vxland/dataplane"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/link"
)

// vniIdentity is what makes a VNI of a new configuration "the same" as a
// running one: its ID, its TAP and the namespace the TAP lives in.
type vniIdentity struct {
	id    uint32
	tap   string
	netns string
}

func identityOf(v *config.VNI) vniIdentity {
	return vniIdentity{v.ID, v.TAP, v.NetnsPath()}
}

// epIdentity is what an endpoint was opened with; a VNI joins a running
// endpoint only when its own endpoint key matches it whole.
type epIdentity struct {
	srcLo      uint16
	srcHi      uint16
	offload    bool
	v6         bool
	dev, local string
	port       uint16
}

func endpointIdentity(k config.EndpointKey) epIdentity {
	return epIdentity{
		srcLo: k.SrcPortMin, srcHi: k.SrcPortMax, offload: k.Offload, v6: k.V6,
		dev: k.Dev, local: k.Local.String(), port: k.Port,
	}
}

// vniRun is what serves one VNI.
type vniRun struct {
	v     config.VNI
	ep    *dataplane.Endpoint
	seg   *dataplane.Segment
	ctl   *control.Server
	table *fdb.Table
	netns *link.Handle  // the handle opened for --netns, or nil
	stop  chan struct{} // ends the follower of the host's neighbour entries
}

// sameButLive reports whether old and new differ only in the keys a
// running VNI takes in place: its flood list, the source allowlist of its
// socket and the settings the forwarding loops read per frame. Any other
// change re-creates the VNI (its TAP, control socket and learned entries).
func sameButLive(old, new config.VNI) bool {
	new.Remotes, new.TTL, new.TTLInherit, new.TOS, new.TOSInherit, new.Learning, new.LearnRate =
		old.Remotes, old.TTL, old.TTLInherit, old.TOS, old.TOSInherit, old.Learning, old.LearnRate
	new.AllowRemote = old.AllowRemote
	new.Proxy, new.L2Miss, new.L3Miss, new.RSC = old.Proxy, old.L2Miss, old.L3Miss, old.RSC
	return reflect.DeepEqual(old, new)
}

// runEndpoint runs ep's loops; an endpoint that stops by itself (not
// closed by a reload) ends the daemon through d.done. Call with d.mu held.
func (d *daemon) runEndpoint(ep *dataplane.Endpoint) {
	go func() {
		err := ep.Run()
		d.mu.Lock()
		retired := d.retired[ep]
		d.mu.Unlock()
		if retired {
			return
		}
		select {
		case d.done <- err:
		default:
		}
	}()
}

// reload re-reads the configuration file and applies the difference:
// VNIs removed, added, changed in place (remote, ttl, tos, learning) or
// re-created (any other key). VNIs whose settings did not change are not
// touched. A file that does not load or validate changes nothing.
func (d *daemon) reload() (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return "", &control.ReloadError{Err: errors.New("shutting down")}
	}
	if d.file == "" {
		return "", &control.ReloadError{Err: errors.New("nothing to reload: vxland was started with flags, not --config")}
	}
	if d.running.Flannel.Enable {
		return "", &control.ReloadError{Err: errors.New("nothing to reload: in flannel mode the configuration comes from etcd and follows it live")}
	}
	cfg, err := config.Load(d.file)
	if err != nil {
		return "", &control.ReloadError{Err: err}
	}
	cfg.Daemon = d.running.Daemon // the metrics server stays as started
	if err := d.checkClusterReload(cfg); err != nil {
		return "", &control.ReloadError{Err: err}
	}
	if err := d.checkEVPNReload(cfg); err != nil {
		return "", &control.ReloadError{Err: err}
	}

	next := map[vniIdentity]int{}
	for i := range cfg.VNIs {
		next[identityOf(&cfg.VNIs[i])] = i
	}
	var removed, added, changed, recreated []string
	var toAdd []int
	var errs []error
	// Removals first, so that re-created VNIs and new endpoints find their
	// ports and names free.
	for id, r := range d.vnis {
		i, keep := next[id]
		switch {
		case !keep:
			removed = append(removed, vniName(&r.v))
		case reflect.DeepEqual(r.v, cfg.VNIs[i]):
			continue
		case sameButLive(r.v, cfg.VNIs[i]):
			if err := d.retune(r, &cfg.VNIs[i]); err != nil {
				errs = append(errs, err)
			}
			changed = append(changed, vniName(&r.v))
			continue
		default:
			recreated = append(recreated, vniName(&r.v))
			toAdd = append(toAdd, i)
		}
		if err := d.removeVNI(id, r); err != nil {
			errs = append(errs, err)
		}
	}
	keys := cfg.Endpoints()
	keyOf := make(map[int]config.EndpointKey, len(cfg.VNIs))
	for _, k := range keys {
		for _, i := range k.VNIs {
			keyOf[i] = k
		}
	}
	for id, i := range next {
		if _, running := d.vnis[id]; !running && !slices.Contains(toAdd, i) {
			toAdd = append(toAdd, i)
			added = append(added, vniName(&cfg.VNIs[i]))
		}
	}
	for _, i := range toAdd {
		if err := d.addVNI(&cfg.VNIs[i], keyOf[i]); err != nil {
			errs = append(errs, err)
		}
	}
	d.running = cfg
	sum := summary(added, removed, changed, recreated)
	if len(errs) > 0 {
		return "", &control.ReloadError{Partial: true, Err: fmt.Errorf("%s; failed:\n%w", sum, errors.Join(errs...))}
	}
	log.Printf("reloaded %s: %s", d.file, sum)
	return sum, nil
}

func vniName(v *config.VNI) string { return fmt.Sprintf("vni %d (%s)", v.ID, v.TAP) }

func summary(added, removed, changed, recreated []string) string {
	var parts []string
	for _, p := range []struct {
		what string
		list []string
	}{{"added", added}, {"removed", removed}, {"changed in place", changed}, {"re-created", recreated}} {
		if len(p.list) > 0 {
			parts = append(parts, p.what+" "+strings.Join(p.list, ", "))
		}
	}
	if len(parts) == 0 {
		return "no changes"
	}
	return strings.Join(parts, "; ")
}

// retune applies the live keys of v to a running VNI: the flood list (the
// all-zeros entry; learned and static entries stay), its socket's source
// allowlist and the per-frame settings.
func (d *daemon) retune(r *vniRun, v *config.VNI) error {
	if !reflect.DeepEqual(r.v.Remotes, v.Remotes) {
		for _, old := range r.table.Defaults() {
			_ = r.table.Del(fdb.Zero, &old)
		}
		for _, ip := range v.Remotes {
			if err := r.table.Append(fdb.Zero, fdb.Dest{IP: ip, Port: v.Port, VNI: v.ID}, fdb.Permanent); err != nil {
				return fmt.Errorf("vni %d: remote %s: %w", v.ID, ip, err)
			}
		}
	}
	// Every VNI of the socket has the same list (Validate): set it for all.
	r.ep.SetAllowRemote(v.AllowRemote)
	r.seg.SetTuning(dataplane.Tuning{
		TTL: v.TTL, TTLInherit: v.TTLInherit, TOS: v.TOS, TOSInherit: v.TOSInherit, Learning: v.Learning,
		LearnRate: v.LearnRate,
		Proxy:     v.Proxy, L2Miss: v.L2Miss, L3Miss: v.L3Miss, RSC: v.RSC,
	})
	r.v = *v
	return nil
}

// removeVNI stops serving a VNI: its control socket goes (Detach: the
// reload may have come through it), its TAP closes, its endpoint closes
// when it served nothing else. Call with d.mu held.
func (d *daemon) removeVNI(id vniIdentity, r *vniRun) error {
	delete(d.vnis, id)
	close(r.stop)
	r.ctl.Detach()
	d.ctls = removeItem(d.ctls, r.ctl)
	left, err := r.ep.RemoveSegment(r.seg)
	if left == 0 {
		d.retired[r.ep] = true
		r.ep.Close()
		d.eps = removeItem(d.eps, r.ep)
		delete(d.epKeys, r.ep)
	}
	if r.netns != nil {
		d.handles = removeItem(d.handles, r.netns)
		r.netns.Close()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", vniName(&r.v), err)
	}
	return nil
}

func removeItem[T comparable](xs []T, x T) []T {
	out := xs[:0:0]
	for _, y := range xs {
		if y != x {
			out = append(out, y)
		}
	}
	return out
}

// addVNI opens a VNI: on the running endpoint that key describes, or on a
// new one. Call with d.mu held.
func (d *daemon) addVNI(v *config.VNI, key config.EndpointKey) error {
	if err := checkDev(d.own, key); err != nil {
		return fmt.Errorf("%s: %w", vniName(v), err)
	}
	s, err := d.prepare(v, d.own, key.V6)
	if err != nil {
		return err
	}
	sc := s.segmentConfig()
	want := endpointIdentity(key)
	var ep *dataplane.Endpoint
	for e, k := range d.epKeys {
		if k == want {
			ep = e
		}
	}
	var seg *dataplane.Segment
	if ep != nil {
		seg, err = ep.AddSegment(sc)
		if err == nil {
			ep.SetAllowRemote(key.AllowRemote) // the file's, for all its VNIs (Validate)
		}
	} else {
		dc := d.endpointConfig(key)
		dc.Segments = []dataplane.SegmentConfig{sc}
		ep, err = dataplane.New(dc)
		if err == nil {
			d.eps = append(d.eps, ep)
			d.epKeys[ep] = want
			seg = ep.Segments()[0]
			d.runEndpoint(ep)
		}
	}
	if err != nil {
		if s.netns != nil {
			d.handles = removeItem(d.handles, s.netns)
			s.netns.Close()
		}
		return fmt.Errorf("%s: %w", vniName(v), err)
	}
	if err := d.finish(s, ep, seg); err != nil {
		return fmt.Errorf("%s: %w", vniName(v), err)
	}
	return nil
}
