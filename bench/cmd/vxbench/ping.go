package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// pingMain implements `vxbench ping`: ICMP echo RTTs to one IPv4 address,
// printed as one JSON object (pingResult). vxbench runs it inside a
// namespace with `ip netns exec`, so it needs neither iputils nor setns.
func pingMain(args []string) int {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	dst := fs.String("dst", "", "IPv4 address to ping")
	count := fs.Int("count", 200, "echo requests to send")
	interval := fs.Duration("interval", 10*time.Millisecond, "time between requests")
	timeout := fs.Duration("timeout", time.Second, "wait for late replies after the last request")
	size := fs.Int("size", 56, "ICMP payload bytes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	res := runPing(*dst, *count, *interval, *timeout, *size)
	_ = json.NewEncoder(os.Stdout).Encode(res)
	if res.Error != "" {
		return 1
	}
	return 0
}

// runPing sends count echo requests and collects the round-trip times of the
// replies in microseconds, in the order they arrived.
func runPing(dst string, count int, interval, timeout time.Duration, size int) pingResult {
	var res pingResult
	ip := net.ParseIP(dst).To4()
	if ip == nil || count < 1 || size < 0 {
		res.Error = fmt.Sprintf("bad arguments: dst %q count %d size %d", dst, count, size)
		return res
	}
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer c.Close()

	id := os.Getpid() & 0xffff
	sent := make([]atomic.Int64, count) // send time per sequence number, ns
	got := make([]atomic.Bool, count)
	rtts := make(chan float64, count)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return // deadline or close
			}
			now := time.Since(start).Nanoseconds()
			if a, ok := from.(*net.IPAddr); !ok || !a.IP.Equal(ip) {
				continue
			}
			m, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			e, ok := m.Body.(*icmp.Echo)
			if !ok || e.ID != id || e.Seq < 0 || e.Seq >= count {
				continue
			}
			t := sent[e.Seq].Load()
			if t == 0 || got[e.Seq].Swap(true) {
				continue
			}
			rtts <- float64(now-t) / 1e3
		}
	}()

	payload := make([]byte, size)
	dstAddr := &net.IPAddr{IP: ip}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := 0; seq < count; seq++ {
		if seq > 0 {
			<-tick.C
		}
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: payload}}
		b, err := msg.Marshal(nil)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		sent[seq].Store(max(time.Since(start).Nanoseconds(), 1))
		if _, err := c.WriteTo(b, dstAddr); err != nil {
			res.Error = err.Error()
			return res
		}
		res.Sent++
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	for res.Received < count {
		select {
		case r := <-rtts:
			res.RTTus = append(res.RTTus, r)
			res.Received++
			continue
		case <-done:
		}
		break
	}
	// Drain what arrived between the last receive and the deadline.
	for len(rtts) > 0 {
		res.RTTus = append(res.RTTus, <-rtts)
		res.Received++
	}
	return res
}
