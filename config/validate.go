package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vxland/vxland/control"
	"github.com/vxland/vxland/encap"
)

// maxSocketPath is the longest unix socket path: sizeof(sun_path) - 1.
const maxSocketPath = 107

// maxNetnsName is the longest namespace name ip-netns(8) accepts
// (NAME_MAX - 1).
const maxNetnsName = 254

// Error is one problem in a configuration. Parse, Load and Validate return
// one *Error, or several joined with errors.Join (one per line).
type Error struct {
	// Source is the file name (Config.Source); may be empty.
	Source string
	// Where locates the problem in the file: "vni 40 (entry 2)", "vni
	// entry 2" (when the entry has no usable id), "defaults", "line 7" (a
	// TOML syntax error), or "" for the file as a whole.
	Where string
	// Entry is the 1-based index of the [[vni]] entry at fault, 0 when the
	// problem is not about one entry.
	Entry int
	// Key is the TOML key at fault ("remote", "version"), "" when there is
	// no single one. Err's text names it too.
	Key string
	// Err says what is wrong.
	Err error
}

// Error formats e on one line: "source: where: problem", control
// characters escaped.
func (e *Error) Error() string {
	var b strings.Builder
	for _, s := range []string{e.Source, e.Where} {
		if s != "" {
			b.WriteString(s)
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Err.Error())
	return oneLine(b.String())
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// errList collects problems found in one source.
type errList struct {
	source string
	errs   []error
}

func (l *errList) add(where string, entry int, key string, err error) {
	l.errs = append(l.errs, &Error{Source: l.source, Where: where, Entry: entry, Key: key, Err: err})
}

func (l *errList) addf(where string, entry int, key, format string, args ...any) {
	l.add(where, entry, key, fmt.Errorf(format, args...))
}

func (l *errList) err() error {
	if len(l.errs) == 1 {
		return l.errs[0]
	}
	return errors.Join(l.errs...)
}

// entryWhere names entry i (0-based) of c.VNIs in messages.
func entryWhere(id uint32, i int) string {
	return fmt.Sprintf("vni %d (entry %d)", id, i+1)
}

// Validate checks c against every rule of docs/config.md and reports all
// the problems it finds, each naming its entry and key. It does not fill
// in defaults (see FillDefaults) and changes nothing.
func (c *Config) Validate() error {
	l := &errList{source: c.Source}
	switch {
	case c.Version == 0:
		l.add("", 0, "version", errMissingVersion)
	case c.Version != Version:
		l.add("", 0, "version", unsupportedVersion(int64(c.Version)))
	}
	if len(c.VNIs) == 0 && !c.Flannel.Enable {
		l.add("", 0, "vni", errNoVNIs)
	}
	c.checkEtcd(l)
	if m := c.Daemon.Metrics; m != "" {
		if _, port, err := net.SplitHostPort(m); err != nil || port == "" {
			l.addf("daemon", 0, "metrics", "metrics %q: want host:port, like 127.0.0.1:9477 or :9477", m)
		}
	}
	c.checkCluster(l)
	c.checkBGP(l)
	ok := make([]bool, len(c.VNIs))
	for i := range c.VNIs {
		n := len(l.errs)
		c.VNIs[i].check(l, entryWhere(c.VNIs[i].ID, i), i+1)
		ok[i] = len(l.errs) == n
	}
	c.checkShared(l, ok)
	c.checkUnderlay(l)
	if len(l.errs) == 0 {
		return nil
	}
	// Entry by entry, the file's problems first.
	slices.SortStableFunc(l.errs, func(a, b error) int {
		return a.(*Error).Entry - b.(*Error).Entry
	})
	return l.err()
}

// checkUnderlay reports the VNIs an underlay TAP cannot serve: it writes
// the outer source address itself, and only over IPv4.
func (c *Config) checkUnderlay(l *errList) {
	if c.Daemon.Underlay != UnderlayTAP {
		return
	}
	for i := range c.VNIs {
		v := &c.VNIs[i]
		switch {
		case !v.Local.IsValid():
			l.addf(entryWhere(v.ID, i), i+1, "local", "underlay tap: needs local, the outer source address vxland writes")
		case v.Local.Is6():
			l.addf(entryWhere(v.ID, i), i+1, "local", "underlay tap: local %s: IPv6 underlays are not supported (IPv4 only)", v.Local)
		}
	}
}

var (
	errMissingVersion = errors.New(`version: missing; add "version = 1" at the top of the file`)
	errNoVNIs         = errors.New("no VNIs: add at least one [[vni]] entry")
)

func unsupportedVersion(n int64) error {
	return fmt.Errorf("version %d: not supported; this vxland reads version %d", n, Version)
}

// check reports the problems of v on its own.
func (v *VNI) check(l *errList, where string, entry int) {
	bad := func(key, format string, args ...any) {
		l.addf(where, entry, key, format, args...)
	}
	if v.ID > encap.MaxVNI {
		bad("id", "id %d: must be a number from 0 to %d", v.ID, encap.MaxVNI)
	}
	if err := control.CheckDevName(v.TAP); err != nil {
		l.add(where, entry, "tap", fmt.Errorf("tap: %w", err))
	}
	if err := checkNetns(v.Netns); err != nil {
		l.add(where, entry, "netns", err)
	}

	// Underlay addresses.
	seen := make(map[netip.Addr]bool, len(v.Remotes))
	for _, a := range v.Remotes {
		if err := checkUnicast("remote", a, false); err != nil {
			l.add(where, entry, "remote", err)
			continue
		}
		if seen[a] {
			bad("remote", "remote %s: listed twice", a)
		}
		seen[a] = true
	}
	if v.Group.IsValid() {
		switch {
		case len(v.Remotes) > 0:
			bad("group", "remote and group exclude each other")
		case v.Group.Zone() != "":
			bad("group", "group %s: zoned addresses are not supported (dev names the interface)", v.Group)
		case v.Group.Is4In6():
			bad("group", "group %s: an IPv4-mapped address; write %s", v.Group, v.Group.Unmap())
		case !v.Group.IsMulticast():
			bad("group", "group %s: not a multicast address (224.0.0.0/4 or ff00::/8); unicast peers go in remote", v.Group)
		case v.Dev == "":
			bad("dev", "group %s: needs dev, the underlay device to join it on", v.Group)
		}
	}
	if v.Local.IsValid() {
		if err := checkUnicast("local", v.Local, true); err != nil {
			l.add(where, entry, "local", err)
		}
	}
	if err := checkFamily(v); err != nil {
		l.add(where, entry, "local", err)
	}
	for _, p := range v.AllowRemote {
		if p.Addr().Is6() != v.V6() {
			bad("allow_remote", "allow_remote %s: the underlay is %s, so no datagram could come from there", p, familyName(v.V6()))
		}
	}
	if len(v.AllowRemote) > 0 {
		for _, a := range v.Remotes {
			if !allowedBy(v.AllowRemote, a) {
				bad("allow_remote", "remote %s is outside allow_remote (%s): its datagrams would be dropped; add it", a, prefixesString(v.AllowRemote))
			}
		}
	}
	if v.Dev != "" {
		if err := control.CheckDevName(v.Dev); err != nil {
			l.add(where, entry, "dev", fmt.Errorf("dev: %w", err))
		}
	}

	// Outer headers.
	if v.Port == 0 {
		bad("dstport", "dstport 0: must be 1-65535")
	}
	if (v.SrcPortMin != 0 || v.SrcPortMax != 0) && (v.SrcPortMin == 0 || v.SrcPortMax <= v.SrcPortMin) {
		bad("srcport", "srcport %d-%d: %s", v.SrcPortMin, v.SrcPortMax, srcportRule)
	}
	if v.TOSInherit && v.TOS != 0 {
		bad("tos", `tos: a value (%d) and "inherit" exclude each other`, v.TOS)
	}

	// The TAP.
	if v.MTU != 0 && (v.MTU < MinMTU || v.MTU > MaxMTU) {
		bad("mtu", "mtu %d: must be %d-%d, or 0 for automatic", v.MTU, MinMTU, MaxMTU)
	}
	if v.MAC != nil {
		switch {
		case len(v.MAC) != 6:
			bad("mac", "mac %s: not a 6-byte Ethernet address", v.MAC)
		case v.MAC[0]&1 != 0 || allZero(v.MAC):
			bad("mac", "mac %s: must be a unicast, non-zero address", v.MAC)
		}
	}
	seenPrefix := make(map[netip.Prefix]bool, len(v.Addrs))
	for _, p := range v.Addrs {
		switch {
		case !p.IsValid():
			bad("addr", "addr: invalid prefix %s", p)
		case p.Addr().Zone() != "":
			bad("addr", "addr %s: zoned addresses are not supported", p)
		case seenPrefix[p]:
			bad("addr", "addr %s: listed twice", p)
		}
		seenPrefix[p] = true
	}
	if v.Master != "" {
		if err := control.CheckDevName(v.Master); err != nil {
			l.add(where, entry, "master", fmt.Errorf("master: %w", err))
		} else if v.Master == v.TAP {
			bad("master", "master %q: the TAP cannot be its own master", v.Master)
		}
	}

	// Forwarding database and daemon.
	if v.Ageing < 0 {
		bad("ageing", "ageing %v: must be >= 0 (0: never expire)", v.Ageing)
	}
	if v.MaxAddress < 0 {
		bad("maxaddress", "maxaddress %d: must be >= 0 (0: no limit)", v.MaxAddress)
	}
	switch {
	case v.Control == "":
		bad("control", "control: empty socket path")
	case strings.IndexByte(v.Control, 0) >= 0:
		bad("control", "control %q: contains a NUL byte", v.Control)
	case len(v.Control) > maxSocketPath:
		bad("control", "control %q: longer than %d bytes, too long for a unix socket", v.Control, maxSocketPath)
	}
}

const srcportRule = "want MIN-MAX with 1 <= MIN < MAX <= 65535"

// checkUnicast checks an underlay unicast address; local also allows an
// unspecified address.
func checkUnicast(key string, a netip.Addr, local bool) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("%s: invalid (zero) address", key)
	case a.Zone() != "":
		return fmt.Errorf("%s %s: zoned addresses are not supported (dev names the interface)", key, a)
	case a.Is4In6():
		return fmt.Errorf("%s %s: an IPv4-mapped address; write %s", key, a, a.Unmap())
	case a.IsMulticast() && key == "remote":
		return fmt.Errorf("%s %s: a multicast address; a multicast group goes in group", key, a)
	case a.IsMulticast():
		return fmt.Errorf("%s %s: must be a unicast address", key, a)
	case a.IsUnspecified() && !local:
		return fmt.Errorf("%s %s: must be a unicast, non-zero address", key, a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%s %s: the broadcast address is not a unicast address", key, a)
	}
	return nil
}

// checkFamily checks that Local, Group and Remotes are of one family.
func checkFamily(v *VNI) error {
	type named struct {
		key string
		a   netip.Addr
	}
	var all []named
	if v.Local.IsValid() {
		all = append(all, named{"local", v.Local})
	}
	if v.Group.IsValid() {
		all = append(all, named{"group", v.Group})
	}
	for _, a := range v.Remotes {
		if a.IsValid() {
			all = append(all, named{"remote", a})
		}
	}
	for _, n := range all[min(1, len(all)):] {
		if n.a.Is4() != all[0].a.Is4() {
			return fmt.Errorf("%s %s and %s %s mix IPv4 and IPv6", all[0].key, all[0].a, n.key, n.a)
		}
	}
	return nil
}

// checkNetns checks a namespace name or path.
func checkNetns(ns string) error {
	switch {
	case ns == "":
		return nil
	case strings.IndexByte(ns, 0) >= 0:
		return fmt.Errorf("netns %q: contains a NUL byte", ns)
	case strings.Contains(ns, "/"):
		if !filepath.IsAbs(ns) {
			return fmt.Errorf("netns %q: a path must be absolute (a name under %s contains no '/')", ns, NetnsDir)
		}
	case ns == "." || ns == "..":
		return fmt.Errorf("netns %q: not a namespace name", ns)
	case len(ns) > maxNetnsName:
		return fmt.Errorf("netns %q: name longer than %d bytes", ns, maxNetnsName)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// checkShared reports the problems between VNIs: names and identifiers used
// twice, and endpoints that could not get their sockets. VNIs with problems
// of their own (ok[i] false) are left out.
func (c *Config) checkShared(l *errList, ok []bool) {
	type vniKey struct {
		id    uint32
		local netip.Addr
		port  uint16
		v6    bool
	}
	type tapKey struct{ netns, tap string }
	ids := make(map[vniKey]int)
	taps := make(map[tapKey]int)
	controls := make(map[string]int)
	endpoints := make(map[endpointID]int) // first VNI of each endpoint
	wildcard := make(map[endpointID]bool) // binds to any address for a group
	var order []endpointID

	for i := range c.VNIs {
		if !ok[i] {
			continue
		}
		v := &c.VNIs[i]
		where, entry := entryWhere(v.ID, i), i+1
		other := func(j int) string { return entryWhere(c.VNIs[j].ID, j) }

		ik := vniKey{v.ID, v.bindLocal(), v.Port, v.V6()}
		if j, dup := ids[ik]; dup {
			l.addf(where, entry, "id", "id %d: already used by %s with the same local (%s) and dstport (%d)",
				v.ID, other(j), localString(ik.local, ik.v6), v.Port)
		} else {
			ids[ik] = i
		}

		tk := tapKey{v.NetnsPath(), v.TAP}
		if j, dup := taps[tk]; dup {
			l.addf(where, entry, "tap", "tap %q: already used by %s in the same network namespace (%s); set tap",
				v.TAP, other(j), netnsString(v.Netns))
		} else {
			taps[tk] = i
		}

		cp := filepath.Clean(v.Control)
		if j, dup := controls[cp]; dup {
			l.addf(where, entry, "control", "control %q: socket already used by %s; set control (or a different tap)",
				v.Control, other(j))
		} else {
			controls[cp] = i
		}

		eid := v.endpointID()
		if v.Group.IsValid() {
			wildcard[eid] = true
		}
		j, seen := endpoints[eid]
		if !seen {
			endpoints[eid] = i
			order = append(order, eid)
			continue
		}
		if f := &c.VNIs[j]; f.SrcPortMin != v.SrcPortMin || f.SrcPortMax != v.SrcPortMax {
			l.addf(where, entry, "srcport", "srcport %s differs from srcport %s of %s, which shares its socket (same local, dstport and dev)",
				srcportString(v), srcportString(f), other(j))
		}
		if f := &c.VNIs[j]; !samePrefixes(f.AllowRemote, v.AllowRemote) {
			l.addf(where, entry, "allow_remote", "allow_remote (%s) differs from allow_remote (%s) of %s, which shares its socket (same local, dstport and dev): the filter is per socket, so set it alike",
				prefixesString(v.AllowRemote), prefixesString(f.AllowRemote), other(j))
		}
		if f := &c.VNIs[j]; f.Offload != v.Offload {
			l.addf(where, entry, "offload", "offload = %v differs from offload = %v of %s, which shares its socket (same local, dstport and dev): UDP GSO/GRO are per socket, so set it alike",
				v.Offload, f.Offload, other(j))
		}
	}
	c.checkSockets(l, endpoints, wildcard, order)
}

// checkSockets reports endpoints whose receive sockets would clash: two
// sockets of one family cannot both bind one port when one of them binds to
// any address or both bind the same address (the device is applied after
// binding). An endpoint binds to any address when its Local is unset or a
// VNI in it has a multicast group.
func (c *Config) checkSockets(l *errList, first map[endpointID]int, wildcard map[endpointID]bool, order []endpointID) {
	describe := func(e endpointID) string {
		s := "local " + localString(e.local, e.v6)
		if e.dev == "" {
			s += ", no dev"
		} else {
			s += ", dev " + e.dev
		}
		if wildcard[e] && e.local.IsValid() {
			s += ", bound to any address for its group"
		}
		return s
	}
	for n, e := range order {
		for _, p := range order[:n] {
			if p.port != e.port || p.v6 != e.v6 {
				continue
			}
			anyE := wildcard[e] || !e.local.IsValid()
			anyP := wildcard[p] || !p.local.IsValid()
			if !anyE && !anyP && e.local != p.local {
				continue
			}
			i, j := first[e], first[p]
			l.addf(entryWhere(c.VNIs[i].ID, i), i+1, "local",
				"dstport %d: needs its own socket (%s) that clashes with the socket of %s (%s); VNIs on one dstport share a socket only with the same local and dev",
				e.port, describe(e), entryWhere(c.VNIs[j].ID, j), describe(p))
			break
		}
	}
}

func localString(a netip.Addr, v6 bool) string {
	switch {
	case a.IsValid():
		return a.String()
	case v6:
		return "any IPv6"
	}
	return "any IPv4"
}

func netnsString(ns string) string {
	if ns == "" {
		return "the daemon's own"
	}
	return fmt.Sprintf("netns %q", ns)
}

// familyName names an underlay address family.
func familyName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// allowedBy reports whether a is inside one of prefixes.
func allowedBy(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// samePrefixes reports whether a and b hold the same prefixes, in any
// order.
func samePrefixes(a, b []netip.Prefix) bool {
	key := func(ps []netip.Prefix) []string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = p.Masked().String()
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(key(a), key(b))
}

// prefixesString lists prefixes for messages; "any source" when empty.
func prefixesString(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "any source"
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ", ")
}

func srcportString(v *VNI) string {
	if v.SrcPortMin == 0 && v.SrcPortMax == 0 {
		return "(unset)"
	}
	return fmt.Sprintf("%q", fmt.Sprintf("%d-%d", v.SrcPortMin, v.SrcPortMax))
}

// checkEtcd checks the [etcd] and [flannel] tables.
func (c *Config) checkEtcd(l *errList) {
	e, f := &c.Etcd, &c.Flannel
	if (e.CertFile == "") != (e.KeyFile == "") {
		l.addf("etcd", 0, "certfile", "certfile and keyfile go together (a client certificate and its key)")
	}
	if len(e.Endpoints) == 0 && (e.Prefix != "" || e.CAFile != "" || e.CertFile != "") {
		l.addf("etcd", 0, "endpoints", "endpoints: missing; the other etcd settings need it")
	}
	if f.Enable && len(e.Endpoints) == 0 {
		l.addf("flannel", 0, "enable", "flannel mode needs the etcd endpoints ([etcd] endpoints, --etcd-endpoints)")
	}
	if !f.Enable && (f.PublicIP.IsValid() || f.Iface != "" || f.SubnetFile != "") {
		l.addf("flannel", 0, "enable", "flannel settings without flannel mode: add enable = true (--flannel)")
	}
}
