package main

import (
	"encoding/xml"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMedianAndPercentile(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
	if !math.IsNaN(median(nil)) {
		t.Errorf("median(nil) not NaN")
	}
	xs := make([]float64, 200)
	for i := range xs {
		xs[i] = float64(200 - i) // 1..200, reversed
	}
	if p := percentile(xs, 50); p != 100 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(xs, 99); p != 198 {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile([]float64{7}, 99); p != 7 {
		t.Errorf("p99 of one = %v", p)
	}
}

func TestParseStatAndStatus(t *testing.T) {
	// comm with spaces and parentheses, as the kernel allows.
	stat := "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 0 0"
	got, err := parseStatCPU(stat)
	if err != nil || got != 3.0 {
		t.Fatalf("parseStatCPU = %v, %v; want 3", got, err)
	}
	status := "Name:\tvxland\nVmPeak:\t  100 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n"
	mib, err := parseVmHWM(status)
	if err != nil || mib != 2 {
		t.Fatalf("parseVmHWM = %v, %v; want 2", mib, err)
	}
	if _, err := parseVmHWM("Name: x\n"); err == nil {
		t.Fatal("parseVmHWM without VmHWM: no error")
	}
}

func TestParseIperf(t *testing.T) {
	tcp := `{"start":{},"end":{"sum_sent":{"seconds":5,"bytes":1e10,"bits_per_second":1.6e10,"retransmits":3},
	"sum_received":{"seconds":5.001,"bytes":9.9e9,"bits_per_second":1.5e10}}}`
	r, err := parseIperf(iperfTest{Key: "tcp1_fwd", Streams: 1}, []byte(tcp))
	if err != nil || r.Value != 15 || r.Retransmits != 3 || r.Bytes != 9.9e9 {
		t.Fatalf("tcp: %+v %v", r, err)
	}
	udp := `{"end":{"sum_sent":{"seconds":2,"bytes":16756480,"packets":261820},
	"sum_received":{"seconds":2,"bytes":16700992,"packets":261820,"lost_packets":820}}}`
	r, err = parseIperf(iperfTest{Key: "udp64_fwd", UDPLen: 64}, []byte(udp))
	if err != nil || r.Value != 130500 || r.Lost != 820 {
		t.Fatalf("udp: %+v %v", r, err)
	}
	if _, err := parseIperf(iperfTest{Key: "tcp1_fwd"}, []byte(`{"error":"unable to connect to server"}`)); err == nil ||
		!strings.Contains(err.Error(), "unable to connect") {
		t.Fatalf("error not reported: %v", err)
	}
	if _, err := parseIperf(iperfTest{Key: "tcp1_fwd"}, []byte(`{"end":{"sum_received":{"seconds":5,"bytes":0}}}`)); err == nil {
		t.Fatal("zero bytes accepted")
	}
	if _, err := parseIperf(iperfTest{Key: "tcp1_fwd"}, []byte("Usage: iperf3")); err == nil {
		t.Fatal("non-JSON accepted")
	}
}

func TestParseSNMP(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm InSegs InCsumErrors\nTcp: 1 100 57\nUdp: InDatagrams InCsumErrors\nUdp: 5 0\n"
	got := parseSNMP(snmp, "InCsumErrors")
	if len(got) != 1 || got[0] != "TcpInCsumErrors=57" {
		t.Fatalf("parseSNMP = %q", got)
	}
}

func TestParseTests(t *testing.T) {
	m, err := parseTests("tcp1,ping")
	if err != nil || !m["tcp1_fwd"] || !m["tcp1_rev"] || !m["ping"] || m["tcp4_fwd"] {
		t.Fatalf("parseTests: %v %v", m, err)
	}
	m, _ = parseTests("all")
	if len(m) != len(iperfTests)+1 {
		t.Fatalf("all = %d tests", len(m))
	}
	if _, err := parseTests("tcp9"); err == nil {
		t.Fatal("unknown test accepted")
	}
}

// fakeBench builds a bench with synthetic samples for K, N, VK (failed) and
// veth, as a run would leave it.
func fakeBench() *bench {
	cfg, _ := parseFlags([]string{"--systems", "K,VK,N,O", "--rounds", "3"})
	b := &bench{cfg: cfg, skipped: map[string]string{"O": "openvswitch-switch could not be installed"},
		info: machineInfo{Date: "2026-01-01T00:00:00Z", NProc: 2, Kernel: "6.18", GitCommit: strings.Repeat("a", 40)}}
	for round := 1; round <= 3; round++ {
		for _, t := range iperfTests {
			k := 10.0 + float64(round)
			if t.UDPLen > 0 {
				k = 1e5
			}
			b.add("K", round, t.Key, k, unitOf(t), nil, nil)
			b.add("N", round, t.Key, k/20*float64(round), unitOf(t), nil, nil)
			b.add("VK", round, t.Key, 0, unitOf(t), os.ErrDeadlineExceeded, nil)
			if round == 1 {
				b.add("veth", round, t.Key, k*30, unitOf(t), nil, nil)
			}
		}
		b.add("K", round, "rtt_p50", 0.03, "ms", nil, nil)
		b.add("N", round, "rtt_p50", 0.2, "ms", nil, nil)
		b.add("N", round, "cpu_tcp1_fwd", 10, "s/GB", nil, nil)
		b.add("N", round, "rss_peak", 7, "MiB", nil, nil)
	}
	return b
}

func TestMarkdownAndSVG(t *testing.T) {
	b := fakeBench()
	sum := summarize(b.samples)
	if r := sum["N"]["tcp1_fwd"].RatioK; r == nil || math.Abs(*r-0.1) > 1e-9 {
		t.Fatalf("N/K ratio = %v", r)
	}
	md := b.renderMarkdown(sum, b.notesList(sum), false)
	for _, want := range []string{
		"| K | 12.0 (1.00×) |",
		"| N | 1.20 (0.100×) † |",
		"| VK | fail |",
		"| O | skipped |",
		"offloads OFF",
		"O skipped: openvswitch-switch could not be installed",
		"VK failure (round 1, tcp1_fwd)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	svg := b.renderSVG(sum)
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG is not well-formed XML: %v", err)
			}
			break
		}
	}
	if !strings.Contains(svg, "<rect") || strings.Count(svg, "<title>") < 8 {
		t.Errorf("SVG has too few bars")
	}
	if dir := os.Getenv("VXBENCH_SVG_DIR"); dir != "" { // for looking at it
		_ = os.WriteFile(dir+"/test.svg", []byte(svg), 0o644)
		_ = os.WriteFile(dir+"/test.md", []byte(md), 0o644)
	}
}

func TestNiceScale(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{{1.08, 1.2}, {2.16, 2.5}, {0.5, 0.5}, {9, 10}} {
		if got := niceCeil(c.in); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("niceCeil(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if s := niceStep(2.5); 2.5/s > 10 {
		t.Errorf("niceStep(2.5) = %v", s)
	}
}

func TestRunPingBadArgs(t *testing.T) {
	if r := runPing("not-an-ip", 1, time.Millisecond, time.Millisecond, 56); r.Error == "" {
		t.Fatal("bad address accepted")
	}
}
