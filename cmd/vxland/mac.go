package main

import (
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vxland/vxland/config"
	"github.com/vxland/vxland/internal/netnsid"
)

// macIdentity is what a TAP's default MAC address is derived from: the
// host, where the TAP lives, and the segment. Two daemons of one host that
// serve the same TAP name and VNI from different network namespaces (the
// Linux VXLAN guides model every host so) get different addresses, while a
// restarted daemon gets the one it had.
type macIdentity struct {
	Machine  string // /etc/machine-id, else the host name
	Netns    string // the daemon's network namespace: netnsid.ID.Key ("" for the host's)
	TAPNetns string // the --netns the TAP is created in, "" for the daemon's own
	Local    string // the --local underlay address, "" when unset
	TAP      string
	VNI      uint32
}

// stableMAC derives a locally administered unicast address from id. The
// fields beyond machine, TAP and VNI enter the hash only when set, so a
// daemon in the host namespace without --local keeps the address earlier
// versions gave it.
func stableMAC(id macIdentity) net.HardwareAddr {
	s := fmt.Sprintf("vxland\x00%s\x00%s\x00%d", id.Machine, id.TAP, id.VNI)
	for _, extra := range []struct{ key, val string }{
		{"netns", id.Netns}, {"tapnetns", id.TAPNetns}, {"local", id.Local},
	} {
		if extra.val != "" {
			s += "\x00" + extra.key + "=" + extra.val
		}
	}
	sum := sha256.Sum256([]byte(s))
	m := net.HardwareAddr(sum[:6])
	m[0] = m[0]&0xfe | 0x02 // unicast, locally administered
	return m
}

// hostMACIdentity fills in the host's part of a VNI's macIdentity.
func hostMACIdentity(v *config.VNI) macIdentity {
	id := macIdentity{TAPNetns: v.Netns, TAP: v.TAP, VNI: v.ID}
	if ns, err := netnsid.Self(); err == nil { // unknowable: as the host's
		id.Netns = ns.Key()
	}
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		id.Machine = strings.TrimSpace(string(b))
	} else {
		id.Machine, _ = os.Hostname()
	}
	if v.Local.IsValid() && !v.Local.IsUnspecified() {
		id.Local = v.Local.String()
	}
	return id
}
