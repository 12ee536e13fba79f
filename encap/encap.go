// Package encap encodes and parses the VXLAN header (RFC 7348) at fixed
// offsets and carries the per-packet decisions that surround it: receive
// drop reasons, the inner flow hash and outer UDP source port, and ECN
// handling on encapsulation and decapsulation (RFC 6040).
//
// Every function follows the Linux kernel vxlan driver (vxlan_core.c,
// include/net/inet_ecn.h, include/net/udp.h), works in place on the
// caller's buffers and never allocates.
package encap

const (
	// HeaderLen is the length of the VXLAN header.
	HeaderLen = 8
	// FlagI is the "I" flag in the first header byte: the VNI is valid.
	FlagI = 0x08
	// MaxVNI is the largest VXLAN Network Identifier (24 bits).
	MaxVNI = 1<<24 - 1
	// EthHeaderLen is the length of an untagged Ethernet header.
	EthHeaderLen = 14
)

// Reason says why a received datagram is dropped; ReasonOK means it is not.
// The data plane keeps one counter per Reason, indexed by its value.
type Reason uint8

// Receive verdicts. The kernel checks them in the order ReasonShort,
// ReasonNoIFlag, ReasonUnknownVNI, ReasonReserved, ReasonOwnMAC,
// ReasonInnerShort, ReasonLearnConflict, ReasonECN. The first three are
// decided before the datagram's VNI is known, the others after.
const (
	ReasonOK            Reason = iota // accepted
	ReasonShort                       // datagram too short for the VXLAN and Ethernet headers
	ReasonNoIFlag                     // I flag clear
	ReasonReserved                    // a reserved header bit set
	ReasonUnknownVNI                  // no device for the VNI (checked by the caller)
	ReasonOwnMAC                      // inner source MAC is our own: a loop
	ReasonECN                         // outer CE on a Not-ECT inner packet (RFC 6040)
	ReasonLearnConflict               // source MAC is permanent at another remote
	ReasonInnerShort                  // inner frame too short for its Ethernet or IP header
	NumReasons                        // number of Reasons, for arrays of counters
)

var reasonNames = [NumReasons]string{
	ReasonOK:            "rx_ok",
	ReasonShort:         "rx_short",
	ReasonNoIFlag:       "rx_no_i_flag",
	ReasonReserved:      "rx_reserved_bits",
	ReasonUnknownVNI:    "rx_unknown_vni",
	ReasonOwnMAC:        "rx_own_mac",
	ReasonECN:           "rx_ecn_drop",
	ReasonLearnConflict: "rx_learn_conflict",
	ReasonInnerShort:    "rx_inner_short",
}

// String returns the counter name of r, such as "rx_short".
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "rx_invalid_reason"
}

// PutHeader writes the VXLAN header for vni into b[0:HeaderLen]: the I flag,
// every reserved bit zero and the VNI in bytes 4 to 6. Bits of vni above
// MaxVNI are ignored. b must be at least HeaderLen bytes long.
func PutHeader(b []byte, vni uint32) {
	_ = b[7] // one bounds check
	b[0] = FlagI
	b[1] = 0
	b[2] = 0
	b[3] = 0
	b[4] = byte(vni >> 16)
	b[5] = byte(vni >> 8)
	b[6] = byte(vni)
	b[7] = 0
}

// Parse checks the VXLAN header at the start of the UDP payload b and returns
// the VNI and the inner Ethernet frame, which aliases b[HeaderLen:].
//
// Like the kernel, it drops datagrams too short to hold the header and an
// Ethernet header (ReasonShort), those without the I flag (ReasonNoIFlag)
// and, stricter than RFC 7348, those with any reserved bit set in bytes 0 to
// 3 or byte 7 (ReasonReserved). With ReasonReserved, vni still holds the
// header's VNI: the kernel looks the VNI up before it checks the reserved
// bits, so a caller can count such a datagram as ReasonUnknownVNI first.
// Whether the VNI is known is for the caller to decide.
func Parse(b []byte) (vni uint32, frame []byte, r Reason) {
	if len(b) < HeaderLen+EthHeaderLen {
		return 0, nil, ReasonShort
	}
	if b[0]&FlagI == 0 {
		return 0, nil, ReasonNoIFlag
	}
	vni = uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6])
	if b[0] != FlagI || b[1]|b[2]|b[3]|b[7] != 0 {
		return vni, nil, ReasonReserved
	}
	return vni, b[HeaderLen:], ReasonOK
}

// CheckInner applies the kernel's checks on the inner frame returned by
// Parse: ReasonInnerShort when it lacks an Ethernet header, ReasonOwnMAC
// when its source address is own (a looped frame or our own multicast
// echo), else ReasonOK.
func CheckInner(frame []byte, own [6]byte) Reason {
	if len(frame) < EthHeaderLen {
		return ReasonInnerShort
	}
	if [6]byte(frame[6:12]) == own {
		return ReasonOwnMAC
	}
	return ReasonOK
}

func be16(b []byte) uint16 {
	_ = b[1]
	return uint16(b[0])<<8 | uint16(b[1])
}

func be32(b []byte) uint32 {
	_ = b[3]
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
