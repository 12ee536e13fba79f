package main

import (
	"log"

	"github.com/vxland/vxland/metrics"
)

// metricsServer serves the daemon's metrics (--metrics, [daemon] metrics).
// A nil *metricsServer serves nothing; its methods do nothing.
type metricsServer struct {
	srv *metrics.Server
	src *daemonSource
}

// listenMetrics binds addr, so that an unusable address is a setup error
// found before anything else is opened; "" returns nil. Nothing is
// answered before serve.
func listenMetrics(addr string) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	src := &daemonSource{}
	srv, err := metrics.Listen(addr, metrics.NewRegistry(src), log.Printf)
	if err != nil {
		return nil, err
	}
	return &metricsServer{srv: srv, src: src}, nil
}

// serve starts answering scrapes with d's counters.
func (m *metricsServer) serve(d *daemon) {
	if m == nil {
		return
	}
	m.src.d = d // before Serve: no scrape reads it earlier
	go func() {
		if err := m.srv.Serve(); err != nil {
			log.Printf("metrics: %v", err)
		}
	}()
	log.Printf("metrics on http://%s%s", m.srv.Addr(), metrics.Path)
}

// close stops the server and closes its connections.
func (m *metricsServer) close() {
	if m != nil {
		m.srv.Close()
	}
}

// daemonSource is the daemon as the metrics collector sees it. It walks
// the daemon's endpoints and their segments at every scrape, so it shows
// whatever they are at that moment; whatever changes them while the daemon
// runs holds the daemon's lock, which these reads take too.
type daemonSource struct{ d *daemon }

// Devices returns one Device per segment of every endpoint.
func (s *daemonSource) Devices() []metrics.Device {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
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
func (s *daemonSource) Endpoints() []metrics.Endpoint {
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	out := make([]metrics.Endpoint, 0, len(s.d.eps))
	for _, ep := range s.d.eps {
		local := ep.Local()
		out = append(out, metrics.Endpoint{Local: local.Addr().String(), Port: local.Port(), Counters: ep.Counters})
	}
	return out
}
