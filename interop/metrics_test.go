package interop

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vxland/vxland/internal/testnet"
)

// scrapeIn GETs url from inside ns (the connection is opened by a thread
// in the namespace) and returns the body; it fails the test unless the
// answer is 200.
func scrapeIn(t *testing.T, ns *testnet.NS, url string) string {
	t.Helper()
	client := ns.HTTPClient(5 * time.Second)
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s in %s: %v", url, ns, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return string(body)
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)

// samples parses the Prometheus text format into "name{labels}" -> value
// (labels as the exporter writes them, sorted by name).
func samples(t *testing.T, body string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("not a sample line: %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out[m[1]+m[2]] = v
	}
	return out
}

// families returns the metric names in samples.
func families(s map[string]float64) map[string]bool {
	out := map[string]bool{}
	for k := range s {
		name, _, _ := strings.Cut(k, "{")
		out[name] = true
	}
	return out
}

// TestMetrics runs vxland with --metrics against a kernel vxlan peer, with
// a ping running through the tunnel, and scrapes /metrics from inside the
// daemon's namespace: the per-device counters grow between scrapes and
// agree with vxlanctl stats, the socket counters carry local and port, the
// FDB gauge counts the --remote and the learned peer, and every metric the
// Grafana dashboard queries is in the scrape.
func TestMetrics(t *testing.T) {
	testnet.RequireRoot(t)
	a, b := testnet.NewNS(t), testnet.NewNS(t)
	underlay(t, a, b, "ul0", "192.0.2.1/24", "192.0.2.2/24")
	testnet.KernelVXLAN(t, b, testnet.VXLANOpts{
		VNI: 40, Remote: "192.0.2.1", Local: "192.0.2.2", Dev: "ul0", Addr: "203.0.113.2/24",
	})
	const addr = "127.0.0.1:9477"
	d := startVxland(t, a, "vx0", "--vni", "40", "--remote", "192.0.2.2",
		"--addr", "203.0.113.1/24", "--up", "--metrics", addr)
	a.Ping(t, "203.0.113.2", 2) // the tunnel works; the kernel peer is learned
	ping := a.Start(t, "ping", "-i", "0.2", "203.0.113.2")
	defer ping.Stop()

	const txFrames = `vxland_tx_frames_total{dev="vx0",vni="40"}`
	url := "http://" + addr + "/metrics"
	first := samples(t, scrapeIn(t, a, url))
	if first[txFrames] < 2 {
		t.Fatalf("%s = %v after a ping of 2 (present: %v)", txFrames, first[txFrames], families(first)["vxland_tx_frames_total"])
	}
	mid := d.stats(t)["tx_frames"]
	var second map[string]float64
	testnet.Eventually(t, 10*time.Second, func() error {
		second = samples(t, scrapeIn(t, a, url))
		if second[txFrames] <= float64(mid) {
			return fmt.Errorf("%s is %v, not above the %d vxlanctl showed after the first scrape (%v then)",
				txFrames, second[txFrames], mid, first[txFrames])
		}
		return nil
	})
	if !(first[txFrames] <= float64(mid)) {
		t.Errorf("%s: first scrape %v, later vxlanctl %d: the scrape ran ahead", txFrames, first[txFrames], mid)
	}
	if ping.Exited() {
		t.Fatalf("ping stopped: %s", ping.Output())
	}

	for key, min := range map[string]float64{
		`vxland_rx_frames_total{dev="vx0",vni="40"}`:               1,
		`vxland_tx_bytes_total{dev="vx0",vni="40"}`:                60,
		`vxland_rx_datagrams_total{local="0.0.0.0",port="4789"}`:   1,
		`vxland_fdb_entries{dev="vx0",state="permanent",vni="40"}`: 1,
		`vxland_fdb_entries{dev="vx0",state="dynamic",vni="40"}`:   1, // the kernel device's MAC
	} {
		if v, ok := second[key]; !ok || v < min {
			t.Errorf("%s = %v (present %v), want at least %v", key, v, ok, min)
		}
	}
	for key, want := range map[string]float64{
		`vxland_fdb_entries{dev="vx0",state="permanent",vni="40"}`:     1, // the --remote
		`vxland_fdb_entries{dev="vx0",state="static",vni="40"}`:        0,
		`vxland_loop_panics_total{local="0.0.0.0",port="4789"}`:        0,
		`vxland_rx_unknown_vni_total{local="0.0.0.0",port="4789"}`:     0,
		`vxland_rx_socket_overflow_total{local="0.0.0.0",port="4789"}`: 0,
		// Drops decided once the VNI is known are the device's.
		`vxland_rx_own_mac_total{dev="vx0",vni="40"}`:       0,
		`vxland_rx_reserved_bits_total{dev="vx0",vni="40"}`: 0,
	} {
		if v, ok := second[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}

	// Every counter vxlanctl shows is exported, under the device's labels
	// or the socket's.
	have := families(second)
	for name := range d.stats(t) {
		if !have["vxland_"+name+"_total"] {
			t.Errorf("vxlanctl counter %s is not exported as vxland_%s_total", name, name)
		}
	}
	// Every metric the dashboard queries is exported.
	dash, err := os.ReadFile("../contrib/grafana/vxland.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`\b(?:vxland|go|process)_[a-zA-Z0-9_]+`).FindAllString(string(dash), -1) {
		if !have[name] {
			t.Errorf("the Grafana dashboard queries %s, which a running vxland does not export", name)
		}
	}
	ping.Stop()
	d.stop(t)
}

// TestMetricsAddressUnusable: a --metrics address already in use, or not
// on this host, stops vxland at start with one line and exit status 2, and
// the TAP and control socket it had opened are gone again.
func TestMetricsAddressUnusable(t *testing.T) {
	testnet.RequireRoot(t)
	ns := testnet.NewNS(t)
	var held net.Listener
	ns.Do(t, func() (err error) {
		held, err = net.Listen("tcp", "127.0.0.1:9477")
		return err
	})
	defer held.Close()
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:9477", "metrics: 127.0.0.1:9477 is already in use"},
		{"192.0.2.77:9477", "metrics: cannot listen on 192.0.2.77:9477: cannot assign requested address"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			out := expectSetupError(t, ns, []string{tc.want}, "--vni", "40", "--tap", "vxm0", "--metrics", tc.addr)
			if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 1 {
				t.Errorf("%d lines, want one:\n%s", n, out)
			}
			if linkExists(ns, "vxm0") {
				t.Error("the TAP is left behind")
			}
		})
	}
}
