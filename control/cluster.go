package control

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/stats"
)

// ClusterStatus is a daemon's etcd control plane as `vxlanctl cluster
// show` prints it (and, with -j, the JSON it prints).
type ClusterStatus struct {
	Endpoints []string `json:"endpoints"`
	Prefix    string   `json:"prefix"`
	// State is "connecting", "connected" or "disconnected".
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
	// Lease is the node's current etcd lease in hex, "" when it has none.
	Lease string        `json:"lease,omitempty"`
	VNIs  []ClusterVNI  `json:"vnis"`
	Stats []stats.Value `json:"stats"`
}

// ClusterVNI is one VNI in the cluster.
type ClusterVNI struct {
	VNI uint32 `json:"vni"`
	Dev string `json:"dev"`
	// Revision is the last etcd revision applied to the data plane.
	Revision int64 `json:"revision"`
	// Published says the local announcement is in etcd under the current
	// lease.
	Published bool            `json:"published"`
	Local     ClusterMember   `json:"local"`
	Members   []ClusterMember `json:"members"`
}

// ClusterMember is one VTEP and the endpoints behind it.
type ClusterMember struct {
	Addr      netip.Addr        `json:"addr"`
	Port      uint16            `json:"port"`
	MAC       fdb.MAC           `json:"mac"`
	Addrs     []netip.Addr      `json:"addrs,omitempty"`
	Endpoints []ClusterEndpoint `json:"endpoints,omitempty"`
}

// ClusterEndpoint is a MAC behind a VTEP and its addresses.
type ClusterEndpoint struct {
	MAC fdb.MAC      `json:"mac"`
	IPs []netip.Addr `json:"ips,omitempty"`
}

// FormatCluster writes st for people:
//
//	cluster etcd http://192.0.2.254:2379 prefix /vxland state connected lease 1ebda2371531a806
//	vni 40 dev vx0 revision 57 published
//	    local  192.0.2.1 port 4789 mac 02:00:5e:10:00:01 addrs 203.0.113.1
//	    member 192.0.2.2 port 4789 mac 02:00:5e:10:00:02 addrs 203.0.113.2
//	        endpoint 0a:58:cb:00:71:0b 203.0.113.11
//	counters
//	    cluster_watch_events 12
func FormatCluster(w io.Writer, st *ClusterStatus) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "cluster etcd %s prefix %s state %s", strings.Join(st.Endpoints, ","), st.Prefix, st.State)
	if st.Lease != "" {
		fmt.Fprintf(bw, " lease %s", st.Lease)
	}
	bw.WriteString("\n")
	if st.LastError != "" {
		fmt.Fprintf(bw, "    last error: %s\n", st.LastError)
	}
	for _, v := range st.VNIs {
		pub := "not published"
		if v.Published {
			pub = "published"
		}
		fmt.Fprintf(bw, "vni %d dev %s revision %d %s\n", v.VNI, v.Dev, v.Revision, pub)
		writeMember(bw, "local ", v.Local)
		for _, m := range v.Members {
			writeMember(bw, "member", m)
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
		return fmt.Errorf("write cluster status: %w", err)
	}
	return nil
}

func writeMember(bw *bufio.Writer, what string, m ClusterMember) {
	fmt.Fprintf(bw, "    %s %s port %d mac %s", what, m.Addr, m.Port, m.MAC)
	if len(m.Addrs) > 0 {
		bw.WriteString(" addrs " + joinAddrs(m.Addrs))
	}
	bw.WriteString("\n")
	for _, e := range m.Endpoints {
		fmt.Fprintf(bw, "        endpoint %s", e.MAC)
		if len(e.IPs) > 0 {
			bw.WriteString(" " + joinAddrs(e.IPs))
		}
		bw.WriteString("\n")
	}
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// WriteClusterJSON writes the statuses as one JSON array, followed by a
// newline.
func WriteClusterJSON(w io.Writer, sts []*ClusterStatus) error {
	return writeJSONArray(w, sts)
}

// ClusterShow returns the daemon's cluster status; a daemon not in a
// cluster refuses with CodeInvalid.
func (c *Client) ClusterShow() (*ClusterStatus, error) {
	rep, err := c.do(request{Op: OpClusterShow})
	if err != nil {
		return nil, err
	}
	if rep.Cluster == nil {
		return nil, fmt.Errorf("%s on %s: reply without status", OpClusterShow, c.path)
	}
	return rep.Cluster, nil
}

// clusterShow answers cluster.show through the ClusterShow hook.
func (s *Server) clusterShow(req *request) reply {
	if req.hasArgs() {
		return failure(CodeInvalid, req.Op+" takes no arguments")
	}
	if s.ClusterShow == nil {
		return failure(CodeInvalid, "this daemon is not in a cluster (no etcd endpoints, or no VNI without remote and group)")
	}
	return reply{OK: true, Cluster: s.ClusterShow()}
}
