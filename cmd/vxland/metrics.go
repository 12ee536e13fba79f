package main

import (
	"log"

	"github.com/vxland/vxland/metrics"
)

// serveMetrics serves the daemon's metrics on addr (--metrics, [daemon]
// metrics) and returns the function that stops it; with addr "" it serves
// nothing. An unusable address is a setup error.
func serveMetrics(addr string, d *daemon) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	srv, err := metrics.Listen(addr, metrics.NewRegistry(daemonSource{d}), log.Printf)
	if err != nil {
		return nil, err
	}
	go func() {
		if err := srv.Serve(); err != nil {
			log.Printf("metrics: %v", err)
		}
	}()
	log.Printf("metrics on http://%s%s", srv.Addr(), metrics.Path)
	return func() { srv.Close() }, nil
}

// daemonSource is the daemon as the metrics collector sees it. It walks
// the daemon's endpoints and their segments at every scrape, so it shows
// whatever they are at that moment; whatever changes them while the daemon
// runs must let these reads happen safely alongside.
type daemonSource struct{ d *daemon }

// Devices returns one Device per segment of every endpoint.
func (s daemonSource) Devices() []metrics.Device {
	var out []metrics.Device
	for _, ep := range s.d.eps {
		for _, seg := range ep.Segments() {
			out = append(out, metrics.Device{
				Name: seg.TAPName(), VNI: seg.VNI(), Counters: seg.Counters, FDB: seg.Table().StateCounts,
			})
		}
	}
	return out
}

// Endpoints returns one Endpoint per underlay socket.
func (s daemonSource) Endpoints() []metrics.Endpoint {
	out := make([]metrics.Endpoint, 0, len(s.d.eps))
	for _, ep := range s.d.eps {
		local := ep.Local()
		out = append(out, metrics.Endpoint{Local: local.Addr().String(), Port: local.Port(), Counters: ep.Counters})
	}
	return out
}
