package control

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"

	"github.com/vxland/vxland/stats"
)

// BGPStatus is a daemon's BGP EVPN control plane as `vxlanctl bgp show`
// prints it (and, with -j, the JSON it prints).
type BGPStatus struct {
	ASN      uint32        `json:"asn"`
	RouterID netip.Addr    `json:"router_id"`
	Port     int           `json:"port"`
	Sessions []BGPSession  `json:"sessions"`
	VNIs     []BGPVNI      `json:"vnis"`
	Stats    []stats.Value `json:"stats"`
}

// BGPSession is one neighbor's session.
type BGPSession struct {
	Neighbor netip.Addr `json:"neighbor"`
	ASN      uint32     `json:"asn"`
	// State is the BGP state: idle, connect, active, opensent,
	// openconfirm or established.
	State string `json:"state"`
	// Received, Accepted and Advertised count EVPN prefixes.
	Received   uint64 `json:"received"`
	Accepted   uint64 `json:"accepted"`
	Advertised uint64 `json:"advertised"`
}

// BGPVNI is one VNI served by EVPN.
type BGPVNI struct {
	VNI uint32 `json:"vni"`
	Dev string `json:"dev"`
	RD  string `json:"rd"`
	RT  string `json:"rt"`
	// RoutesOut counts the routes advertised, RoutesIn the valid routes
	// received.
	RoutesOut int `json:"routes_out"`
	RoutesIn  int `json:"routes_in"`
	// VTEPs are the remote VTEPs installed, with the endpoints behind
	// them (MAC is zero: EVPN names no TAP MAC).
	VTEPs []ClusterMember `json:"vteps"`
}

// FormatBGP writes st for people:
//
//	bgp as 65002 router-id 192.0.2.2 port 179
//	neighbor 192.0.2.1 as 65001 established received 3 accepted 3 advertised 3
//	vni 100 dev vx0 rd 192.0.2.2:100 rt 65002:100 routes out 3 in 3
//	    vtep 192.0.2.1 port 4789
//	        endpoint 96:82:b8:47:d6:2d
//	counters
//	    evpn_reconciles 7
func FormatBGP(w io.Writer, st *BGPStatus) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "bgp as %d router-id %s port %d\n", st.ASN, st.RouterID, st.Port)
	for _, s := range st.Sessions {
		fmt.Fprintf(bw, "neighbor %s as %d %s received %d accepted %d advertised %d\n",
			s.Neighbor, s.ASN, s.State, s.Received, s.Accepted, s.Advertised)
	}
	for _, v := range st.VNIs {
		fmt.Fprintf(bw, "vni %d dev %s rd %s rt %s routes out %d in %d\n", v.VNI, v.Dev, v.RD, v.RT, v.RoutesOut, v.RoutesIn)
		for _, m := range v.VTEPs {
			fmt.Fprintf(bw, "    vtep %s port %d\n", m.Addr, m.Port)
			for _, e := range m.Endpoints {
				fmt.Fprintf(bw, "        endpoint %s", e.MAC)
				if len(e.IPs) > 0 {
					bw.WriteString(" " + joinAddrs(e.IPs))
				}
				bw.WriteString("\n")
			}
		}
	}
	if len(st.Stats) > 0 {
		bw.WriteString("counters\n")
		width := 0
		for _, s := range st.Stats {
			width = max(width, len(s.Name))
		}
		for _, s := range st.Stats {
			fmt.Fprintf(bw, "    %-*s %d\n", width, s.Name, s.Value)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write bgp status: %w", err)
	}
	return nil
}

// WriteBGPJSON writes the statuses as one JSON array, followed by a
// newline.
func WriteBGPJSON(w io.Writer, sts []*BGPStatus) error {
	return writeJSONArray(w, sts)
}

// BGPShow returns the daemon's BGP EVPN status; a daemon without BGP
// refuses with CodeInvalid.
func (c *Client) BGPShow() (*BGPStatus, error) {
	rep, err := c.do(request{Op: OpBGPShow})
	if err != nil {
		return nil, err
	}
	if rep.BGP == nil {
		return nil, fmt.Errorf("%s on %s: reply without status", OpBGPShow, c.path)
	}
	return rep.BGP, nil
}

// bgpShow answers bgp.show through the BGPShow hook.
func (s *Server) bgpShow(req *request) reply {
	if req.hasArgs() {
		return failure(CodeInvalid, req.Op+" takes no arguments")
	}
	if s.BGPShow == nil {
		return failure(CodeInvalid, "this daemon does not speak BGP (no [bgp] asn, or no VNI without remote and group)")
	}
	return reply{OK: true, BGP: s.BGPShow()}
}
