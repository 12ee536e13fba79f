package control

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/neigh"
	"github.com/vxland/vxland/stats"
)

// DeviceFDB is one device's forwarding database as fdb.show returns it.
type DeviceFDB struct {
	Name    string      // TAP device
	VNI     uint32      // the device's VNI
	Port    uint16      // the device's destination port
	Entries []fdb.Entry // sorted by MAC; destinations fully resolved
}

// DeviceStats is one device's counters as stats returns them.
type DeviceStats struct {
	Name  string        // TAP device
	VNI   uint32        // the device's VNI
	Port  uint16        // the device's destination port
	Stats []stats.Value // in the daemon's order
}

// DeviceInfo names one device served on a socket.
type DeviceInfo struct {
	Name string // TAP device
	VNI  uint32 // the device's VNI
	Port uint16 // the device's destination port
}

// destText formats a destination the way bridge(8) shows a vxlan fdb entry:
// "dst IP", then "port N" only when it differs from the device's port and
// "vni N" only when it differs from the device's VNI (the kernel leaves
// NDA_PORT and NDA_VNI out of its dump in those cases).
func destText(d fdb.Dest, devPort uint16, devVNI uint32) string {
	var b strings.Builder
	b.WriteString("dst ")
	b.WriteString(d.IP.String())
	if d.Port != 0 && d.Port != devPort {
		b.WriteString(" port ")
		b.WriteString(strconv.FormatUint(uint64(d.Port), 10))
	}
	if d.VNI != devVNI {
		b.WriteString(" vni ")
		b.WriteString(strconv.FormatUint(uint64(d.VNI), 10))
	}
	return b.String()
}

// FormatFDB writes d's entries the way `bridge fdb show` prints a vxlan
// device's, one line per destination:
//
//	00:11:22:33:44:55 dev vxl0 dst 192.0.2.2 self permanent
//	00:00:00:00:00:00 dev vxl0 dst 192.0.2.3 port 4790 vni 7 self static
//	02:00:5e:10:00:01 dev vxl0 dst 198.51.100.9 self
//
// "dev NAME" is printed only when showDev is set: bridge leaves it out when
// the listing is filtered by "dev". Dynamic (learned) entries get no state
// word, as the kernel reports them NUD_REACHABLE; unlike bridge, lines have
// no trailing space. A destination a control plane installed carries the
// kernel's flag for such entries, extern_learn, and names its owner last:
//
//	02:4a:00:00:00:02 dev vxl0 dst 192.0.2.2 self extern_learn static owner cluster
func FormatFDB(w io.Writer, d DeviceFDB, showDev bool) error {
	bw := bufio.NewWriter(w)
	for _, e := range d.Entries {
		head := e.MAC.String()
		if showDev {
			head += " dev " + d.Name
		}
		flags := "self" // bridge prints router, then extern_learn, then the state
		if e.Router {
			flags += " router"
		}
		state := ""
		switch e.State {
		case fdb.Permanent:
			state = " " + statePermanent
		case fdb.Static:
			state = " " + stateStatic
		}
		if len(e.Dests) == 0 {
			fmt.Fprintf(bw, "%s %s%s\n", head, flags, state)
			continue
		}
		for i, dst := range e.Dests {
			if o := e.OwnerOf(i); o != fdb.NoOwner {
				fmt.Fprintf(bw, "%s %s %s extern_learn%s owner %s\n", head, destText(dst, d.Port, d.VNI), flags, state, o)
				continue
			}
			fmt.Fprintf(bw, "%s %s %s%s\n", head, destText(dst, d.Port, d.VNI), flags, state)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write fdb of %s: %w", d.Name, err)
	}
	return nil
}

// FormatStats writes each device's counters, one "name value" line per
// counter with the values aligned, under a "dev NAME vni N port N" heading;
// devices are separated by a blank line.
func FormatStats(w io.Writer, devs []DeviceStats) error {
	bw := bufio.NewWriter(w)
	for i, d := range devs {
		if i > 0 {
			bw.WriteString("\n")
		}
		fmt.Fprintf(bw, "dev %s vni %d port %d\n", d.Name, d.VNI, d.Port)
		width := 0
		for _, v := range d.Stats {
			width = max(width, len(v.Name))
		}
		for _, v := range d.Stats {
			fmt.Fprintf(bw, "    %-*s %d\n", width, v.Name, v.Value)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	return nil
}

// FormatDevs writes one "dev NAME vni N port N" line per device, the
// heading FormatStats gives each device.
func FormatDevs(w io.Writer, devs []DeviceInfo) error {
	bw := bufio.NewWriter(w)
	for _, d := range devs {
		fmt.Fprintf(bw, "dev %s vni %d port %d\n", d.Name, d.VNI, d.Port)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write devs: %w", err)
	}
	return nil
}

// JSONFDBEntry is one destination of an FDB entry as `vxlanctl -j fdb show`
// prints it, after `bridge -j fdb show`: one object per MAC and
// destination. State is "permanent" or "static", and absent for learned
// (dynamic) entries, as in the text form.
type JSONFDBEntry struct {
	MAC    string   `json:"mac"`
	Ifname string   `json:"ifname"`
	Dst    string   `json:"dst,omitempty"`
	Port   uint16   `json:"port,omitempty"`
	VNI    *uint32  `json:"vni,omitempty"`
	Flags  []string `json:"flags"`
	State  string   `json:"state,omitempty"`
	// Owner is the control plane that installed the destination (flags
	// then hold "extern_learn" too); absent otherwise.
	Owner string `json:"owner,omitempty"`
}

// JSONStats is one device's counters as `vxlanctl -j stats` prints them.
type JSONStats struct {
	Dev      string            `json:"dev"`
	VNI      uint32            `json:"vni"`
	Port     uint16            `json:"port"`
	Counters map[string]uint64 `json:"counters"`
}

// JSONDev is one device as `vxlanctl -j devs` prints it, named as
// `ip -j link show` names an interface.
type JSONDev struct {
	Ifname string `json:"ifname"`
	VNI    uint32 `json:"vni"`
	Port   uint16 `json:"port"`
}

// WriteFDBJSON writes the entries of devs as one JSON array of
// JSONFDBEntry, followed by a newline.
func WriteFDBJSON(w io.Writer, devs []DeviceFDB) error {
	out := []JSONFDBEntry{}
	for _, d := range devs {
		for _, e := range d.Entries {
			base := JSONFDBEntry{MAC: e.MAC.String(), Ifname: d.Name, Flags: []string{"self"}}
			if e.Router {
				base.Flags = append(base.Flags, "router")
			}
			switch e.State {
			case fdb.Permanent:
				base.State = statePermanent
			case fdb.Static:
				base.State = stateStatic
			}
			if len(e.Dests) == 0 {
				out = append(out, base)
			}
			for i, dst := range e.Dests {
				j := base
				if o := e.OwnerOf(i); o != fdb.NoOwner {
					j.Flags = append(slices.Clone(base.Flags), "extern_learn")
					j.Owner = string(o)
				}
				j.Dst, j.Port = dst.IP.String(), dst.Port
				vni := dst.VNI
				j.VNI = &vni
				out = append(out, j)
			}
		}
	}
	return writeJSON(w, out)
}

// WriteStatsJSON writes devs as one JSON array of JSONStats, followed by a
// newline.
func WriteStatsJSON(w io.Writer, devs []DeviceStats) error {
	out := make([]JSONStats, 0, len(devs))
	for _, d := range devs {
		j := JSONStats{Dev: d.Name, VNI: d.VNI, Port: d.Port, Counters: make(map[string]uint64, len(d.Stats))}
		for _, v := range d.Stats {
			j.Counters[v.Name] = v.Value
		}
		out = append(out, j)
	}
	return writeJSON(w, out)
}

// WriteDevsJSON writes devs as one JSON array of JSONDev, followed by a
// newline.
func WriteDevsJSON(w io.Writer, devs []DeviceInfo) error {
	out := make([]JSONDev, 0, len(devs))
	for _, d := range devs {
		out = append(out, JSONDev{Ifname: d.Name, VNI: d.VNI, Port: d.Port})
	}
	return writeJSON(w, out)
}

// writeJSONArray writes items as one JSON array, [] when there are none.
func writeJSONArray[T any](w io.Writer, items []T) error {
	if items == nil {
		items = []T{}
	}
	return writeJSON(w, items)
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// FormatNeigh writes d's neighbour entries the way `ip neigh show`
// prints them, one per line:
//
//	203.0.113.2 dev vx0 lladdr 02:00:5e:10:00:02 PERMANENT
//	2001:db8::1 dev vx0 lladdr 02:00:5e:10:00:01 router REACHABLE proto host
//
// Entries kept by vxland (vxlanctl neigh add) come first and are
// PERMANENT; the host's own entries on the TAP follow, with their state
// and "proto host". "dev NAME" is printed only when showDev is set.
func FormatNeigh(w io.Writer, d DeviceNeigh, showDev bool) error {
	bw := bufio.NewWriter(w)
	for _, e := range d.Entries {
		bw.WriteString(e.IP.String())
		if showDev {
			bw.WriteString(" dev " + d.Name)
		}
		if e.MAC != (fdb.MAC{}) {
			bw.WriteString(" lladdr " + e.MAC.String())
		}
		if e.Router {
			bw.WriteString(" router")
		}
		bw.WriteString(" " + neigh.StateName(e.State))
		switch e.Source {
		case neigh.Host:
			bw.WriteString(" proto host")
		case neigh.Owned:
			bw.WriteString(" proto " + string(e.Owner))
		}
		bw.WriteString("\n")
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write neighbours of %s: %w", d.Name, err)
	}
	return nil
}

// JSONNeigh is one neighbour entry as `vxlanctl -j neigh show` prints it,
// after `ip -j neigh show`.
type JSONNeigh struct {
	Dst    string `json:"dst"`
	Dev    string `json:"dev"`
	LLAddr string `json:"lladdr"`
	Router bool   `json:"router,omitempty"`
	State  string `json:"state"`
	// Source is "control", "host", or the control plane that installed
	// the entry ("cluster").
	Source string `json:"source"`
}

// WriteNeighJSON writes the entries of devs as one JSON array of
// JSONNeigh, followed by a newline.
func WriteNeighJSON(w io.Writer, devs []DeviceNeigh) error {
	out := []JSONNeigh{}
	for _, d := range devs {
		for _, e := range d.Entries {
			src := e.Source.String()
			if e.Source == neigh.Owned {
				src = string(e.Owner) // the control plane's name
			}
			out = append(out, JSONNeigh{Dst: e.IP.String(), Dev: d.Name, LLAddr: e.MAC.String(),
				Router: e.Router, State: neigh.StateName(e.State), Source: src})
		}
	}
	return writeJSON(w, out)
}

// FormatEvent writes one monitor event as one line, in the manner of `ip
// monitor neigh` and `bridge monitor fdb`:
//
//	l2miss 02:00:5e:10:00:09 dev vx0 vni 40
//	l3miss 203.0.113.99 dev vx0 vni 40
//	02:00:5e:10:00:02 dev vx0 dst 192.0.2.2 self permanent
//	Deleted 02:00:5e:10:00:02 dev vx0 dst 192.0.2.2 self permanent
//	lost 12 events dev vx0 vni 40
//
// Forwarding entries added, learned or migrated print as bridge monitor
// fdb prints a new entry; deleted and aged ones with "Deleted" in front.
func FormatEvent(w io.Writer, e MonitorEvent) error {
	var line string
	switch e.Event {
	case "l2miss":
		line = fmt.Sprintf("l2miss %s dev %s vni %d", macText(e.MAC), e.Dev, e.VNI)
	case "l3miss":
		line = fmt.Sprintf("l3miss %s dev %s vni %d", e.IP, e.Dev, e.VNI)
	case "lost":
		line = fmt.Sprintf("lost %d events dev %s vni %d", e.Lost, e.Dev, e.VNI)
	case "fdb":
		line = macText(e.MAC) + " dev " + e.Dev
		if e.Dst != nil {
			line += " " + destText(fdb.Dest{IP: e.Dst.IP, Port: e.Dst.Port, VNI: e.Dst.VNI}, e.Port, e.VNI)
		}
		line += " self"
		if e.Router {
			line += " router"
		}
		if e.State == statePermanent || e.State == stateStatic {
			line += " " + e.State
		}
		if e.Action == fdb.ChangeDeleted.String() || e.Action == fdb.ChangeAged.String() {
			line = "Deleted " + line
		}
	default:
		line = fmt.Sprintf("%s dev %s vni %d", e.Event, e.Dev, e.VNI)
	}
	if _, err := io.WriteString(w, line+"\n"); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	return nil
}

func macText(m *fdb.MAC) string {
	if m == nil {
		return "-"
	}
	return m.String()
}
