package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"reflect"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vxland/vxland/cluster"
	"github.com/vxland/vxland/config"
	"github.com/vxland/vxland/control"
	"github.com/vxland/vxland/dataplane"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/internal/etcdconn"
	"github.com/vxland/vxland/link"
	"github.com/vxland/vxland/overlay"
	"github.com/vxland/vxland/stats"
)

// clusterVNI is a VNI that joins the cluster, as start prepared it.
type clusterVNI struct {
	local     *overlay.Local
	installer *overlay.Installer
	h         *link.Handle // the TAP's namespace
	tap       string
}

// clusterRun is the daemon's etcd control plane.
type clusterRun struct {
	agent  *cluster.Agent
	cli    *clientv3.Client
	vnis   []clusterVNI
	cancel context.CancelFunc
	done   chan struct{} // closed when the agent has stopped (lease revoked)
	stop   chan struct{} // ends the TAP address watches
}

// newLocal is the local view of a VNI that joins the cluster: its VTEP is
// the VNI's local address and port and the TAP's MAC; its endpoints age
// like learned entries.
func newLocal(v *config.VNI, mac fdb.MAC) *overlay.Local {
	return overlay.NewLocal(overlay.LocalConfig{
		VNI:    v.ID,
		VTEP:   overlay.VTEP{Addr: v.Local.Unmap(), Port: v.Port, MAC: mac},
		Ageing: v.Ageing,
	})
}

// joinCluster records a VNI that joins the cluster once its TAP is up: its
// installer owns what the cluster installs in its table, and with
// members_only its segment accepts nobody until etcd has named the members.
// It returns the VNI's counters: the segment's, then the installer's and
// the local view's.
func (d *daemon) joinCluster(s *vniSetup, seg *dataplane.Segment) func() []stats.Value {
	v := s.v
	ic := overlay.InstallerConfig{
		Owner: cluster.Owner, VNI: v.ID, Table: s.table,
		Self: fdb.MAC(s.mac), SelfAddr: v.Local.Unmap(),
		Neighbours: seg.Neigh(), // what the proxy and rsc answer from
	}
	if d.running.Cluster.MembersOnly {
		seg.SetMembers([]netip.Addr{})
		ic.Members = seg
	}
	in := overlay.NewInstaller(ic)
	d.clusterVNIs = append(d.clusterVNIs, clusterVNI{local: s.local, installer: in, h: s.h, tap: seg.TAPName()})
	d.vniStats[seg] = func() []stats.Value {
		return append(append(seg.Counters(), in.Stats()...), s.local.Stats()...)
	}
	return func() []stats.Value {
		return append(append(seg.Stats(), in.Stats()...), s.local.Stats()...)
	}
}

// startCluster starts the etcd agent for the VNIs that joined, and follows
// their TAPs' addresses. The agent retries etcd for ever; only a bad
// configuration (TLS files) fails here.
func (d *daemon) startCluster(cfg *config.Config) error {
	if len(d.clusterVNIs) == 0 {
		return nil
	}
	e := &cfg.Etcd
	cli, err := etcdconn.New(*e)
	if err != nil {
		return err
	}
	a := cluster.New(cli, cluster.Config{Prefix: e.Prefix, LeaseTTL: cfg.Cluster.LeaseTTL, Logf: log.Printf})
	cr := &clusterRun{agent: a, cli: cli, vnis: d.clusterVNIs, done: make(chan struct{}), stop: make(chan struct{})}
	for _, cv := range cr.vnis {
		if err := a.Add(cluster.VNI{Local: cv.local, Installer: cv.installer}); err != nil {
			cli.Close()
			return err
		}
	}
	for _, cv := range cr.vnis {
		tap := cv.tap
		err := cv.h.WatchAddrs(tap, cr.stop, cv.local.SetAddrs, func(err error) {
			log.Printf("cluster: addresses of %s: %v", tap, err)
		})
		if err != nil {
			close(cr.stop)
			cli.Close()
			return fmt.Errorf("cluster: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cr.cancel = cancel
	go func() {
		defer close(cr.done)
		a.Run(ctx)
	}()
	d.cluster.Store(cr)
	log.Printf("cluster: etcd %v, prefix %s, lease ttl %v, %d VNI(s)", e.Endpoints, e.Prefix, cfg.Cluster.LeaseTTL, len(cr.vnis))
	return nil
}

// clusterShow answers `vxlanctl cluster show`.
func (d *daemon) clusterShow() *control.ClusterStatus {
	cr := d.cluster.Load()
	if cr == nil {
		return &control.ClusterStatus{State: "not started"}
	}
	st := cr.agent.Status()
	out := &control.ClusterStatus{
		Endpoints: st.Endpoints, Prefix: st.Prefix, State: st.State, LastError: st.LastError,
		Stats: cr.agent.Stats(),
	}
	if st.Lease != 0 {
		out.Lease = fmt.Sprintf("%x", st.Lease)
	}
	devs := map[uint32]string{}
	for _, cv := range cr.vnis {
		devs[cv.local.VNI()] = cv.tap
	}
	for _, v := range st.VNIs {
		cv := control.ClusterVNI{VNI: v.VNI, Dev: devs[v.VNI], Revision: v.Revision, Published: v.Published, Local: wireMember(v.Local)}
		for _, m := range v.Members {
			cv.Members = append(cv.Members, wireMember(m))
		}
		out.VNIs = append(out.VNIs, cv)
	}
	return out
}

func wireMember(p overlay.Peer) control.ClusterMember {
	m := control.ClusterMember{Addr: p.VTEP.Addr, Port: p.VTEP.Port, MAC: p.VTEP.MAC, Addrs: p.VTEP.Addrs}
	for _, e := range p.Endpoints {
		m.Endpoints = append(m.Endpoints, control.ClusterEndpoint{MAC: e.MAC, IPs: e.IPs})
	}
	return m
}

// close leaves the cluster: the agent revokes its lease, so the other
// members drop this node at once.
func (cr *clusterRun) close() {
	if cr == nil {
		return
	}
	cr.cancel()
	<-cr.done
	close(cr.stop)
	cr.cli.Close()
}

// checkClusterReload refuses a reload that would change the cluster or any
// VNI in it: membership is set at start.
func (d *daemon) checkClusterReload(cfg *config.Config) error {
	if !reflect.DeepEqual(cfg.Cluster, d.running.Cluster) || !reflect.DeepEqual(cfg.Etcd, d.running.Etcd) {
		return errors.New("[etcd] or [cluster] changed: restart vxland to change cluster mode")
	}
	return d.checkPlaneReload(cfg, "the cluster", (*config.Config).InCluster)
}

// checkPlaneReload refuses a reload that would change which VNIs a control
// plane (named plane in messages) serves, or any of them: a control plane
// takes its VNIs at start.
func (d *daemon) checkPlaneReload(cfg *config.Config, plane string, serves func(*config.Config, *config.VNI) bool) error {
	old := map[vniIdentity]config.VNI{}
	for i := range d.running.VNIs {
		if v := &d.running.VNIs[i]; serves(d.running, v) {
			old[identityOf(v)] = *v
		}
	}
	for i := range cfg.VNIs {
		v := &cfg.VNIs[i]
		o, was := old[identityOf(v)]
		delete(old, identityOf(v))
		switch {
		case serves(cfg, v) && !was:
			return fmt.Errorf("%s would join %s: restart vxland to change it", vniName(v), plane)
		case was && !reflect.DeepEqual(o, *v):
			return fmt.Errorf("%s is served by %s: restart vxland to change it", vniName(v), plane)
		}
	}
	for _, v := range old {
		return fmt.Errorf("%s would leave %s: restart vxland to change it", vniName(&v), plane)
	}
	return nil
}
