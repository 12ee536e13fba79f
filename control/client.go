package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vxland/vxland/fdb"
)

// DefaultTimeout bounds one client request (connect, send, reply) when
// Client.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Remote is the destination part of an fdb request: where frames for the
// MAC address go.
type Remote struct {
	IP   netip.Addr // the remote VTEP's address
	Port uint16     // its UDP port; 0 means the device's destination port
	VNI  *uint32    // the VNI to send with; nil means the device's VNI
}

// Client talks to one daemon's control socket. Each request uses its own
// connection, so a Client is safe for concurrent use.
type Client struct {
	// Timeout bounds each request: connecting, sending and reading the
	// reply. Zero means DefaultTimeout.
	Timeout time.Duration

	path string
}

// Dial checks that a daemon answers on the socket path and returns a client
// for it. When nobody does, the error reads "no vxland serving dev X
// (socket /run/vxland/X.sock): is the daemon running?" and wraps the
// connection error (errors.Is(err, fs.ErrNotExist) when the socket file is
// missing).
func Dial(path string) (*Client, error) {
	c := &Client{path: path}
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	conn.Close()
	return c, nil
}

// DialDev returns a client for the daemon serving the TAP device dev: the
// one on SocketPath(dev) or, when that socket file does not exist, whichever
// daemon in SocketDir() reports serving dev (one daemon may serve several
// devices on one socket). Errors are Dial's.
func DialDev(dev string) (*Client, error) {
	return DialDevIn(SocketDir(), dev)
}

// DialDevIn is DialDev for the daemons whose sockets are in dir (see
// SocketDir and NetnsSocketDir): the one on dir/dev.sock or, when that
// file does not exist, whichever daemon in dir reports serving dev.
func DialDevIn(dir, dev string) (*Client, error) {
	if err := CheckDevName(dev); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, dev+socketSuffix)
	c, err := Dial(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return c, err
	}
	socks, _ := FindSocketsIn(dir)
	for _, p := range socks {
		if p == path {
			continue
		}
		other := &Client{path: p, Timeout: 2 * time.Second}
		devs, derr := other.Devices()
		if derr != nil {
			continue
		}
		for _, d := range devs {
			if d.Name == dev {
				return &Client{path: p}, nil
			}
		}
	}
	return nil, err
}

// Path returns the socket the client talks to.
func (c *Client) Path() string { return c.path }

// Close releases the client. Requests use their own connections, so there
// is nothing to release yet; it exists so that callers need not change if a
// client keeps a connection one day.
func (c *Client) Close() error { return nil }

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// dialError is a failed connection, with a message meant for a person.
type dialError struct {
	msg string
	err error
}

func (e *dialError) Error() string { return e.msg }
func (e *dialError) Unwrap() error { return e.err }

func (c *Client) dial() (net.Conn, error) {
	conn, err := net.DialTimeout("unix", c.path, c.timeout())
	if err == nil {
		return conn, nil
	}
	who := "socket " + c.path
	if dev := devFromPath(c.path); dev != "" {
		who = "dev " + dev + " (socket " + c.path + ")"
	}
	var msg string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		msg = "no vxland serving " + who + ": is the daemon running?"
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = "no vxland serving " + who + ": is the daemon running? (the socket file is stale)"
	case errors.Is(err, fs.ErrPermission):
		msg = "permission denied on socket " + c.path + ": run as root (or as the daemon's user)"
	default:
		msg = fmt.Sprintf("connect to vxland on %s: %v", c.path, err)
	}
	return nil, &dialError{msg: msg, err: err}
}

// do sends one request and reads its reply. A refused request is an *Error.
func (c *Client) do(req request) (*reply, error) {
	req.V = Version
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(c.timeout())); err != nil {
		return nil, fmt.Errorf("%s on %s: %w", req.Op, c.path, err)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode %s request: %w", req.Op, err)
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("send %s request to %s: %w", req.Op, c.path, err)
	}
	line, err := readLine(bufio.NewReader(conn), maxReplySize)
	switch {
	case errors.Is(err, io.EOF) && len(line) == 0:
		return nil, fmt.Errorf("%s on %s: vxland closed the connection without replying", req.Op, c.path)
	case errors.Is(err, errTooLarge):
		return nil, fmt.Errorf("%s on %s: reply larger than %d bytes", req.Op, c.path, maxReplySize)
	case err != nil && !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("read reply to %s from %s: %w", req.Op, c.path, err)
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return nil, fmt.Errorf("%s on %s: malformed reply: %w", req.Op, c.path, err)
	}
	if rep.V != Version {
		return nil, fmt.Errorf("%s on %s: vxland speaks protocol version %d, this client %d", req.Op, c.path, rep.V, Version)
	}
	if !rep.OK {
		if rep.Error == "" {
			rep.Error = req.Op + " refused (no reason given)"
		}
		return nil, &Error{Code: rep.Code, Message: rep.Error}
	}
	return &rep, nil
}

func fdbRequest(op, dev string, mac fdb.MAC, dst *Remote) request {
	req := request{Op: op, Dev: dev, MAC: mac.String()}
	if dst != nil {
		if dst.IP.IsValid() {
			req.Dst = dst.IP.String()
		}
		req.Port = int64(dst.Port)
		if dst.VNI != nil {
			v := int64(*dst.VNI)
			req.VNI = &v
		}
	}
	return req
}

func (c *Client) modify(op, dev string, mac fdb.MAC, dst *Remote, state fdb.State, router bool) error {
	req := fdbRequest(op, dev, mac, dst)
	if op != OpFDBDel {
		req.State = stateName(state)
	}
	req.Router = router
	_, err := c.do(req)
	return err
}

// FDBSet is FDBAdd, FDBAppend or FDBReplace as op says, with the entry's
// router flag (bridge fdb's "router").
func (c *Client) FDBSet(op fdb.Op, dev string, mac fdb.MAC, dst Remote, state fdb.State, router bool) error {
	name := map[fdb.Op]string{fdb.OpAdd: OpFDBAdd, fdb.OpAppend: OpFDBAppend, fdb.OpReplace: OpFDBReplace}[op]
	if name == "" {
		return fmt.Errorf("fdb: unknown operation %v", op)
	}
	return c.modify(name, dev, mac, &dst, state, router)
}

// FDBAdd creates the entry mac -> dst on dev, like `bridge fdb add`. It
// fails (errors.Is fdb.ErrExists) when mac has an entry already.
func (c *Client) FDBAdd(dev string, mac fdb.MAC, dst Remote, state fdb.State) error {
	return c.modify(OpFDBAdd, dev, mac, &dst, state, false)
}

// FDBAppend adds dst to mac's destinations on dev, creating the entry if
// needed, like `bridge fdb append` (used for the all-zeros entry's
// head-end replication list).
func (c *Client) FDBAppend(dev string, mac fdb.MAC, dst Remote, state fdb.State) error {
	return c.modify(OpFDBAppend, dev, mac, &dst, state, false)
}

// FDBReplace makes dst mac's destination on dev, creating the entry if
// needed, like `bridge fdb replace`.
func (c *Client) FDBReplace(dev string, mac fdb.MAC, dst Remote, state fdb.State) error {
	return c.modify(OpFDBReplace, dev, mac, &dst, state, false)
}

// FDBDel removes destination dst from mac's entry on dev, or the whole
// entry when dst is nil, like `bridge fdb del`. It fails (errors.Is
// fdb.ErrNotFound) when there is no such entry or destination.
func (c *Client) FDBDel(dev string, mac fdb.MAC, dst *Remote) error {
	return c.modify(OpFDBDel, dev, mac, dst, 0, false)
}

// FDBShow returns dev's forwarding database, or that of every device on the
// socket when dev is empty.
func (c *Client) FDBShow(dev string) ([]DeviceFDB, error) {
	rep, err := c.do(request{Op: OpFDBShow, Dev: dev})
	if err != nil {
		return nil, err
	}
	out := make([]DeviceFDB, len(rep.Devs))
	for i, wd := range rep.Devs {
		d := DeviceFDB{Name: wd.Name, VNI: wd.VNI, Port: wd.Port, Entries: make([]fdb.Entry, len(wd.FDB))}
		for j, we := range wd.FDB {
			st, err := ParseState(we.State)
			if err != nil {
				return nil, fmt.Errorf("%s on %s: entry %s: %w", OpFDBShow, c.path, we.MAC, err)
			}
			e := fdb.Entry{MAC: we.MAC, State: st, Router: we.Router, Updated: we.Updated, Dests: make([]fdb.Dest, len(we.Dsts))}
			for k, wdst := range we.Dsts {
				e.Dests[k] = fdb.Dest{IP: wdst.IP, Port: wdst.Port, VNI: wdst.VNI}
				if wdst.Owner != "" {
					if e.Owners == nil {
						e.Owners = make([]fdb.Owner, len(we.Dsts))
					}
					e.Owners[k] = fdb.Owner(wdst.Owner)
				}
			}
			d.Entries[j] = e
		}
		out[i] = d
	}
	return out, nil
}

// Stats returns dev's counters, or those of every device on the socket when
// dev is empty.
func (c *Client) Stats(dev string) ([]DeviceStats, error) {
	rep, err := c.do(request{Op: OpStats, Dev: dev})
	if err != nil {
		return nil, err
	}
	out := make([]DeviceStats, len(rep.Devs))
	for i, wd := range rep.Devs {
		out[i] = DeviceStats{Name: wd.Name, VNI: wd.VNI, Port: wd.Port, Stats: wd.Stats}
	}
	return out, nil
}

// Devices lists the devices the socket serves.
func (c *Client) Devices() ([]DeviceInfo, error) {
	rep, err := c.do(request{Op: OpDevs})
	if err != nil {
		return nil, err
	}
	out := make([]DeviceInfo, len(rep.Devs))
	for i, wd := range rep.Devs {
		out[i] = DeviceInfo{Name: wd.Name, VNI: wd.VNI, Port: wd.Port}
	}
	return out, nil
}

// Reload asks the daemon to re-read its configuration file and apply the
// changes, as SIGHUP does, and returns its summary of what changed. A
// refused or partly applied reload is an *Error (code CodeRefused or
// CodePartial) whose message lists the problems, one per line.
func (c *Client) Reload() (string, error) {
	rep, err := c.do(request{Op: OpReload})
	if err != nil {
		return "", err
	}
	return rep.Summary, nil
}
