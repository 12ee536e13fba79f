// Package flannel lets vxland be a node of a flannel cluster (etcd mode,
// vxlan backend) on a host without the kernel's vxlan driver. It speaks
// flannel's etcd schema exactly: it reads the network configuration at
// <prefix>/config, holds a subnet lease at <prefix>/subnets/<a.b.c.d>-<len>
// with the value flanneld writes, writes subnet.env as flanneld does, and
// follows the other nodes' leases. What it learns goes to a Sink; the
// daemon turns it into forwarding entries and the host's neighbour entries
// and routes (see Host). docs/flannel.md describes the schema.
package flannel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
)

// Defaults, as flanneld's.
const (
	// DefaultPrefix is flanneld's --etcd-prefix.
	DefaultPrefix = "/coreos.com/network"
	// DefaultSubnetFile is flanneld's --subnet-file.
	DefaultSubnetFile = "/run/flannel/subnet.env"
	// DefaultVNI is the vxlan backend's VNI when Backend.VNI is unset.
	DefaultVNI = 1
	// DefaultPort is the vxlan backend's port when Backend.Port is 0: the
	// Linux kernel's default, not IANA's 4789.
	DefaultPort = 8472
	// BackendType is the only backend this package joins.
	BackendType = "vxlan"
)

// Network is a flannel network configuration (<prefix>/config), checked
// and with flannel's defaults filled in.
type Network struct {
	// Network is the overlay's IPv4 range.
	Network netip.Prefix
	// SubnetLen is the prefix length of each node's subnet.
	SubnetLen int
	// SubnetMin and SubnetMax bound the subnets handed out (network
	// addresses, both included).
	SubnetMin, SubnetMax netip.Addr
	// VNI and Port are the vxlan backend's.
	VNI  uint32
	Port uint16
	// DirectRouting routes to nodes on a directly connected underlay
	// subnet without encapsulation, as flannel's host-gw does.
	DirectRouting bool
	// MTU is the backend's MTU setting; 0 means the underlay's MTU.
	MTU int
}

// networkJSON is <prefix>/config as flannel writes it: every key flannel
// knows, so that anything else is refused by name.
type networkJSON struct {
	EnableIPv4     *bool
	EnableIPv6     bool
	EnableNFTables bool
	Network        string
	IPv6Network    string
	SubnetMin      string
	SubnetMax      string
	IPv6SubnetMin  string
	IPv6SubnetMax  string
	SubnetLen      int
	IPv6SubnetLen  int
	Backend        json.RawMessage
}

// backendJSON is the vxlan backend's configuration.
type backendJSON struct {
	Type          string
	VNI           *int64
	Port          int64
	GBP           bool
	Learning      bool
	DirectRouting bool
	MTU           int
	MacPrefix     string
}

// ParseNetwork parses and checks a network configuration as flanneld does
// (pkg/subnet's ParseConfig and CheckNetworkConfig), filling in SubnetLen,
// SubnetMin, SubnetMax, VNI and Port. What vxland cannot serve (IPv6, a
// backend other than vxlan, GBP, learning) is refused with a message
// naming it.
func ParseNetwork(data []byte) (*Network, error) {
	var nj networkJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&nj); err != nil {
		return nil, fmt.Errorf("network config: %w", err)
	}
	if nj.EnableIPv4 != nil && !*nj.EnableIPv4 {
		return nil, errors.New("network config: EnableIPv4 false: vxland serves IPv4 flannel networks only")
	}
	if nj.EnableIPv6 || nj.IPv6Network != "" {
		return nil, errors.New("network config: IPv6 (EnableIPv6, IPv6Network) is not supported by vxland's flannel mode")
	}
	n := &Network{}
	p, err := netip.ParsePrefix(nj.Network)
	if err != nil || !p.Addr().Is4() {
		return nil, fmt.Errorf("network config: Network %q: want an IPv4 prefix like 10.5.0.0/16", nj.Network)
	}
	n.Network = p.Masked()
	n.SubnetLen = nj.SubnetLen
	switch {
	case n.SubnetLen > 30:
		return nil, fmt.Errorf("network config: SubnetLen %d: must be less than /31", n.SubnetLen)
	case n.SubnetLen > 0 && n.SubnetLen < n.Network.Bits()+2:
		return nil, fmt.Errorf("network config: SubnetLen %d: the network must hold at least four subnets", n.SubnetLen)
	case n.SubnetLen < 0:
		return nil, fmt.Errorf("network config: SubnetLen %d: negative", n.SubnetLen)
	case n.SubnetLen == 0 && n.Network.Bits() > 28:
		return nil, fmt.Errorf("network config: Network %s: too small; the smallest useful network is a /28", n.Network)
	case n.SubnetLen == 0 && n.Network.Bits() <= 22:
		n.SubnetLen = 24
	case n.SubnetLen == 0:
		n.SubnetLen = n.Network.Bits() + 2
	}
	size := uint32(1) << (32 - n.SubnetLen)
	base := addrUint(n.Network.Addr())
	n.SubnetMin = uintAddr(base + size)
	n.SubnetMax = uintAddr(base + (uint32(1)<<(32-n.Network.Bits()) - size))
	for _, b := range []struct {
		name string
		s    string
		dst  *netip.Addr
	}{{"SubnetMin", nj.SubnetMin, &n.SubnetMin}, {"SubnetMax", nj.SubnetMax, &n.SubnetMax}} {
		if b.s == "" {
			continue
		}
		a, err := netip.ParseAddr(b.s)
		if err != nil || !a.Is4() || !n.Network.Contains(a) {
			return nil, fmt.Errorf("network config: %s %q: not an address in Network %s", b.name, b.s, n.Network)
		}
		if addrUint(a)&(size-1) != 0 {
			return nil, fmt.Errorf("network config: %s %s: not on a /%d boundary", b.name, a, n.SubnetLen)
		}
		*b.dst = a
	}
	if addrUint(n.SubnetMin) > addrUint(n.SubnetMax) {
		return nil, fmt.Errorf("network config: SubnetMin %s is above SubnetMax %s", n.SubnetMin, n.SubnetMax)
	}

	var bj backendJSON
	if len(nj.Backend) > 0 {
		dec := json.NewDecoder(bytes.NewReader(nj.Backend))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&bj); err != nil {
			return nil, fmt.Errorf("network config: Backend: %w", err)
		}
	}
	switch {
	case bj.Type == "":
		return nil, fmt.Errorf("network config: Backend.Type is unset (flannel's default is udp); vxland joins %q networks", BackendType)
	case bj.Type != BackendType:
		return nil, fmt.Errorf("network config: Backend.Type %q: vxland joins %q networks only", bj.Type, BackendType)
	case bj.GBP:
		return nil, errors.New("network config: Backend.GBP: group-based policy is not supported")
	case bj.Learning:
		return nil, errors.New("network config: Backend.Learning: vxland's flannel mode programs every entry; learning is not supported")
	case bj.MacPrefix != "":
		return nil, errors.New("network config: Backend.MacPrefix is not supported (vxland derives a stable VtepMAC)")
	case bj.VNI != nil && (*bj.VNI < 0 || *bj.VNI > 1<<24-1):
		return nil, fmt.Errorf("network config: Backend.VNI %d: must be 0-16777215", *bj.VNI)
	case bj.Port < 0 || bj.Port > 65535:
		return nil, fmt.Errorf("network config: Backend.Port %d: must be 0-65535", bj.Port)
	case bj.MTU < 0:
		return nil, fmt.Errorf("network config: Backend.MTU %d: negative", bj.MTU)
	}
	n.VNI = DefaultVNI
	if bj.VNI != nil {
		n.VNI = uint32(*bj.VNI)
	}
	n.Port = DefaultPort
	if bj.Port != 0 {
		n.Port = uint16(bj.Port)
	}
	n.DirectRouting, n.MTU = bj.DirectRouting, bj.MTU
	return n, nil
}

// Contains reports whether s is a subnet this network hands out: inside
// Network, SubnetLen long, on its boundary.
func (n *Network) Contains(s netip.Prefix) bool {
	return s.Addr().Is4() && s.Bits() == n.SubnetLen && s.Masked() == s && n.Network.Contains(s.Addr())
}

// subnets returns, in order, the subnets from SubnetMin to SubnetMax.
func (n *Network) subnets(yield func(netip.Prefix) bool) {
	size := uint32(1) << (32 - n.SubnetLen)
	for a := addrUint(n.SubnetMin); a <= addrUint(n.SubnetMax); a += size {
		if !yield(netip.PrefixFrom(uintAddr(a), n.SubnetLen)) || a+size < a {
			return
		}
	}
}

func addrUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uintAddr(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}
