package offload

import (
	"github.com/vxland/vxland/checksum"
	"github.com/vxland/vxland/inner"
)

// Header sizes and protocol numbers, from the layout package.
const (
	ethHdrLen  = inner.EthHeaderLen
	vlanHdrLen = inner.VLANTagLen

	protoTCP = inner.ProtoTCP
	protoUDP = inner.ProtoUDP

	ipv4MinHdrLen = inner.IPv4MinHeaderLen
	ipv6HdrLen    = inner.IPv6HeaderLen

	tcpCsumOffset = 16
	udpCsumOffset = 6

	tcpFlagFIN = 0x01
	tcpFlagSYN = 0x02
	tcpFlagRST = 0x04
	tcpFlagPSH = 0x08
	tcpFlagACK = 0x10
	tcpFlagURG = 0x20
	tcpFlagECE = 0x40
	tcpFlagCWR = 0x80

	maxIPLen = inner.MaxIPLen
)

// pseudo returns the unfolded pseudo-header sum of the frame l describes for
// a transport length of l4len bytes.
func pseudo(frame []byte, l *inner.Layout, l4len int) uint64 {
	ip := frame[l.L3Off:]
	if l.IPVersion == 4 {
		return checksum.PseudoV4(ip[12:16], ip[16:20], l.Proto, l4len)
	}
	return checksum.PseudoV6(ip[8:24], ip[24:40], l.Proto, l4len)
}

// seed returns the pseudo-header seed for the frame's own transport length:
// the value a CHECKSUM_PARTIAL sender leaves in the checksum field.
func seed(frame []byte, l *inner.Layout) uint16 {
	return checksum.Fold(pseudo(frame, l, l.L4Len()))
}
