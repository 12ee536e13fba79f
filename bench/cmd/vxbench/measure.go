package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// iperfTest is one iperf3 run between A (client) and B (server).
type iperfTest struct {
	Key     string
	Streams int  // -P
	Reverse bool // -R: B sends to A
	UDPLen  int  // 0 for TCP, else -u -b 0 -l UDPLen
}

// iperfTests in the order they run within one testbed.
var iperfTests = []iperfTest{
	{Key: "tcp1_fwd", Streams: 1},
	{Key: "tcp1_rev", Streams: 1, Reverse: true},
	{Key: "tcp4_fwd", Streams: 4},
	{Key: "tcp4_rev", Streams: 4, Reverse: true},
	{Key: "udp64_fwd", Streams: 1, UDPLen: 64},
	{Key: "udp64_rev", Streams: 1, Reverse: true, UDPLen: 64},
	{Key: "udp1400_fwd", Streams: 1, UDPLen: 1400},
	{Key: "udp1400_rev", Streams: 1, Reverse: true, UDPLen: 1400},
}

// iperfResult is what one iperf3 client run measured.
type iperfResult struct {
	Value       float64 // Gbit/s for TCP, received packets/s for UDP
	Bytes       float64 // payload bytes received
	Seconds     float64
	Retransmits float64
	Lost        float64
	Sent        float64
}

// iperfJSON is the part of `iperf3 -J` output that vxbench reads.
type iperfJSON struct {
	Error string `json:"error"`
	End   struct {
		SumSent     iperfSum `json:"sum_sent"`
		SumReceived iperfSum `json:"sum_received"`
	} `json:"end"`
}

type iperfSum struct {
	Seconds       float64 `json:"seconds"`
	Bytes         float64 `json:"bytes"`
	BitsPerSecond float64 `json:"bits_per_second"`
	Retransmits   float64 `json:"retransmits"`
	Packets       float64 `json:"packets"`
	LostPackets   float64 `json:"lost_packets"`
}

// parseIperf turns iperf3 -J output into a result for test t.
func parseIperf(t iperfTest, out []byte) (iperfResult, error) {
	var j iperfJSON
	if err := json.Unmarshal(out, &j); err != nil {
		return iperfResult{}, fmt.Errorf("iperf3 output is not JSON: %v: %s", err, lastLines(string(out), 2))
	}
	if j.Error != "" {
		return iperfResult{}, fmt.Errorf("iperf3: %s", j.Error)
	}
	rx := j.End.SumReceived
	res := iperfResult{Bytes: rx.Bytes, Seconds: rx.Seconds, Retransmits: j.End.SumSent.Retransmits}
	if rx.Seconds <= 0 || rx.Bytes <= 0 {
		return res, fmt.Errorf("nothing received (%.0f bytes)", rx.Bytes)
	}
	if t.UDPLen == 0 {
		res.Value = rx.BitsPerSecond / 1e9
		return res, nil
	}
	received := rx.Packets - rx.LostPackets
	if rx.Packets <= 0 || received <= 0 {
		received = rx.Bytes / float64(t.UDPLen)
	}
	res.Sent = j.End.SumSent.Packets
	res.Lost = rx.LostPackets
	res.Value = received / rx.Seconds
	return res, nil
}

// iperf runs test t from A to B (or B to A with -R) for d.
func (tb *testbed) iperf(ctx context.Context, t iperfTest, d time.Duration) (iperfResult, error) {
	secs := int(d.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	args := []string{"iperf3", "-c", tb.target(), "-p", itoa(iperfPort), "-t", itoa(secs), "-J",
		"--connect-timeout", "5000"}
	if t.Streams > 1 {
		args = append(args, "-P", itoa(t.Streams))
	}
	if t.Reverse {
		args = append(args, "-R", "--rcv-timeout", "10000")
	}
	if t.UDPLen > 0 {
		args = append(args, "-u", "-b", "0", "-l", itoa(t.UDPLen))
	} else {
		args = append(args, "--snd-timeout", "10000")
	}
	var res iperfResult
	var err error
	for attempt := 1; ; attempt++ {
		if lerr := tb.waitIperfListening(ctx, 3*time.Second); lerr != nil {
			if serr := tb.startIperfServer(ctx); serr != nil {
				return res, fmt.Errorf("iperf3 server: %v", serr)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
		out, runErr := tb.r.run(cctx, "ip", nsExec(tb.nsA, args...)...)
		cancel()
		res, err = parseIperf(t, []byte(out))
		if err != nil && strings.TrimSpace(out) == "" && runErr != nil {
			err = runErr
		}
		// A refused connection means no test ran: the server was between
		// tests. Try once more; anything else counts.
		if err == nil || attempt == 2 || ctx.Err() != nil || !strings.Contains(err.Error(), "Connection refused") {
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return res, err
		}
	}
	if err != nil && ctx.Err() == nil {
		if d := tb.csumErrors(ctx); d != "" {
			err = fmt.Errorf("%v [%s]", err, d)
		}
		// A failed test can leave the server stuck; start a fresh one.
		if serr := tb.startIperfServer(ctx); serr != nil {
			err = fmt.Errorf("%v (restarting iperf3 server: %v)", err, serr)
		}
	}
	return res, err
}

// pingResult is the output of `vxbench ping`.
type pingResult struct {
	Sent     int       `json:"sent"`
	Received int       `json:"received"`
	RTTus    []float64 `json:"rtt_us"`
	Error    string    `json:"error,omitempty"`
}

// ping runs `vxbench ping` inside A against the target.
func (tb *testbed) ping(ctx context.Context, count int, interval, timeout time.Duration) (pingResult, error) {
	self, err := os.Executable()
	if err != nil {
		return pingResult{}, err
	}
	budget := time.Duration(count)*interval + timeout + 10*time.Second
	cctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	out, err := tb.r.run(cctx, "ip", nsExec(tb.nsA, self, "ping", "--dst", tb.target(),
		"--count", itoa(count), "--interval", interval.String(), "--timeout", timeout.String())...)
	if err != nil {
		return pingResult{}, err
	}
	var res pingResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return res, fmt.Errorf("ping output: %v", err)
	}
	if res.Error != "" {
		return res, fmt.Errorf("ping: %s", res.Error)
	}
	return res, nil
}

// percentile returns the p-th percentile (0..100) of xs by the
// nearest-rank method; xs need not be sorted.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(p/100*float64(len(s)) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(s) {
		rank = len(s)
	}
	return s[rank-1]
}

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clkTck = 100

// cpuSeconds returns utime+stime of pid (all its threads) in seconds.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// parseStatCPU extracts utime+stime from the text of /proc/PID/stat.
func parseStatCPU(s string) (float64, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	// After "pid (comm)": state is field 3, utime 14, stime 15 (1-based).
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed stat")
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed stat")
	}
	return (ut + st) / clkTck, nil
}

// peakRSSMiB returns VmHWM of pid in MiB.
func peakRSSMiB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmHWM(string(b))
}

// parseVmHWM extracts VmHWM (kB) from the text of /proc/PID/status, in MiB.
func parseVmHWM(s string) (float64, error) {
	for _, line := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM")
}

// hostCPUSeconds returns the busy (non-idle, non-iowait) CPU time of the
// whole machine from /proc/stat, in seconds.
func hostCPUSeconds() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy float64
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		if i == 3 || i == 4 || i >= 7 { // idle, iowait, steal; guest time is already in user
			continue
		}
		busy += x
	}
	return busy / clkTck
}

// daemonCPU returns the summed CPU seconds of the testbed's daemons.
func (tb *testbed) daemonCPU() (float64, error) {
	var sum float64
	for _, p := range tb.daemons {
		s, err := cpuSeconds(p.pid())
		if err != nil {
			return 0, err
		}
		sum += s
	}
	return sum, nil
}

// csumErrors reports the non-zero TCP and UDP InCsumErrors counters of both
// namespaces, e.g. "A TcpInCsumErrors=57", which tells a dataplane that
// hands seeded (CHECKSUM_PARTIAL) frames to its TAP from other failures.
func (tb *testbed) csumErrors(ctx context.Context) string {
	var parts []string
	for _, side := range []struct{ name, ns string }{{"A", tb.nsA}, {"B", tb.nsB}} {
		out, err := tb.r.run(ctx, "ip", nsExec(side.ns, "cat", "/proc/net/snmp")...)
		if err != nil {
			continue
		}
		for _, c := range parseSNMP(out, "InCsumErrors") {
			parts = append(parts, side.name+" "+c)
		}
	}
	return strings.Join(parts, ", ")
}

// parseSNMP returns "<Proto><field>=<value>" for each protocol of
// /proc/net/snmp whose field is non-zero.
func parseSNMP(text, field string) []string {
	var out []string
	lines := strings.Split(text, "\n")
	for i := 0; i+1 < len(lines); i++ {
		hdr, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(hdr) == 0 || len(hdr) != len(vals) || hdr[0] != vals[0] {
			continue
		}
		for j, h := range hdr {
			if h == field && vals[j] != "0" {
				out = append(out, strings.TrimSuffix(hdr[0], ":")+field+"="+vals[j])
			}
		}
		i++
	}
	return out
}
