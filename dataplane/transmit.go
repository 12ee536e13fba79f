package dataplane

import (
	"net/netip"

	"github.com/vxland/vxland/checksum"
	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/offload"
)

// txState is the transmit loop's preallocated working set.
type txState struct {
	bufs  [][]byte
	sizes []int
	// hdrs holds one VXLAN header per queued datagram, so that a frame
	// replicated to several destinations is never copied.
	hdrs    [][encap.HeaderLen]byte
	nhdr    int
	touched []*udpSocket
}

// maxQueued bounds the datagrams queued between two flushes.
const maxQueued = 4 * defaultBatch

func newTxState() *txState {
	st := &txState{
		bufs:  make([][]byte, defaultBatch),
		sizes: make([]int, defaultBatch),
		hdrs:  make([][encap.HeaderLen]byte, maxQueued),
	}
	for i := range st.bufs {
		st.bufs[i] = make([]byte, bufSize)
	}
	return st
}

// transmitLoop reads frames from the TAP, encapsulates them and sends them
// to their destinations, a batch at a time.
func (s *Segment) transmitLoop() error {
	st := newTxState()
	vnet := s.tap.VnetHdr()
	for {
		n, err := s.tap.Read(st.bufs, st.sizes, 0)
		if err != nil {
			if isClosed(err) {
				return nil
			}
			return err
		}
		for i := 0; i < n; i++ {
			b := st.bufs[i][:st.sizes[i]]
			if vnet {
				var h offload.VirtioNetHdr
				if h.Decode(b) != nil {
					s.c.txBadGSO.Inc()
					continue
				}
				b = b[offload.VirtioNetHdrLen:]
				if h.GSOType != offload.GSONone {
					// The TAP is opened without TSO; a super-frame here
					// means the kernel ignored that, and it cannot be sent
					// as one datagram.
					s.c.txBadGSO.Inc()
					continue
				}
				if h.Flags&offload.FlagNeedsCsum != 0 && !completeAt(b, int(h.CsumStart), int(h.CsumOffset)) {
					s.c.txBadGSO.Inc()
					continue
				}
			}
			s.forward(st, b)
		}
		s.flush(st)
	}
}

// completeAt fills in a checksum the sender left partial: the ones'
// complement sum from start to the end of the frame, stored at
// start+offset. It reports false when the offsets lie outside the frame.
func completeAt(frame []byte, start, offset int) bool {
	if start < 0 || start+offset+2 > len(frame) {
		return false
	}
	sum := checksum.Fold(checksum.Sum(frame[start:], 0))
	c := ^sum
	frame[start+offset] = byte(c >> 8)
	frame[start+offset+1] = byte(c)
	return true
}

// forward queues frame for every destination the forwarding table gives:
// the entry of its destination MAC, else the all-zeros entry (head-end
// replication of broadcast, multicast and unknown unicast).
func (s *Segment) forward(st *txState, frame []byte) {
	if len(frame) < encap.EthHeaderLen {
		s.c.txShort.Inc()
		return
	}
	dst := fdb.MAC(frame[0:6])
	dests := s.cfg.Table.Lookup(dst)
	if len(dests) == 0 {
		dests = s.cfg.Table.Defaults()
		if len(dests) == 0 {
			s.c.txNoDest.Inc()
			return
		}
	}
	ep := s.ep
	hash := encap.FlowHash(frame)
	sock := ep.tx[encap.SourcePort(hash, 0, uint16(len(ep.tx)))]
	tos := encap.OuterTOS(frame, s.cfg.TOS, s.cfg.TOSInherit)
	queued := false
	for i := range dests {
		d := &dests[i]
		if !d.IP.IsValid() || d.IP.IsUnspecified() || d.IP.Is4() == ep.cfg.V6 {
			continue
		}
		if st.nhdr == len(st.hdrs) || sock.pending() == len(sock.smsgs) {
			s.flush(st)
		}
		h := st.hdrs[st.nhdr][:]
		st.nhdr++
		encap.PutHeader(h, d.VNI)
		port := d.Port
		if port == 0 {
			port = ep.port
		}
		ttl := s.cfg.TTL
		if ttl == 0 {
			ttl = 64
			if d.IP.IsMulticast() {
				ttl = 1
			}
		}
		if sock.pending() == 0 {
			st.touched = append(st.touched, sock)
		}
		sock.queue(h, frame, netip.AddrPortFrom(d.IP, port), tos, ttl)
		queued = true
	}
	if !queued {
		s.c.txNoDest.Inc()
		return
	}
	s.c.txFrames.Inc()
	s.c.txBytes.Add(uint64(len(frame)))
}

// flush sends everything queued on the sockets this batch touched.
func (s *Segment) flush(st *txState) {
	for _, sock := range st.touched {
		sent, err := sock.flush()
		s.c.txDatagrams.Add(uint64(sent))
		if err != nil {
			s.c.txErrors.Inc()
		}
	}
	st.touched = st.touched[:0]
	st.nhdr = 0
}
