// Package learning decides what vxland learns from received frames and
// whether a frame survives learning, following the kernel's vxlan_snoop:
// the outer source IP of a decapsulated frame is recorded for its inner
// source MAC when that MAC is a valid unicast address, and a frame whose
// source MAC belongs to a static or permanent entry pointing at another VTEP
// is dropped, as is, while learning, a frame whose source MAC is a group or
// all-zeros address (the kernel's MAC_INVALID_SOURCE).
package learning

import (
	"strconv"

	"github.com/vxland/vxland/fdb"
)

// Policy is the learning configuration of a device (`--learning`, on by
// default in the daemon as in `ip link add ... type vxlan`). The zero value
// has learning off.
type Policy struct {
	Enabled bool
	// Limit bounds the table changes learning makes (nil: no bound).
	Limit *Limiter
}

// Learnable reports whether src may be learned: a unicast address (group
// bit clear, so neither multicast nor broadcast) that is not all zeros, as
// the kernel's is_valid_ether_addr.
func Learnable(src fdb.MAC) bool {
	return src[0]&1 == 0 && src != fdb.Zero
}

// Verdict says what to do with a received frame after learning.
type Verdict uint8

const (
	// Deliver the frame to the TAP device.
	Deliver Verdict = iota
	// Drop the frame: its source MAC is pinned by a static or permanent
	// entry to another VTEP (fdb.Conflict).
	Drop
	// DropInvalidSource drops the frame: learning is on and its source MAC
	// is a group or all-zeros address.
	DropInvalidSource
)

// String returns "deliver" or "drop".
func (v Verdict) String() string {
	switch v {
	case Deliver:
		return "deliver"
	case Drop:
		return "drop"
	case DropInvalidSource:
		return "drop-invalid-source"
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// Observe learns that a frame with source address src arrived from the
// VTEP from, and returns what the table did and the verdict for the frame.
// With learning off it does nothing and returns (fdb.Skipped, Deliver); a
// source that is not Learnable gives (fdb.Skipped, DropInvalidSource).
// Otherwise it calls t.LearnGated with p.Limit; a Conflict gives Drop,
// every other result Deliver (a Full table or a Limited change still
// delivers).
// It does not allocate unless a new entry is learned or migrated.
//
// from should be the destination the kernel would record: the outer source
// IP (IPv4-mapped addresses are folded to IPv4 by fdb), the device's
// destination port (not the packet's UDP source port, which is a flow hash)
// and the device's default VNI.
func (p Policy) Observe(t *fdb.Table, src fdb.MAC, from fdb.Dest) (fdb.LearnResult, Verdict) {
	if !p.Enabled {
		return fdb.Skipped, Deliver
	}
	if !Learnable(src) {
		return fdb.Skipped, DropInvalidSource
	}
	var gate fdb.Gate
	if p.Limit != nil { // not a typed nil in the interface
		gate = p.Limit
	}
	r := t.LearnGated(src, from, gate)
	if r == fdb.Conflict {
		return r, Drop
	}
	return r, Deliver
}
