//go:build soak

package soak

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vxland/vxland/control"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/internal/testnet"
)

var duration = flag.Duration("soak.duration", 10*time.Minute, "how long the soak runs")

// Soak parameters: the limits the checks hold vxland to.
const (
	maxAddress     = 512              // the FDB bound under learning floods and churn
	recoveryBudget = 2 * time.Second  // a fault's time to the first good ping
	growthAllowed  = 0.10             // goroutines and RSS after warm-up
	hostileRate    = 2000             // hostile datagrams per second
	churnRate      = 300              // FDB add/replace/del per second, all workers
	churnWorkers   = 4                // control clients churning at once
	ageing         = 5                // seconds: learned entries come and go
	transferSize   = 16 << 20         // bytes per verified TCP transfer
	faultEvery     = 10 * time.Second // one fault this often
	sampleEvery    = 2 * time.Second  // goroutines, RSS, FDB size
	ctlCrowd       = 100              // misbehaving control clients at once
	crowdEvery     = 10 * time.Second // how often they come
	crowdHold      = 2 * time.Second  // how long they hold their connections
	daemonVNI      = 40
	vxA, vxB       = "192.0.2.1", "192.0.2.3" // the two vxland hosts
	kernelK        = "192.0.2.2"              // the kernel peer
	hostileH       = "192.0.2.9"              // where hostile datagrams come from
)

var vxlandBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "vxland-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vxlandBin = filepath.Join(dir, "vxland")
	if out, err := exec.Command("go", "build", "-o", vxlandBin, "../cmd/vxland").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build vxland: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// vxlandProc is one daemon under soak.
type vxlandProc struct {
	ns      *testnet.NS
	proc    *testnet.Proc
	rundir  string
	config  string
	metrics string // http://IP:PORT/metrics, reached from inside ns
	ctl     *control.Client
}

func startDaemon(t *testing.T, ns *testnet.NS, local string, remotes []string, addr string) *vxlandProc {
	t.Helper()
	d := &vxlandProc{ns: ns, rundir: t.TempDir()}
	d.config = filepath.Join(d.rundir, "..", filepath.Base(d.rundir)+".toml")
	t.Cleanup(func() { os.Remove(d.config) })
	rs := `"` + strings.Join(remotes, `", "`) + `"`
	conf := fmt.Sprintf(`version = 1
[daemon]
metrics = "%s:9477"
[[vni]]
id = %d
tap = "vx0"
local = "%s"
remote = [%s]
addr = ["%s"]
maxaddress = %d
ageing = %d
up = true
`, local, daemonVNI, local, rs, addr, maxAddress, ageing)
	if err := os.WriteFile(d.config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d.metrics = "http://" + local + ":9477/metrics"
	d.proc = ns.Start(t, "env", "VXLAND_RUNDIR="+d.rundir, vxlandBin, "--config", d.config)
	sock := filepath.Join(d.rundir, "netns", ns.Name, "vx0.sock")
	testnet.Eventually(t, 10*time.Second, func() error {
		if d.proc.Exited() {
			return testnet.Permanent(fmt.Errorf("vxland exited: %s", d.proc.Output()))
		}
		c, err := control.Dial(sock)
		if err != nil {
			return err
		}
		if _, err := c.Stats("vx0"); err != nil {
			return err
		}
		d.ctl = c
		return nil
	})
	return d
}

// scrape returns the daemon's metrics, each summed over its labels.
func (d *vxlandProc) scrape() (map[string]float64, error) {
	resp, err := d.ns.HTTPClient(5 * time.Second).Get(d.metrics)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	body := string(b)
	out := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, _ := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
			rest = line[strings.LastIndexByte(line, '}')+2:]
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err == nil {
			out[name] += v
		}
	}
	return out, nil
}

// result is one row of the summary table.
type result struct {
	check, detail string
	ok            bool
}

// recorder collects what the workers saw.
type recorder struct {
	mu        sync.Mutex
	transfers map[string]int             // path -> transfers verified
	failed    []string                   // transfers that failed once connected
	refused   atomic.Int64               // transfers that could not start (a fault had removed their path)
	faults    map[string][]time.Duration // fault -> recovery times
	slowFault []string
	hostile   atomic.Int64
	churn     atomic.Int64
	churnErrs atomic.Int64
	shows     atomic.Int64
	crowd     atomic.Int64
}

func (r *recorder) transferDone(path string, err error) {
	if errors.Is(err, testnet.ErrNotStarted) {
		r.refused.Add(1)
		time.Sleep(100 * time.Millisecond) // pacing: the path is down, try again soon
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed = append(r.failed, fmt.Sprintf("%s: %v", path, err))
		return
	}
	r.transfers[path]++
}

func TestSoak(t *testing.T) {
	sw := testnet.NewSwitch(t)
	host := func(ip string, port string) *testnet.NS { return sw.Plug(t, port, "ul0", ip+"/24") }
	a, k, b, h := host(vxA, "pa"), host(kernelK, "pk"), host(vxB, "pb"), host(hostileH, "ph")
	kernelPeer := func() {
		// The same MAC each time, as a rebooted peer host would have:
		// the recovery measured is vxland's, not the neighbour cache's.
		k.Exec(t, "ip", "link", "add", "vxlan0", "address", "02:00:00:00:00:02", "type", "vxlan", "id", strconv.Itoa(daemonVNI),
			"local", kernelK, "dev", "ul0", "dstport", "4789")
		k.Exec(t, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vxlan0", "dst", vxA)
		k.Exec(t, "bridge", "fdb", "append", "00:00:00:00:00:00", "dev", "vxlan0", "dst", vxB)
		k.Exec(t, "ip", "addr", "add", "203.0.113.2/24", "dev", "vxlan0")
		k.Exec(t, "ip", "link", "set", "vxlan0", "up")
	}
	kernelPeer()
	da := startDaemon(t, a, vxA, []string{kernelK, vxB}, "203.0.113.1/24")
	db := startDaemon(t, b, vxB, []string{vxA, kernelK}, "203.0.113.3/24")
	a.Ping(t, "203.0.113.2", 2)
	a.Ping(t, "203.0.113.3", 2)

	rec := &recorder{transfers: map[string]int{}, faults: map[string][]time.Duration{}}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var wg sync.WaitGroup
	goLoop := func(fn func(ctx context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); fn(ctx) }()
	}

	// 2-stream TCP transfers, hash-verified, restarted in a loop, on each
	// path: vxland -> kernel, kernel -> vxland, vxland <-> vxland.
	for _, p := range []struct {
		name           string
		client, server *testnet.NS
		ip             string
	}{
		{"vxland->kernel", a, k, "203.0.113.2"}, {"kernel->vxland", k, a, "203.0.113.1"},
		{"vxland->vxland", a, b, "203.0.113.3"}, {"vxland<-vxland", b, a, "203.0.113.1"},
	} {
		for range 2 {
			goLoop(func(ctx context.Context) {
				for ctx.Err() == nil {
					_, err := testnet.TryTCPTransfer(p.client, p.server, p.ip, transferSize)
					rec.transferDone(p.name, err)
				}
			})
		}
	}

	// Hostile datagrams at a steady rate, from a host that is not a peer.
	var hostileConn *net.UDPConn
	if err := h.Do(t, func() error {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(vxA+":4789")))
		hostileConn = c
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostileConn.Close() })
	ownMAC := macOf(t, a, "vx0")
	goLoop(func(ctx context.Context) {
		tick := time.NewTicker(10 * time.Millisecond) // in bursts: a ticker cannot keep 2000/s
		defer tick.Stop()
		rng := rand.New(rand.NewPCG(1, 2))
		for ctx.Err() == nil {
			<-tick.C
			for range hostileRate / 100 {
				hostileConn.Write(hostileDatagram(rng, ownMAC))
				rec.hostile.Add(1)
			}
		}
	})

	// FDB churn through the control socket: churnWorkers clients, each
	// taking its own MACs through add, replace and del; and fdb show of
	// the whole table in a loop.
	for w := range churnWorkers {
		goLoop(func(ctx context.Context) {
			tick := time.NewTicker(time.Second * churnWorkers / churnRate)
			defer tick.Stop()
			dst := control.Remote{IP: netip.MustParseAddr(kernelK)}
			for i := 0; ctx.Err() == nil; i++ {
				<-tick.C
				mac := fdb.MAC{0x02, 0x5a, 0, 0, byte(w), byte(i / 3 % 16)}
				var err error
				switch i % 3 {
				case 0:
					err = da.ctl.FDBAdd("vx0", mac, dst, fdb.Static)
				case 1:
					err = da.ctl.FDBReplace("vx0", mac, dst, fdb.Static)
				default:
					err = da.ctl.FDBDel("vx0", mac, nil)
				}
				rec.churn.Add(1)
				if err != nil {
					rec.churnErrs.Add(1) // full while a learning flood fills the table: an expected answer
				}
			}
		})
	}
	goLoop(func(ctx context.Context) {
		for ctx.Err() == nil {
			if _, err := da.ctl.FDBShow("vx0"); err == nil {
				rec.shows.Add(1)
			}
		}
	})

	// A crowd of control clients every crowdEvery: partial requests,
	// oversized lines, connections left open for crowdHold. (While they
	// hold every slot the server has, other clients wait.)
	sock := filepath.Join(da.rundir, "netns", a.Name, "vx0.sock")
	goLoop(func(ctx context.Context) {
		for ctx.Err() == nil {
			var conns []net.Conn
			for i := range ctlCrowd {
				c, err := net.DialTimeout("unix", sock, time.Second)
				if err != nil {
					continue
				}
				conns = append(conns, c)
				c.SetWriteDeadline(time.Now().Add(time.Second))
				switch i % 3 {
				case 0:
					c.Write([]byte(`{"v":1,"op":"fdb.sh`)) // partial, never finished
				case 1:
					c.Write(append(make([]byte, control.MaxRequestSize+1), '\n')) // oversized
				}
				rec.crowd.Add(1)
			}
			select {
			case <-ctx.Done():
			case <-time.After(crowdHold):
			}
			for _, c := range conns {
				c.Close()
			}
			select {
			case <-ctx.Done():
			case <-time.After(crowdEvery - crowdHold):
			}
		}
	})

	// Learning floods: valid frames from random source MACs, from the
	// hostile host, until the table is full.
	goLoop(func(ctx context.Context) {
		rng := rand.New(rand.NewPCG(5, 6))
		for ctx.Err() == nil {
			for range 2 * maxAddress {
				hostileConn.Write(learnFrame(rng))
			}
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
	})

	// Samples: goroutines, RSS, FDB size.
	type sample struct {
		at                 time.Duration
		goroutines, rss    float64
		fdbEntries, panics float64
	}
	var samples []sample
	start := time.Now()
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		for ctx.Err() == nil {
			if m, err := da.scrape(); err == nil {
				samples = append(samples, sample{time.Since(start), m["go_goroutines"], m["process_resident_memory_bytes"],
					m["vxland_fdb_entries"], m["vxland_loop_panics_total"]})
			}
			select {
			case <-ctx.Done():
			case <-time.After(sampleEvery):
			}
		}
	}()

	// Faults, one at a time, each followed by the time to the first good
	// ping through the tunnel.
	faults := []struct {
		name   string
		inject func()
		target string
	}{
		{"kernel peer deleted and re-created", func() {
			k.Exec(t, "ip", "link", "del", "vxlan0")
			kernelPeer()
		}, "203.0.113.2"},
		{"underlay address removed and restored", func() {
			a.Exec(t, "ip", "addr", "del", vxA+"/24", "dev", "ul0")
			a.Exec(t, "ip", "addr", "add", vxA+"/24", "dev", "ul0")
		}, "203.0.113.2"},
		{"underlay link down/up", func() {
			a.Exec(t, "ip", "link", "set", "ul0", "down")
			a.Exec(t, "ip", "link", "set", "ul0", "up")
		}, "203.0.113.3"},
		{"TAP down/up", func() {
			a.Exec(t, "ip", "link", "set", "vx0", "down")
			a.Exec(t, "ip", "link", "set", "vx0", "up")
		}, "203.0.113.2"},
		{"SIGHUP reload", func() {
			if err := da.proc.Signal(syscall.SIGHUP); err != nil {
				t.Error(err)
			}
		}, "203.0.113.3"},
	}
	for i := 0; ctx.Err() == nil; i++ {
		select {
		case <-ctx.Done():
		case <-time.After(faultEvery):
		}
		if ctx.Err() != nil {
			break
		}
		f := faults[i%len(faults)]
		f.inject()
		began := time.Now()
		for {
			if _, err := a.TryPing(f.target, 1); err == nil {
				break
			}
			if time.Since(began) > 30*time.Second {
				break
			}
		}
		took := time.Since(began)
		rec.mu.Lock()
		rec.faults[f.name] = append(rec.faults[f.name], took)
		if took > recoveryBudget {
			rec.slowFault = append(rec.slowFault, fmt.Sprintf("%s: %v", f.name, took.Round(time.Millisecond)))
		}
		rec.mu.Unlock()
	}
	wg.Wait()
	<-sampleDone

	// The checks.
	var rows []result
	add := func(check string, ok bool, format string, args ...any) {
		rows = append(rows, result{check, fmt.Sprintf(format, args...), ok})
	}
	for _, d := range []*vxlandProc{da, db} {
		add("daemon alive ("+d.ns.Name+")", !d.proc.Exited(), "%s", map[bool]string{true: "running", false: "exited: " + d.proc.Output()}[!d.proc.Exited()])
	}
	final, err := da.scrape()
	if err != nil {
		t.Fatalf("final scrape: %v", err)
	}
	add("loop_panics", final["vxland_loop_panics_total"] == 0, "%v", final["vxland_loop_panics_total"])
	warm := len(samples) / 4
	if len(samples) < 8 {
		t.Fatalf("only %d samples", len(samples))
	}
	peak := func(ss []sample, f func(sample) float64) float64 {
		m := 0.0
		for _, s := range ss {
			m = max(m, f(s))
		}
		return m
	}
	early, late := samples[warm:warm*2], samples[len(samples)-warm:]
	for _, m := range []struct {
		name string
		f    func(sample) float64
	}{{"goroutines", func(s sample) float64 { return s.goroutines }}, {"RSS", func(s sample) float64 { return s.rss }}} {
		e, l := peak(early, m.f), peak(late, m.f)
		add(m.name+" flat after warm-up", l <= e*(1+growthAllowed), "peak %.0f early, %.0f late (limit +%.0f%%)", e, l, growthAllowed*100)
	}
	maxFDB := peak(samples, func(s sample) float64 { return s.fdbEntries })
	add("FDB never above maxaddress", maxFDB <= maxAddress, "max %.0f entries, maxaddress %d", maxFDB, maxAddress)
	dgrams, frames := final["vxland_rx_datagrams_total"], final["vxland_rx_frames_total"]
	drops := 0.0
	for name, v := range final {
		n, ok := strings.CutPrefix(name, "vxland_rx_")
		if !ok || !strings.HasSuffix(n, "_total") || slices.Contains([]string{
			"datagrams_total", "frames_total", "bytes_total", "socket_overflow_total", "tap_writes_total", "tap_write_errors_total"}, n) {
			continue
		}
		drops += v
	}
	add("every datagram accounted for", dgrams == frames+drops, "rx_datagrams %.0f = delivered %.0f + dropped %.0f", dgrams, frames, drops)
	rec.mu.Lock()
	total := 0
	var paths []string
	for p, n := range rec.transfers {
		total += n
		paths = append(paths, fmt.Sprintf("%s %d", p, n))
	}
	slices.Sort(paths)
	first := rec.failed[:min(3, len(rec.failed))]
	add("TCP transfers intact", len(rec.failed) == 0 && total > 0, "%d verified (%s), %d failed %v, %d could not start during faults",
		total, strings.Join(paths, ", "), len(rec.failed), first, rec.refused.Load())
	var kinds []string
	nfaults := 0
	for name, ds := range rec.faults {
		nfaults += len(ds)
		kinds = append(kinds, fmt.Sprintf("%s %d× (worst %v)", name, len(ds), slices.Max(ds).Round(time.Millisecond)))
	}
	slices.Sort(kinds)
	add("faults recovered within "+recoveryBudget.String(), len(rec.slowFault) == 0 && nfaults > 0, "%d faults: %s; too slow: %v",
		nfaults, strings.Join(kinds, ", "), rec.slowFault)
	rec.mu.Unlock()
	add("load applied", rec.hostile.Load() > 0 && rec.churn.Load() > 0 && rec.shows.Load() > 0 && rec.crowd.Load() > 0,
		"%d hostile datagrams, %d fdb changes (%d refused), %d fdb show, %d crowd clients",
		rec.hostile.Load(), rec.churn.Load(), rec.churnErrs.Load(), rec.shows.Load(), rec.crowd.Load())

	var table strings.Builder
	fmt.Fprintf(&table, "\nsoak %v: vxland <-> kernel and vxland <-> vxland\n\n| check | result | detail |\n|---|---|---|\n", *duration)
	for _, r := range rows {
		fmt.Fprintf(&table, "| %s | %s | %s |\n", r.check, map[bool]string{true: "ok", false: "FAIL"}[r.ok], r.detail)
		if !r.ok {
			t.Errorf("%s: %s", r.check, r.detail)
		}
	}
	fmt.Println(table.String())
}

func macOf(t *testing.T, ns *testnet.NS, dev string) fdb.MAC {
	t.Helper()
	out := ns.Exec(t, "cat", "/sys/class/net/"+dev+"/address")
	hw, err := net.ParseMAC(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	return fdb.MAC(hw)
}

// hostileDatagram is one of: random bytes, a valid datagram with a few
// bytes flipped, a wrong VNI, reserved bits set, truncated, the daemon's
// own source MAC, or a huge one.
func hostileDatagram(rng *rand.Rand, own fdb.MAC) []byte {
	valid := func(vni uint32, src fdb.MAC) []byte {
		d := make([]byte, 8+14+28)
		d[0] = 0x08
		binary.BigEndian.PutUint32(d[4:], vni<<8)
		copy(d[8:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(d[14:], src[:])
		d[20], d[21] = 0x08, 0x00
		d[22] = 0x45
		return d
	}
	src := fdb.MAC{0x02, 0xbb, 0, 0, 0, byte(rng.IntN(256))}
	switch rng.IntN(7) {
	case 0:
		b := make([]byte, rng.IntN(200))
		crand.Read(b)
		return b
	case 1:
		d := valid(daemonVNI, src)
		for range 3 {
			d[rng.IntN(len(d))] ^= byte(1 + rng.IntN(255))
		}
		return d
	case 2:
		return valid(daemonVNI+1+uint32(rng.IntN(1000)), src)
	case 3:
		d := valid(daemonVNI, src)
		d[1] = 0xff
		return d
	case 4:
		return valid(daemonVNI, src)[:rng.IntN(20)]
	case 5:
		return valid(daemonVNI, own)
	}
	return make([]byte, 60000)
}

// learnFrame is a valid datagram of the soak's VNI from a random source MAC
// (a learning flood).
func learnFrame(rng *rand.Rand) []byte {
	d := make([]byte, 8+60)
	d[0] = 0x08
	binary.BigEndian.PutUint32(d[4:], daemonVNI<<8)
	copy(d[8:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	d[14] = 0x02
	binary.BigEndian.PutUint32(d[16:], rng.Uint32())
	d[20], d[21] = 0x88, 0xb5 // local experimental ethertype
	return d
}
