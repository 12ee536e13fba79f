// Package metrics exports vxland's counters in the Prometheus format.
//
// Every counter that `vxlanctl stats` shows becomes a counter named
// vxland_<name>_total: a VXLAN device's own counters carry the labels dev
// (the TAP name) and vni; the counters of a shared UDP socket (datagrams
// received, loop panics, drops decided before the VNI is known) carry local
// and port instead. Which labels a counter gets follows from where it is
// read (Device.Counters or Endpoint.Counters), not from its name. Forwarding
// entries are a gauge, vxland_fdb_entries{dev,vni,state}.
//
// The Collector builds these as constant metrics from snapshots taken at
// scrape time, so the packet path is not involved, and it asks its Source
// for the current devices and sockets at every scrape, so devices added or
// removed while the daemon runs appear and disappear with them.
package metrics

import (
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/stats"
)

// Namespace prefixes every vxland metric name.
const Namespace = "vxland"

// Metric names that do not come from a counter.
const (
	// FDBEntriesName is the gauge of forwarding entries per device and state.
	FDBEntriesName = Namespace + "_fdb_entries"
	// BuildInfoName is the constant 1 gauge labelled with the build.
	BuildInfoName = Namespace + "_build_info"
)

// Device is one VXLAN device (one VNI and its TAP) as read at one scrape.
type Device struct {
	// Name is the TAP's name, the dev label.
	Name string
	// VNI is the device's VXLAN network identifier, the vni label.
	VNI uint32
	// Counters returns the device's own counters (those that belong to no
	// shared socket); nil means none.
	Counters func() []stats.Value
	// FDB returns the number of forwarding entries per state; nil means
	// the device has no table.
	FDB func() map[fdb.State]int
}

// Endpoint is one underlay UDP socket, which several devices may share.
type Endpoint struct {
	// Local is the socket's underlay address, the local label
	// ("0.0.0.0" or "::" when bound to any).
	Local string
	// Port is the UDP port the socket receives on, the port label.
	Port uint16
	// Counters returns the socket's counters; nil means none.
	Counters func() []stats.Value
}

// Source lists what a daemon serves now. The Collector calls it at every
// scrape, possibly from several goroutines at once.
type Source interface {
	// Devices returns the current VXLAN devices.
	Devices() []Device
	// Endpoints returns the current underlay sockets.
	Endpoints() []Endpoint
}

// CounterName returns the metric name of the counter that vxlanctl stats
// shows as name: vxland_<name>_total, with any byte that a metric name
// cannot hold replaced by '_'.
func CounterName(name string) string {
	var b strings.Builder
	b.Grow(len(Namespace) + len(name) + 7)
	b.WriteString(Namespace + "_")
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	b.WriteString("_total")
	return b.String()
}

// Label names.
var (
	deviceLabels   = []string{"dev", "vni"}
	endpointLabels = []string{"local", "port"}
	fdbLabels      = []string{"dev", "vni", "state"}
)

// Collector is a prometheus.Collector of the counters and forwarding table
// sizes of a Source. It is unchecked (its Describe sends nothing): the set
// of counters is what the data plane reports, and it may change at run time.
type Collector struct {
	src     Source
	fdbDesc *prometheus.Desc

	mu    sync.Mutex
	descs map[descKey]*prometheus.Desc // by counter name and label set
}

type descKey struct {
	name     string
	endpoint bool // local, port rather than dev, vni
}

// NewCollector returns a Collector reading src at every scrape.
func NewCollector(src Source) *Collector {
	return &Collector{
		src: src,
		fdbDesc: prometheus.NewDesc(FDBEntriesName,
			"Forwarding database entries of a VXLAN device, by state (permanent, static, dynamic).",
			fdbLabels, nil),
		descs: map[descKey]*prometheus.Desc{},
	}
}

// Describe sends nothing, which makes the Collector unchecked.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect sends the current value of every counter and the forwarding
// table sizes of every device and socket that the Source lists now.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.src.Devices() {
		vni := strconv.FormatUint(uint64(d.VNI), 10)
		if d.Counters != nil {
			c.counters(ch, d.Counters(), false, d.Name, vni)
		}
		if d.FDB != nil {
			for state, n := range d.FDB() {
				c.send(ch, c.fdbDesc, prometheus.GaugeValue, float64(n), d.Name, vni, state.String())
			}
		}
	}
	for _, e := range c.src.Endpoints() {
		if e.Counters != nil {
			c.counters(ch, e.Counters(), true, e.Local, strconv.Itoa(int(e.Port)))
		}
	}
}

func (c *Collector) counters(ch chan<- prometheus.Metric, vals []stats.Value, endpoint bool, labels ...string) {
	for _, v := range vals {
		c.send(ch, c.desc(v.Name, endpoint), prometheus.CounterValue, float64(v.Value), labels...)
	}
}

func (c *Collector) send(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

// desc returns the descriptor of the counter called name. The help text
// depends on the name alone: a name both a device and a socket report is
// one metric family, whose members differ in their labels.
func (c *Collector) desc(name string, endpoint bool) *prometheus.Desc {
	k := descKey{name, endpoint}
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.descs[k]
	if d == nil {
		labels := deviceLabels
		if endpoint {
			labels = endpointLabels
		}
		d = prometheus.NewDesc(CounterName(name),
			"The "+name+" counter of vxlanctl stats (see the README's counter table).", labels, nil)
		c.descs[k] = d
	}
	return d
}

// NewRegistry returns a private registry holding a Collector for src, the
// Go runtime and process collectors, and vxland_build_info.
func NewRegistry(src Source) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(),
	)
	return reg
}

// buildInfo is vxland_build_info{version,revision,goversion} 1, from the
// build information the Go toolchain records in the binary.
func buildInfo() prometheus.Collector {
	version, revision := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: BuildInfoName,
		Help: "Always 1; the labels name the vxland build (module version, VCS revision, Go version).",
		ConstLabels: prometheus.Labels{
			"version": version, "revision": revision, "goversion": runtime.Version(),
		},
	})
	g.Set(1)
	return g
}
