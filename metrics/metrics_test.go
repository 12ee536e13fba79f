package metrics_test

import (
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/metrics"
	"github.com/vxland/vxland/stats"
)

// fakeSource is a daemon whose devices and sockets a test changes between
// scrapes, as live reconfiguration would.
type fakeSource struct {
	mu   sync.Mutex
	devs []metrics.Device
	eps  []metrics.Endpoint
}

func (f *fakeSource) Devices() []metrics.Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]metrics.Device(nil), f.devs...)
}

func (f *fakeSource) Endpoints() []metrics.Endpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]metrics.Endpoint(nil), f.eps...)
}

func (f *fakeSource) set(devs []metrics.Device, eps []metrics.Endpoint) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.devs, f.eps = devs, eps
}

// fakeDev is a device's counters and table, as a segment keeps them.
type fakeDev struct {
	set               stats.Set
	txFrames, txBytes *stats.Counter
	table             *fdb.Table
}

func newFakeDev(t *testing.T, vni uint32) *fakeDev {
	d := &fakeDev{table: fdb.New(fdb.Options{})}
	d.txFrames, d.txBytes = d.set.New("tx_frames"), d.set.New("tx_bytes")
	dest := fdb.Dest{IP: netip.MustParseAddr("192.0.2.2"), Port: 4789, VNI: vni}
	if err := d.table.Append(fdb.Zero, dest, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *fakeDev) device(name string, vni uint32) metrics.Device {
	return metrics.Device{Name: name, VNI: vni, Counters: d.set.Snapshot, FDB: d.table.StateCounts}
}

// fakeSocket is an endpoint's socket counters.
type fakeSocket struct {
	set         stats.Set
	rx, rxShort *stats.Counter
}

func newFakeSocket() *fakeSocket {
	s := &fakeSocket{}
	s.rxShort, s.rx = s.set.New("rx_short"), s.set.New("rx_datagrams")
	return s
}

func TestCollectorNamesLabelsValues(t *testing.T) {
	d40, d41 := newFakeDev(t, 40), newFakeDev(t, 41)
	d40.txFrames.Add(3)
	d40.txBytes.Add(300)
	d41.txFrames.Add(7)
	d41.table.Learn(fdb.MAC{0x02, 0, 0, 0, 0, 1}, fdb.Dest{IP: netip.MustParseAddr("192.0.2.3"), Port: 4789, VNI: 41})
	if err := d41.table.Add(fdb.MAC{0x02, 0, 0, 0, 0, 2}, fdb.Dest{IP: netip.MustParseAddr("192.0.2.4"), Port: 4789, VNI: 41}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	sock := newFakeSocket()
	sock.rx.Add(11)
	sock.rxShort.Add(2)
	src := &fakeSource{}
	src.set([]metrics.Device{d40.device("vx0", 40), d41.device("vx1", 41)},
		[]metrics.Endpoint{{Local: "192.0.2.1", Port: 4789, Counters: sock.set.Snapshot}})

	want := `
# HELP vxland_tx_frames_total The tx_frames counter of vxlanctl stats (see the README's counter table).
# TYPE vxland_tx_frames_total counter
vxland_tx_frames_total{dev="vx0",vni="40"} 3
vxland_tx_frames_total{dev="vx1",vni="41"} 7
# HELP vxland_tx_bytes_total The tx_bytes counter of vxlanctl stats (see the README's counter table).
# TYPE vxland_tx_bytes_total counter
vxland_tx_bytes_total{dev="vx0",vni="40"} 300
vxland_tx_bytes_total{dev="vx1",vni="41"} 0
# HELP vxland_rx_datagrams_total The rx_datagrams counter of vxlanctl stats (see the README's counter table).
# TYPE vxland_rx_datagrams_total counter
vxland_rx_datagrams_total{local="192.0.2.1",port="4789"} 11
# HELP vxland_rx_short_total The rx_short counter of vxlanctl stats (see the README's counter table).
# TYPE vxland_rx_short_total counter
vxland_rx_short_total{local="192.0.2.1",port="4789"} 2
# HELP vxland_fdb_entries Forwarding database entries of a VXLAN device, by state (permanent, static, dynamic).
# TYPE vxland_fdb_entries gauge
vxland_fdb_entries{dev="vx0",state="dynamic",vni="40"} 0
vxland_fdb_entries{dev="vx0",state="permanent",vni="40"} 1
vxland_fdb_entries{dev="vx0",state="static",vni="40"} 0
vxland_fdb_entries{dev="vx1",state="dynamic",vni="41"} 1
vxland_fdb_entries{dev="vx1",state="permanent",vni="41"} 1
vxland_fdb_entries{dev="vx1",state="static",vni="41"} 1
`
	if err := testutil.CollectAndCompare(metrics.NewCollector(src), strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// scrape gathers reg and returns the value of the sample of family name
// whose labels are exactly labels, and whether there is one.
func scrape(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if sameLabels(m.GetLabel(), labels) {
				return value(m), true
			}
		}
	}
	return 0, false
}

func sameLabels(pairs []*dto.LabelPair, want map[string]string) bool {
	if len(pairs) != len(want) {
		return false
	}
	for _, p := range pairs {
		if v, ok := want[p.GetName()]; !ok || v != p.GetValue() {
			return false
		}
	}
	return true
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return m.GetUntyped().GetValue()
}

// TestCollectorFollowsCountersAndSource checks that each scrape reads the
// counters anew and lists the devices the source has at that moment.
func TestCollectorFollowsCountersAndSource(t *testing.T) {
	d40 := newFakeDev(t, 40)
	sock := newFakeSocket()
	src := &fakeSource{}
	src.set([]metrics.Device{d40.device("vx0", 40)}, []metrics.Endpoint{{Local: "0.0.0.0", Port: 4789, Counters: sock.set.Snapshot}})
	reg := metrics.NewRegistry(src)
	vx0 := map[string]string{"dev": "vx0", "vni": "40"}
	ep := map[string]string{"local": "0.0.0.0", "port": "4789"}

	var last float64
	for i, add := range []uint64{1, 5, 1 << 40} {
		d40.txFrames.Add(add)
		sock.rx.Add(add)
		got, ok := scrape(t, reg, "vxland_tx_frames_total", vx0)
		if !ok || got <= last || got != float64(d40.txFrames.Load()) {
			t.Fatalf("scrape %d: tx_frames = %v (present %v), want %d, above %v", i, got, ok, d40.txFrames.Load(), last)
		}
		last = got
		if got, _ := scrape(t, reg, "vxland_rx_datagrams_total", ep); got != float64(sock.rx.Load()) {
			t.Fatalf("scrape %d: rx_datagrams = %v, want %d", i, got, sock.rx.Load())
		}
	}

	// A device added at run time appears, one removed disappears; the
	// counter name the data plane moves from the socket to the device
	// follows it.
	d41 := newFakeDev(t, 41)
	d41.set.New("rx_short").Add(4)
	src.set([]metrics.Device{d41.device("vx1", 41)}, nil)
	if _, ok := scrape(t, reg, "vxland_tx_frames_total", vx0); ok {
		t.Error("removed device vx0 still exported")
	}
	if _, ok := scrape(t, reg, "vxland_rx_datagrams_total", ep); ok {
		t.Error("removed socket still exported")
	}
	if got, ok := scrape(t, reg, "vxland_rx_short_total", map[string]string{"dev": "vx1", "vni": "41"}); !ok || got != 4 {
		t.Errorf("per-device rx_short = %v (present %v), want 4", got, ok)
	}
	if got, ok := scrape(t, reg, "vxland_fdb_entries", map[string]string{"dev": "vx1", "vni": "41", "state": "permanent"}); !ok || got != 1 {
		t.Errorf("fdb_entries of added device = %v (present %v), want 1", got, ok)
	}
}

// TestCounterOnBothLevels: a counter name that a device and a socket both
// report is one family whose members differ in their labels, and the
// registry accepts it.
func TestCounterOnBothLevels(t *testing.T) {
	d := newFakeDev(t, 40)
	d.set.New("rx_short").Add(1)
	sock := newFakeSocket()
	sock.rxShort.Add(2)
	src := &fakeSource{}
	src.set([]metrics.Device{d.device("vx0", 40)}, []metrics.Endpoint{{Local: "::", Port: 8472, Counters: sock.set.Snapshot}})
	reg := metrics.NewRegistry(src)
	if got, ok := scrape(t, reg, "vxland_rx_short_total", map[string]string{"dev": "vx0", "vni": "40"}); !ok || got != 1 {
		t.Errorf("device rx_short = %v (present %v), want 1", got, ok)
	}
	if got, ok := scrape(t, reg, "vxland_rx_short_total", map[string]string{"local": "::", "port": "8472"}); !ok || got != 2 {
		t.Errorf("socket rx_short = %v (present %v), want 2", got, ok)
	}
}

func TestRegistryHasRuntimeAndBuildInfo(t *testing.T) {
	reg := metrics.NewRegistry(&fakeSource{})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		have[mf.GetName()] = mf
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total",
		"process_resident_memory_bytes", "process_open_fds", metrics.BuildInfoName} {
		if have[name] == nil {
			t.Errorf("%s not exported", name)
		}
	}
	if bi := have[metrics.BuildInfoName]; bi != nil {
		m := bi.GetMetric()[0]
		if value(m) != 1 {
			t.Errorf("%s = %v, want 1", metrics.BuildInfoName, value(m))
		}
		labels := map[string]string{}
		for _, p := range m.GetLabel() {
			labels[p.GetName()] = p.GetValue()
		}
		if !strings.HasPrefix(labels["goversion"], "go") || labels["version"] == "" {
			t.Errorf("%s labels = %v", metrics.BuildInfoName, labels)
		}
	}
	// Nothing registered on the global registry.
	if n, _ := testutil.GatherAndCount(prometheus.DefaultGatherer, metrics.BuildInfoName); n != 0 {
		t.Errorf("%s is on the global registry", metrics.BuildInfoName)
	}
}

func TestCounterName(t *testing.T) {
	for in, want := range map[string]string{
		"tx_frames":   "vxland_tx_frames_total",
		"rx_ecn.drop": "vxland_rx_ecn_drop_total",
		"Rx-9":        "vxland_Rx_9_total",
	} {
		if got := metrics.CounterName(in); got != want {
			t.Errorf("CounterName(%q) = %q, want %q", in, got, want)
		}
	}
}
