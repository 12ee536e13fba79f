package dataplane

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/inner"
	"github.com/vxland/vxland/learning"
	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/offload"
)

// rxWorker is one receive worker: it reads one underlay receive queue and
// writes decapsulated frames to one queue of each segment's device.
type rxWorker struct {
	ep   *Endpoint
	id   int // its index among the underlay's receivers
	recv netio.Receiver
	msgs []netio.Datagram
	// touched are the segments this batch reached: their coalescers are
	// flushed and their counts added once the batch is done.
	touched []*segRx
	// datagrams counts this batch's datagrams (rx_datagrams).
	datagrams uint64
}

func newRxWorker(ep *Endpoint, id int, r netio.Receiver) *rxWorker {
	w := &rxWorker{ep: ep, id: id, recv: r, msgs: make([]netio.Datagram, defaultBatch), touched: make([]*segRx, 0, 16)}
	for i := range w.msgs {
		w.msgs[i].Buf = make([]byte, bufSize)
	}
	return w
}

// segRx is a segment's state in one receive worker: the device queue it
// writes to, its coalescer and its counts of the current batch.
type segRx struct {
	s       *Segment
	dev     netio.FrameDevice
	coal    *offload.Coalescer // nil on the plain path
	emitFn  func(offload.VirtioNetHdr, [][]byte) error
	vhdr    [offload.VirtioNetHdrLen]byte
	parts   [2 + offload.MaxMergeSegments][]byte // a write: virtio-net header, then the frame's parts
	touched bool

	frames, bytes, writes, writeErrors uint64
}

func (s *Segment) newSegRx(dev netio.FrameDevice) *segRx {
	r := &segRx{s: s, dev: dev}
	if s.vnet && s.cfg.Offload {
		r.coal = offload.NewCoalescer(offload.CoalescerConfig{MTU: s.cfg.MTU, Gather: true})
		r.emitFn = r.emit
	}
	return r
}

// loop reads batches of datagrams, splits those the kernel coalesced
// (UDP_GRO), validates and decapsulates them, and writes the inner frames
// to the device of their VNI, merging TCP segments of a flow into one GSO
// frame per write where the device takes offloads.
func (w *rxWorker) loop() error {
	w.touched = w.touched[:0] // a restart after a panic leaves the old batch behind
	for _, s := range w.ep.tab.Load().list {
		if r := s.rx[w.id]; r.coal != nil {
			r.coal.Reset()
		}
		s.rx[w.id].touched = false
	}
	for {
		n, err := w.recv.Recv(w.msgs)
		if err != nil {
			if isClosed(err) {
				return nil
			}
			if errors.Is(err, unix.ENOMEM) || errors.Is(err, unix.ENOBUFS) {
				continue
			}
			return err
		}
		w.receiveBatch(n)
	}
}

// receiveBatch handles the n datagrams Recv put in w.msgs: those from
// sources outside the allowlist are dropped unread, GRO trains are split,
// each datagram is received, and what the coalescers hold is written out.
func (w *rxWorker) receiveBatch(n int) {
	ep := w.ep
	for i := 0; i < n; i++ {
		m := &w.msgs[i]
		from := m.Addr.Addr()
		if !ep.allowed(from) {
			// Dropped unread: count each datagram of a GRO train.
			k := uint64(1)
			if g := m.GSOSize; g > 0 && m.N > g {
				k = uint64((m.N + g - 1) / g)
			}
			w.datagrams += k
			ep.notAllowed.Add(k)
			continue
		}
		if m.N < 0 { // truncated: larger than any buffer
			w.datagrams++
			ep.drop(encap.ReasonShort)
			continue
		}
		d := m.Buf[:m.N]
		g := m.GSOSize
		if g <= 0 || g >= len(d) {
			w.receive(d, from, m.TOS)
			continue
		}
		for off := 0; off < len(d); off += g {
			w.receive(d[off:min(off+g, len(d))], from, m.TOS)
		}
	}
	w.finish()
}

// finish ends a batch: the coalescers of the segments it reached are
// flushed and the counts added to the shared counters.
func (w *rxWorker) finish() {
	for _, r := range w.touched {
		r.flush()
		r.touched = false
		c := &r.s.c
		c.rxFrames.Add(r.frames)
		c.rxBytes.Add(r.bytes)
		c.tapWrites.Add(r.writes)
		c.tapWriteErr.Add(r.writeErrors)
		r.frames, r.bytes, r.writes, r.writeErrors = 0, 0, 0, 0
	}
	w.touched = w.touched[:0]
	w.ep.rxPackets.Add(w.datagrams)
	w.datagrams = 0
}

// receive handles one VXLAN datagram (the UDP payload).
func (w *rxWorker) receive(dgram []byte, from netip.Addr, tos uint8) {
	ep := w.ep
	w.datagrams++
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
	sr := seg.rx[w.id]
	if !sr.touched {
		sr.touched = true
		w.touched = append(w.touched, sr)
	}
	sr.receive(frame, from, tos, vni)
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

// receive checks, learns from and delivers one inner frame of the
// segment's VNI.
func (r *segRx) receive(frame []byte, from netip.Addr, tos uint8, vni uint32) {
	s := r.s
	if rs := encap.CheckInner(frame, s.cfg.MAC); rs != encap.ReasonOK {
		s.drop(rs)
		return
	}
	var l inner.Layout
	l.Decode(frame)
	if l.TruncatedIP() {
		s.drop(encap.ReasonInnerShort)
		return
	}
	src := fdb.MAC(frame[6:12])
	res, verdict := s.tune.Load().learn.Observe(s.cfg.Table, src, fdb.Dest{IP: from, Port: s.ep.cfg.Port, VNI: vni})
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
	if !encap.DecapECN(frame, &l, tos) {
		s.drop(encap.ReasonECN)
		return
	}
	r.frames++
	r.bytes += uint64(len(frame))
	if r.coal != nil {
		// A same-host kernel sender leaves TCP/UDP checksums partial (the
		// pseudo-header seed); the coalescer hands that state to the TAP as
		// NEEDS_CSUM, merged with the flow's neighbours where it can.
		if err := r.coal.Add(frame, &l); err != nil {
			r.flush()
			if r.coal.Add(frame, &l) != nil {
				r.writeErrors++
			}
		}
		return
	}
	offload.CompleteChecksum(frame, &l)
	if s.vnet {
		r.write(offload.VirtioNetHdr{}, frame)
		return
	}
	r.parts[0] = frame
	if r.dev.Write(r.parts[:1]) != nil {
		r.writeErrors++
	} else {
		r.writes++
	}
}

// flush writes what the coalescer holds to the device.
func (r *segRx) flush() {
	if r.coal != nil && r.coal.Len() > 0 {
		r.coal.FlushGather(r.emitFn)
	}
}

// emit is the coalescer's output: one frame, as parts pointing into the
// receive buffers (a merged frame: its headers, then each segment's
// payload), written behind its virtio-net header with one gathered write.
func (r *segRx) emit(h offload.VirtioNetHdr, parts [][]byte) error {
	h.Encode(r.vhdr[:])
	p := append(append(r.parts[:0], r.vhdr[:]), parts...)
	if r.dev.Write(p) != nil {
		r.writeErrors++
	} else {
		r.writes++
	}
	return nil
}

// write writes one frame behind its virtio-net header, gathered.
func (r *segRx) write(h offload.VirtioNetHdr, frame []byte) {
	h.Encode(r.vhdr[:])
	r.parts[0], r.parts[1] = r.vhdr[:], frame
	if r.dev.Write(r.parts[:2]) != nil {
		r.writeErrors++
	} else {
		r.writes++
	}
}
