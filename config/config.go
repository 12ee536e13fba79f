// Package config is vxland's configuration model: the VXLAN segments (VNIs)
// one daemon serves, their validation, and the TOML file format that
// `vxland --config FILE` reads (docs/config.md).
//
// A Config lists VNIs. Each VNI is what one `ip link add ... type vxlan`
// device describes, plus the TAP it is served on: its own TAP device,
// network namespace, flood destinations (head-end replication to Remotes,
// or a multicast Group), forwarding database and learning settings. The
// command line form `vxland --vni 40 --remote ...` is the one-VNI
// shorthand of the same model.
//
// VNIs whose underlay settings agree on local address, destination port,
// device and address family share one UDP socket and are told apart by the
// VNI in the VXLAN header; Endpoints groups them so.
//
// Building a Config in code (as the flag parser does):
//
//	v := config.NewVNI(40)          // the defaults of a [[vni]] entry with only id = 40
//	v.Remotes = []netip.Addr{...}
//	c := &config.Config{Version: config.Version, VNIs: []config.VNI{v}}
//	c.FillDefaults()                // TAP "vx40", control socket path
//	if err := c.Validate(); err != nil { ... }
//
// Errors name where the problem is: the source (file name), the entry
// ("vni 40 (entry 2)", counting [[vni]] entries from 1) and the key, e.g.
//
//	config.toml: vni 40 (entry 2): remote and group exclude each other
//
// Every problem found is reported, one per line (errors.Join of *Error).
package config

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/vxland/vxland/control"
)

// Version is the configuration format version this package reads. A file
// states it as `version = 1`.
const Version = 1

// Defaults of a VNI; see NewVNI.
const (
	// DefaultPort is the IANA VXLAN port, the default dstport.
	DefaultPort = 4789
	// DefaultAgeing is the lifetime of learned forwarding entries.
	DefaultAgeing = 300 * time.Second
	// DefaultLearnRate bounds learning's table changes per second: far
	// above what real hosts need, low enough that a flood of random
	// source MACs cannot churn the table as fast as it is read.
	DefaultLearnRate = 10000
	// NetnsDir holds the named network namespaces (ip-netns(8)).
	NetnsDir = "/run/netns"
)

// MTU bounds: 0 means automatic; otherwise MinMTU to MaxMTU (the largest
// inner frame that fits a 64 KiB IP packet after 50 bytes of outer headers).
const (
	MinMTU = 68
	MaxMTU = 65535 - 50
)

// Config is a daemon's whole configuration: the VNIs it serves and the
// settings of the daemon itself.
type Config struct {
	// Version is the format version; Validate accepts only Version.
	Version int
	// Daemon holds the process-wide settings (the [daemon] table).
	Daemon Daemon
	// Etcd is the etcd connection of cluster and flannel modes.
	Etcd Etcd
	// Flannel is flannel mode's settings; with Flannel.Enable, VNIs is
	// empty until the daemon has read the flannel network configuration.
	Flannel Flannel
	// Cluster is cluster mode's settings (the [cluster] table); start
	// from NewCluster.
	Cluster Cluster
	// BGP is BGP EVPN's settings (the [bgp] table); start from NewBGP.
	BGP BGP
	// VNIs are the segments, in file order. Error messages count them
	// from 1 ("entry 1").
	VNIs []VNI
	// Source names where the configuration came from (the file name given
	// to Parse or Load); Validate's messages start with it. May be empty.
	Source string
}

// Etcd is how to reach the etcd cluster that cluster mode and flannel mode
// keep their state in (the [etcd] table).
type Etcd struct {
	// Endpoints are the client URLs ("http://192.0.2.254:2379"); none
	// means no etcd.
	Endpoints []string
	// Prefix is the key prefix; "" means the mode's default
	// (DefaultFlannelPrefix in flannel mode).
	Prefix string
	// CAFile, CertFile and KeyFile are PEM files for TLS: the CA that
	// signs the servers' certificates, and this client's certificate and
	// key. All empty means plain HTTP.
	CAFile, CertFile, KeyFile string
}

// DefaultFlannelPrefix is flanneld's default etcd prefix.
const DefaultFlannelPrefix = "/coreos.com/network"

// DefaultSubnetFile is where flannel mode writes subnet.env, as flanneld.
const DefaultSubnetFile = "/run/flannel/subnet.env"

// Flannel makes the daemon a node of a flannel network (the [flannel]
// table): the network configuration in etcd defines the one VNI served.
type Flannel struct {
	// Enable turns flannel mode on.
	Enable bool
	// PublicIP is the node's underlay address, written in its lease; the
	// zero Addr means the first IPv4 address of Iface (or of the device
	// of the default route).
	PublicIP netip.Addr
	// Iface is the underlay device; "" means the device of the default
	// route (or of PublicIP).
	Iface string
	// SubnetFile is where subnet.env is written.
	SubnetFile string
}

// Daemon is the process-wide part of a configuration: what is not per VNI.
type Daemon struct {
	// Metrics is the host:port to serve Prometheus metrics on at /metrics
	// ("127.0.0.1:9477", ":9477"); "" serves none.
	Metrics string
	// Queues is how many workers move frames each way (TAP queues and
	// receive sockets per endpoint); 0 means one per CPU.
	Queues int
	// Underlay is how VXLAN datagrams are sent: UnderlayUDP ("" too) or
	// UnderlayTAP.
	Underlay string
}

// The underlays Daemon.Underlay names.
const (
	// UnderlayUDP sends through UDP sockets (the default).
	UnderlayUDP = "udp"
	// UnderlayTAP sends unicast IPv4 through an underlay TAP the host
	// forwards from, TCP super-frames whole (experimental; Linux 6.17).
	UnderlayTAP = "tap"
)

// MaxQueues bounds Daemon.Queues (a TAP has at most 256 queues).
const MaxQueues = 256

// VNI is one VXLAN segment and the TAP device that serves it. Field names
// follow ip-link(8) type vxlan; the TOML key of each is in docs/config.md.
type VNI struct {
	// ID is the VXLAN network identifier, 0-16777215. It is unique per
	// (Local, Port) and underlay address family.
	ID uint32
	// TAP is the name of the TAP device (a valid interface name, at most
	// 15 bytes), unique per network namespace. FillDefaults sets "vx<ID>"
	// when empty.
	TAP string
	// Netns is the network namespace the TAP lives in: "" for the daemon's
	// own, a name under NetnsDir ("blue"), or an absolute path to a
	// namespace file ("/proc/1234/ns/net"). The UDP sockets always stay in
	// the daemon's namespace.
	Netns string
	// Remotes are the unicast flood destinations for broadcast, multicast
	// and unknown unicast frames (head-end replication): the all-zeros
	// forwarding entry. They exclude Group.
	Remotes []netip.Addr
	// Group is a multicast group (IPv4 224.0.0.0/4 or IPv6 ff00::/8) to
	// join on Dev and flood to; the zero Addr means none. It excludes
	// Remotes and requires Dev.
	Group netip.Addr
	// Local is the underlay address to bind and send from; the zero Addr
	// (or an unspecified address, which also states the family) lets
	// routing pick it.
	Local netip.Addr
	// Dev is the underlay device to bind to (and join Group on); "" for
	// none.
	Dev string
	// Port is the UDP destination port, also the port received on (dstport).
	Port uint16
	// SrcPortMin and SrcPortMax bound the outer UDP source ports,
	// [SrcPortMin, SrcPortMax). Both zero means the kernel's local port
	// range. VNIs sharing a socket (see Endpoints) must agree.
	SrcPortMin, SrcPortMax uint16
	// AllowRemote, when not empty, lists the only underlay sources whose
	// datagrams are received; datagrams from others are dropped before
	// they are read (rx_not_allowed). Prefixes are masked; a bare address
	// in a file or flag is a /32 or /128. The filter is the socket's: VNIs
	// sharing a socket (see Endpoints) must agree.
	AllowRemote []netip.Prefix
	// TTL of outer packets; 0 means automatic: 64 to unicast and 1 to
	// multicast destinations.
	TTL uint8
	// TTLInherit copies the inner IPv4 TTL or IPv6 hop limit to the outer
	// header (64 for other frames), as ip-link's "ttl inherit".
	TTLInherit bool
	// TOS of outer packets, or the inner DS field when TOSInherit (TOS is
	// then 0). ECN follows RFC 6040 either way.
	TOS        uint8
	TOSInherit bool
	// MTU of the TAP; 0 means automatic (underlay MTU - 50, or 1450).
	// Otherwise MinMTU to MaxMTU.
	MTU int
	// MAC is the TAP's Ethernet address; nil means a stable address derived
	// from the host, the TAP name and the VNI.
	MAC net.HardwareAddr
	// Addrs are the addresses (with prefix length) put on the TAP.
	Addrs []netip.Prefix
	// Up sets the TAP up once created.
	Up bool
	// Master is a Linux bridge, in the TAP's namespace, to enslave the TAP
	// to; "" for none.
	Master string
	// Learning learns remote MACs from received frames. In a VNI that
	// joins the cluster it defaults to false (FillDefaults) unless set.
	Learning bool
	// LearningSet records that Learning was given (by the learning key),
	// so that the cluster default does not override it.
	LearningSet bool
	// Ageing is the lifetime of learned forwarding entries; 0 means they
	// never expire.
	Ageing time.Duration
	// MaxAddress limits the forwarding database's size; 0 means no limit.
	MaxAddress int
	// LearnRate bounds the forwarding entries learning creates or
	// migrates per second; 0 means no bound.
	LearnRate int
	// Proxy answers ARP requests and IPv6 Neighbor Solicitations from the
	// TAP out of the neighbour table and floods none of them.
	Proxy bool
	// L2Miss raises an event for a unicast frame dropped for want of a
	// forwarding entry.
	L2Miss bool
	// L3Miss raises an event for an address the proxy or RSC finds no
	// neighbour entry for.
	L3Miss bool
	// RSC (route short-circuit) sends IP frames addressed to a router's
	// MAC to the neighbour of their destination address.
	RSC bool
	// Offload hands checksum state to the TAP in a virtio-net header
	// (instead of completing checksums in software).
	Offload bool
	// Control is the path of the control socket for vxlanctl.
	// FillDefaults sets control.SocketPath(TAP) when empty.
	Control string
}

// NewVNI returns a VNI with the given ID and every default a [[vni]] entry
// gets from an empty file: Port 4789, Learning, Ageing 300 s, Offload.
// TAP and Control stay empty for FillDefaults to derive.
func NewVNI(id uint32) VNI {
	return VNI{
		ID:        id,
		Port:      DefaultPort,
		Learning:  true,
		Ageing:    DefaultAgeing,
		LearnRate: DefaultLearnRate,
		Offload:   true,
	}
}

// DefaultTAP is the TAP name of a VNI that sets none: "vx" and the ID.
func DefaultTAP(id uint32) string {
	return fmt.Sprintf("vx%d", id)
}

// FillDefaults sets the defaults that derive from other fields, where they
// are empty: TAP to DefaultTAP(ID), then Control to
// control.SocketPath(TAP) (which reads $VXLAND_RUNDIR now). Parse and Load
// call it; call it before Validate when building a Config in code.
//
// In cluster mode it also fills in the cluster's defaults (prefix, lease
// TTL, learning off in the VNIs that join unless set).
func (c *Config) FillDefaults() {
	c.clusterDefaults()
	c.bgpDefaults()
	if c.Flannel.Enable {
		if c.Etcd.Prefix == "" {
			c.Etcd.Prefix = DefaultFlannelPrefix
		}
		if c.Flannel.SubnetFile == "" {
			c.Flannel.SubnetFile = DefaultSubnetFile
		}
	}
	for i := range c.VNIs {
		v := &c.VNIs[i]
		if v.TAP == "" {
			v.TAP = DefaultTAP(v.ID)
		}
		if v.Control == "" {
			v.Control = control.SocketPath(v.TAP)
		}
	}
}

// V6 reports whether the VNI's underlay is IPv6, from the first of Local,
// Group and Remotes that is set (Validate makes them agree). A VNI with none
// of them has an IPv4 underlay.
func (v *VNI) V6() bool {
	switch {
	case v.Local.IsValid():
		return v.Local.Is6()
	case v.Group.IsValid():
		return v.Group.Is6()
	case len(v.Remotes) > 0:
		return v.Remotes[0].Is6()
	}
	return false
}

// NetnsPath returns the file of the TAP's network namespace: "" for the
// daemon's own, NetnsDir/Netns for a name, the cleaned path otherwise.
func (v *VNI) NetnsPath() string {
	switch {
	case v.Netns == "":
		return ""
	case strings.Contains(v.Netns, "/"):
		return filepath.Clean(v.Netns)
	}
	return filepath.Join(NetnsDir, v.Netns)
}

// bindLocal is the address part of the VNI's endpoint: Local, with an
// unspecified address folded into the zero Addr (any address).
func (v *VNI) bindLocal() netip.Addr {
	if v.Local.IsUnspecified() {
		return netip.Addr{}
	}
	return v.Local
}

// EndpointKey describes one UDP endpoint (a receive socket and its
// transmit pool) and the VNIs it serves.
type EndpointKey struct {
	// Local is the address to bind; the zero Addr means any address. (An
	// endpoint with a multicast VNI must receive datagrams addressed to the
	// group, so binds to any address whatever Local says; the dataplane
	// does that.)
	Local netip.Addr
	// Port is the UDP port received on and sent to.
	Port uint16
	// Dev is the underlay device, "" for none.
	Dev string
	// V6 selects an IPv6 socket.
	V6 bool
	// SrcPortMin and SrcPortMax are the outer source port range of every
	// VNI here (Validate makes them agree); both zero means the kernel's
	// local port range.
	SrcPortMin, SrcPortMax uint16
	// Offload is the offload setting of every VNI here (Validate makes
	// them agree).
	Offload bool
	// AllowRemote is the source allowlist of every VNI here (Validate
	// makes them agree); empty allows every source.
	AllowRemote []netip.Prefix
	// VNIs are indices into Config.VNIs, in increasing order.
	VNIs []int
}

// endpointID is what VNIs sharing an endpoint have in common.
type endpointID struct {
	local netip.Addr
	port  uint16
	dev   string
	v6    bool
}

func (v *VNI) endpointID() endpointID {
	return endpointID{local: v.bindLocal(), port: v.Port, dev: v.Dev, v6: v.V6()}
}

// Endpoints groups the VNIs that share an underlay socket: the same Local
// (an unspecified address counts as none), Port, Dev and address family.
// The endpoints come in the order of their first VNI in c.VNIs. The result
// is meaningful for a Config that Validate accepted.
func (c *Config) Endpoints() []EndpointKey {
	var out []EndpointKey
	index := make(map[endpointID]int)
	for i := range c.VNIs {
		v := &c.VNIs[i]
		id := v.endpointID()
		j, ok := index[id]
		if !ok {
			j = len(out)
			index[id] = j
			out = append(out, EndpointKey{
				Local:       id.local,
				Port:        id.port,
				Dev:         id.dev,
				V6:          id.v6,
				SrcPortMin:  v.SrcPortMin,
				SrcPortMax:  v.SrcPortMax,
				Offload:     v.Offload,
				AllowRemote: append([]netip.Prefix(nil), v.AllowRemote...),
			})
		}
		out[j].VNIs = append(out[j].VNIs, i)
	}
	return out
}

// clone returns a copy of v that shares no slices with it.
func (v VNI) clone() VNI {
	v.Remotes = append([]netip.Addr(nil), v.Remotes...)
	v.Addrs = append([]netip.Prefix(nil), v.Addrs...)
	v.AllowRemote = append([]netip.Prefix(nil), v.AllowRemote...)
	if v.MAC != nil {
		v.MAC = append(net.HardwareAddr(nil), v.MAC...)
	}
	return v
}
