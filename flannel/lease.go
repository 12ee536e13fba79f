package flannel

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// Lease is one node's subnet lease (<prefix>/subnets/<a.b.c.d>-<len>) as
// far as a vxlan node needs it.
type Lease struct {
	// Subnet is the node's subnet.
	Subnet netip.Prefix
	// PublicIP is the node's underlay address: the VTEP.
	PublicIP netip.Addr
	// VNI and VtepMAC come from BackendData: the VNI the node serves and
	// the MAC of its flannel.<VNI> device.
	VNI     uint32
	VtepMAC net.HardwareAddr
}

// Equal reports whether l and m say the same.
func (l Lease) Equal(m Lease) bool {
	return l.Subnet == m.Subnet && l.PublicIP == m.PublicIP && l.VNI == m.VNI && l.VtepMAC.String() == m.VtepMAC.String()
}

// SubnetKey is the key of subnet's lease under prefix, as flannel's
// MakeSubnetKey writes it: <prefix>/subnets/10.5.34.0-24.
func SubnetKey(prefix string, subnet netip.Prefix) string {
	return path.Join(prefix, "subnets", fmt.Sprintf("%s-%d", subnet.Addr(), subnet.Bits()))
}

// ParseSubnetKey reads the subnet from a lease key's last element
// ("10.5.34.0-24", or "10.5.34.0-24&fd00:10:5:34::-64" for dual stack,
// whose IPv6 part is ignored).
func ParseSubnetKey(key string) (netip.Prefix, error) {
	name := path.Base(key)
	v4, _, _ := strings.Cut(name, "&")
	addr, bits, ok := strings.Cut(v4, "-")
	if !ok {
		return netip.Prefix{}, fmt.Errorf("lease key %q: want <a.b.c.d>-<len>", key)
	}
	a, err := netip.ParseAddr(addr)
	n, err2 := strconv.Atoi(bits)
	if err != nil || err2 != nil || !a.Is4() || n < 0 || n > 32 {
		return netip.Prefix{}, fmt.Errorf("lease key %q: want <a.b.c.d>-<len>", key)
	}
	p := netip.PrefixFrom(a, n)
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("lease key %q: %s is not a network address", key, p)
	}
	return p, nil
}

// leaseJSON is a lease's value as flanneld writes it (Go's encoding/json of
// its lease.LeaseAttrs): PublicIPv6 is null, BackendV6Data absent.
type leaseJSON struct {
	PublicIP      string
	PublicIPv6    *string
	BackendType   string          `json:",omitempty"`
	BackendData   json.RawMessage `json:",omitempty"`
	BackendV6Data json.RawMessage `json:",omitempty"`
}

// vxlanJSON is the vxlan backend's BackendData.
type vxlanJSON struct {
	VNI     uint32
	VtepMAC string
}

// Value encodes l as flanneld writes a vxlan lease:
// {"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:.."}}.
func (l Lease) Value() ([]byte, error) {
	data, err := json.Marshal(vxlanJSON{VNI: l.VNI, VtepMAC: l.VtepMAC.String()})
	if err != nil {
		return nil, err
	}
	return json.Marshal(leaseJSON{PublicIP: l.PublicIP.String(), BackendType: BackendType, BackendData: data})
}

// errNotVXLAN marks a lease of another backend: not an error in the
// lease, just not ours to follow (flanneld ignores them too).
var errNotVXLAN = errors.New("not a vxlan lease")

// ParseLease decodes a lease written by any node. Everything is checked:
// the key's subnet must be one of n's, PublicIP a unicast IPv4 address,
// VtepMAC a unicast Ethernet address. A lease of another backend returns
// an error wrapping errNotVXLAN.
func ParseLease(n *Network, key string, value []byte) (Lease, error) {
	subnet, err := ParseSubnetKey(key)
	if err != nil {
		return Lease{}, err
	}
	if !n.Contains(subnet) {
		return Lease{}, fmt.Errorf("lease %s: not a /%d subnet of %s", subnet, n.SubnetLen, n.Network)
	}
	var lj leaseJSON
	if err := json.Unmarshal(value, &lj); err != nil {
		return Lease{}, fmt.Errorf("lease %s: %w", subnet, err)
	}
	if lj.BackendType != BackendType {
		return Lease{}, fmt.Errorf("lease %s: backend %q: %w", subnet, lj.BackendType, errNotVXLAN)
	}
	ip, err := netip.ParseAddr(lj.PublicIP)
	if err != nil || !ip.Is4() || !ip.IsGlobalUnicast() {
		return Lease{}, fmt.Errorf("lease %s: PublicIP %q: not a unicast IPv4 address", subnet, lj.PublicIP)
	}
	var vj vxlanJSON
	if err := json.Unmarshal(lj.BackendData, &vj); err != nil {
		return Lease{}, fmt.Errorf("lease %s: BackendData: %w", subnet, err)
	}
	mac, err := net.ParseMAC(vj.VtepMAC)
	if err != nil || len(mac) != 6 || mac[0]&1 != 0 || isZero(mac) {
		return Lease{}, fmt.Errorf("lease %s: VtepMAC %q: not a unicast Ethernet address", subnet, vj.VtepMAC)
	}
	return Lease{Subnet: subnet, PublicIP: ip, VNI: vj.VNI, VtepMAC: mac}, nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
