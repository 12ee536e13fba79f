package main

import (
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vxland/vxland/config"
)

// macIdentity is what a TAP's default MAC address is derived from: the
// host, where the TAP lives, and the segment. Two daemons of one host that
// serve the same TAP name and VNI from different network namespaces (the
// Linux VXLAN guides model every host so) get different addresses, while a
// restarted daemon gets the one it had.
type macIdentity struct {
	Machine  string // /etc/machine-id, else the host name
	Netns    string // the daemon's network namespace: "" for the host's, else its name (or inode)
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
	id := macIdentity{Netns: ownNetnsName(), TAPNetns: v.Netns, TAP: v.TAP, VNI: v.ID}
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

// initNetInode is the inode number Linux (6.18 and later) gives the
// initial network namespace.
const initNetInode = 0xEFFFFFF9

// ownNetnsName names the network namespace vxland runs in, stably across
// restarts: "" for the host's (the initial one, or the one PID 1 is in),
// the name under config.NetnsDir that `ip netns identify` would print,
// else "inode:N".
func ownNetnsName() string {
	self, ok := nsFile("/proc/self/ns/net")
	if !ok {
		return ""
	}
	if ents, err := os.ReadDir(config.NetnsDir); err == nil {
		for _, e := range ents {
			if f, ok := nsFile(filepath.Join(config.NetnsDir, e.Name())); ok && f == self {
				return e.Name()
			}
		}
	}
	if self.ino == initNetInode {
		return ""
	}
	if init, ok := nsFile("/proc/1/ns/net"); !ok || init == self {
		return "" // PID 1's namespace, or unknowable: the host's
	}
	return fmt.Sprintf("inode:%d", self.ino)
}

// nsID identifies a namespace file: device and inode.
type nsID struct{ dev, ino uint64 }

func nsFile(path string) (nsID, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nsID{}, false
	}
	return nsID{uint64(st.Dev), st.Ino}, true
}
