// Command tunnelgso is an experiment, not part of vxland: it forwards TSO
// super-frames read from an inner TAP as ONE VXLAN-encapsulated frame each,
// written with a 24-byte virtio-net header that asks for UDP tunnel GSO
// (Linux 6.17+, TUN_F_UDP_TUNNEL_GSO) to a second, "underlay" TAP. The
// underlay TAP is meant to be a port of a Linux bridge that also holds the
// underlay interface, so the kernel carries one tunnel-GSO skb per 64 KiB
// to the peer, the way a kernel vxlan device does.
//
// The receive direction is a plain UDP socket on the local VTEP address;
// decapsulated frames are written to the inner TAP one by one.
//
// Usage (root):
//
//	tunnelgso --inner tgi0 --underlay tgu0 --local 192.0.2.1 --remote 192.0.2.2 \
//	    --dst-mac 02:..:.. --vni 40 --dstport 4789
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TUN offload flags for TUNSETOFFLOAD (linux/if_tun.h).
const (
	tunFCsum           = 0x01
	tunFTSO4           = 0x02
	tunFTSO6           = 0x04
	tunFUDPTunnelGSO   = 0x80
	tunFUDPTunnelGSOCs = 0x100
)

// virtio-net header constants (linux/virtio_net.h).
const (
	vnetHdrLen       = 10 // struct virtio_net_hdr, on the inner TAP
	vnetTnlHdrLen    = 24 // struct virtio_net_hdr_v1_hash_tunnel, on the underlay TAP
	vnetFNeedsCsum   = 1
	gsoNone          = 0
	gsoUDPTunnelIPv4 = 0x20
	gsoECN           = 0x80
)

// Outer header sizes: Ethernet + IPv4 + UDP + VXLAN.
const (
	ethLen   = 14
	ip4Len   = 20
	udpLen   = 8
	vxlanLen = 8
	outerLen = ethLen + ip4Len + udpLen + vxlanLen // 50
)

// Buffer layout for one forwarded frame:
//
//	[0:24)   tunnel virtio-net header (written last)
//	[24:74)  outer Ethernet/IPv4/UDP/VXLAN
//	[74:)    inner Ethernet frame as read from the inner TAP
//
// The inner TAP's 10-byte header is read into [64:74) and consumed before
// the outer headers overwrite it, so nothing is copied.
const (
	outerOff = vnetTnlHdrLen
	innerOff = outerOff + outerLen
	readOff  = innerOff - vnetHdrLen
	bufLen   = innerOff + 65536 + 64
)

type ifreqFlags struct {
	name  [unix.IFNAMSIZ]byte
	flags uint16
	_     [22]byte
}

// openTAP opens a blocking TAP with IFF_VNET_HDR, the given header size
// and offload flags.
func openTAP(name string, hdrSize int, offloads uintptr) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var req ifreqFlags
	copy(req.name[:], name)
	req.flags = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req))); e != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("tap %s: TUNSETIFF: %w", name, e)
	}
	sz := int32(hdrSize)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETVNETHDRSZ, uintptr(unsafe.Pointer(&sz))); e != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("tap %s: TUNSETVNETHDRSZ %d: %w", name, hdrSize, e)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETOFFLOAD, offloads); e != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("tap %s: TUNSETOFFLOAD %#x: %w", name, offloads, e)
	}
	return fd, nil
}

// counters of the experiment, printed on exit.
var (
	txFrames, txGSO, txBytes, txDrop atomic.Uint64
	rxFrames, rxDrop                 atomic.Uint64
)

type fwd struct {
	inner, under int
	local, rem   [4]byte
	srcMAC       net.HardwareAddr
	dstMAC       net.HardwareAddr
	vni          uint32
	dstport      uint16
	ipID         uint16
}

// encapLoop reads frames from the inner TAP and writes each, encapsulated,
// as one frame to the underlay TAP.
func (f *fwd) encapLoop() {
	buf := make([]byte, bufLen)
	for {
		n, err := unix.Read(f.inner, buf[readOff:])
		if err != nil {
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			log.Fatalf("read inner tap: %v", err)
		}
		if n < vnetHdrLen+ethLen {
			txDrop.Add(1)
			continue
		}
		if !f.encap(buf, n-vnetHdrLen) {
			txDrop.Add(1)
			continue
		}
		total := innerOff + n - vnetHdrLen
		if _, err := unix.Write(f.under, buf[:total]); err != nil {
			txDrop.Add(1)
			continue
		}
		txFrames.Add(1)
		txBytes.Add(uint64(total - vnetTnlHdrLen))
	}
}

// pipelineLoops splits encapLoop over two goroutines: one reads and
// encapsulates into a ring of n buffers, the other writes them, so that the
// read of the next frame overlaps the kernel work the write triggers.
func (f *fwd) pipelineLoops(n int) {
	type frame struct {
		buf   []byte
		total int
	}
	free := make(chan []byte, n)
	full := make(chan frame, n)
	for range n {
		free <- make([]byte, bufLen)
	}
	go func() {
		for fr := range full {
			if _, err := unix.Write(f.under, fr.buf[:fr.total]); err != nil {
				txDrop.Add(1)
			} else {
				txFrames.Add(1)
				txBytes.Add(uint64(fr.total - vnetTnlHdrLen))
			}
			free <- fr.buf
		}
	}()
	for {
		buf := <-free
		for {
			n, err := unix.Read(f.inner, buf[readOff:])
			if err != nil {
				if err == unix.EINTR || err == unix.EAGAIN {
					continue
				}
				log.Fatalf("read inner tap: %v", err)
			}
			if n < vnetHdrLen+ethLen || !f.encap(buf, n-vnetHdrLen) {
				txDrop.Add(1)
				continue
			}
			full <- frame{buf, innerOff + n - vnetHdrLen}
			break
		}
	}
}

// encap turns buf (inner virtio header at readOff, inner frame of length
// innerLen at innerOff) into tunnel header + outer headers + inner frame.
func (f *fwd) encap(buf []byte, innerLen int) bool {
	ih := buf[readOff:innerOff]
	flags := ih[0]
	gsoType := ih[1]
	gsoSize := binary.LittleEndian.Uint16(ih[4:6])
	csumStart := binary.LittleEndian.Uint16(ih[6:8])
	csumOff := binary.LittleEndian.Uint16(ih[8:10])
	inner := buf[innerOff : innerOff+innerLen]

	udpTotal := udpLen + vxlanLen + innerLen
	ipTotal := ip4Len + udpTotal
	if ipTotal > 0xffff {
		return false
	}

	// Tunnel virtio-net header (virtio_net_hdr_v1_hash_tunnel, little-endian).
	h := buf[:vnetTnlHdrLen]
	clear(h)
	if flags&vnetFNeedsCsum != 0 {
		h[0] = vnetFNeedsCsum
		binary.LittleEndian.PutUint16(h[6:8], csumStart+outerLen)
		binary.LittleEndian.PutUint16(h[8:10], csumOff)
	}
	if gsoType != gsoNone {
		if flags&vnetFNeedsCsum == 0 || int(csumStart)+13 > innerLen {
			return false
		}
		// hdr_len: up to the end of the inner TCP header.
		thl := int(inner[csumStart+12]>>4) * 4
		h[1] = gsoType | gsoUDPTunnelIPv4
		binary.LittleEndian.PutUint16(h[2:4], uint16(outerLen+int(csumStart)+thl))
		binary.LittleEndian.PutUint16(h[4:6], gsoSize)
		binary.LittleEndian.PutUint16(h[20:22], ethLen+ip4Len)   // outer_th_offset
		binary.LittleEndian.PutUint16(h[22:24], outerLen+ethLen) // inner_nh_offset
		txGSO.Add(1)
	}

	o := buf[outerOff:innerOff]
	copy(o[0:6], f.dstMAC)
	copy(o[6:12], f.srcMAC)
	o[12], o[13] = 0x08, 0x00
	ip := o[ethLen : ethLen+ip4Len]
	ip[0] = 0x45
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:4], uint16(ipTotal))
	f.ipID++
	binary.BigEndian.PutUint16(ip[4:6], f.ipID)
	ip[6], ip[7] = 0x40, 0 // DF
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], f.local[:])
	copy(ip[16:20], f.rem[:])
	binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip))
	u := o[ethLen+ip4Len : ethLen+ip4Len+udpLen]
	binary.BigEndian.PutUint16(u[0:2], srcPort(inner))
	binary.BigEndian.PutUint16(u[2:4], f.dstport)
	binary.BigEndian.PutUint16(u[4:6], uint16(udpTotal))
	u[6], u[7] = 0, 0 // no outer UDP checksum, as the kernel's default
	v := o[ethLen+ip4Len+udpLen:]
	v[0], v[1], v[2], v[3] = 0x08, 0, 0, 0
	binary.BigEndian.PutUint32(v[4:8], f.vni<<8)
	return true
}

// ipChecksum is the IPv4 header checksum of a 20-byte header.
func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i < len(h); i += 2 {
		s += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// srcPort hashes the inner IPv4 addresses and ports into 49152..65535.
func srcPort(inner []byte) uint16 {
	var x uint32 = 2166136261
	if len(inner) >= ethLen+ip4Len+4 && inner[12] == 0x08 && inner[13] == 0 {
		for _, b := range inner[ethLen+12 : ethLen+ip4Len+4] {
			x = (x ^ uint32(b)) * 16777619
		}
	}
	return uint16(49152 + x%16384)
}

// decapLoop reads VXLAN datagrams from the UDP socket and writes the inner
// frames to the inner TAP with an empty virtio-net header.
func (f *fwd) decapLoop(sock int) {
	buf := make([]byte, 65536+16)
	// datagram at buf[2:]: VXLAN header [2:10), inner frame [10:)
	for {
		n, _, err := unix.Recvfrom(sock, buf[2:], 0)
		if err != nil {
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			log.Fatalf("recv: %v", err)
		}
		if n < vxlanLen+ethLen || buf[2]&0x08 == 0 || binary.BigEndian.Uint32(buf[6:10])>>8 != f.vni {
			rxDrop.Add(1)
			continue
		}
		clear(buf[:vnetHdrLen])
		if _, err := unix.Write(f.inner, buf[:2+n]); err != nil {
			rxDrop.Add(1)
			continue
		}
		rxFrames.Add(1)
	}
}

func main() {
	innerName := flag.String("inner", "tgi0", "inner TAP (overlay side)")
	underName := flag.String("underlay", "tgu0", "underlay TAP (a bridge port beside the underlay interface)")
	local := flag.String("local", "", "local VTEP IPv4 address")
	remote := flag.String("remote", "", "remote VTEP IPv4 address")
	dstMAC := flag.String("dst-mac", "", "next hop MAC of the remote VTEP (bridged underlay TAP); empty: the underlay TAP's own MAC, so the host routes the outer packets")
	srcMAC := flag.String("src-mac", "", "outer source MAC (default: the underlay TAP's)")
	vni := flag.Uint("vni", 40, "VNI")
	pipeline := flag.Int("pipeline", 0, "if > 0, read and write in two goroutines with this many buffers")
	dstport := flag.Uint("dstport", 4789, "UDP destination port")
	flag.Parse()

	f := &fwd{vni: uint32(*vni), dstport: uint16(*dstport)}
	l, r := net.ParseIP(*local).To4(), net.ParseIP(*remote).To4()
	if l == nil || r == nil {
		log.Fatal("--local and --remote must be IPv4 addresses")
	}
	copy(f.local[:], l)
	copy(f.rem[:], r)
	var err error
	if f.inner, err = openTAP(*innerName, vnetHdrLen, tunFCsum|tunFTSO4|tunFTSO6); err != nil {
		log.Fatal(err)
	}
	if f.under, err = openTAP(*underName, vnetTnlHdrLen,
		tunFCsum|tunFTSO4|tunFTSO6|tunFUDPTunnelGSO|tunFUDPTunnelGSOCs); err != nil {
		log.Fatal(err)
	}
	underIf, err := net.InterfaceByName(*underName)
	if err != nil {
		log.Fatal(err)
	}
	if *dstMAC == "" {
		f.dstMAC = underIf.HardwareAddr
	} else if f.dstMAC, err = net.ParseMAC(*dstMAC); err != nil {
		log.Fatalf("--dst-mac: %v", err)
	}
	if *srcMAC != "" {
		if f.srcMAC, err = net.ParseMAC(*srcMAC); err != nil {
			log.Fatalf("--src-mac: %v", err)
		}
	} else if *dstMAC == "" {
		f.srcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1} // any unicast address but the TAP's
	} else {
		f.srcMAC = underIf.HardwareAddr
	}

	sock, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Fatal(err)
	}
	if err := unix.SetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20); err != nil {
		log.Fatal(err)
	}
	if err := unix.Bind(sock, &unix.SockaddrInet4{Port: int(*dstport), Addr: f.local}); err != nil {
		log.Fatalf("bind %s:%d: %v", *local, *dstport, err)
	}
	log.Printf("inner %s, underlay %s (tunnel GSO), %s -> %s dst-mac %s src-mac %s vni %d",
		*innerName, *underName, *local, *remote, f.dstMAC, f.srcMAC, f.vni)
	if *pipeline > 0 {
		go f.pipelineLoops(*pipeline)
	} else {
		go f.encapLoop()
	}
	go f.decapLoop(sock)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	log.Printf("tx frames %d (gso %d) bytes %d drop %d; rx frames %d drop %d",
		txFrames.Load(), txGSO.Load(), txBytes.Load(), txDrop.Load(), rxFrames.Load(), rxDrop.Load())
}
