package arpnd

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/vxland/vxland/checksum"
)

// FuzzParseReply feeds arbitrary frames to Parse and checks every answer
// Reply builds: the input is never modified, a reply goes to ReplyTo from
// the given MAC, says Target is there, and an NA's checksum is right.
func FuzzParseReply(f *testing.F) {
	f.Add(arpFrame(1, macAsker, ip4Asker, ip4Target))
	f.Add(arpFrame(2, macAsker, ip4Asker, ip4Target))
	f.Add(nsFrame(f, macAsker, ip6Asker, ip6Target, 0x20, slla(macOpt)))
	f.Add(nsFrame(f, macAsker, ip6Asker, ip6Target, 0, nil))
	f.Add(nsFrame(f, macAsker, netip.IPv6Unspecified(), ip6Target, 0, nil))
	f.Add([]byte{})
	f.Add(make([]byte, 14))
	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := bytes.Clone(frame)
		var r Request
		v := Parse(frame, &r)
		if !bytes.Equal(frame, orig) {
			t.Fatal("Parse modified its input")
		}
		if v > Invalid {
			t.Fatalf("verdict %d out of range", v)
		}
		if v != Forward && !IsCandidate(frame) {
			t.Fatalf("verdict %v for a frame IsCandidate rejects", v)
		}
		if v != Answer {
			return
		}
		b := make([]byte, MaxReplyLen)
		n := r.Reply(b, macTarget, true)
		if r.DAD {
			if n != 0 {
				t.Fatal("a DAD solicitation was answered")
			}
			return
		}
		b = b[:n]
		if [6]byte(b[0:6]) != r.ReplyTo || [6]byte(b[6:12]) != macTarget {
			t.Fatal("reply addressed wrongly")
		}
		if !r.V6 {
			if n != ARPReplyLen || !bytes.Equal(b[14+14:14+18], r.Target.AsSlice()) || !bytes.Equal(b[14+24:14+28], frame[14+14:14+18]) {
				t.Fatalf("arp reply % x for request % x", b, frame)
			}
			return
		}
		if n != NAReplyLen || !bytes.Equal(b[14+40+8:14+40+24], frame[14+40+8:14+40+24]) || !bytes.Equal(b[14+24:14+40], frame[14+8:14+24]) {
			t.Fatalf("na % x for ns % x", b, frame)
		}
		icmp := b[14+40:]
		s := checksum.PseudoV6(b[14+8:14+24], b[14+24:14+40], 58, len(icmp))
		if checksum.Fold(checksum.Sum(icmp, s)) != 0xffff || binary.BigEndian.Uint16(b[14+4:14+6]) != 32 {
			t.Fatal("na checksum or length wrong")
		}
	})
}
