package control

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/neigh"
	"github.com/vxland/vxland/stats"
)

// Version is the protocol version this package speaks, the "v" of every
// request and reply.
const Version = 1

// MaxRequestSize is the longest request line, newline included, that the
// server reads. A longer one is refused and its connection closed.
const MaxRequestSize = 64 << 10

// maxReplySize bounds the reply line the client reads (a large fdb.show).
const maxReplySize = 64 << 20

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// Operation names, the "op" of a request.
const (
	OpFDBAdd     = "fdb.add"
	OpFDBAppend  = "fdb.append"
	OpFDBReplace = "fdb.replace"
	OpFDBDel     = "fdb.del"
	OpFDBShow    = "fdb.show"
	OpStats      = "stats"
	OpDevs       = "devs"
	// OpReload asks the daemon to re-read its configuration file; the
	// reply's summary says what changed.
	OpReload = "reload"
	// OpClusterShow asks for the daemon's etcd control plane status.
	OpClusterShow = "cluster.show"
	// Neighbour entries kept by vxland (vxlanctl neigh), which the proxy
	// and route short-circuit read besides the host's.
	OpNeighAdd     = "neigh.add"
	OpNeighReplace = "neigh.replace"
	OpNeighDel     = "neigh.del"
	OpNeighShow    = "neigh.show"
	// OpMonitor turns the connection into a stream of events: after the
	// reply, one MonitorEvent per line until either side closes it.
	OpMonitor = "monitor"
	// OpBGPShow asks for the daemon's BGP EVPN status.
	OpBGPShow = "bgp.show"
)

// Error codes, the "code" of a refused request.
const (
	CodeInvalid  = "invalid"   // malformed or inconsistent request
	CodeVersion  = "version"   // unsupported protocol version
	CodeNoDev    = "no_dev"    // the socket serves no such device
	CodeTooLarge = "too_large" // request longer than MaxRequestSize
	CodeExists   = "exists"    // fdb.add of an existing entry (fdb.ErrExists)
	CodeNotFound = "not_found" // no such entry or destination (fdb.ErrNotFound)
	CodeFull     = "full"      // the table is at maxaddress (fdb.ErrFull)
	CodeOwned    = "owned"     // a control plane owns the entry (fdb.ErrOwned)
	CodeFailed   = "failed"    // the forwarding database refused for another reason
	CodeInternal = "internal"  // the daemon failed (a handler panicked)
	CodeRefused  = "refused"   // reload: nothing was changed (invalid file, or not reloadable)
	CodePartial  = "partial"   // reload: applied in part; the message says what failed
)

// State names on the wire and in `fdb show` output.
const (
	statePermanent = "permanent"
	stateStatic    = "static"
	stateDynamic   = "dynamic"
)

// request is one request line. Port and VNI are wide signed integers so that
// out-of-range values decode and get a precise error.
type request struct {
	V     int    `json:"v"`
	Op    string `json:"op"`
	Dev   string `json:"dev,omitempty"`
	MAC   string `json:"mac,omitempty"`
	Dst   string `json:"dst,omitempty"`
	Port  int64  `json:"port,omitempty"`
	VNI   *int64 `json:"vni,omitempty"`
	State string `json:"state,omitempty"`
	// Router is the fdb entry's or neighbour's router flag.
	Router bool `json:"router,omitempty"`
	// IP and LLAddr are a neighbour entry's addresses.
	IP     string `json:"ip,omitempty"`
	LLAddr string `json:"lladdr,omitempty"`
}

// hasFDBArgs reports whether the request carries any fdb argument.
func (r *request) hasFDBArgs() bool {
	return r.MAC != "" || r.Dst != "" || r.Port != 0 || r.VNI != nil || r.State != ""
}

// hasNeighArgs reports whether the request carries any neigh argument.
func (r *request) hasNeighArgs() bool {
	return r.IP != "" || r.LLAddr != ""
}

// hasArgs reports whether the request carries any argument at all, which
// the requests about the whole daemon (reload, cluster.show, bgp.show)
// refuse.
func (r *request) hasArgs() bool {
	return r.Dev != "" || r.hasFDBArgs() || r.hasNeighArgs() || r.Router
}

// reply is one reply line.
type reply struct {
	V     int          `json:"v"`
	OK    bool         `json:"ok"`
	Code  string       `json:"code,omitempty"`
	Error string       `json:"error,omitempty"`
	Devs  []wireDevice `json:"devs,omitempty"`
	// Summary is a reload's account of what changed, one line per change.
	Summary string `json:"summary,omitempty"`
	// Cluster is the answer to cluster.show.
	Cluster *ClusterStatus `json:"cluster,omitempty"`
	// BGP is the answer to bgp.show.
	BGP *BGPStatus `json:"bgp,omitempty"`
}

// wireDevice is one device in a fdb.show, stats or devs reply.
type wireDevice struct {
	Name  string        `json:"name"`
	VNI   uint32        `json:"vni"`
	Port  uint16        `json:"port"`
	FDB   []wireEntry   `json:"fdb,omitempty"`
	Stats []stats.Value `json:"stats,omitempty"`
	Neigh []wireNeigh   `json:"neigh,omitempty"`
}

// wireNeigh is one neighbour entry in a neigh.show reply.
type wireNeigh struct {
	IP     netip.Addr `json:"ip"`
	LLAddr fdb.MAC    `json:"lladdr"`
	Router bool       `json:"router,omitempty"`
	State  string     `json:"state"`
	// Source is "control" (vxlanctl neigh) or "host" (the host's entry on
	// the TAP).
	Source string `json:"source"`
}

// wireEntry is one forwarding database entry in a fdb.show reply.
type wireEntry struct {
	MAC     fdb.MAC    `json:"mac"`
	State   string     `json:"state"`
	Router  bool       `json:"router,omitempty"`
	Updated time.Time  `json:"updated,omitzero"`
	Dsts    []wireDest `json:"dsts"`
}

// wireDest is one fully resolved destination.
type wireDest struct {
	IP   netip.Addr `json:"ip"`
	Port uint16     `json:"port"`
	VNI  uint32     `json:"vni"`
	// Owner is the control plane that installed the destination; absent
	// for configuration, vxlanctl and learning.
	Owner string `json:"owner,omitempty"`
}

// Error is a request that the daemon refused. Nothing was changed. For the
// codes CodeExists, CodeNotFound, CodeFull and CodeOwned it unwraps to
// fdb.ErrExists (and neigh.ErrExists), fdb.ErrNotFound (and
// neigh.ErrNotFound), fdb.ErrFull and fdb.ErrOwned, so errors.Is works
// across the socket.
type Error struct {
	Code    string // one of the Code* constants
	Message string // the daemon's explanation
}

// Error returns the daemon's message.
func (e *Error) Error() string { return e.Message }

// Unwrap maps the error code back to the fdb package's sentinel errors.
func (e *Error) Unwrap() error {
	switch e.Code {
	case CodeExists:
		return errExists
	case CodeNotFound:
		return errNotFound
	case CodeFull:
		return fdb.ErrFull
	case CodeOwned:
		return fdb.ErrOwned
	}
	return nil
}

// errExists and errNotFound match both the fdb's and the neighbour
// table's sentinels with errors.Is.
var (
	errExists   = multiIs{fdb.ErrExists, neigh.ErrExists}
	errNotFound = multiIs{fdb.ErrNotFound, neigh.ErrNotFound}
)

// multiIs is an error that errors.Is matches with each of its members.
type multiIs [2]error

func (m multiIs) Error() string { return m[0].Error() }

// Is reports whether target is one of m's members.
func (m multiIs) Is(target error) bool { return target == m[0] || target == m[1] }

// stateName is the wire and display name of s.
func stateName(s fdb.State) string {
	switch s {
	case fdb.Permanent:
		return statePermanent
	case fdb.Static:
		return stateStatic
	case fdb.Dynamic:
		return stateDynamic
	}
	return s.String()
}

// ParseState parses a state word as bridge(8) accepts it: "permanent" (or
// its alias "local"), "static" (or "temp") and "dynamic".
func ParseState(s string) (fdb.State, error) {
	switch s {
	case statePermanent, "local":
		return fdb.Permanent, nil
	case stateStatic, "temp":
		return fdb.Static, nil
	case stateDynamic:
		return fdb.Dynamic, nil
	}
	return 0, fmt.Errorf("unknown state %q (want permanent, static or dynamic)", s)
}
