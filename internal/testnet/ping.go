package testnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Ping behaves like `ping -c count -W 1 -i 0.2`: each echo waits up to 1 s for
// its reply and echoes go out every 200 ms.
const (
	pingWait     = time.Second
	pingInterval = 200 * time.Millisecond
	// pingWarmups is how many echoes may go unanswered before the first reply
	// (the first ARP/ND resolution, vxlan FDB setup); they do not count.
	pingWarmups  = 5
	pingDataSize = 56
)

// Ping sends count ICMP echo requests to target from inside the namespace, after
// up to 5 warm-up echoes that absorb the first ARP/ND resolution, and fails the test
// with a ping-like transcript unless every one of the count echoes is answered. It
// is implemented in Go (raw ICMP socket inside the namespace) and needs no ping
// binary. target must pass CheckAddr.
func (n *NS) Ping(t testing.TB, target string, count int) {
	t.Helper()
	RequireDocAddr(t, target)
	out, err := n.TryPing(target, count)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TryPing is Ping returning the transcript and an error instead of failing the
// test, e.g. to check that something is unreachable.
func (n *NS) TryPing(target string, count int) (string, error) {
	if err := CheckAddr(target); err != nil {
		return "", err
	}
	dst, err := netip.ParseAddr(target)
	if err != nil {
		return "", fmt.Errorf("testnet: ping target %q: %w", target, err)
	}
	count = max(count, 1)
	network, laddr, proto := "ip4:icmp", "0.0.0.0", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	var unreachType icmp.Type = ipv4.ICMPTypeDestinationUnreachable
	if dst.Is6() {
		network, laddr, proto = "ip6:ipv6-icmp", "::", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
		unreachType = ipv6.ICMPTypeDestinationUnreachable
	}
	var conn *icmp.PacketConn
	if err := n.TryDo(func() (err error) {
		conn, err = icmp.ListenPacket(network, laddr)
		return err
	}); err != nil {
		return "", fmt.Errorf("testnet: ping in %s: open ICMP socket: %w", n.Name, err)
	}
	defer conn.Close()

	id := rand.IntN(0xfffe) + 1
	payload := make([]byte, pingDataSize)
	copy(payload, "vxland testnet ping ")
	for i := 20; i < len(payload); i++ {
		payload[i] = byte(i)
	}
	var log strings.Builder
	fmt.Fprintf(&log, "PING %s from %s: %d data bytes\n", target, n.Name, pingDataSize)
	buf := make([]byte, 1500)
	seq := 0

	// echo sends one request and waits for its reply.
	echo := func() (time.Duration, error) {
		seq++
		msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: payload}}
		wb, err := msg.Marshal(nil) // the kernel fills in the ICMPv6 checksum
		if err != nil {
			return 0, fmt.Errorf("marshal echo: %w", err)
		}
		sent := time.Now()
		if _, err := conn.WriteTo(wb, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return 0, fmt.Errorf("send: %w", err)
		}
		if err := conn.SetReadDeadline(sent.Add(pingWait)); err != nil {
			return 0, fmt.Errorf("set deadline: %w", err)
		}
		for {
			nr, peer, err := conn.ReadFrom(buf)
			if err != nil {
				if isTimeout(err) {
					return 0, fmt.Errorf("no reply within %v", pingWait)
				}
				return 0, fmt.Errorf("receive: %w", err)
			}
			m, err := icmp.ParseMessage(proto, buf[:nr])
			if err != nil {
				continue
			}
			switch m.Type {
			case replyType:
				e, ok := m.Body.(*icmp.Echo)
				if !ok || e.ID != id || e.Seq != seq {
					continue
				}
				if !sameAddr(peer, dst) {
					continue
				}
				if !bytes.Equal(e.Data, payload) {
					return 0, fmt.Errorf("reply from %v with corrupted data", peer)
				}
				return time.Since(sent), nil
			case unreachType:
				if quotesEcho(m, dst.Is6(), id, seq) {
					return 0, fmt.Errorf("destination unreachable (code %d) reported by %v", m.Code, peer)
				}
			}
		}
	}

	var werr error
	for i := 0; i < pingWarmups; i++ {
		var rtt time.Duration
		if rtt, werr = echo(); werr == nil {
			fmt.Fprintf(&log, "warm-up icmp_seq=%d: reply, time=%.3f ms\n", seq, float64(rtt.Microseconds())/1000)
			break
		}
		fmt.Fprintf(&log, "warm-up icmp_seq=%d: %v\n", seq, werr)
		time.Sleep(pingInterval)
	}
	if werr != nil {
		return log.String(), fmt.Errorf("testnet: ping %s from %s: no reply to %d warm-up echoes: %w",
			target, n.Name, pingWarmups, werr)
	}
	received := 0
	var firstErr error
	for i := 0; i < count; i++ {
		start := time.Now()
		rtt, err := echo()
		if err != nil {
			fmt.Fprintf(&log, "icmp_seq=%d: %v\n", seq, err)
			if firstErr == nil {
				firstErr = err
			}
		} else {
			received++
			fmt.Fprintf(&log, "%d bytes from %s: icmp_seq=%d time=%.3f ms\n",
				pingDataSize+8, target, seq, float64(rtt.Microseconds())/1000)
		}
		if i < count-1 {
			time.Sleep(pingInterval - time.Since(start))
		}
	}
	fmt.Fprintf(&log, "--- %s ping statistics ---\n%d transmitted, %d received, %d%% packet loss\n",
		target, count, received, (count-received)*100/count)
	if received < count {
		return log.String(), fmt.Errorf("testnet: ping %s from %s: %d of %d echoes unanswered: %w",
			target, n.Name, count-received, count, firstErr)
	}
	return log.String(), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func sameAddr(peer net.Addr, want netip.Addr) bool {
	ip, ok := peer.(*net.IPAddr)
	if !ok {
		return false
	}
	a, ok := netip.AddrFromSlice(ip.IP)
	return ok && a.Unmap() == want.Unmap()
}

// quotesEcho reports whether an ICMP error quotes our echo request (id, seq).
func quotesEcho(m *icmp.Message, v6 bool, id, seq int) bool {
	du, ok := m.Body.(*icmp.DstUnreach)
	if !ok {
		return false
	}
	d := du.Data
	hdr := 40
	if !v6 {
		if len(d) < 1 {
			return false
		}
		hdr = int(d[0]&0x0f) * 4
	}
	if len(d) < hdr+8 {
		return false
	}
	icmpHdr := d[hdr:]
	return int(binary.BigEndian.Uint16(icmpHdr[4:6])) == id &&
		int(binary.BigEndian.Uint16(icmpHdr[6:8])) == seq
}
