package testnet

import (
	"strconv"
	"testing"
)

// Link creates a veth pair between two namespaces, aIf in a and bIf in b, and sets
// both ends up. The pair is created directly inside the namespaces (never in the
// root namespace), so the names only need to be unique within each namespace. a and
// b may be the same namespace (with different names).
func Link(t testing.TB, a *NS, aIf string, b *NS, bIf string) {
	t.Helper()
	for _, name := range []string{aIf, bIf} {
		if err := checkIfName(name); err != nil {
			t.Fatal(err)
		}
	}
	a.Exec(t, "ip", "link", "add", aIf, "type", "veth", "peer", "name", bIf, "netns", b.Name)
	a.Exec(t, "ip", "link", "set", aIf, "up")
	b.Exec(t, "ip", "link", "set", bIf, "up")
}

// VXLANOpts describes a kernel vxlan device (ip-link(8) "type vxlan").
type VXLANOpts struct {
	// Name of the device; default "vxlan<VNI>".
	Name string
	// VNI is the VXLAN network identifier (id).
	VNI uint32
	// Remote is the unicast peer (remote), or empty.
	Remote string
	// Group is the multicast group (group), or empty; needs Dev.
	Group string
	// Local is the source address (local), or empty.
	Local string
	// Dev is the underlay device (dev), or empty.
	Dev string
	// DstPort is the UDP destination port; default 4789 (not the kernel's legacy
	// default 8472).
	DstPort uint16
	// SrcPortMin and SrcPortMax set the source port range (srcport) when
	// SrcPortMax is not zero.
	SrcPortMin, SrcPortMax uint16
	// NoLearning turns source address learning off (nolearning).
	NoLearning bool
	// TTL sets ttl when not zero.
	TTL uint8
	// TOS sets tos when not empty: "inherit" or a value such as "0x10".
	TOS string
	// MAC sets the device's address when not empty.
	MAC string
	// Extra is appended to `ip link add ... type vxlan` as is, e.g. "proxy",
	// "l2miss", "noudpcsum".
	Extra []string
	// Addr is assigned to the device when not empty (CIDR, checked by CheckAddr).
	Addr string
	// Defaults are more all-zeros FDB destinations (`bridge fdb append
	// 00:00:00:00:00:00 dev NAME dst IP`), for head-end replication to several
	// peers.
	Defaults []string
}

// KernelVXLAN creates a kernel vxlan device in n as described by o, sets it up
// and assigns o.Addr. Offloads are left at the kernel's defaults. It returns the
// device's name.
func KernelVXLAN(t testing.TB, n *NS, o VXLANOpts) string {
	t.Helper()
	RequireDocAddr(t, o.Remote, o.Group, o.Local, o.Addr)
	RequireDocAddr(t, o.Defaults...)
	if o.Name == "" {
		o.Name = "vxlan" + strconv.FormatUint(uint64(o.VNI), 10)
	}
	if err := checkIfName(o.Name); err != nil {
		t.Fatal(err)
	}
	if o.Remote != "" && o.Group != "" {
		t.Fatal("testnet: KernelVXLAN: Remote and Group are exclusive")
	}
	if o.DstPort == 0 {
		o.DstPort = 4789
	}
	args := []string{"ip", "link", "add", o.Name}
	if o.MAC != "" {
		args = append(args, "address", o.MAC)
	}
	args = append(args, "type", "vxlan", "id", strconv.FormatUint(uint64(o.VNI), 10))
	if o.Remote != "" {
		args = append(args, "remote", o.Remote)
	}
	if o.Group != "" {
		args = append(args, "group", o.Group)
	}
	if o.Local != "" {
		args = append(args, "local", o.Local)
	}
	args = append(args, "dstport", strconv.Itoa(int(o.DstPort)))
	if o.Dev != "" {
		args = append(args, "dev", o.Dev)
	}
	if o.SrcPortMax != 0 {
		args = append(args, "srcport", strconv.Itoa(int(o.SrcPortMin)), strconv.Itoa(int(o.SrcPortMax)))
	}
	if o.NoLearning {
		args = append(args, "nolearning")
	}
	if o.TTL != 0 {
		args = append(args, "ttl", strconv.Itoa(int(o.TTL)))
	}
	if o.TOS != "" {
		args = append(args, "tos", o.TOS)
	}
	args = append(args, o.Extra...)
	n.Exec(t, args...)
	for _, dst := range o.Defaults {
		n.Exec(t, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", o.Name, "dst", dst)
	}
	n.Exec(t, "ip", "link", "set", o.Name, "up")
	if o.Addr != "" {
		n.Addr(t, o.Name, o.Addr)
	}
	return o.Name
}
