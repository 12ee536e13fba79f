// Command vxland is a userspace VXLAN endpoint: it creates a TAP device and
// forwards its frames over UDP in the VXLAN encapsulation, interoperating
// with the Linux kernel's vxlan driver. Run `vxland --help` for usage.
package main

import (
	"crypto/sha256"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vxland/vxland/control"
	"github.com/vxland/vxland/dataplane"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/link"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("vxland: ")
	o, err := parseFlags(os.Args[1:], os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vxland: %v\nRun 'vxland --help' for usage.\n", err)
		os.Exit(2)
	}
	if o == nil { // --help
		return
	}
	os.Exit(run(o))
}

// run starts the daemon and serves until a signal. It returns the exit
// status.
func run(o *options) int {
	d, err := start(o)
	if err != nil {
		log.Print(err)
		return 2
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.ep.Run() }()
	select {
	case s := <-sigs:
		log.Printf("%v: shutting down", s)
		d.close()
		<-done
		return 0
	case err := <-done:
		d.close()
		if err != nil {
			log.Print(err)
			return 1
		}
		return 0
	}
}

// daemon is a running vxland.
type daemon struct {
	ep  *dataplane.Endpoint
	ctl *control.Server
}

func (d *daemon) close() {
	if d.ctl != nil {
		d.ctl.Close()
	}
	d.ep.Close()
}

// start builds the forwarding table, opens the TAP and sockets, configures
// the TAP and opens the control socket.
func start(o *options) (*daemon, error) {
	table := fdb.New(fdb.Options{Ageing: o.ageing, MaxAddress: o.maxaddress})
	if o.ageing == 0 {
		// ip-link: ageing 0 means entries never expire.
		table = fdb.New(fdb.Options{Ageing: -1, MaxAddress: o.maxaddress})
	}
	for _, r := range o.remotes {
		if err := table.Append(fdb.Zero, fdb.Dest{IP: r, Port: o.dstport, VNI: o.vni}, fdb.Permanent); err != nil {
			return nil, fmt.Errorf("--remote %s: %w", r, err)
		}
	}
	if o.dev != "" && !link.Exists(o.dev) {
		return nil, fmt.Errorf("--dev %s: no such device", o.dev)
	}
	mac := o.mac
	if mac == nil {
		mac = stableMAC(o.tap, o.vni)
	}
	mtu := o.mtu
	if mtu == 0 {
		mtu = defaultMTU(o)
	}
	ep, err := dataplane.New(dataplane.Config{
		Local:      o.local,
		V6:         o.v6,
		Port:       o.dstport,
		Dev:        o.dev,
		SrcPortMin: o.srcMin,
		SrcPortMax: o.srcMax,
		Offload:    o.offload,
		Segments: []dataplane.SegmentConfig{{
			VNI:        o.vni,
			TAP:        o.tap,
			MAC:        [6]byte(mac),
			Table:      table,
			Learning:   o.learning,
			TTL:        o.ttl,
			TOS:        o.tos,
			TOSInherit: o.tosInherit,
			Offload:    o.offload,
			MTU:        mtu,
		}},
		Logf: log.Printf,
	})
	if err != nil {
		return nil, err
	}
	d := &daemon{ep: ep}
	seg := ep.Segments()[0]
	if err := link.Configure(seg.TAPName(), link.Settings{MTU: mtu, MAC: mac, Addrs: o.addrs, Up: o.up}); err != nil {
		d.close()
		return nil, err
	}
	d.ctl, err = control.Listen(o.control, &control.Device{
		Name:  seg.TAPName(),
		VNI:   o.vni,
		Port:  o.dstport,
		FDB:   table,
		Stats: seg.Stats,
	})
	if err != nil {
		d.close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	go func() {
		if err := d.ctl.Serve(); err != nil {
			log.Printf("control socket: %v", err)
		}
	}()
	remotes := "none (FDB entries only)"
	if len(o.remotes) > 0 {
		var rs []string
		for _, r := range o.remotes {
			rs = append(rs, r.String())
		}
		remotes = strings.Join(rs, ", ")
	}
	log.Printf("vni %d on %s (mtu %d, mac %s), udp port %d, remotes %s, control %s",
		o.vni, seg.TAPName(), mtu, mac, ep.Port(), remotes, o.control)
	return d, nil
}

// defaultMTU is the underlay MTU less the VXLAN overhead (50 bytes over
// IPv4, 70 over IPv6), as the kernel sizes a vxlan device; 1500 is assumed
// when the underlay cannot be found.
func defaultMTU(o *options) int {
	overhead := 50
	if o.v6 {
		overhead = 70
	}
	under := 0
	if o.dev != "" {
		under, _ = link.MTU(o.dev)
	} else if len(o.remotes) > 0 {
		under, _ = link.RouteMTU(o.remotes[0])
	}
	if under <= overhead+68 {
		under = 1500
	}
	return under - overhead
}

// stableMAC derives a locally administered unicast address from the
// machine identity, the TAP name and the VNI, so that a restarted daemon
// keeps its address and peers' ARP and FDB entries stay valid.
func stableMAC(tap string, vni uint32) net.HardwareAddr {
	id, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		host, _ := os.Hostname()
		id = []byte(host)
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("vxland\x00%s\x00%s\x00%d", strings.TrimSpace(string(id)), tap, vni)))
	m := net.HardwareAddr(sum[:6])
	m[0] = m[0]&0xfe | 0x02 // unicast, locally administered
	return m
}
