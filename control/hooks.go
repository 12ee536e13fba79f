package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/vxland/vxland/events"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/neigh"
)

// neighModify executes neigh.add, neigh.replace and neigh.del.
func (s *Server) neighModify(req *request) reply {
	verb := "neigh " + req.Op[len("neigh."):]
	bad := func(format string, args ...any) reply {
		return failure(CodeInvalid, verb+": "+fmt.Sprintf(format, args...))
	}
	dev, r := s.device(req.Dev)
	if r != nil {
		return *r
	}
	if req.hasFDBArgs() {
		return bad(`"mac", "dst", "port", "vni" and "state" belong to fdb requests`)
	}
	if dev.Neigh == nil {
		return failure(CodeInvalid, verb+": device "+dev.Name+" has no neighbour table")
	}
	if req.IP == "" {
		return bad(`request lacks "ip"`)
	}
	ip, err := netip.ParseAddr(req.IP)
	if err != nil {
		return bad("invalid address %q: want an IPv4 or IPv6 address", req.IP)
	}
	var mac fdb.MAC
	switch {
	case req.Op == OpNeighDel:
		if req.LLAddr != "" || req.Router {
			return bad(`"lladdr" and "router" do not apply to a deletion`)
		}
	case req.LLAddr == "":
		return bad(`request lacks "lladdr"`)
	default:
		if mac, err = fdb.ParseMAC(req.LLAddr); err != nil {
			return bad("invalid lladdr %q (want six hex octets like 02:00:5e:10:00:01)", req.LLAddr)
		}
	}
	switch req.Op {
	case OpNeighAdd:
		err = dev.Neigh.Add(ip, mac, req.Router)
	case OpNeighReplace:
		err = dev.Neigh.Replace(ip, mac, req.Router)
	default:
		err = dev.Neigh.Del(ip)
	}
	if err != nil {
		code, cause := classify(err)
		return failure(code, verb+" "+ip.String()+" dev "+dev.Name+": "+cause)
	}
	return reply{OK: true}
}

// wireNeighs converts a neighbour table listing.
func wireNeighs(es []neigh.Entry) []wireNeigh {
	out := make([]wireNeigh, len(es))
	for i, e := range es {
		src := e.Source.String()
		if e.Source == neigh.Owned {
			src = string(e.Owner) // the control plane's name
		}
		out[i] = wireNeigh{IP: e.IP, LLAddr: e.MAC, Router: e.Router, State: neigh.StateName(e.State), Source: src}
	}
	return out
}

// MonitorEvent is one event of a monitor stream, as it crosses the socket
// and as `vxlanctl -j monitor` prints it: one JSON object per line.
type MonitorEvent struct {
	// Event is "l2miss", "l3miss", "fdb" or "lost".
	Event string `json:"event"`
	Dev   string `json:"dev"`
	VNI   uint32 `json:"vni"`
	// Port is the device's destination port (for the fdb line's format).
	Port uint16 `json:"port"`
	// MAC: the missed address (l2miss), the entry's (fdb).
	MAC *fdb.MAC `json:"mac,omitempty"`
	// IP: the missed address (l3miss).
	IP netip.Addr `json:"ip,omitzero"`
	// Action: what happened to the fdb entry: added, deleted, learned,
	// migrated, aged.
	Action string `json:"action,omitempty"`
	// Dst, State and Router describe the fdb entry's destination.
	Dst    *wireDest `json:"dst,omitempty"`
	State  string    `json:"state,omitempty"`
	Router bool      `json:"router,omitempty"`
	// Lost counts the events the daemon dropped for this monitor, which
	// did not read fast enough (lost).
	Lost uint64 `json:"lost,omitempty"`
}

// monitorEvent converts a bus event.
func monitorEvent(e events.Event, port uint16) MonitorEvent {
	m := MonitorEvent{Event: e.Kind.String(), Dev: e.Dev, VNI: e.VNI, Port: port}
	switch e.Kind {
	case events.L2Miss:
		mac := e.MAC
		m.MAC = &mac
	case events.L3Miss:
		m.IP = e.IP
	case events.FDB:
		c := e.Change
		mac := c.MAC
		m.MAC = &mac
		m.Action = c.Kind.String()
		m.Dst = &wireDest{IP: c.Dest.IP, Port: c.Dest.Port, VNI: c.Dest.VNI}
		m.State = stateName(c.State)
		m.Router = c.Router
	case events.Lost:
		m.Lost = e.Lost
	}
	return m
}

// monitor streams the events of the requested device (or of every device
// on the socket) to c until the client or the server closes it. Events
// come from bounded queues: a monitor that does not keep up loses events
// and is told how many, and never slows the forwarding path. A write that
// stalls past the write timeout ends the stream.
func (s *Server) monitor(c net.Conn, req *request) {
	if req.hasFDBArgs() || req.hasNeighArgs() || req.Router {
		s.writeReply(c, failure(CodeInvalid, OpMonitor+` takes only "dev"`))
		return
	}
	devs := s.devs
	if req.Dev != "" {
		d, r := s.device(req.Dev)
		if r != nil {
			s.writeReply(c, *r)
			return
		}
		devs = []*Device{d}
	}
	type tagged struct {
		e    events.Event
		port uint16
	}
	merged := make(chan tagged)
	stop := make(chan struct{})
	var subs []*events.Sub
	for _, d := range devs {
		if d.Events == nil {
			continue
		}
		sub := d.Events.Subscribe()
		subs = append(subs, sub)
		go func(sub *events.Sub, port uint16) {
			for {
				select {
				case e := <-sub.C():
					select {
					case merged <- tagged{e, port}:
					case <-stop:
						return
					}
				case <-stop:
					return
				}
			}
		}(sub, d.Port)
	}
	defer func() {
		close(stop)
		for _, sub := range subs {
			sub.Close()
		}
	}()
	if s.writeReply(c, reply{OK: true}) != nil {
		return
	}
	// The client sends nothing more: a read returns when it closes.
	gone := make(chan struct{})
	go func() {
		_ = c.SetReadDeadline(time.Time{})
		_, _ = io.Copy(io.Discard, c)
		close(gone)
	}()
	for {
		select {
		case t := <-merged:
			b, err := json.Marshal(monitorEvent(t.e, t.port))
			if err != nil {
				return
			}
			if c.SetWriteDeadline(time.Now().Add(s.writeTimeout)) != nil {
				return
			}
			if _, err := c.Write(append(b, '\n')); err != nil {
				return
			}
		case <-gone:
			return
		case <-s.done:
			return
		}
	}
}

// Monitor streams the events of dev (every device on the socket when dev
// is empty) to fn until fn returns an error, the daemon closes the stream
// or done closes. It returns nil when done closed it.
func (c *Client) Monitor(dev string, done <-chan struct{}, fn func(MonitorEvent) error) error {
	conn, err := c.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-done:
			conn.Close()
		case <-stopped:
		}
	}()
	b, _ := json.Marshal(request{V: Version, Op: OpMonitor, Dev: dev})
	if err := conn.SetWriteDeadline(time.Now().Add(c.timeout())); err != nil {
		return err
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send %s request to %s: %w", OpMonitor, c.path, err)
	}
	dec := json.NewDecoder(conn)
	var rep reply
	if err := dec.Decode(&rep); err != nil {
		return fmt.Errorf("%s on %s: %w", OpMonitor, c.path, err)
	}
	if !rep.OK {
		return &Error{Code: rep.Code, Message: rep.Error}
	}
	for {
		var e MonitorEvent
		if err := dec.Decode(&e); err != nil {
			select {
			case <-done:
				return nil
			default:
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%s on %s: vxland closed the stream", OpMonitor, c.path)
			}
			return fmt.Errorf("%s on %s: %w", OpMonitor, c.path, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// NeighAdd creates the neighbour entry ip -> mac on dev, like `ip neigh
// add`; errors.Is neigh.ErrExists when ip has one.
func (c *Client) NeighAdd(dev string, ip netip.Addr, mac fdb.MAC, router bool) error {
	_, err := c.do(request{Op: OpNeighAdd, Dev: dev, IP: ip.String(), LLAddr: mac.String(), Router: router})
	return err
}

// NeighReplace creates or overwrites the neighbour entry ip -> mac on dev.
func (c *Client) NeighReplace(dev string, ip netip.Addr, mac fdb.MAC, router bool) error {
	_, err := c.do(request{Op: OpNeighReplace, Dev: dev, IP: ip.String(), LLAddr: mac.String(), Router: router})
	return err
}

// NeighDel removes the neighbour entry of ip on dev (errors.Is
// neigh.ErrNotFound when vxland keeps none; the host's own entries are
// removed with ip neigh del).
func (c *Client) NeighDel(dev string, ip netip.Addr) error {
	_, err := c.do(request{Op: OpNeighDel, Dev: dev, IP: ip.String()})
	return err
}

// DeviceNeigh is one device's neighbour table as neigh.show returns it.
type DeviceNeigh struct {
	Name    string
	VNI     uint32
	Entries []neigh.Entry
}

// NeighShow returns dev's neighbour table, or that of every device on the
// socket when dev is empty.
func (c *Client) NeighShow(dev string) ([]DeviceNeigh, error) {
	rep, err := c.do(request{Op: OpNeighShow, Dev: dev})
	if err != nil {
		return nil, err
	}
	out := make([]DeviceNeigh, len(rep.Devs))
	for i, wd := range rep.Devs {
		d := DeviceNeigh{Name: wd.Name, VNI: wd.VNI}
		for _, wn := range wd.Neigh {
			e := neigh.Entry{IP: wn.IP, MAC: wn.LLAddr, Router: wn.Router, State: stateNUD(wn.State)}
			switch wn.Source {
			case neigh.Host.String():
				e.Source = neigh.Host
			case neigh.Control.String():
			default: // a control plane's name
				e.Source, e.Owner = neigh.Owned, fdb.Owner(wn.Source)
			}
			d.Entries = append(d.Entries, e)
		}
		out[i] = d
	}
	return out, nil
}

// stateNUD parses neigh.StateName's words.
func stateNUD(s string) uint16 {
	for v := uint16(1); v != 0 && v <= neigh.NUDPermanent; v <<= 1 {
		if neigh.StateName(v) == s {
			return v
		}
	}
	return 0
}
