package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"reflect"
	"time"

	"github.com/vxland/vxland/config"
	"github.com/vxland/vxland/control"
	"github.com/vxland/vxland/dataplane"
	"github.com/vxland/vxland/evpn"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/link"
	"github.com/vxland/vxland/overlay"
	"github.com/vxland/vxland/stats"
)

// evpnVNI is a VNI served by EVPN, as start prepared it.
type evpnVNI struct {
	local     *overlay.Local
	installer *overlay.Installer
	h         *link.Handle // the TAP's namespace
	tap       string
}

// evpnRun is the daemon's BGP EVPN control plane.
type evpnRun struct {
	speaker *evpn.Speaker
	vnis    []evpnVNI
	cancel  context.CancelFunc
	done    chan struct{} // closed when the speaker has stopped (sessions closed)
	stop    chan struct{} // ends the TAP address watches
}

// joinEVPN records a VNI served by EVPN once its TAP is up: its installer
// owns what EVPN installs in its forwarding and neighbour tables. It returns the VNI's counters: the
// segment's, then the installer's and the local view's.
func (d *daemon) joinEVPN(s *vniSetup, seg *dataplane.Segment) func() []stats.Value {
	v := s.v
	in := overlay.NewInstaller(overlay.InstallerConfig{
		Owner: evpn.Owner, VNI: v.ID, Table: s.table,
		Self: fdb.MAC(s.mac), SelfAddr: v.Local.Unmap(),
		Neighbours: seg.Neigh(), // what the proxy and rsc answer from
	})
	d.evpnVNIs = append(d.evpnVNIs, evpnVNI{local: s.local, installer: in, h: s.h, tap: seg.TAPName()})
	d.vniStats[seg] = func() []stats.Value {
		return append(append(seg.Counters(), in.Stats()...), s.local.Stats()...)
	}
	return func() []stats.Value {
		return append(append(seg.Stats(), in.Stats()...), s.local.Stats()...)
	}
}

// startEVPN starts the BGP speaker for the VNIs served by EVPN and follows
// their TAPs' addresses. Sessions are retried for ever; only a bad
// configuration or a port that cannot be bound fails here.
func (d *daemon) startEVPN(cfg *config.Config) error {
	b := cfg.BGP
	if !b.Enabled() {
		return nil
	}
	sc := evpn.Config{
		ASN: b.ASN, RouterID: cfg.EffectiveRouterID(), Port: b.Port, HoldTime: b.HoldTime, Logf: log.Printf,
	}
	for _, n := range b.Neighbors {
		sc.Neighbors = append(sc.Neighbors, evpn.Neighbor{Addr: n.Addr, ASN: n.ASN, Password: b.Password})
	}
	sp, err := evpn.New(sc)
	if err != nil {
		return err
	}
	er := &evpnRun{speaker: sp, vnis: d.evpnVNIs, done: make(chan struct{}), stop: make(chan struct{})}
	for _, ev := range er.vnis {
		if err := sp.Add(evpn.VNI{Local: ev.local, Installer: ev.installer}); err != nil {
			return err
		}
	}
	for _, ev := range er.vnis {
		tap := ev.tap
		err := ev.h.WatchAddrs(tap, er.stop, ev.local.SetAddrs, func(err error) {
			log.Printf("evpn: addresses of %s: %v", tap, err)
		})
		if err != nil {
			close(er.stop)
			return fmt.Errorf("evpn: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	er.cancel = cancel
	started := make(chan error, 1)
	go func() {
		defer close(er.done)
		started <- sp.Run(ctx)
	}()
	// Run returns at once only when the server cannot start.
	select {
	case err := <-started:
		cancel()
		close(er.stop)
		if err == nil {
			err = errors.New("evpn: speaker stopped")
		}
		return err
	case <-sp.Started():
	}
	d.evpn.Store(er)
	return nil
}

// close stops the speaker: it closes its sessions, so the peers withdraw
// this node's routes at once.
func (er *evpnRun) close() {
	if er == nil {
		return
	}
	er.cancel()
	<-er.done
	close(er.stop)
}

// checkEVPNReload refuses a reload that would change [bgp] or any VNI
// served by EVPN: the speaker is set up at start.
func (d *daemon) checkEVPNReload(cfg *config.Config) error {
	if !reflect.DeepEqual(cfg.BGP, d.running.BGP) {
		return errors.New("[bgp] changed: restart vxland to change it")
	}
	return d.checkPlaneReload(cfg, "EVPN", (*config.Config).InEVPN)
}

// bgpShow answers `vxlanctl bgp show`.
func (d *daemon) bgpShow() *control.BGPStatus {
	er := d.evpn.Load()
	if er == nil {
		return &control.BGPStatus{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := er.speaker.Status(ctx)
	out := &control.BGPStatus{ASN: st.ASN, RouterID: st.RouterID, Port: st.Port, Stats: er.speaker.Stats()}
	for _, s := range st.Sessions {
		out.Sessions = append(out.Sessions, control.BGPSession{
			Neighbor: s.Neighbor, ASN: s.ASN, State: s.State,
			Received: s.Received, Accepted: s.Accepted, Advertised: s.Advertised,
		})
	}
	devs := map[uint32]string{}
	for _, ev := range er.vnis {
		devs[ev.local.VNI()] = ev.tap
		out.Stats = append(out.Stats, ev.installer.Stats()...)
		out.Stats = append(out.Stats, ev.local.Stats()...)
	}
	for _, v := range st.VNIs {
		bv := control.BGPVNI{VNI: v.VNI, Dev: devs[v.VNI], RD: v.RD, RT: v.RT, RoutesOut: v.RoutesOut, RoutesIn: v.RoutesIn}
		for _, p := range v.Peers {
			bv.VTEPs = append(bv.VTEPs, wireMember(p))
		}
		out.VNIs = append(out.VNIs, bv)
	}
	return out
}
