package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/vxland/vxland/checksum"
	"github.com/vxland/vxland/encap"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/inner"
	"github.com/vxland/vxland/internal/testnet"
	"github.com/vxland/vxland/netio"
	"github.com/vxland/vxland/offload"
	"github.com/vxland/vxland/stats"
)

// TestEngineTransmitWhole: towards an underlay that takes super-frames
// (TunnelGSO), a TSO super-frame to a unicast destination leaves whole, as
// one datagram (the VXLAN header and the frame unchanged) described by its
// InnerGSO, counted as the segments it becomes. One to a multicast group
// takes the segmenting path.
func TestEngineTransmitWhole(t *testing.T) {
	const segs, mss = 10, 1000
	caps := netio.UnderlayCaps{GSO: true, TunnelGSO: true}
	m := startMem(t, caps, netio.FrameCaps{VnetHdr: true, TSO: true}, 1, nil)
	m.table.Add(benchDstMAC, fdb.Dest{IP: memRemote, VNI: benchVNI}, fdb.Static)
	sf := superFrame(segs, mss)
	m.devs[0].Inject(sf)
	d := m.sent(t)
	frame := sf[offload.VirtioNetHdrLen:]
	if !bytes.Equal(d.Payload, datagram(frame)) || d.GSOSize != 0 {
		t.Fatalf("sent %d bytes (gso %d), want the VXLAN header and the %d-byte super-frame", len(d.Payload), d.GSOSize, len(frame))
	}
	want := netio.InnerGSO{Type: netio.GSOTCPv4, Size: mss, NetOff: 14, HdrLen: 54, CsumStart: 34, CsumOffset: 16}
	if d.Inner != want {
		t.Errorf("inner %+v, want %+v", d.Inner, want)
	}
	if d.To != netip.AddrPortFrom(memRemote, DefaultPort) || d.TTL != 64 {
		t.Errorf("to %v ttl %d", d.To, d.TTL)
	}
	testnet.Eventually(t, 5*time.Second, func() error {
		if n := m.counter("tx_frames"); n != segs {
			return errors.New("tx_frames not yet counted")
		}
		return nil
	})

	m2 := startMem(t, caps, netio.FrameCaps{VnetHdr: true, TSO: true}, 1, nil)
	m2.table.Append(fdb.Zero, fdb.Dest{IP: netip.MustParseAddr("239.1.1.1"), VNI: benchVNI}, fdb.Permanent)
	m2.devs[0].Inject(superFrame(segs, mss))
	if d := m2.sent(t); d.Inner.Type != netio.GSONone || d.GSOSize != encap.HeaderLen+54+mss {
		t.Errorf("to a group: inner %+v gso %d, want a segmented train", d.Inner, d.GSOSize)
	}
}

// TestInnerGSO: what the whole path takes, and what it leaves to
// segmentation.
func TestInnerGSO(t *testing.T) {
	frame := tcp4Frame(benchDstMAC, benchPeerMAC, 3000, 1, true)
	h := offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4 | offload.GSOECN, GSOSize: 1000, CsumStart: 34, CsumOffset: 16}
	g, ok := innerGSO(h, layoutOf(frame), frame)
	if !ok || g != (netio.InnerGSO{Type: netio.GSOTCPv4, ECN: true, Size: 1000, NetOff: 14, HdrLen: 54, CsumStart: 34, CsumOffset: 16}) {
		t.Errorf("innerGSO = %+v, %v", g, ok)
	}
	tagged := append(append(append([]byte(nil), frame[:12]...), 0x81, 0, 0, 5), frame[12:]...)
	for name, c := range map[string]struct {
		h     offload.VirtioNetHdr
		frame []byte
	}{
		"udp l4":     {offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOUDPL4, GSOSize: 1000, CsumStart: 34, CsumOffset: 6}, frame},
		"vlan":       {offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4, GSOSize: 1000, CsumStart: 38, CsumOffset: 16}, tagged},
		"v6 type":    {offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv6, GSOSize: 1000, CsumStart: 34, CsumOffset: 16}, frame},
		"no csum":    {offload.VirtioNetHdr{GSOType: offload.GSOTCPv4, GSOSize: 1000, CsumStart: 34, CsumOffset: 16}, frame},
		"csum start": {offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4, GSOSize: 1000, CsumStart: 3100, CsumOffset: 16}, frame},
		"too long":   {h, tcp4Frame(benchDstMAC, benchPeerMAC, 65535-40, 1, true)},
	} {
		if _, ok := innerGSO(c.h, layoutOf(c.frame), c.frame); ok {
			t.Errorf("%s: taken whole", name)
		}
	}
}

func layoutOf(frame []byte) *inner.Layout {
	var l inner.Layout
	l.Decode(frame)
	return &l
}

// TestOuterHeader parses what outerHeader.put writes in front of a
// super-frame and of a plain datagram: the tunnel virtio-net header as
// struct virtio_net_hdr_v1_hash_tunnel lays it out, and outer Ethernet,
// IPv4 and UDP headers as the UDP path would send them (TTL one more: the
// host forwards the packet).
func TestOuterHeader(t *testing.T) {
	mac := [6]byte{0x02, 0, 0, 0, 0, 0x77}
	o := outerHeader{mac: mac, local: [4]byte{192, 0, 2, 1}, lo: 32768, hi: 61000, id: 100}
	frame := tcp4Frame(benchDstMAC, benchPeerMAC, 4000, 1, true) // 4 segments of 1000
	var vx [encap.HeaderLen]byte
	encap.PutHeader(vx[:], 4242)
	m := netio.Datagram{Parts: [][]byte{vx[:], frame}, Addr: netip.MustParseAddrPort("192.0.2.2:4789"), TOS: 0x2e << 2, TTL: 64, Flow: 0xdeadbeef,
		Inner: netio.InnerGSO{Type: netio.GSOTCPv4, Size: 1000, NetOff: 14, HdrLen: 54, CsumStart: 34, CsumOffset: 16}}
	var slot [tunnelSlotLen]byte
	n := encap.HeaderLen + len(frame)
	if err := o.put(slot[:], &m, n); err != nil {
		t.Fatal(err)
	}
	v := slot[:tunnelHdrLen]
	le := binary.LittleEndian.Uint16
	for _, f := range []struct {
		name      string
		got, want int
	}{
		{"flags", int(v[0]), offload.FlagNeedsCsum},
		{"gso_type", int(v[1]), offload.GSOTCPv4 | offload.GSOUDPTunnelIPv4},
		{"hdr_len", int(le(v[2:])), 50 + 54},
		{"gso_size", int(le(v[4:])), 1000},
		{"csum_start", int(le(v[6:])), 50 + 34},
		{"csum_offset", int(le(v[8:])), 16},
		{"num_buffers, hash", int(le(v[10:]) | le(v[12:]) | le(v[14:]) | le(v[16:]) | le(v[18:])), 0},
		{"outer_th_offset", int(le(v[20:])), 34},
		{"inner_nh_offset", int(le(v[22:])), 64},
	} {
		if f.got != f.want {
			t.Errorf("virtio-net %s = %#x, want %#x", f.name, f.got, f.want)
		}
	}

	wire := append(append(append([]byte(nil), slot[tunnelHdrLen:]...), vx[:]...), frame...)
	p := gopacket.NewPacket(wire, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	vxl, _ := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
	if eth == nil || ip == nil || udp == nil || vxl == nil {
		t.Fatalf("undecodable: %v", p)
	}
	if !bytes.Equal(eth.DstMAC, mac[:]) || !bytes.Equal(eth.SrcMAC, mac[:]) {
		t.Errorf("ethernet %v -> %v, want the TAP's MAC both ways", eth.SrcMAC, eth.DstMAC)
	}
	if ip.SrcIP.String() != "192.0.2.1" || ip.DstIP.String() != "192.0.2.2" || ip.TTL != 65 || ip.TOS != 0x2e<<2 ||
		ip.Flags != 0 || ip.Id != 100 || int(ip.Length) != 20+8+n || ip.Protocol != layers.IPProtocolUDP {
		t.Errorf("ipv4 %+v", ip)
	}
	if checksum.Fold(checksum.Sum(wire[14:34], 0)) != 0xffff {
		t.Error("bad IPv4 header checksum")
	}
	if int(udp.SrcPort) != int(encap.SourcePort(m.Flow, 32768, 61000)) || udp.SrcPort < 32768 || udp.SrcPort >= 61000 ||
		udp.DstPort != 4789 || int(udp.Length) != 8+n || udp.Checksum != 0 {
		t.Errorf("udp %+v", udp)
	}
	if vxl.VNI != 4242 || !bytes.Equal(vxl.Payload, frame) {
		t.Errorf("vxlan vni %d, %d bytes of payload", vxl.VNI, len(vxl.Payload))
	}
	if o.id != 104 {
		t.Errorf("next ip id %d, want 104 (one per segment)", o.id)
	}

	// A plain datagram: an empty virtio-net header, the next id.
	m.Inner = netio.InnerGSO{}
	if err := o.put(slot[:], &m, n); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(slot[:tunnelHdrLen], make([]byte, tunnelHdrLen)) || binary.BigEndian.Uint16(slot[tunnelHdrLen+18:]) != 104 {
		t.Errorf("plain datagram: virtio-net header %x, id %d", slot[:tunnelHdrLen], binary.BigEndian.Uint16(slot[tunnelHdrLen+18:]))
	}
	if err := o.put(slot[:], &m, 65535-27); !errors.Is(err, unix.EMSGSIZE) {
		t.Errorf("over 65535 bytes: %v, want EMSGSIZE", err)
	}
	if a := testing.AllocsPerRun(100, func() { o.put(slot[:], &m, n) }); a != 0 {
		t.Errorf("put allocates %.0f times", a)
	}
}

// TestTAPSender writes through a real underlay TAP (in a test namespace):
// the frame arrives, is forwarded by the host to the destination, and a
// send allocates nothing.
func TestTAPSender(t *testing.T) {
	testnet.RequireRoot(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	a.Exec(t, "ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", b.Name)
	a.Addr(t, "ul0", "192.0.2.1/24")
	b.Addr(t, "ul0", "192.0.2.2/24")
	a.SetSysctl(t, "net.ipv4.conf.all.rp_filter", "0")
	var tu *tapUnderlay
	a.Do(t, func() error {
		ul, err := openUnderlay(udpConfig{Bind: netip.MustParseAddr("192.0.2.1"), Local: netip.MustParseAddr("192.0.2.1"), Port: 4789,
			Queues: 1, TxSockets: 1, Overflow: new(stats.Counter), Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		tu, err = openTAPUnderlay(ul, tapUnderlayConfig{Name: "vxs0u", Local: netip.MustParseAddr("192.0.2.1"), Queues: 1, Logf: t.Logf})
		if errors.Is(err, errTunnelGSORefused) {
			ul.Close()
			testnet.SkipOrFail(t, "%v", err)
		}
		if err != nil {
			ul.Close()
			t.Fatal(err)
		}
		return nil
	})
	t.Cleanup(func() { tu.Close() })
	cp := b.Capture(t, "ul0", "udp dst port 4789")
	s := tu.NewSender()
	frame := tcp4Frame(benchDstMAC, benchPeerMAC, 100, 1, false)
	var vx [encap.HeaderLen]byte
	encap.PutHeader(vx[:], 77)
	msgs := []netio.Datagram{{Parts: [][]byte{vx[:], frame}, Addr: netip.MustParseAddrPort("192.0.2.2:4789"), TTL: 64, Flow: 1}}
	testnet.Eventually(t, 5*time.Second, func() error {
		if n, err := s.Send(msgs); n != 1 || err != nil || msgs[0].Err != nil {
			t.Fatalf("Send = %d, %v (%v)", n, err, msgs[0].Err)
		}
		for _, p := range cp.Packets() {
			if v, _ := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN); v != nil && v.VNI == 77 && bytes.Equal(v.Payload, frame) {
				if ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ip.TTL != 64 {
					t.Errorf("arrived with TTL %d, want 64", ip.TTL)
				}
				return nil
			}
		}
		return errors.New("the datagram has not arrived at the peer")
	})
	if a := testing.AllocsPerRun(50, func() { s.Send(msgs) }); a != 0 {
		t.Errorf("Send allocates %.0f times per call", a)
	}

	// A UDP_SEGMENT train leaves as its datagrams, each behind its own
	// headers: here three, the last shorter, each [VXLAN header, frame].
	var hdrs [3][encap.HeaderLen]byte
	var train [][]byte
	frames := [][]byte{frame, frame, frame[:80]}
	for i := range hdrs {
		encap.PutHeader(hdrs[i][:], uint32(81+i))
		train = append(train, hdrs[i][:], frames[i])
	}
	msgs[0] = netio.Datagram{Parts: train, Addr: netip.MustParseAddrPort("192.0.2.2:4789"), TTL: 64, Flow: 2,
		GSOSize: encap.HeaderLen + len(frame)}
	if n, err := s.Send(msgs); n != 1 || err != nil || msgs[0].Err != nil {
		t.Fatalf("Send(train) = %d, %v (%v)", n, err, msgs[0].Err)
	}
	for i := range hdrs {
		vni := uint32(81 + i)
		p := cp.Wait(5*time.Second, func(p gopacket.Packet) bool {
			v, _ := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
			return v != nil && v.VNI == vni
		})
		if v := p.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN); !bytes.Equal(v.Payload, frames[i]) {
			t.Errorf("datagram %d of the train carries %d bytes, want %d", i, len(v.Payload), len(frames[i]))
		}
	}
}

// discardSender takes every datagram and keeps none.
type discardSender struct{ n int }

func (d *discardSender) Send(msgs []netio.Datagram) (int, error) {
	d.n += len(msgs)
	return len(msgs), nil
}

// TestForwardWholeAllocs: queueing a super-frame whole and flushing it
// allocates nothing.
func TestForwardWholeAllocs(t *testing.T) {
	table := fdb.New(fdb.Options{})
	table.Add(benchDstMAC, fdb.Dest{IP: memRemote, VNI: benchVNI}, fdb.Static)
	ep, s := benchEndpoint(t, true, table, nil)
	ep.ulCaps.TunnelGSO = true
	ds := &discardSender{}
	st := newTxState(s.devs[0], ds)
	frame := tcp4Frame(benchDstMAC, benchPeerMAC, 40*1000, 1, true)
	h := offload.VirtioNetHdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4, HdrLen: 54, GSOSize: 1000, CsumStart: 34, CsumOffset: 16}
	a := testing.AllocsPerRun(100, func() {
		s.forwardGSO(st, s.tune.Load(), h, frame)
		s.flush(st)
	})
	if a != 0 {
		t.Errorf("%.0f allocations per super-frame", a)
	}
	if ds.n != 101 || s.c.txFrames.Load() != 101*40 {
		t.Errorf("%d datagrams sent, tx_frames %d; want one datagram and 40 frames per super-frame", ds.n, s.c.txFrames.Load())
	}
}
