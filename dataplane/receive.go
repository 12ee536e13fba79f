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

// rxState is the receive loop's preallocated working set.
type rxState struct {
	bufs  [][]byte
	sizes []int
	from  []netip.AddrPort
	tos   []uint8
	gso   []int // UDP_GRO segment size of each datagram, 0 if single
}

func newRxState() *rxState {
	st := &rxState{
		bufs:  make([][]byte, defaultBatch),
		sizes: make([]int, defaultBatch),
		from:  make([]netip.AddrPort, defaultBatch),
		tos:   make([]uint8, defaultBatch),
		gso:   make([]int, defaultBatch),
	}
	for i := range st.bufs {
		st.bufs[i] = make([]byte, bufSize)
	}
	return st
}

// receiveLoop reads batches of datagrams, splits those the kernel
// coalesced (UDP_GRO), validates and decapsulates them, and writes the
// inner frames to the TAP of their VNI, merging TCP segments of a flow
// into one GSO frame per write where the TAP takes offloads.
func (ep *Endpoint) receiveLoop() error {
	st := newRxState()
	for _, s := range ep.tab.Load().list {
		if s.coal != nil {
			s.coal.Reset() // a restart after a panic leaves the old batch behind
		}
	}
	for {
		n, err := ep.rx.recv(st.bufs, st.sizes, st.from, st.tos, st.gso)
		if err != nil {
			if isClosed(err) {
				return nil
			}
			if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.ENOBUFS) {
				continue
			}
			return err
		}
		ep.receiveBatch(st, n)
	}
}

// receiveBatch handles the n datagrams recv put in st: those from sources
// outside the allowlist are dropped unread, GRO trains are split, each
// datagram is received, and what the coalescers hold is written out.
func (ep *Endpoint) receiveBatch(st *rxState, n int) {
	for i := 0; i < n; i++ {
		from := st.from[i].Addr()
		if !ep.allowed(from) {
			// Dropped unread: count each datagram of a GRO train.
			k := uint64(1)
			if g := st.gso[i]; g > 0 && st.sizes[i] > g {
				k = uint64((st.sizes[i] + g - 1) / g)
			}
			ep.rxPackets.Add(k)
			ep.notAllowed.Add(k)
			continue
		}
		if st.sizes[i] < 0 { // truncated: larger than any buffer
			ep.rxPackets.Inc()
			ep.drop(encap.ReasonShort)
			continue
		}
		d := st.bufs[i][:st.sizes[i]]
		g := st.gso[i]
		if g <= 0 || g >= len(d) {
			ep.receive(d, from, st.tos[i])
			continue
		}
		for off := 0; off < len(d); off += g {
			ep.receive(d[off:min(off+g, len(d))], from, st.tos[i])
		}
	}
	for _, s := range ep.tab.Load().list {
		s.flushRx()
	}
}

// receive handles one VXLAN datagram (the UDP payload).
func (ep *Endpoint) receive(dgram []byte, from netip.Addr, tos uint8) {
	ep.rxPackets.Inc()
	vni, frame, r := encap.Parse(dgram)
	if r != encap.ReasonOK && r != encap.ReasonReserved {
		ep.drop(r)
		return
	}
	// The kernel looks the VNI up before it checks the reserved bits.
	tab := ep.tab.Load()
	seg := tab.one
	if seg == nil || seg.cfg.VNI != vni {
		seg = tab.byVNI[vni]
		if seg == nil {
			ep.drop(encap.ReasonUnknownVNI)
			return
		}
	}
	if m := seg.members.Load(); m != nil {
		if _, ok := (*m)[from.Unmap()]; !ok {
			seg.c.rxNotMember.Inc()
			return
		}
	}
	if r == encap.ReasonReserved {
		seg.drop(r)
		return
	}
	seg.receive(frame, from, tos, vni)
}

// drop counts a datagram dropped before its VNI was known.
func (ep *Endpoint) drop(r encap.Reason) {
	if c := ep.rxDrops[r]; c != nil {
		c.Inc()
	}
}

// drop counts a datagram of the segment's VNI dropped.
func (s *Segment) drop(r encap.Reason) {
	if c := s.rxDrops[r]; c != nil {
		c.Inc()
	}
}

func (s *Segment) receive(frame []byte, from netip.Addr, tos uint8, vni uint32) {
	ep := s.ep
	if r := encap.CheckInner(frame, s.cfg.MAC); r != encap.ReasonOK {
		s.drop(r)
		return
	}
	if truncatedIP(frame) {
		s.drop(encap.ReasonInnerShort)
		return
	}
	src := fdb.MAC(frame[6:12])
	res, verdict := s.tune.Load().learn.Observe(s.cfg.Table, src, fdb.Dest{IP: from, Port: ep.cfg.Port, VNI: vni})
	switch res {
	case fdb.Learned:
		s.c.learned.Inc()
	case fdb.Migrated:
		s.c.migrated.Inc()
	case fdb.Full:
		s.c.learnFull.Inc()
	case fdb.Limited:
		s.c.learnLimited.Inc()
	}
	switch verdict {
	case learning.Drop:
		s.drop(encap.ReasonLearnConflict)
		return
	case learning.DropInvalidSource:
		s.c.rxBadSource.Inc()
		return
	}
	if !encap.DecapECN(frame, tos) {
		s.drop(encap.ReasonECN)
		return
	}
	s.c.rxFrames.Inc()
	s.c.rxBytes.Add(uint64(len(frame)))
	if s.coal != nil {
		// A same-host kernel sender leaves TCP/UDP checksums partial (the
		// pseudo-header seed); the coalescer hands that state to the TAP as
		// NEEDS_CSUM, merged with the flow's neighbours where it can.
		if err := s.coal.Add(frame); err != nil {
			s.flushRx()
			if s.coal.Add(frame) != nil {
				s.c.tapWriteErr.Inc()
			}
		}
		return
	}
	offload.CompleteChecksum(frame)
	if s.tap.Write(frame) != nil {
		s.c.tapWriteErr.Inc()
	}
}

// flushRx writes what the coalescer holds to the TAP.
func (s *Segment) flushRx() {
	if s.coal != nil && s.coal.Len() > 0 {
		s.coal.Flush(s.emitFn)
	}
}

// emit writes one frame with its virtio-net header to the TAP.
func (s *Segment) emit(h offload.VirtioNetHdr, frame []byte) error {
	h.Encode(s.vhdr[:])
	if s.tap.WriteHdr(s.vhdr[:], frame) != nil {
		s.c.tapWriteErr.Inc()
	} else {
		s.c.tapWrites.Inc()
	}
	return nil
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
