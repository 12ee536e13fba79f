package dataplane

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/learning"
	"github.com/vxland/vxland/offload"
)

// rxHeadroom is where a datagram is received in its buffer: the 8-byte
// VXLAN header then ends exactly where a virtio-net header would, so the
// inner frame is handed to the TAP in place, the virtio-net header
// overwriting the VXLAN header that was already parsed.
const rxHeadroom = offload.VirtioNetHdrLen - encap.HeaderLen

// rxState is the receive loop's preallocated working set.
type rxState struct {
	bufs  [][]byte // whole buffers
	views [][]byte // bufs[i][rxHeadroom:]
	sizes []int
	from  []netip.AddrPort
	tos   []uint8
}

func newRxState() *rxState {
	st := &rxState{
		bufs:  make([][]byte, defaultBatch),
		views: make([][]byte, defaultBatch),
		sizes: make([]int, defaultBatch),
		from:  make([]netip.AddrPort, defaultBatch),
		tos:   make([]uint8, defaultBatch),
	}
	for i := range st.bufs {
		st.bufs[i] = make([]byte, bufSize)
		st.views[i] = st.bufs[i][rxHeadroom:]
	}
	return st
}

// receiveLoop reads batches of datagrams, validates and decapsulates them,
// and writes the inner frames to the TAP of their VNI.
func (ep *Endpoint) receiveLoop() error {
	st := newRxState()
	for {
		n, err := ep.rx.recv(st.views, st.sizes, st.from, st.tos)
		if err != nil {
			if isClosed(err) {
				return nil
			}
			if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.ENOBUFS) {
				continue
			}
			return err
		}
		ep.rxPackets.Add(uint64(n))
		for i := 0; i < n; i++ {
			ep.receive(st.bufs[i][:rxHeadroom+st.sizes[i]], st.from[i].Addr(), st.tos[i])
		}
	}
}

// receive handles one datagram; buf holds the headroom, the VXLAN header
// and the inner frame.
func (ep *Endpoint) receive(buf []byte, from netip.Addr, tos uint8) {
	vni, frame, r := encap.Parse(buf[rxHeadroom:])
	if r != encap.ReasonOK {
		ep.drop(r)
		return
	}
	seg := ep.one
	if seg == nil || seg.cfg.VNI != vni {
		seg = ep.byVNI[vni]
		if seg == nil {
			ep.drop(encap.ReasonUnknownVNI)
			return
		}
	}
	seg.receive(buf, frame, from, tos, vni)
}

func (ep *Endpoint) drop(r encap.Reason) {
	if c := ep.rxDrops[r]; c != nil {
		c.Inc()
	}
}

func (s *Segment) receive(buf, frame []byte, from netip.Addr, tos uint8, vni uint32) {
	ep := s.ep
	if r := encap.CheckInner(frame, s.cfg.MAC); r != encap.ReasonOK {
		ep.drop(r)
		return
	}
	if truncatedIP(frame) {
		ep.drop(encap.ReasonShort)
		return
	}
	src := fdb.MAC(frame[6:12])
	if s.learn.Enabled && !learning.Learnable(src) {
		// The kernel's vxlan_snoop refuses group and zero sources.
		s.c.rxBadSource.Inc()
		return
	}
	res, verdict := s.learn.Observe(s.cfg.Table, src, fdb.Dest{IP: from, Port: ep.cfg.Port, VNI: vni})
	switch res {
	case fdb.Learned:
		s.c.learned.Inc()
	case fdb.Migrated:
		s.c.migrated.Inc()
	case fdb.Full:
		s.c.learnFull.Inc()
	}
	if verdict == learning.Drop {
		ep.drop(encap.ReasonLearnConflict)
		return
	}
	if !encap.DecapECN(frame, tos) {
		ep.drop(encap.ReasonECN)
		return
	}
	var err error
	if s.tap.VnetHdr() {
		// A same-host kernel sender leaves TCP/UDP checksums partial (only
		// the pseudo-header seed); hand that state to the TAP as it was.
		var h offload.VirtioNetHdr
		if start, off, ok := offload.PartialChecksum(frame); ok {
			h.Flags = offload.FlagNeedsCsum
			h.CsumStart = uint16(start)
			h.CsumOffset = uint16(off)
		}
		whole := buf[:offload.VirtioNetHdrLen+len(frame)]
		h.Encode(whole)
		err = s.tap.Write(whole)
	} else {
		offload.CompleteChecksum(frame)
		err = s.tap.Write(frame)
	}
	if err != nil {
		s.c.tapWriteErr.Inc()
		return
	}
	s.c.rxFrames.Inc()
	s.c.rxBytes.Add(uint64(len(frame)))
}

// truncatedIP reports an untagged IPv4 or IPv6 frame too short for its IP
// header, which the kernel drops before looking at ECN.
func truncatedIP(frame []byte) bool {
	switch uint16(frame[12])<<8 | uint16(frame[13]) {
	case 0x0800:
		return len(frame) < encap.EthHeaderLen+20
	case 0x86dd:
		return len(frame) < encap.EthHeaderLen+40
	}
	return false
}
