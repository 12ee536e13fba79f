// Package checksum implements the Internet checksum (RFC 1071) used by IPv4,
// TCP and UDP, plus the IPv4 and IPv6 pseudo-header sums that seed the TCP and
// UDP checksums.
//
// The accumulator returned by Sum and the Pseudo functions is an unfolded
// ones'-complement sum of big-endian 16-bit words, kept in a uint64. Because
// 2^16 ≡ 1 (mod 0xffff), such an accumulator may be combined with plain
// additions of 16-bit (or wider, up to 2^48) big-endian quantities as long as
// the total stays below 2^64, and then reduced with Fold. Typical use:
//
//	s := checksum.PseudoV4(ip[12:16], ip[16:20], 6, len(tcp))
//	s = checksum.Sum(tcp, s)                 // checksum field zeroed beforehand
//	binary.BigEndian.PutUint16(tcp[16:], ^checksum.Fold(s))
//
// Sum(a||b) equals Sum(b, Sum(a, 0)) only when len(a) is even: an odd byte is
// the high half of a 16-bit word, so split data at even offsets.
//
// Nothing in this package allocates.
package checksum

import (
	"encoding/binary"
	"math/bits"
)

// Sum adds the bytes of b, as big-endian 16-bit words, to the ones'-complement
// accumulator initial and returns the new, unfolded accumulator. A trailing odd
// byte is treated as the high byte of a word whose low byte is zero. b may have
// any length and alignment.
//
// The loop adds 64-bit big-endian words with an explicit carry chain (which
// the compiler lowers to ADC on amd64 and ADCS on arm64); carries out of bit 63
// are counted separately and added back at the end (end-around carry).
func Sum(b []byte, initial uint64) uint64 {
	ac := initial
	var carries uint64
	var c uint64
	for len(b) >= 128 {
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[0:8]), 0)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[8:16]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[16:24]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[24:32]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[32:40]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[40:48]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[48:56]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[56:64]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[64:72]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[72:80]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[80:88]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[88:96]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[96:104]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[104:112]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[112:120]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[120:128]), c)
		carries += c
		b = b[128:]
	}
	if len(b) >= 64 {
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[0:8]), 0)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[8:16]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[16:24]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[24:32]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[32:40]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[40:48]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[48:56]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[56:64]), c)
		carries += c
		b = b[64:]
	}
	if len(b) >= 32 {
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[0:8]), 0)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[8:16]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[16:24]), c)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[24:32]), c)
		carries += c
		b = b[32:]
	}
	if len(b) >= 16 {
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[0:8]), 0)
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[8:16]), c)
		carries += c
		b = b[16:]
	}
	if len(b) >= 8 {
		ac, c = bits.Add64(ac, binary.BigEndian.Uint64(b[0:8]), 0)
		carries += c
		b = b[8:]
	}
	// At most 7 bytes remain; gather them into one word, left-aligned the
	// way a big-endian load would place them (an odd last byte is a high
	// byte).
	var tail uint64
	if len(b) >= 4 {
		tail = uint64(binary.BigEndian.Uint32(b[0:4])) << 32
		b = b[4:]
	}
	if len(b) >= 2 {
		tail |= uint64(binary.BigEndian.Uint16(b[0:2])) << 16
		b = b[2:]
	}
	if len(b) == 1 {
		tail |= uint64(b[0]) << 8
	}
	ac, c = bits.Add64(ac, tail, 0)
	carries += c
	// Add the carries back (end-around carry). carries is tiny, so the
	// second carry can only occur when ac wraps to a small value, and adding
	// it cannot carry again.
	ac, c = bits.Add64(ac, carries, 0)
	return ac + c
}

// Fold reduces the unfolded accumulator sum to 16 bits with end-around carries
// and returns it NOT complemented: the value to store in a checksum field is
// ^Fold(sum). Fold returns 0 only for sum == 0; any other ones'-complement
// zero folds to 0xffff.
func Fold(sum uint64) uint16 {
	sum = (sum >> 32) + (sum & 0xffffffff)
	sum = (sum >> 32) + (sum & 0xffffffff)
	sum = (sum >> 16) + (sum & 0xffff)
	sum = (sum >> 16) + (sum & 0xffff)
	return uint16(sum)
}

// PseudoV4 returns the unfolded sum of the IPv4 pseudo-header (RFC 793, RFC
// 768): source and destination address, protocol, and the transport length
// (header plus payload) in bytes. src and dst must hold at least 4 bytes (only
// the first 4 are read); shorter slices panic. length must not be negative.
func PseudoV4(src, dst []byte, proto uint8, length int) uint64 {
	_ = src[3]
	_ = dst[3]
	s := uint64(binary.BigEndian.Uint32(src))
	s += uint64(binary.BigEndian.Uint32(dst))
	s += uint64(proto)
	s += uint64(uint32(length))
	return s
}

// PseudoV6 returns the unfolded sum of the IPv6 pseudo-header (RFC 8200
// section 8.1): source and destination address, the upper-layer packet length
// (32 bits) and the next header value. src and dst must hold at least 16 bytes
// (only the first 16 are read); shorter slices panic. length must not be
// negative.
func PseudoV6(src, dst []byte, proto uint8, length int) uint64 {
	_ = src[15]
	_ = dst[15]
	s := uint64(binary.BigEndian.Uint32(src[0:4]))
	s += uint64(binary.BigEndian.Uint32(src[4:8]))
	s += uint64(binary.BigEndian.Uint32(src[8:12]))
	s += uint64(binary.BigEndian.Uint32(src[12:16]))
	s += uint64(binary.BigEndian.Uint32(dst[0:4]))
	s += uint64(binary.BigEndian.Uint32(dst[4:8]))
	s += uint64(binary.BigEndian.Uint32(dst[8:12]))
	s += uint64(binary.BigEndian.Uint32(dst[12:16]))
	s += uint64(proto)
	s += uint64(uint32(length))
	return s
}
