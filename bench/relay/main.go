// Command relay is the baseline that vxland has to beat: the obvious userspace
// VXLAN endpoint (RFC 7348) in a few lines of Go.
//
// It opens a TAP device with github.com/songgao/water and one UDP socket with
// net.UDPConn, and runs two goroutines: TAP -> UDP, which copies each frame
// behind a fresh 8-byte VXLAN header and sends it to a fixed remote, and
// UDP -> TAP, which checks the header and writes the inner frame to the TAP.
// One frame per read and one per write; no batching, no offloads, no
// forwarding database. It exists only for bench/cmd/vxbench (system N).
//
//	relay --vni 40 --remote 192.0.2.2 [--local 192.0.2.1] [--dstport 4789] [--tap relay0]
//
// The caller configures the TAP (address, MTU, up) with ip(8).
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"net"
	"os"

	"github.com/songgao/water"
)

// headerLen is the size of the VXLAN header; flagI marks a valid VNI.
const (
	headerLen = 8
	flagI     = 0x08
)

func main() {
	vni := flag.Uint("vni", 40, "VXLAN network identifier (24 bits)")
	remote := flag.String("remote", "", "remote VTEP IPv4 address (required)")
	local := flag.String("local", "", "local address to bind (default: any)")
	port := flag.Int("dstport", 4789, "UDP port, used as local and remote port")
	tap := flag.String("tap", "relay0", "name of the TAP device to create")
	flag.Parse()
	if err := run(uint32(*vni), *remote, *local, *port, *tap); err != nil {
		log.Printf("relay: %v", err)
		os.Exit(1)
	}
}

// run opens the devices and forwards until one direction fails.
func run(vni uint32, remote, local string, port int, tap string) error {
	if vni > 1<<24-1 {
		return fmt.Errorf("vni %d out of range", vni)
	}
	rip := net.ParseIP(remote)
	if rip == nil {
		return fmt.Errorf("--remote %q is not an IP address", remote)
	}
	var lip net.IP
	if local != "" {
		if lip = net.ParseIP(local); lip == nil {
			return fmt.Errorf("--local %q is not an IP address", local)
		}
	}
	ifce, err := water.New(water.Config{
		DeviceType:             water.TAP,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: tap},
	})
	if err != nil {
		return fmt.Errorf("open TAP %s: %w", tap, err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: lip, Port: port})
	if err != nil {
		return err
	}
	raddr := &net.UDPAddr{IP: rip, Port: port}

	errc := make(chan error, 2)
	go func() { errc <- tapToUDP(ifce, conn, raddr, vni) }()
	go func() { errc <- udpToTAP(conn, ifce, vni) }()
	return <-errc
}

// tapToUDP reads one Ethernet frame at a time and sends it with a VXLAN
// header prefixed by copying.
func tapToUDP(ifce *water.Interface, conn *net.UDPConn, raddr *net.UDPAddr, vni uint32) error {
	frame := make([]byte, 65536)
	pkt := make([]byte, headerLen+len(frame))
	pkt[0] = flagI
	binary.BigEndian.PutUint32(pkt[4:8], vni<<8)
	for {
		n, err := ifce.Read(frame)
		if err != nil {
			return fmt.Errorf("read TAP: %w", err)
		}
		copy(pkt[headerLen:], frame[:n])
		if _, err := conn.WriteToUDP(pkt[:headerLen+n], raddr); err != nil {
			// Transient errors (ENOBUFS, ICMP unreachable) drop the frame.
			continue
		}
	}
}

// udpToTAP receives one datagram at a time, checks the VXLAN header and
// writes the inner frame to the TAP.
func udpToTAP(conn *net.UDPConn, ifce *water.Interface, vni uint32) error {
	buf := make([]byte, 65536)
	for {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			return fmt.Errorf("read UDP: %w", err)
		}
		if n < headerLen+14 || buf[0]&flagI == 0 || binary.BigEndian.Uint32(buf[4:8])>>8 != vni {
			continue
		}
		if _, err := ifce.Write(buf[headerLen:n]); err != nil {
			continue // e.g. TAP down: drop
		}
	}
}
