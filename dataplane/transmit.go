package dataplane

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/arpnd"
	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/inner"
	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/offload"
)

// txState is one transmit worker's preallocated working set: the frames
// read, the datagrams queued for its Sender, and its counts, added to the
// segment's counters once per batch.
type txState struct {
	dev    netio.FrameDevice
	sender netio.Sender
	bufs   [][]byte
	sizes  []int

	// queue is what the batch produced so far, sent by flush; parts backs
	// each message's Parts.
	queue []netio.Datagram
	nq    int
	parts [][]byte
	npart int
	// hdrs holds one VXLAN header per queued datagram, so that a frame
	// replicated to several destinations is never copied.
	hdrs [][encap.HeaderLen]byte
	nhdr int

	// Segmentation of TSO super-frames: SegmentGather builds each
	// segment's VXLAN and inner headers in a segHdrs slot and points
	// segPay into the device's read buffer; a train is sent as the iovec
	// pairs [hdr, payload], so the payload is never copied. segNext is the
	// first slot free until the next flush.
	segHdrs [][]byte
	segPay  [][]byte
	segNext int

	// The proxy's parsed request and the reply it builds, and the parts
	// of the reply's write (an empty virtio-net header first when the
	// device has one).
	req    arpnd.Request
	reply  [arpnd.MaxReplyLen]byte
	zhdr   [offload.VirtioNetHdrLen]byte
	rparts [2][]byte

	// counts of this batch, not yet added to the shared counters
	frames, bytes, messages, sendErrors uint64
}

// maxQueued bounds the datagrams queued between two flushes.
const maxQueued = 4 * defaultBatch

func newTxState(dev netio.FrameDevice, sender netio.Sender) *txState {
	st := &txState{
		dev:    dev,
		sender: sender,
		bufs:   make([][]byte, defaultBatch),
		sizes:  make([]int, defaultBatch),
		queue:  make([]netio.Datagram, maxQueued),
		parts:  make([][]byte, 2*maxQueued),
		hdrs:   make([][encap.HeaderLen]byte, maxQueued),
	}
	for i := range st.bufs {
		st.bufs[i] = make([]byte, bufSize)
	}
	st.segHdrs = make([][]byte, maxSegments)
	hb := make([]byte, maxSegments*segHdrSlot)
	for i := range st.segHdrs {
		st.segHdrs[i] = hb[i*segHdrSlot : (i+1)*segHdrSlot : (i+1)*segHdrSlot]
	}
	st.segPay = make([][]byte, maxSegments)
	return st
}

// queueDatagram adds one datagram, hdr (if not nil) followed by payload,
// to the batch; with gsoSize > 0 the payload is a UDP_SEGMENT train. It
// returns false for an empty payload. The caller has made room (full).
func (st *txState) queueDatagram(hdr, payload []byte, to netip.AddrPort, tos, ttl uint8, gsoSize int, flow uint32) bool {
	if len(payload) == 0 {
		return false
	}
	p := st.parts[st.npart:st.npart:len(st.parts)]
	if hdr != nil {
		p = append(p, hdr)
	}
	p = append(p, payload)
	st.npart += len(p)
	st.queue[st.nq] = netio.Datagram{Parts: p, Addr: to, TOS: tos, TTL: ttl, GSOSize: gsoSize, Flow: flow}
	st.nq++
	return true
}

// queueTrain adds one datagram train gathered from the pairs [hdrs[i][:hlen],
// pay[i]], a UDP_SEGMENT train of gsoSize-byte datagrams when gsoSize > 0.
// The caller has checked that 2*len(hdrs) parts fit.
func (st *txState) queueTrain(hdrs, pay [][]byte, hlen int, to netip.AddrPort, tos, ttl uint8, gsoSize int, flow uint32) {
	p := st.parts[st.npart:st.npart:len(st.parts)]
	for i := range hdrs {
		p = append(p, hdrs[i][:hlen], pay[i])
	}
	st.npart += len(p)
	st.queue[st.nq] = netio.Datagram{Parts: p, Addr: to, TOS: tos, TTL: ttl, GSOSize: gsoSize, Flow: flow}
	st.nq++
}

// full reports whether another datagram (and its header slot) fits.
func (st *txState) full() bool {
	return st.nq == len(st.queue) || st.nhdr == len(st.hdrs) || st.npart+2 > len(st.parts)
}

// writeFrame writes a locally made frame (a proxy reply) to the worker's
// device queue, behind an empty virtio-net header when it has one.
func (st *txState) writeFrame(vnet bool, frame []byte) error {
	parts := st.rparts[:0]
	if vnet {
		parts = append(parts, st.zhdr[:])
	}
	return st.dev.Write(append(parts, frame))
}

const (
	// maxSegments bounds the segments of one super-frame (64 KiB at the
	// smallest MSS the kernel uses for TSO, with room to spare).
	maxSegments = 1024
	// segHdrSlot holds a VXLAN header and a segment's Ethernet (two VLAN
	// tags), IP and TCP headers with options.
	segHdrSlot = encap.HeaderLen + inner.EthHeaderLen + inner.MaxVLANTags*inner.VLANTagLen + 60 + 60
	// udpMaxSegments is the most datagrams one UDP_SEGMENT send may carry
	// on older kernels (UDP_MAX_SEGMENTS; newer ones allow 128).
	udpMaxSegments = 64
	// maxGSOPayload is the largest UDP payload of one send: the IP total
	// length is 16 bits.
	maxGSOPayload = 65535 - 60 - 8
)

// spawnTransmit starts one transmit worker per device queue. The caller
// holds ep.mu.
func (s *Segment) spawnTransmit() {
	for _, d := range s.devs {
		st := newTxState(d, s.ep.ul.NewSender())
		s.ep.spawn(func() error { return s.transmitLoop(st) })
	}
}

// transmitLoop reads frames from one device queue, encapsulates them and
// sends them to their destinations, a batch at a time.
func (s *Segment) transmitLoop(st *txState) error {
	st.nq, st.npart, st.nhdr, st.segNext = 0, 0, 0, 0 // a restart after a panic leaves the old batch behind
	for {
		n, err := st.dev.Read(st.bufs, st.sizes, 0)
		if err != nil {
			if isClosed(err) || s.removed.Load() {
				return nil
			}
			return err
		}
		s.transmitBatch(st, n)
	}
}

// transmitBatch forwards the n frames Read put in st.
func (s *Segment) transmitBatch(st *txState, n int) {
	tn := s.tune.Load()
	for i := 0; i < n; i++ {
		b := st.bufs[i][:st.sizes[i]]
		if s.vnet {
			var h offload.VirtioNetHdr
			if h.Decode(b) != nil {
				s.c.txBadGSO.Inc()
				continue
			}
			b = b[offload.VirtioNetHdrLen:]
			s.observe(b)
			if h.GSOType != offload.GSONone {
				s.forwardGSO(st, tn, h, b)
				continue
			}
			if h.Flags&offload.FlagNeedsCsum != 0 && !offload.CompleteAt(b, int(h.CsumStart), int(h.CsumOffset)) {
				s.c.txBadGSO.Inc()
				continue
			}
		} else {
			s.observe(b)
		}
		s.transmitFrame(st, tn, b)
	}
	s.flush(st)
}

// observe shows the frame to the segment's FrameObserver.
func (s *Segment) observe(frame []byte) {
	if s.cfg.Frames != nil && len(frame) >= encap.EthHeaderLen {
		s.cfg.Frames.ObserveFrame(frame)
	}
}

// transmitFrame handles one frame from the TAP that is not a TSO
// super-frame: the proxy takes ARP and Neighbor Solicitations when on,
// everything else is forwarded.
func (s *Segment) transmitFrame(st *txState, tn *tuning, frame []byte) {
	if tn.Proxy && arpnd.IsCandidate(frame) && s.proxy(st, tn, frame) {
		return
	}
	s.forward(st, tn, frame)
}

// route is where a frame goes: the destinations of its destination MAC,
// else of the all-zeros entry (head-end replication of broadcast,
// multicast and unknown unicast), and the send batch its flow hash picks.
// It returns nil destinations when there are none, raising an l2miss for
// a unicast destination when asked to. With route short-circuiting, an IP
// frame to a router's MAC is first readdressed to the neighbour of its
// destination IP.
func (s *Segment) route(frame []byte, l *inner.Layout, tn *tuning) (dests []fdb.Dest, flow uint32) {
	if tn.RSC {
		var router bool
		dests, router = s.cfg.Table.LookupRouter(fdb.MAC(frame[0:6]))
		if router && s.shortCircuit(frame, tn) {
			dests = s.cfg.Table.Lookup(fdb.MAC(frame[0:6]))
		}
	} else {
		dests = s.cfg.Table.Lookup(fdb.MAC(frame[0:6]))
	}
	if len(dests) == 0 {
		dests = s.cfg.Table.Defaults()
		if len(dests) == 0 {
			if tn.L2Miss && frame[0]&1 == 0 {
				s.c.l2miss.Inc()
				s.bus.L2Miss(fdb.MAC(frame[0:6]))
			}
			return nil, 0
		}
	}
	return dests, encap.FlowHash(frame, l)
}

// usable reports whether d can be sent to from this endpoint.
func (s *Segment) usable(d *fdb.Dest) bool {
	return d.IP.IsValid() && !d.IP.IsUnspecified() && d.IP.Is4() != s.ep.ulCaps.V6
}

// forward queues frame for every destination route gives, the VXLAN header
// gathered from a per-datagram slot so that replication never copies.
func (s *Segment) forward(st *txState, tn *tuning, frame []byte) {
	if len(frame) < encap.EthHeaderLen {
		s.c.txShort.Inc()
		return
	}
	var l inner.Layout
	l.Decode(frame)
	dests, flow := s.route(frame, &l, tn)
	if !s.queueToDests(st, tn, frame, &l, dests, flow, netio.InnerGSO{}) {
		s.c.txNoDest.Inc()
		return
	}
	st.frames++
	st.bytes += uint64(len(frame))
}

// queueToDests queues frame once for every usable destination, the VXLAN
// header gathered from a per-datagram slot so that replication never
// copies; whole, when set, marks it a super-frame the underlay takes
// whole. It reports whether anything was queued.
func (s *Segment) queueToDests(st *txState, tn *tuning, frame []byte, l *inner.Layout, dests []fdb.Dest, flow uint32, whole netio.InnerGSO) bool {
	tos := encap.OuterTOS(frame, l, tn.TOS, tn.TOSInherit)
	queued := false
	for i := range dests {
		d := &dests[i]
		if !s.usable(d) {
			continue
		}
		if st.full() {
			s.flush(st)
		}
		h := st.hdrs[st.nhdr][:]
		st.nhdr++
		encap.PutHeader(h, d.VNI)
		if st.queueDatagram(h, frame, netip.AddrPortFrom(d.IP, s.destPort(d)), tos, s.ttlFor(frame, l, d), 0, flow) {
			st.queue[st.nq-1].Inner = whole
			queued = true
		}
	}
	return queued
}

// flush sends everything the worker has queued and adds the worker's
// counts to the segment's counters.
func (s *Segment) flush(st *txState) {
	defer s.addCounts(st)
	if st.nq > 0 {
		q := st.queue[:st.nq]
		sent, _ := st.sender.Send(q)
		st.messages += uint64(sent)
		failedGSO := 0
		for i := range q {
			if q[i].Err == nil {
				continue
			}
			st.sendErrors++
			if g := q[i].GSOSize; g > 0 && failedGSO == 0 &&
				(errors.Is(q[i].Err, unix.EINVAL) || errors.Is(q[i].Err, unix.EMSGSIZE)) {
				failedGSO = g
			}
		}
		if failedGSO > 0 {
			s.ep.lowerGSOLimit(failedGSO)
		}
		clear(q) // drop the references to this batch's buffers
	}
	st.nq, st.npart, st.nhdr, st.segNext = 0, 0, 0, 0
}

// addCounts adds what the worker counted to the segment's counters.
func (s *Segment) addCounts(st *txState) {
	if st.frames|st.messages|st.sendErrors == 0 {
		return
	}
	s.c.txFrames.Add(st.frames)
	s.c.txBytes.Add(st.bytes)
	s.c.txMessages.Add(st.messages)
	s.c.txErrors.Add(st.sendErrors)
	st.frames, st.bytes, st.messages, st.sendErrors = 0, 0, 0, 0
}

// forwardGSO segments a TSO super-frame into MSS-sized inner frames, each
// with its checksum, and queues them as trains of equal-sized VXLAN
// datagrams, one UDP_SEGMENT send per train and destination. Without UDP
// GSO, or for segments the underlay cannot carry as a train, every
// datagram is queued on its own (the kernel fragments those, as it does
// for its own vxlan devices: DF is not set).
func (s *Segment) forwardGSO(st *txState, tn *tuning, h offload.VirtioNetHdr, frame []byte) {
	if len(frame) < encap.EthHeaderLen {
		s.c.txShort.Inc()
		return
	}
	var l inner.Layout
	l.Decode(frame)
	dests, flow := s.route(frame, &l, tn)
	if dests == nil {
		s.c.txNoDest.Inc()
		return
	}
	if s.ep.ulCaps.TunnelGSO && s.forwardWhole(st, tn, &l, h, frame, dests, flow) {
		return
	}
	n, err := offload.SegmentGather(&l, h, frame, encap.HeaderLen, st.segHdrs[st.segNext:], st.segPay[st.segNext:])
	if errors.Is(err, offload.ErrTooManySegments) && st.segNext > 0 {
		s.flush(st) // frees the header slots of the frames before
		n, err = offload.SegmentGather(&l, h, frame, encap.HeaderLen, st.segHdrs, st.segPay)
	}
	if err != nil || n == 0 {
		s.c.txBadGSO.Inc()
		return
	}
	first := st.segNext
	hdrs, pay := st.segHdrs[first:first+n], st.segPay[first:first+n]
	hlen := len(hdrs[0]) // the same for every segment
	stride := hlen + len(pay[0])
	for i := range hdrs {
		hdrs[i] = hdrs[i][:cap(hdrs[i])] // ready for the next SegmentGather
	}
	if stride > maxGSOPayload {
		s.c.txBadGSO.Inc()
		return
	}
	st.segNext += n
	slotsEnd := st.segNext

	// Every segment carries the super-frame's TOS and TTL.
	tos := encap.OuterTOS(frame, &l, tn.TOS, tn.TOSInherit)
	per := min(udpMaxSegments, maxGSOPayload/stride, len(st.parts)/2)
	if !s.ep.ulCaps.GSO || stride > int(s.ep.gsoLimit.Load()) {
		per = 1
	}
	queued := false
	vni := int64(-1)
	for i := range dests {
		d := &dests[i]
		if !s.usable(d) {
			continue
		}
		if int64(d.VNI) != vni {
			if vni >= 0 {
				// Earlier destinations' datagrams share these headers.
				s.flush(st)
			}
			for j := range hdrs {
				encap.PutHeader(hdrs[j], d.VNI)
			}
			vni = int64(d.VNI)
		}
		to := netip.AddrPortFrom(d.IP, s.destPort(d))
		ttl := s.ttlFor(frame, &l, d)
		for c := 0; c < n; c += per {
			end := min(c+per, n)
			if st.nq == len(st.queue) || st.npart+2*(end-c) > len(st.parts) {
				s.flush(st)
			}
			gso := stride
			if end-c == 1 {
				gso = 0 // a single datagram
			}
			st.queueTrain(hdrs[c:end], pay[c:end], hlen, to, tos, ttl, gso, flow)
			queued = true
		}
	}
	if st.segNext < slotsEnd {
		// A flush above emptied the batch; keep these slots reserved for
		// the datagrams queued after it.
		st.segNext = slotsEnd
	}
	if !queued {
		st.segNext -= n // nothing refers to the slots
		s.c.txNoDest.Inc()
		return
	}
	st.frames += uint64(n)
	st.bytes += uint64(n*(hlen-encap.HeaderLen) + l.End() - l.PayloadOff())
}

// destPort is the UDP port to send to d.
func (s *Segment) destPort(d *fdb.Dest) uint16 {
	if d.Port != 0 {
		return d.Port
	}
	return s.ep.port
}

// ttlFor is the outer TTL of frame (whose layout is l) towards d:
// inherited from the inner packet, configured, else 64, or 1 for a
// multicast group.
func (s *Segment) ttlFor(frame []byte, l *inner.Layout, d *fdb.Dest) uint8 {
	tn := s.tune.Load()
	if tn.TTLInherit {
		if ttl := encap.InnerTTL(frame, l); ttl != 0 {
			return ttl
		}
		return 64 // the kernel's ip4_dst_hoplimit for non-IP frames
	}
	if tn.TTL != 0 {
		return tn.TTL
	}
	if d.IP.IsMulticast() {
		return 1
	}
	return 64
}
