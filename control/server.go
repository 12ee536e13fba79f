package control

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vxland/vxland/events"
	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/neigh"
	"github.com/vxland/vxland/stats"
)

// FDB is the forwarding database operations the server needs; *fdb.Table
// implements it. Implementations must be safe for concurrent use.
type FDB interface {
	// Set is bridge fdb add (fdb.OpAdd: fails with fdb.ErrExists when mac
	// already has an entry), append (fdb.OpAppend: adds d to mac's
	// destinations, creating the entry if needed) or replace
	// (fdb.OpReplace: makes d mac's destination), with the entry's state
	// and router flag.
	Set(op fdb.Op, mac fdb.MAC, d fdb.Dest, s fdb.State, router bool) error
	// Del removes destination *d from mac's entry, or the whole entry when
	// d is nil; fdb.ErrNotFound when there is no such entry or destination.
	Del(mac fdb.MAC, d *fdb.Dest) error
	// Entries returns a snapshot of every entry.
	Entries() []fdb.Entry
}

// Device is one VXLAN device served on a control socket.
type Device struct {
	// Name is the TAP device's name; requests select the device by it.
	Name string
	// VNI is the device's VNI, used when a request leaves out vni (as the
	// kernel uses the device's VNI when NDA_VNI is absent).
	VNI uint32
	// Port is the device's destination UDP port (--dstport), used when a
	// request leaves out port.
	Port uint16
	// FDB is the device's forwarding database.
	FDB FDB
	// Stats returns the device's counters for the stats request; nil means
	// the device has none.
	Stats func() []stats.Value
	// Neigh is the device's neighbour table (vxlanctl neigh); nil means
	// the device has none.
	Neigh Neigh
	// Events is the device's event stream (vxlanctl monitor); nil means
	// the device has none.
	Events *events.Bus
}

// Neigh is the neighbour table operations the server needs; *neigh.Table
// implements it.
type Neigh interface {
	// Add creates a neighbour entry; neigh.ErrExists when ip has one.
	Add(ip netip.Addr, mac fdb.MAC, router bool) error
	// Replace creates or overwrites a neighbour entry.
	Replace(ip netip.Addr, mac fdb.MAC, router bool) error
	// Del removes ip's entry; neigh.ErrNotFound when there is none.
	Del(ip netip.Addr) error
	// Entries lists every entry, the host's included.
	Entries() []neigh.Entry
}

// Server answers control requests on a unix socket. Create it with Listen,
// run Serve, stop it with Close.
type Server struct {
	// Logger receives reports of handler panics and accept errors; nil
	// means slog.Default(). Set it before calling Serve.
	Logger *slog.Logger
	// Reload, when set, answers the reload request: it re-reads the
	// daemon's configuration and returns a summary of what changed, or an
	// error (one problem per line). A *ReloadError says how much was
	// applied. Set it before calling Serve. It may call Detach on this
	// server.
	Reload func() (string, error)
	// ClusterShow, when set, answers cluster.show with the daemon's etcd
	// control plane status. Set it before calling Serve.
	ClusterShow func() *ClusterStatus
	// BGPShow, when set, answers bgp.show with the daemon's BGP EVPN
	// status. Set it before calling Serve.
	BGPShow func() *BGPStatus

	path   string
	ln     *net.UnixListener
	sockFI os.FileInfo // the socket file Listen created, so Close removes only it
	dirs   []string    // directories Close removes when empty, deepest first
	devs   []*Device
	byName map[string]*Device

	readTimeout  time.Duration // per request line, also the idle limit
	writeTimeout time.Duration
	maxConns     int

	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	closed    bool
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Defaults for the server's limits.
const (
	defaultReadTimeout  = 10 * time.Second
	defaultWriteTimeout = 10 * time.Second
	defaultMaxConns     = 32
	maxSocketPath       = 107 // sizeof(sun_path) - 1
)

var tmpSeq atomic.Uint64

// Listen creates the unix socket path (mode 0600; its directory is created
// with mode 0755 if missing, and removed by Close when left empty) and returns a Server for devs. An empty path
// means SocketPath(devs[0].Name).
//
// Listen refuses when a live daemon already answers on path ("another vxland
// is serving ..."), and when path exists but is not a socket. A stale socket
// file, left by a daemon that died, is removed and replaced. The socket is
// bound under a temporary name and hard-linked into place, so it never
// exists with looser permissions and two daemons cannot both take path.
func Listen(path string, devs ...*Device) (*Server, error) {
	if len(devs) == 0 {
		return nil, errors.New("control: listen: no devices to serve")
	}
	byName := make(map[string]*Device, len(devs))
	for i, d := range devs {
		if d == nil {
			return nil, fmt.Errorf("control: listen: device %d is nil", i)
		}
		if err := CheckDevName(d.Name); err != nil {
			return nil, fmt.Errorf("control: listen: %w", err)
		}
		if _, dup := byName[d.Name]; dup {
			return nil, fmt.Errorf("control: listen: device %q given twice", d.Name)
		}
		if d.FDB == nil {
			return nil, fmt.Errorf("control: listen: device %s has no FDB", d.Name)
		}
		if d.VNI > MaxVNI {
			return nil, fmt.Errorf("control: listen: device %s: vni %d out of range 0-%d", d.Name, d.VNI, MaxVNI)
		}
		if d.Port == 0 {
			return nil, fmt.Errorf("control: listen: device %s: port 0 (want the device's destination port)", d.Name)
		}
		byName[d.Name] = d
	}
	if path == "" {
		path = SocketPath(devs[0].Name)
	}
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("control: listen: socket path %s too long (%d bytes, at most %d)", path, len(path), maxSocketPath)
	}
	var (
		ln      *net.UnixListener
		fi      os.FileInfo
		created []string
		err     error
	)
	// A directory that another daemon, leaving, removes between the two
	// steps is made again.
	for attempt := 0; attempt < 3; attempt++ {
		created, err = makeDirs(filepath.Dir(path))
		if err != nil {
			return nil, fmt.Errorf("control: listen: create socket directory: %w", err)
		}
		ln, fi, err = bindExclusive(path)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
	}
	if err != nil {
		removeDirs(created)
		return nil, fmt.Errorf("control: %w", err)
	}
	return &Server{
		path:         path,
		dirs:         cleanupDirs(filepath.Dir(path), created),
		ln:           ln,
		sockFI:       fi,
		devs:         slices.Clone(devs),
		byName:       byName,
		readTimeout:  defaultReadTimeout,
		writeTimeout: defaultWriteTimeout,
		maxConns:     defaultMaxConns,
		conns:        make(map[net.Conn]struct{}),
		done:         make(chan struct{}),
	}, nil
}

// bindExclusive binds a listening socket at a temporary name beside path,
// restricts it to mode 0600 and links it to path, which fails atomically if
// path exists. An existing path is examined: a live daemon or a non-socket
// makes it fail, a stale socket is removed and the link retried once.
func bindExclusive(path string) (*net.UnixListener, os.FileInfo, error) {
	dir := filepath.Dir(path)
	tmp := filepath.Join(dir, ".vxl"+strconv.FormatInt(int64(os.Getpid()), 36)+"-"+strconv.FormatUint(tmpSeq.Add(1), 36))
	if len(tmp) > maxSocketPath {
		return nil, nil, fmt.Errorf("listen: directory %s too long for a unix socket path", dir)
	}
	_ = os.Remove(tmp) // left over by a crashed process with our pid; usually absent
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	defer os.Remove(tmp) // path keeps the socket after the link
	fail := func(err error) (*net.UnixListener, os.FileInfo, error) {
		ln.Close()
		return nil, nil, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(fmt.Errorf("listen on %s: %w", path, err))
	}
	for attempt := 0; ; attempt++ {
		err := os.Link(tmp, path)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt > 0 {
			return fail(fmt.Errorf("listen on %s: %w", path, err))
		}
		if err := removeStale(path); err != nil {
			return fail(err)
		}
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("listen on %s: %w", path, err))
	}
	return ln, fi, nil
}

// removeStale removes path if it is a socket nobody listens on. It fails
// when a daemon answers there or when path is not a socket.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // gone meanwhile
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("listen on %s: the file exists and is not a socket; not replacing it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	switch {
	case err == nil:
		c.Close()
		return fmt.Errorf("another vxland is serving %s", path)
	case errors.Is(err, syscall.EAGAIN):
		return fmt.Errorf("another vxland is serving %s (its queue is full)", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("listen on %s: remove stale socket: %w", path, err)
		}
		return nil
	default:
		return fmt.Errorf("listen on %s: cannot tell whether the existing socket is in use: %w", path, err)
	}
}

// Path returns the socket's file name.
func (s *Server) Path() string { return s.path }

// Serve accepts connections and answers their requests until Close. It
// returns nil after Close. A failing request never stops it: bad requests
// get an error reply and a panicking handler is recovered and logged.
func (s *Server) Serve() error {
	sem := make(chan struct{}, s.maxConns)
	backoff := time.Duration(0)
	for {
		select {
		case sem <- struct{}{}:
		case <-s.done:
			return nil
		}
		conn, err := s.ln.Accept()
		if err != nil {
			<-sem
			if s.isClosed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// EMFILE, ENFILE, ECONNABORTED...: transient; back off.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.logger().Warn("control: accept failed", "socket", s.path, "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.done:
				return nil
			}
			continue
		}
		backoff = 0
		if !s.track(conn) {
			conn.Close()
			<-sem
			return nil
		}
		go func() {
			defer func() { <-sem }()
			defer s.untrack(conn)
			s.serveConn(conn)
		}()
	}
}

// Close stops the server: it closes the listener and every open connection,
// waits for running handlers and removes the socket file (unless another
// process has replaced it meanwhile).
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.done)
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		lnErr := s.ln.Close()
		if errors.Is(lnErr, net.ErrClosed) {
			lnErr = nil
		}
		rmErr := s.removeSocket()
		removeDirs(s.dirs)
		s.wg.Wait()
		if err := errors.Join(lnErr, rmErr); err != nil {
			s.closeErr = fmt.Errorf("control: close %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// Detach stops the server as Close does, except that it neither closes
// the connections nor waits for them: each is closed once it has answered
// the request it is handling. A handler (such as Reload) may detach its own
// server. After Detach, Close does nothing.
func (s *Server) Detach() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.done)
		s.mu.Unlock()
		lnErr := s.ln.Close()
		if errors.Is(lnErr, net.ErrClosed) {
			lnErr = nil
		}
		if err := errors.Join(lnErr, s.removeSocket()); err != nil {
			s.closeErr = fmt.Errorf("control: close %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// ReloadError is a reload that the daemon refused (nothing changed) or
// applied only in part (Partial).
type ReloadError struct {
	// Partial is set when some changes were applied before one failed.
	Partial bool
	// Err lists the problems.
	Err error
}

// Error returns the problems, one per line.
func (e *ReloadError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *ReloadError) Unwrap() error { return e.Err }

// reload executes the reload request through the Reload hook.
func (s *Server) reload(req *request) reply {
	if req.hasArgs() {
		return failure(CodeInvalid, req.Op+" takes no arguments")
	}
	if s.Reload == nil {
		return failure(CodeInvalid, "this daemon does not reload its configuration")
	}
	sum, err := s.Reload()
	if err != nil {
		var re *ReloadError
		if errors.As(err, &re) && re.Partial {
			return failure(CodePartial, err.Error())
		}
		return failure(CodeRefused, err.Error())
	}
	return reply{OK: true, Summary: sum}
}

// removeSocket removes the socket file if it is still the one Listen made.
func (s *Server) removeSocket() error {
	fi, err := os.Lstat(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !os.SameFile(fi, s.sockFI) {
		return nil // someone else's now
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track registers an accepted connection; false when the server is closing.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

var errTooLarge = errors.New("request too large")

// serveConn answers the request lines of one connection in turn until the
// client closes it, stays idle past the read timeout or sends an oversized
// line.
func (s *Server) serveConn(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		if err := c.SetReadDeadline(time.Now().Add(s.readTimeout)); err != nil {
			return
		}
		line, err := readLine(br, MaxRequestSize)
		if errors.Is(err, errTooLarge) {
			s.writeReply(c, failure(CodeTooLarge, fmt.Sprintf("request too large (limit %d bytes per line)", MaxRequestSize)))
			return
		}
		if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
			return // EOF, idle or stalled past the deadline, or closed
		}
		if req, _, derr := decodeRequest(line); derr == nil && req.Op == OpMonitor {
			s.monitor(c, req)
			return
		}
		if werr := s.writeReply(c, s.handleLine(line)); werr != nil || err != nil || s.isClosed() {
			return // after Detach, a connection ends with its answer
		}
	}
}

// readLine reads up to and including the next '\n', at most max bytes. At
// the end of input it returns the unterminated rest with io.EOF.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > max {
			return nil, errTooLarge
		}
		line = append(line, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

func (s *Server) writeReply(c net.Conn, rep reply) error {
	rep.V = Version
	b, err := json.Marshal(rep)
	if err != nil {
		// Cannot happen with these types; answer something rather than nothing.
		b, _ = json.Marshal(failure(CodeInternal, "internal error: encode reply: "+err.Error()))
	}
	b = append(b, '\n')
	if err := c.SetWriteDeadline(time.Now().Add(s.writeTimeout)); err != nil {
		return err
	}
	_, err = c.Write(b)
	return err
}

func failure(code, msg string) reply {
	return reply{Code: code, Error: msg}
}

// handleLine decodes and executes one request. A panic in a handler becomes
// an internal-error reply; the daemon goes on.
func (s *Server) handleLine(line []byte) (rep reply) {
	op := "request"
	defer func() {
		if p := recover(); p != nil {
			s.logger().Error("control: request handler panicked", "socket", s.path, "op", op, "panic", p, "stack", string(debug.Stack()))
			rep = failure(CodeInternal, fmt.Sprintf("internal error in vxland handling %s: %v (the daemon goes on; see its log)", op, p))
		}
	}()
	req, code, err := decodeRequest(line)
	if err != nil {
		return failure(code, err.Error())
	}
	op = req.Op
	return s.dispatch(req)
}

// decodeRequest parses one request line strictly: one JSON object, known
// fields only, version 1.
func decodeRequest(line []byte) (*request, string, error) {
	trimmed := bytes.TrimSpace(line)
	if len(trimmed) == 0 {
		return nil, CodeInvalid, errors.New("empty request (want one JSON object per line)")
	}
	if trimmed[0] != '{' {
		return nil, CodeInvalid, errors.New("malformed request: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var req request
	if err := dec.Decode(&req); err != nil {
		return nil, CodeInvalid, fmt.Errorf("malformed request: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, CodeInvalid, errors.New("malformed request: data after the JSON object")
	}
	switch {
	case req.V == 0:
		return nil, CodeVersion, fmt.Errorf(`request lacks the protocol version ("v":%d)`, Version)
	case req.V != Version:
		return nil, CodeVersion, fmt.Errorf("unsupported protocol version %d (this vxland speaks %d)", req.V, Version)
	}
	return &req, "", nil
}

func (s *Server) dispatch(req *request) reply {
	switch req.Op {
	case OpFDBAdd, OpFDBAppend, OpFDBReplace, OpFDBDel:
		return s.fdbModify(req)
	case OpFDBShow, OpStats, OpDevs, OpNeighShow:
		return s.query(req)
	case OpNeighAdd, OpNeighReplace, OpNeighDel:
		return s.neighModify(req)
	case OpReload:
		return s.reload(req)
	case OpClusterShow:
		return s.clusterShow(req)
	case OpBGPShow:
		return s.bgpShow(req)
	case OpMonitor:
		return failure(CodeInvalid, OpMonitor+" must be the first request of its connection")
	case "":
		return failure(CodeInvalid, `request lacks "op"`)
	default:
		return failure(CodeInvalid, fmt.Sprintf("unknown op %q (want %s)", req.Op, strings.Join([]string{
			OpFDBAdd, OpFDBAppend, OpFDBReplace, OpFDBDel, OpFDBShow, OpStats, OpDevs, OpReload,
			OpNeighAdd, OpNeighReplace, OpNeighDel, OpNeighShow, OpMonitor, OpClusterShow, OpBGPShow}, ", ")))
	}
}

// device finds the device a request names.
func (s *Server) device(name string) (*Device, *reply) {
	if name == "" {
		r := failure(CodeInvalid, `request lacks "dev"`)
		return nil, &r
	}
	d, ok := s.byName[name]
	if !ok {
		names := make([]string, len(s.devs))
		for i, d := range s.devs {
			names[i] = d.Name
		}
		r := failure(CodeNoDev, fmt.Sprintf("no device %q on this socket (it serves %s)", name, strings.Join(names, ", ")))
		return nil, &r
	}
	return d, nil
}

// fdbVerb is how bridge(8) spells an fdb op, for messages.
func fdbVerb(op string) string {
	return "fdb " + strings.TrimPrefix(op, "fdb.")
}

// fdbModify executes fdb.add, fdb.append, fdb.replace and fdb.del.
func (s *Server) fdbModify(req *request) reply {
	verb := fdbVerb(req.Op)
	bad := func(format string, args ...any) reply {
		return failure(CodeInvalid, verb+": "+fmt.Sprintf(format, args...))
	}
	dev, r := s.device(req.Dev)
	if r != nil {
		return *r
	}
	if req.hasNeighArgs() {
		return bad(`"ip" and "lladdr" belong to neigh requests`)
	}
	if req.Router && req.Op == OpFDBDel {
		return bad(`"router" does not apply to a deletion`)
	}
	if req.MAC == "" {
		return bad(`request lacks "mac"`)
	}
	mac, err := fdb.ParseMAC(req.MAC)
	if err != nil {
		return bad("invalid MAC address %q (want six hex octets like 00:11:22:33:44:55)", req.MAC)
	}
	if req.Port < 0 || req.Port > 65535 {
		return bad("port %d out of range 0-65535", req.Port)
	}
	if req.VNI != nil && (*req.VNI < 0 || *req.VNI > MaxVNI) {
		return bad("vni %d out of range 0-%d", *req.VNI, MaxVNI)
	}
	state := fdb.Permanent // bridge fdb add's default
	if req.State != "" {
		if state, err = ParseState(req.State); err != nil {
			return bad("%v", err)
		}
	}
	var dest *fdb.Dest
	if req.Dst != "" {
		ip, err := netip.ParseAddr(req.Dst)
		if err != nil {
			return bad("invalid dst %q: want an IPv4 or IPv6 address", req.Dst)
		}
		if ip.Zone() != "" {
			return bad("dst %s: addresses with a zone are not supported", req.Dst)
		}
		if ip.IsUnspecified() {
			return bad("dst %s is not a remote address", req.Dst)
		}
		d := fdb.Dest{IP: ip, Port: dev.Port, VNI: dev.VNI}
		if req.Port != 0 {
			d.Port = uint16(req.Port)
		}
		if req.VNI != nil {
			d.VNI = uint32(*req.VNI)
		}
		dest = &d
	} else {
		if req.Op != OpFDBDel {
			return bad(`request lacks "dst" (a vxlan entry needs the remote VTEP's address)`)
		}
		if req.Port != 0 || req.VNI != nil {
			return bad(`"port" and "vni" need "dst" (without it the whole entry goes)`)
		}
	}

	switch req.Op {
	case OpFDBAdd:
		err = dev.FDB.Set(fdb.OpAdd, mac, *dest, state, req.Router)
	case OpFDBAppend:
		err = dev.FDB.Set(fdb.OpAppend, mac, *dest, state, req.Router)
	case OpFDBReplace:
		err = dev.FDB.Set(fdb.OpReplace, mac, *dest, state, req.Router)
	case OpFDBDel:
		err = dev.FDB.Del(mac, dest)
	}
	if err != nil {
		desc := verb + " " + mac.String() + " dev " + dev.Name
		if dest != nil {
			desc += " " + destText(*dest, dev.Port, dev.VNI)
		}
		code, cause := classify(err)
		return failure(code, desc+": "+cause)
	}
	return reply{OK: true}
}

// classify maps an error from the forwarding database to a reply code and
// the text to show: just the sentinel's words ("entry exists") for the
// well-known outcomes, whose context the message already gives, the whole
// error otherwise.
func classify(err error) (code, cause string) {
	for _, c := range []struct {
		sentinel error
		code     string
	}{
		{fdb.ErrExists, CodeExists},
		{fdb.ErrNotFound, CodeNotFound},
		{fdb.ErrFull, CodeFull},
		{neigh.ErrExists, CodeExists},
		{neigh.ErrNotFound, CodeNotFound},
	} {
		if errors.Is(err, c.sentinel) {
			return c.code, c.sentinel.Error()
		}
	}
	if errors.Is(err, fdb.ErrOwned) {
		// The owner's name and the way out follow the sentinel's words.
		msg := err.Error()
		if i := strings.Index(msg, fdb.ErrOwned.Error()); i >= 0 {
			msg = msg[i:]
		}
		return CodeOwned, msg
	}
	if errors.Is(err, fdb.ErrInvalid) || errors.Is(err, neigh.ErrInvalid) {
		return CodeInvalid, err.Error()
	}
	return CodeFailed, err.Error()
}

// query executes fdb.show, stats and devs.
func (s *Server) query(req *request) reply {
	if req.hasFDBArgs() || req.hasNeighArgs() || req.Router {
		return failure(CodeInvalid, req.Op+` takes only "dev"`)
	}
	devs := s.devs
	if req.Dev != "" {
		d, r := s.device(req.Dev)
		if r != nil {
			return *r
		}
		devs = []*Device{d}
	}
	rep := reply{OK: true, Devs: make([]wireDevice, 0, len(devs))}
	for _, d := range devs {
		wd := wireDevice{Name: d.Name, VNI: d.VNI, Port: d.Port}
		switch req.Op {
		case OpFDBShow:
			wd.FDB = wireEntries(d.FDB.Entries())
		case OpStats:
			if d.Stats != nil {
				wd.Stats = d.Stats()
			}
		case OpNeighShow:
			if d.Neigh != nil {
				wd.Neigh = wireNeighs(d.Neigh.Entries())
			}
		}
		rep.Devs = append(rep.Devs, wd)
	}
	return rep
}

// wireEntries converts a table snapshot, sorted by MAC.
func wireEntries(es []fdb.Entry) []wireEntry {
	out := make([]wireEntry, len(es))
	for i, e := range es {
		we := wireEntry{MAC: e.MAC, State: stateName(e.State), Router: e.Router, Updated: e.Updated, Dsts: make([]wireDest, len(e.Dests))}
		for j, d := range e.Dests {
			we.Dsts[j] = wireDest{IP: d.IP, Port: d.Port, VNI: d.VNI, Owner: string(e.OwnerOf(j))}
		}
		out[i] = we
	}
	slices.SortFunc(out, func(a, b wireEntry) int { return bytes.Compare(a.MAC[:], b.MAC[:]) })
	return out
}
