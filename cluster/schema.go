package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/overlay"
)

// SchemaVersion is the version of the key schema: keys live under
// PREFIX/v1/. A future incompatible schema gets a new path, so old and new
// daemons never read each other's values.
const SchemaVersion = 1

// DefaultPrefix is the etcd key prefix when none is configured.
const DefaultPrefix = "/vxland"

// Limits on what a member may announce; a value beyond them is refused.
const (
	// MaxValueSize bounds a member value in bytes.
	MaxValueSize = 1 << 20
	// MaxTAPAddrs bounds the addresses of a member's TAP.
	MaxTAPAddrs = 64
	// MaxEndpoints bounds the endpoints of a member.
	MaxEndpoints = overlay.DefaultMaxEndpoints
	// MaxEndpointIPs bounds the addresses of one endpoint.
	MaxEndpointIPs = overlay.MaxEndpointIPs
	// maxVNI is the largest VXLAN network identifier.
	maxVNI = 1<<24 - 1
)

// Schema builds and parses the keys under one prefix:
//
//	PREFIX/v1/vni/VNI/member/ADDR   one member (VTEP) of a VNI, under its lease
//
// VNI is decimal, ADDR the member's underlay address as netip prints it.
// Both are in the key so that a DELETE (a lease that expired or was
// revoked) says on its own which VNI and VTEP left.
type Schema struct {
	prefix string // cleaned, without a trailing slash
}

// NewSchema returns the schema under prefix ("" means DefaultPrefix).
func NewSchema(prefix string) Schema {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Schema{prefix: strings.TrimRight(prefix, "/")}
}

// VNIPrefix is the prefix of every member key of vni, with a trailing
// slash.
func (s Schema) VNIPrefix(vni uint32) string {
	return s.prefix + "/v" + strconv.Itoa(SchemaVersion) + "/vni/" + strconv.FormatUint(uint64(vni), 10) + "/member/"
}

// MemberKey is the key of the member with underlay address addr in vni.
func (s Schema) MemberKey(vni uint32, addr netip.Addr) string {
	return s.VNIPrefix(vni) + addr.Unmap().String()
}

// ParseMemberKey returns the underlay address named by a key under
// VNIPrefix(vni).
func (s Schema) ParseMemberKey(vni uint32, key string) (netip.Addr, error) {
	p := s.VNIPrefix(vni)
	rest, ok := strings.CutPrefix(key, p)
	if !ok {
		return netip.Addr{}, fmt.Errorf("key %q is not under %s", key, p)
	}
	a, err := netip.ParseAddr(rest)
	if err != nil || a.Zone() != "" || a.Unmap() != a {
		return netip.Addr{}, fmt.Errorf("key %q: %q is not an underlay address", key, rest)
	}
	if err := checkUnicast(a); err != nil {
		return netip.Addr{}, fmt.Errorf("key %q: %w", key, err)
	}
	return a, nil
}

// memberValue is the JSON a member key holds. Unknown fields are ignored,
// so that version 1 can grow optional fields.
type memberValue struct {
	V         int             `json:"v"`
	Addr      string          `json:"addr"`
	Port      int             `json:"port"`
	MAC       string          `json:"mac"`
	Addrs     []string        `json:"addrs,omitempty"`
	Endpoints []endpointValue `json:"endpoints,omitempty"`
}

type endpointValue struct {
	MAC string   `json:"mac"`
	IPs []string `json:"ips,omitempty"`
}

// EncodeMember returns the value announcing v and eps.
func EncodeMember(v overlay.VTEP, eps []overlay.Endpoint) ([]byte, error) {
	mv := memberValue{V: SchemaVersion, Addr: v.Addr.Unmap().String(), Port: int(v.Port), MAC: v.MAC.String()}
	for _, a := range v.Addrs {
		mv.Addrs = append(mv.Addrs, a.String())
	}
	for _, e := range eps {
		ev := endpointValue{MAC: e.MAC.String()}
		for _, ip := range e.IPs {
			ev.IPs = append(ev.IPs, ip.String())
		}
		mv.Endpoints = append(mv.Endpoints, ev)
	}
	b, err := json.Marshal(mv)
	if err != nil {
		return nil, fmt.Errorf("encode member %s: %w", v.Addr, err)
	}
	return b, nil
}

// ErrInvalid is wrapped by every refusal of a value or key written by
// another node.
var ErrInvalid = errors.New("invalid member value")

// DecodeMember validates a member value read from key addr and returns it
// as a peer whose ID is the address. Everything a hostile writer controls
// is checked: size, JSON shape, version, the address matching the key,
// port, unicast MACs, address counts and forms.
func DecodeMember(addr netip.Addr, value []byte) (overlay.Peer, error) {
	bad := func(format string, args ...any) (overlay.Peer, error) {
		return overlay.Peer{}, fmt.Errorf("member %s: %w: %s", addr, ErrInvalid, fmt.Sprintf(format, args...))
	}
	if len(value) > MaxValueSize {
		return bad("%d bytes, at most %d", len(value), MaxValueSize)
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	var mv memberValue
	if err := dec.Decode(&mv); err != nil {
		return bad("not a JSON member object: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("data after the JSON object")
	}
	if mv.V != SchemaVersion {
		return bad("version %d, want %d", mv.V, SchemaVersion)
	}
	a, err := netip.ParseAddr(mv.Addr)
	if err != nil || a.Unmap() != addr {
		return bad("addr %q differs from the key's %s", mv.Addr, addr)
	}
	if mv.Port < 1 || mv.Port > 65535 {
		return bad("port %d out of range 1-65535", mv.Port)
	}
	mac, err := unicastMAC(mv.MAC)
	if err != nil {
		return bad("mac: %v", err)
	}
	if len(mv.Addrs) > MaxTAPAddrs {
		return bad("%d addresses, at most %d", len(mv.Addrs), MaxTAPAddrs)
	}
	if len(mv.Endpoints) > MaxEndpoints {
		return bad("%d endpoints, at most %d", len(mv.Endpoints), MaxEndpoints)
	}
	p := overlay.Peer{ID: addr.String(), VTEP: overlay.VTEP{Addr: addr, Port: uint16(mv.Port), MAC: mac}}
	if p.VTEP.Addrs, err = parseIPs(mv.Addrs); err != nil {
		return bad("addrs: %v", err)
	}
	seen := make(map[fdb.MAC]bool, len(mv.Endpoints))
	for _, ev := range mv.Endpoints {
		m, err := unicastMAC(ev.MAC)
		if err != nil {
			return bad("endpoint mac: %v", err)
		}
		if seen[m] || m == mac {
			return bad("endpoint %s listed twice", m)
		}
		seen[m] = true
		if len(ev.IPs) > MaxEndpointIPs {
			return bad("endpoint %s: %d addresses, at most %d", m, len(ev.IPs), MaxEndpointIPs)
		}
		ips, err := parseIPs(ev.IPs)
		if err != nil {
			return bad("endpoint %s: %v", m, err)
		}
		p.Endpoints = append(p.Endpoints, overlay.Endpoint{MAC: m, IPs: ips})
	}
	overlay.SortEndpoints(p.Endpoints)
	return p, nil
}

func unicastMAC(s string) (fdb.MAC, error) {
	m, err := fdb.ParseMAC(s)
	if err != nil {
		return m, err
	}
	if m == fdb.Zero || m[0]&1 != 0 {
		return m, fmt.Errorf("%s is not a unicast address", m)
	}
	return m, nil
}

func parseIPs(ss []string) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address", s)
		}
		a = a.Unmap()
		if err := checkUnicast(a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return overlay.SortAddrs(out), nil
}

func checkUnicast(a netip.Addr) error {
	if a.IsUnspecified() || a.IsMulticast() || (a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return fmt.Errorf("%s is not a unicast address", a)
	}
	return nil
}
