package offload

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/vxland/vxland/checksum"
	"github.com/vxland/vxland/inner"
)

// Coalescer defaults.
const (
	// DefaultMaxFrames is the default CoalescerConfig.MaxFrames.
	DefaultMaxFrames = 128
	// DefaultMaxBuffers is the default CoalescerConfig.MaxBuffers.
	DefaultMaxBuffers = 16
	// mergeBufSize holds the largest frame a merge can build: a 22-byte
	// L2 header (two VLAN tags) plus a 65535-byte IP packet.
	mergeBufSize = ethHdrLen + inner.MaxVLANTags*vlanHdrLen + maxIPLen
	// MaxMergeSegments bounds the segments merged into one frame, as the
	// kernel's GRO bounds a UDP GRO train (UDP_GRO_CNT_MAX). At an MSS of
	// 1024 or more the 64 KiB IP length limit is reached first.
	MaxMergeSegments = 64
	// maxMergeHdrLen holds the headers of a merge candidate: two VLAN
	// tags, an IPv6 header and a TCP header with 40 bytes of options.
	maxMergeHdrLen = ethHdrLen + inner.MaxVLANTags*vlanHdrLen + ipv6HdrLen + 60
)

// CoalescerConfig configures a Coalescer. The zero value is usable.
type CoalescerConfig struct {
	// MaxFrames bounds the output frames held between two Flush calls
	// (default DefaultMaxFrames). Add returns ErrCoalescerFull when a frame
	// would need one more.
	MaxFrames int
	// MaxBuffers is the number of merge buffers, each able to hold a
	// 64 KiB GSO frame (default DefaultMaxBuffers); it bounds how many
	// merged frames one batch can build. All are allocated by NewCoalescer.
	MaxBuffers int
	// MTU is the L3 MTU of the TAP device (e.g. 1450 behind a 1500-byte
	// underlay). A TCP segment whose IP packet is longer than MTU - the
	// unsegmented ~64 KB datagram a same-host kernel vxlan sender can hand
	// over - is written as a GSO frame with gso_size = MTU minus its IP and
	// TCP header lengths, so that the TAP side can re-segment or forward it.
	// 0 disables this: such frames pass through as they are.
	MTU int
	// Gather selects the gather mode: merged frames are handed to
	// FlushGather as a header and a list of payload slices pointing into
	// the frames given to Add, and no merge buffers are allocated (Flush,
	// which needs them, then fails).
	Gather bool
}

// Coalescer is the receive-side counterpart of SegmentTCP (GRO for a TAP):
// it takes decapsulated inner Ethernet frames in arrival order and merges
// consecutive TCP segments of a flow into one frame carrying a virtio-net
// header with GSOTCPv4/GSOTCPv6 and FlagNeedsCsum, so that a batch of
// segments costs one write(2) to a TAP opened with IFF_VNET_HDR (and TSO
// offloads enabled with TUNSETOFFLOAD). Frames that cannot be merged are
// passed through unchanged.
//
// Usage, once per received batch:
//
//	for _, f := range frames {
//		if err := c.Add(f); errors.Is(err, offload.ErrCoalescerFull) {
//			c.Flush(write)
//			c.Add(f)
//		}
//	}
//	c.Flush(write) // write(hdr, frame): encode hdr, writev(tap, hdr|frame)
//
// A segment S is appended to the frame F being built for its flow when all
// of the following hold (the rules of the kernel's tcp_gro_receive and
// wireguard-go):
//   - S is IPv4 without options and not a fragment, or IPv6 without
//     extension headers; TCP; flags exactly ACK or ACK|PSH; payload > 0;
//     its IPv4 header checksum verifies; the frame has no trailing padding;
//   - same Ethernet header (addresses, VLAN tag, ethertype); same IP
//     addresses, TOS/traffic class, TTL/hop limit, DF bit (IPv6: same flow
//     label); same ports, ACK number, window and TCP options (byte for byte);
//   - S's sequence number is F's next one; S's payload is no larger than
//     F's first (the MSS, which becomes gso_size); F has not ended, i.e. it
//     did not receive a shorter segment or one with PSH (PSH is kept on F);
//   - the merged IP packet stays within 65535 bytes and MaxMergeSegments
//     segments, and a merge slot is free;
//   - both S and F's first segment carry a checksum that is either valid
//     (verified, one pass over the segment) or the pseudo-header seed
//     (CHECKSUM_PARTIAL from a same-host sender, trusted without a pass,
//     just as the kernel trusts CHECKSUM_PARTIAL; the outer UDP checksum is
//     what guards such frames in transit). A segment with a wrong checksum
//     is never merged: it passes through unchanged for the inner stack to
//     drop.
//
// Frames of a flow are never reordered: a TCP frame that cannot join its
// flow's open frame (a FIN, a pure ACK, a gap) closes it, and output frames
// keep arrival order.
//
// Output headers: a merged frame gets NEEDS_CSUM, GSOTCPv4/6, HdrLen =
// Ethernet+IP+TCP header length, GSOSize = MSS, CsumStart = L4 offset,
// CsumOffset = 16; its IPv4 total length and header checksum (IPv6 payload
// length) are rewritten and its TCP checksum field is set to the seed over the
// merged length. A single frame whose TCP/UDP checksum is a seed gets
// NEEDS_CSUM (GSONone) with CsumStart/CsumOffset, restoring the sender's
// CHECKSUM_PARTIAL state; any other frame gets a zero header.
//
// Memory: frames passed to Add are referenced, not copied, until Flush or
// FlushGather returns: a merged frame is kept as a copy of its first
// segment's headers (rewritten at flush time) and the list of the segments'
// payload slices. FlushGather hands out exactly that, so that one writev
// carries the virtio-net header, the headers and the payloads; Flush copies
// them into a merge buffer first, each payload byte once. The caller must
// keep the frames valid and unmodified until then. Add modifies a frame in place only to replace a
// valid TCP checksum by its seed on an over-MTU frame (see
// CoalescerConfig.MTU), and to complete a seeded checksum in software on a
// frame with Ethernet padding (NEEDS_CSUM would sum the padding too). After
// NewCoalescer, Add and Flush do not allocate.
//
// A Coalescer is not safe for concurrent use; use one per TAP writer.
type Coalescer struct {
	cfg     CoalescerConfig
	items   []citem
	buckets []int32 // flow hash -> latest item index, chained by citem.next
	mask    uint32
	slots   []mergeSlot
	bufs    [][]byte // Flush's merge buffers, one per slot; nil in gather mode
	free    []int32  // indices of unused slots
	one     [1][]byte
}

// mergeSlot holds a merged frame under construction: its headers, copied
// from the first segment, and parts[0] = the headers, parts[1:] = the
// payloads of the segments, in order.
type mergeSlot struct {
	hdr   [maxMergeHdrLen]byte
	parts [1 + MaxMergeSegments][]byte
}

// citem kinds.
const (
	kindPass     = iota // passed through unchanged
	kindTCP             // TCP segment that may head or be part of a merge
	kindOversize        // over-MTU TCP frame emitted as a GSO frame
)

// citem is one output frame under construction.
type citem struct {
	frame   []byte       // the caller's frame (the first segment when merged)
	info    inner.Layout // the layout of frame
	hash    uint32
	next    int32  // older item in the same hash bucket, -1 at the end
	buf     int32  // merge slot index, -1 while nothing is merged
	total   int    // length of the (merged) frame
	seq     uint32 // next expected TCP sequence number
	gsoSize int    // payload length of the first segment (the MSS)
	segs    int    // segments merged into frame
	kind    uint8
	parsed  bool // info.Transport
	open    bool // may still take segments
	checked bool // the first segment's checksum was verified or is a seed
	seeded  bool // the first segment's checksum field holds the seed
}

// NewCoalescer returns a Coalescer with all buffers allocated.
func NewCoalescer(cfg CoalescerConfig) *Coalescer {
	if cfg.MaxFrames <= 0 {
		cfg.MaxFrames = DefaultMaxFrames
	}
	if cfg.MaxBuffers <= 0 {
		cfg.MaxBuffers = DefaultMaxBuffers
	}
	nb := 16
	for nb < 2*cfg.MaxFrames {
		nb <<= 1
	}
	c := &Coalescer{
		cfg:     cfg,
		items:   make([]citem, 0, cfg.MaxFrames),
		buckets: make([]int32, nb),
		mask:    uint32(nb - 1),
		slots:   make([]mergeSlot, cfg.MaxBuffers),
		free:    make([]int32, 0, cfg.MaxBuffers),
	}
	if !cfg.Gather {
		c.bufs = make([][]byte, cfg.MaxBuffers)
		for i := range c.bufs {
			c.bufs[i] = make([]byte, mergeBufSize)
		}
	}
	c.Reset()
	return c
}

// Len returns the number of output frames pending until the next Flush.
func (c *Coalescer) Len() int { return len(c.items) }

// Reset drops all pending frames without emitting them.
func (c *Coalescer) Reset() {
	c.items = c.items[:0]
	for i := range c.buckets {
		c.buckets[i] = -1
	}
	c.free = c.free[:0]
	for i := len(c.slots) - 1; i >= 0; i-- {
		c.free = append(c.free, int32(i))
	}
}

// Add offers the next inner Ethernet frame, whose layout is l. It either
// merges the frame into a pending one or queues it as a new output frame. It
// returns ErrCoalescerFull, having queued nothing, when a new output frame
// is needed and MaxFrames are pending; Flush and Add the frame again. frame
// must stay valid and unmodified until Flush, FlushGather or Reset returns.
func (c *Coalescer) Add(frame []byte, l *inner.Layout) error {
	info := l
	ok := l.Transport
	if !ok || info.Proto != protoTCP {
		if len(c.items) == cap(c.items) {
			return ErrCoalescerFull
		}
		it := c.push(frame, info, kindPass)
		it.parsed = ok
		if ok {
			it.seeded = seedState(frame, info)
		}
		return nil
	}

	h := flowHash(frame, info)
	cand, plen := candidate(frame, info)
	kind := uint8(kindTCP)
	if c.cfg.MTU > 0 && info.IPLen > c.cfg.MTU {
		// Too large to be one wire segment: never merged, possibly
		// emitted as GSO on its own.
		cand = false
		kind = kindOversize
	}
	pktChecked := false
	if latest := c.lookup(h, frame, info); latest >= 0 {
		it := &c.items[latest]
		if cand && it.open {
			switch c.merge(it, frame, info, plen) {
			case mergeDone:
				return nil
			case mergePktBad:
				cand = false // will never merge; pass it through
			case mergeHeadBad, mergeNoBuffer:
				pktChecked = true // valid or seeded: no second look
			}
		}
		// Whatever comes next for this flow must follow frame.
		it.open = false
	}
	if len(c.items) == cap(c.items) {
		return ErrCoalescerFull
	}
	it := c.push(frame, info, kind)
	it.parsed = true
	it.hash = h
	it.next = c.buckets[h&c.mask]
	c.buckets[h&c.mask] = int32(len(c.items) - 1)
	it.seq = binary.BigEndian.Uint32(frame[info.L4Off+4:info.L4Off+8]) + uint32(plen)
	it.gsoSize = plen
	it.seeded = seedState(frame, info)
	it.checked = pktChecked
	it.open = cand && frame[info.L4Off+13]&tcpFlagPSH == 0
	if kind == kindOversize {
		c.prepareOversize(it)
	}
	return nil
}

// push appends a new item and returns it.
func (c *Coalescer) push(frame []byte, info *inner.Layout, kind uint8) *citem {
	c.items = append(c.items, citem{
		frame: frame,
		info:  *info,
		next:  -1,
		buf:   -1,
		total: len(frame),
		segs:  1,
		kind:  kind,
	})
	return &c.items[len(c.items)-1]
}

// seedState reports whether a frame that will leave on its own has a seeded
// checksum, to be announced with NEEDS_CSUM. A seeded frame with bytes after
// the IP packet (Ethernet padding) is completed in place instead, because the
// receiver of NEEDS_CSUM sums up to the end of the frame.
func seedState(frame []byte, info *inner.Layout) bool {
	if !seeded(frame, info) {
		return false
	}
	if len(frame) != info.End() {
		at := info.L4Off + info.CsumOffset()
		putCsum(frame[at:at+2], checksum.Sum(frame[info.L4Off:info.End()], 0))
		return false
	}
	return true
}

// candidate reports whether a parsed TCP frame may take part in a merge,
// and its payload length.
func candidate(frame []byte, info *inner.Layout) (ok bool, plen int) {
	plen = info.End() - info.PayloadOff()
	if plen <= 0 || len(frame) != info.End() {
		return false, plen
	}
	if f := frame[info.L4Off+13]; f != tcpFlagACK && f != tcpFlagACK|tcpFlagPSH {
		return false, plen
	}
	if info.IPVersion == 4 {
		ip := frame[info.L3Off : info.L3Off+ipv4MinHdrLen]
		if info.IPHdrLen != ipv4MinHdrLen || checksum.Fold(checksum.Sum(ip, 0)) != 0xffff {
			return false, plen
		}
	}
	return true, plen
}

// addrs returns the bytes holding the source and destination addresses.
func addrs(frame []byte, info *inner.Layout) []byte {
	if info.IPVersion == 4 {
		return frame[info.L3Off+12 : info.L3Off+20]
	}
	return frame[info.L3Off+8 : info.L3Off+40]
}

// flowHash hashes IP version, addresses and ports: the identity within
// which frames must not be reordered.
func flowHash(frame []byte, info *inner.Layout) uint32 {
	h := uint32(2166136261) ^ uint32(info.IPVersion)
	a := addrs(frame, info)
	for len(a) >= 4 {
		h = (h ^ binary.BigEndian.Uint32(a)) * 16777619
		h ^= h >> 15
		a = a[4:]
	}
	h = (h ^ binary.BigEndian.Uint32(frame[info.L4Off:info.L4Off+4])) * 0x9e3779b1
	return h ^ h>>16
}

// sameFlow compares the flow identity of two parsed TCP frames.
func sameFlow(a []byte, ai *inner.Layout, b []byte, bi *inner.Layout) bool {
	return ai.IPVersion == bi.IPVersion &&
		bytes.Equal(addrs(a, ai), addrs(b, bi)) &&
		bytes.Equal(a[ai.L4Off:ai.L4Off+4], b[bi.L4Off:bi.L4Off+4])
}

// lookup returns the index of the most recent item of the frame's flow, or
// -1.
func (c *Coalescer) lookup(h uint32, frame []byte, info *inner.Layout) int {
	for i := c.buckets[h&c.mask]; i >= 0; i = c.items[i].next {
		it := &c.items[i]
		if it.hash == h && sameFlow(it.frame, &it.info, frame, info) {
			return int(i)
		}
	}
	return -1
}

// Outcomes of merge.
const (
	mergeNo       = iota // headers or sequence do not line up
	mergeDone            // appended
	mergeHeadBad         // the first segment's checksum is wrong
	mergePktBad          // the new segment's checksum is wrong
	mergeNoBuffer        // all merge buffers are in use
)

// merge tries to append a candidate segment to an open item of its flow.
func (c *Coalescer) merge(it *citem, frame []byte, info *inner.Layout, plen int) int {
	head, hi := it.frame, &it.info
	if hi.L3Off != info.L3Off || hi.L4HdrLen != info.L4HdrLen ||
		it.seq != binary.BigEndian.Uint32(frame[info.L4Off+4:info.L4Off+8]) ||
		plen > it.gsoSize ||
		it.total+plen > hi.L3Off+maxIPLen ||
		it.segs >= MaxMergeSegments ||
		!bytes.Equal(head[:hi.L3Off], frame[:info.L3Off]) {
		return mergeNo
	}
	hip, pip := head[hi.L3Off:], frame[info.L3Off:]
	if info.IPVersion == 4 {
		// TOS, DF (and the reserved bit), TTL.
		if hip[1] != pip[1] || hip[6]&0xe0 != pip[6]&0xe0 || hip[8] != pip[8] {
			return mergeNo
		}
	} else {
		// Version, traffic class, flow label; hop limit.
		if !bytes.Equal(hip[0:4], pip[0:4]) || hip[7] != pip[7] {
			return mergeNo
		}
	}
	hth, pth := head[hi.L4Off:hi.PayloadOff()], frame[info.L4Off:info.PayloadOff()]
	// ACK number; data offset; window; options.
	if !bytes.Equal(hth[8:12], pth[8:12]) || hth[12] != pth[12] ||
		!bytes.Equal(hth[14:16], pth[14:16]) || !bytes.Equal(hth[20:], pth[20:]) {
		return mergeNo
	}

	// Checksums: the first segment lazily (only once something joins it),
	// then the new one.
	if !it.checked {
		if !it.seeded && !verifyL4(head, hi) {
			it.open = false
			return mergeHeadBad
		}
		it.checked = true
	}
	if !seeded(frame, info) && !verifyL4(frame, info) {
		return mergePktBad
	}

	if it.buf < 0 {
		if len(c.free) == 0 {
			return mergeNoBuffer
		}
		it.buf = c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
		sl := &c.slots[it.buf]
		hl := hi.PayloadOff()
		sl.parts[0] = sl.hdr[:copy(sl.hdr[:hl], head[:hl])]
		sl.parts[1] = head[hl:hi.End()]
	}
	sl := &c.slots[it.buf]
	sl.parts[it.segs+1] = frame[info.PayloadOff():info.End()]
	it.segs++
	it.total += plen
	it.seq += uint32(plen)
	if pth[13]&tcpFlagPSH != 0 {
		sl.hdr[hi.L4Off+13] |= tcpFlagPSH
		it.open = false
	}
	if plen < it.gsoSize {
		it.open = false
	}
	return mergeDone
}

// prepareOversize decides how an over-MTU TCP frame leaves: as a GSO frame
// when its checksum is a seed or valid (a valid one is replaced by the seed,
// which GSO with NEEDS_CSUM requires), unchanged otherwise.
func (c *Coalescer) prepareOversize(it *citem) {
	info := &it.info
	f := it.frame[info.L4Off+13]
	mss := c.cfg.MTU - info.IPHdrLen - info.L4HdrLen
	plen := info.End() - info.PayloadOff()
	if f&(tcpFlagSYN|tcpFlagRST|tcpFlagURG) != 0 || mss <= 0 || plen <= mss || len(it.frame) != info.End() {
		it.kind = kindPass
		return
	}
	if !it.seeded {
		if !verifyL4(it.frame, info) {
			it.kind = kindPass
			return
		}
		at := info.L4Off + tcpCsumOffset
		binary.BigEndian.PutUint16(it.frame[at:at+2], seed(it.frame, info))
		it.seeded = true
	}
	it.gsoSize = mss
}

// Flush finalises the pending frames and calls emit once per output frame,
// in arrival order, with its virtio-net header and the Ethernet frame. For a
// TAP opened with IFF_VNET_HDR, emit typically encodes hdr into a
// VirtioNetHdrLen-byte scratch buffer and writes both with one writev(2).
// A merged frame is first copied into a merge buffer (FlushGather avoids
// that copy). The frame slice aliases a frame given to Add or an internal
// buffer and is valid only during the call. If emit returns an error, Flush
// stops, drops the remaining frames and returns that error. Either way the
// Coalescer is empty afterwards. In gather mode (CoalescerConfig.Gather)
// Flush emits nothing and returns an error wrapping ErrUnsupported.
func (c *Coalescer) Flush(emit func(hdr VirtioNetHdr, frame []byte) error) error {
	if c.bufs == nil {
		c.Reset()
		return fmt.Errorf("%w: Flush on a Coalescer in gather mode (use FlushGather)", ErrUnsupported)
	}
	var err error
	for i := range c.items {
		it := &c.items[i]
		hdr := c.finish(it)
		f := it.frame
		if it.buf >= 0 {
			b := c.bufs[it.buf]
			n := 0
			for _, p := range c.slots[it.buf].parts[:it.segs+1] {
				n += copy(b[n:], p)
			}
			f = b[:n]
		}
		if err = emit(hdr, f); err != nil {
			break
		}
	}
	c.Reset()
	return err
}

// FlushGather is Flush without the copy: emit receives each output frame as
// parts whose concatenation is the Ethernet frame. A frame that was not
// merged is one part (the frame given to Add); a merged frame is its headers
// (an internal copy of the first segment's, rewritten) followed by the
// payload of each segment, slices of the frames given to Add. For a TAP
// opened with IFF_VNET_HDR, emit encodes hdr and writes it and the parts
// with one writev(2). parts and the slices in it are valid only during the
// call. Errors are handled as by Flush.
func (c *Coalescer) FlushGather(emit func(hdr VirtioNetHdr, parts [][]byte) error) error {
	var err error
	for i := range c.items {
		it := &c.items[i]
		hdr := c.finish(it)
		var parts [][]byte
		if it.buf >= 0 {
			parts = c.slots[it.buf].parts[:it.segs+1]
		} else {
			c.one[0] = it.frame
			parts = c.one[:]
		}
		if err = emit(hdr, parts); err != nil {
			break
		}
	}
	c.one[0] = nil
	c.Reset()
	return err
}

// finish rewrites a merged frame's headers and returns its virtio-net header.
func (c *Coalescer) finish(it *citem) VirtioNetHdr {
	if !it.parsed {
		return VirtioNetHdr{}
	}
	info := &it.info
	if it.segs == 1 && it.kind != kindOversize {
		if !it.seeded {
			return VirtioNetHdr{}
		}
		return VirtioNetHdr{
			Flags:      FlagNeedsCsum,
			HdrLen:     uint16(info.PayloadOff()),
			CsumStart:  uint16(info.L4Off),
			CsumOffset: uint16(info.CsumOffset()),
		}
	}
	f := it.frame
	if it.buf >= 0 {
		f = c.slots[it.buf].hdr[:]
	}
	ip := f[info.L3Off:]
	hdr := VirtioNetHdr{
		Flags:      FlagNeedsCsum,
		GSOType:    GSOTCPv4,
		HdrLen:     uint16(info.PayloadOff()),
		GSOSize:    uint16(it.gsoSize),
		CsumStart:  uint16(info.L4Off),
		CsumOffset: tcpCsumOffset,
	}
	if it.segs > 1 {
		// Merged: lengths changed.
		ipLen := it.total - info.L3Off
		if info.IPVersion == 4 {
			binary.BigEndian.PutUint16(ip[2:4], uint16(ipLen))
			ipv4HdrCsum(ip, info.IPHdrLen)
		} else {
			binary.BigEndian.PutUint16(ip[4:6], uint16(ipLen-ipv6HdrLen))
		}
		l4len := it.total - info.L4Off
		at := info.L4Off + tcpCsumOffset
		binary.BigEndian.PutUint16(f[at:at+2], checksum.Fold(pseudo(f, info, l4len)))
	}
	if info.IPVersion == 6 {
		hdr.GSOType = GSOTCPv6
	}
	if f[info.L4Off+13]&tcpFlagCWR != 0 {
		hdr.GSOType |= GSOECN
	}
	return hdr
}
