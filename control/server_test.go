package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vxland/vxland/fdb"
	"github.com/vxland/vxland/stats"
)

// *fdb.Table is what the daemon hands to Device.FDB.
var _ FDB = (*fdb.Table)(nil)

var (
	macA = fdb.MAC{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	macB = fdb.MAC{0x02, 0x00, 0x5e, 0x10, 0x00, 0x02}
	ip2  = netip.MustParseAddr("192.0.2.2")
	ip3  = netip.MustParseAddr("192.0.2.3")
	ip6  = netip.MustParseAddr("2001:db8::2")
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func testDevice(name string, f FDB) *Device {
	return &Device{
		Name: name, VNI: 42, Port: 4789, FDB: f,
		Stats: func() []stats.Value {
			return []stats.Value{{Name: "rx_packets", Value: 7}, {Name: "tx_packets", Value: 9}}
		},
	}
}

// startServer listens on path and serves until the test ends; the cleanup
// checks that Close works and Serve returns nil.
func startServer(t *testing.T, path string, tweak func(*Server), devs ...*Device) *Server {
	t.Helper()
	s, err := Listen(path, devs...)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	s.Logger = quietLogger()
	if tweak != nil {
		tweak(s)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve returned %v after Close", err)
		}
	})
	return s
}

func dial(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(path)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return c
}

// roundTrip sends raw bytes on a fresh connection and decodes one reply line.
func roundTrip(t *testing.T, path string, raw []byte) reply {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	go conn.Write(raw) // may fail once the server gives up on an oversized line
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		t.Fatalf("read reply to %.60q: %v (got %q)", raw, err, line)
	}
	var rep reply
	if err := json.Unmarshal(line, &rep); err != nil {
		t.Fatalf("reply %q: %v", line, err)
	}
	if rep.V != Version {
		t.Errorf("reply %q: v = %d, want %d", line, rep.V, Version)
	}
	return rep
}

func u32(v uint32) *uint32 { return &v }

func TestFDBOps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	f := newFake()
	startServer(t, path, nil, testDevice("vxl0", f))
	c := dial(t, path)
	defer c.Close()

	// add fills port and VNI from the device.
	if err := c.FDBAdd("vxl0", macA, Remote{IP: ip2}, fdb.Permanent); err != nil {
		t.Fatalf("FDBAdd: %v", err)
	}
	want := fdb.Entry{MAC: macA, Dests: []fdb.Dest{{IP: ip2, Port: 4789, VNI: 42}}, State: fdb.Permanent}
	if got := f.get(macA); got.State != want.State || len(got.Dests) != 1 || got.Dests[0] != want.Dests[0] {
		t.Fatalf("after add: %+v, want %+v", got, want)
	}

	// A second add of the same MAC is refused with fdb.ErrExists across the socket.
	err := c.FDBAdd("vxl0", macA, Remote{IP: ip3}, fdb.Static)
	var ce *Error
	if !errors.Is(err, fdb.ErrExists) || !errors.As(err, &ce) || ce.Code != CodeExists {
		t.Fatalf("second add: %v (%#v), want ErrExists", err, err)
	}
	if want := "fdb add 02:00:5e:10:00:01 dev vxl0 dst 192.0.2.3: entry exists"; err.Error() != want {
		t.Errorf("second add message %q, want %q", err, want)
	}

	// append builds the all-zeros flood list; explicit port and VNI are kept.
	for _, r := range []Remote{{IP: ip2}, {IP: ip3, Port: 8472}, {IP: ip6, VNI: u32(0)}} {
		if err := c.FDBAppend("vxl0", fdb.Zero, r, fdb.Permanent); err != nil {
			t.Fatalf("FDBAppend %v: %v", r.IP, err)
		}
	}
	wantZero := []fdb.Dest{{IP: ip2, Port: 4789, VNI: 42}, {IP: ip3, Port: 8472, VNI: 42}, {IP: ip6, Port: 4789, VNI: 0}}
	if got := f.get(fdb.Zero).Dests; !equalDests(got, wantZero) {
		t.Fatalf("zero entry %v, want %v", got, wantZero)
	}

	// replace
	if err := c.FDBReplace("vxl0", macA, Remote{IP: ip6, Port: 4790, VNI: u32(7)}, fdb.Static); err != nil {
		t.Fatalf("FDBReplace: %v", err)
	}
	if got := f.get(macA); got.State != fdb.Static || !equalDests(got.Dests, []fdb.Dest{{IP: ip6, Port: 4790, VNI: 7}}) {
		t.Fatalf("after replace: %+v", got)
	}
	if err := c.FDBReplace("vxl0", macB, Remote{IP: ip2}, fdb.Dynamic); err != nil {
		t.Fatalf("FDBReplace (new): %v", err)
	}

	// show: sorted by MAC, dests resolved, state kept.
	devs, err := c.FDBShow("vxl0")
	if err != nil {
		t.Fatalf("FDBShow: %v", err)
	}
	if len(devs) != 1 || devs[0].Name != "vxl0" || devs[0].VNI != 42 || devs[0].Port != 4789 {
		t.Fatalf("FDBShow devices: %+v", devs)
	}
	es := devs[0].Entries
	if len(es) != 3 || es[0].MAC != fdb.Zero || es[1].MAC != macA || es[2].MAC != macB {
		t.Fatalf("FDBShow entries: %+v", es)
	}
	if !equalDests(es[0].Dests, wantZero) || es[1].State != fdb.Static || es[2].State != fdb.Dynamic {
		t.Errorf("FDBShow entries: %+v", es)
	}
	if !es[0].Updated.Equal(time.Unix(1, 0)) {
		t.Errorf("Updated = %v, want %v", es[0].Updated, time.Unix(1, 0))
	}

	// del one destination (port default filled in to match), then a whole entry.
	if err := c.FDBDel("vxl0", fdb.Zero, &Remote{IP: ip2}); err != nil {
		t.Fatalf("FDBDel dst: %v", err)
	}
	if got := f.get(fdb.Zero).Dests; !equalDests(got, wantZero[1:]) {
		t.Fatalf("zero entry after del %v, want %v", got, wantZero[1:])
	}
	if err := c.FDBDel("vxl0", fdb.Zero, &Remote{IP: ip3}); !errors.Is(err, fdb.ErrNotFound) {
		t.Fatalf("FDBDel with the wrong port: %v, want ErrNotFound", err)
	}
	if err := c.FDBDel("vxl0", fdb.Zero, nil); err != nil {
		t.Fatalf("FDBDel entry: %v", err)
	}
	if f.has(fdb.Zero) {
		t.Fatal("zero entry still there after whole-entry del")
	}
	if err := c.FDBDel("vxl0", fdb.Zero, nil); !errors.Is(err, fdb.ErrNotFound) {
		t.Fatalf("second FDBDel: %v, want ErrNotFound", err)
	}

	// stats and devs
	st, err := c.Stats("")
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if len(st) != 1 || st[0].Name != "vxl0" || len(st[0].Stats) != 2 || st[0].Stats[1] != (stats.Value{Name: "tx_packets", Value: 9}) {
		t.Fatalf("Stats: %+v", st)
	}
	infos, err := c.Devices()
	if err != nil || len(infos) != 1 || infos[0] != (DeviceInfo{Name: "vxl0", VNI: 42, Port: 4789}) {
		t.Fatalf("Devices: %+v, %v", infos, err)
	}
}

func equalDests(a, b []fdb.Dest) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRealTable runs the protocol against the real forwarding database.
func TestRealTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	tb := fdb.New(fdb.Options{MaxAddress: 2})
	startServer(t, path, nil, testDevice("vxl0", tb))
	c := dial(t, path)
	if err := c.FDBAppend("vxl0", fdb.Zero, Remote{IP: ip2}, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if err := c.FDBAppend("vxl0", fdb.Zero, Remote{IP: ip3}, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if err := c.FDBAdd("vxl0", macA, Remote{IP: ip2, VNI: u32(7)}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if err := c.FDBAdd("vxl0", macA, Remote{IP: ip2}, fdb.Static); !errors.Is(err, fdb.ErrExists) {
		t.Fatalf("duplicate add: %v, want ErrExists", err)
	}
	if err := c.FDBAdd("vxl0", macB, Remote{IP: ip2}, fdb.Static); !errors.Is(err, fdb.ErrFull) {
		t.Fatalf("add beyond maxaddress: %v, want ErrFull", err)
	}
	if got := tb.Lookup(macA); len(got) != 1 || got[0] != (fdb.Dest{IP: ip2, Port: 4789, VNI: 7}) {
		t.Fatalf("Lookup = %v", got)
	}
	devs, err := c.FDBShow("vxl0")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := FormatFDB(&b, devs[0], true); err != nil {
		t.Fatal(err)
	}
	want := "00:00:00:00:00:00 dev vxl0 dst 192.0.2.2 self permanent\n" +
		"00:00:00:00:00:00 dev vxl0 dst 192.0.2.3 self permanent\n" +
		"02:00:5e:10:00:01 dev vxl0 dst 192.0.2.2 vni 7 self static\n"
	if b.String() != want {
		t.Errorf("show:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestBadRequests sends requests that must be refused with a clear error,
// leave the table as it was and not disturb the server.
func TestBadRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	f := newFake()
	startServer(t, path, nil, testDevice("vxl0", f), testDevice("vxl1", newFake()))
	c := dial(t, path)
	if err := c.FDBAdd("vxl0", macA, Remote{IP: ip2}, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	const add = `{"v":1,"op":"fdb.add","dev":"vxl0","mac":"02:00:5e:10:00:09","dst":"192.0.2.9"`
	tests := []struct {
		name, line, code, msg string
	}{
		{"malformed json", `{"v":1,"op":`, CodeInvalid, "malformed request"},
		{"not an object", `[1,2,3]`, CodeInvalid, "want a JSON object"},
		{"null", `null`, CodeInvalid, "want a JSON object"},
		{"garbage", "\x00\xff\xfe garbage \x01", CodeInvalid, "want a JSON object"},
		{"empty line", ``, CodeInvalid, "empty request"},
		{"trailing data", add + `} {"v":1}`, CodeInvalid, "data after the JSON object"},
		{"unknown field", add + `,"colour":"red"}`, CodeInvalid, `unknown field "colour"`},
		{"wrong type", add + `,"port":"4789"}`, CodeInvalid, "malformed request"},
		{"fractional port", add + `,"port":47.5}`, CodeInvalid, "malformed request"},
		{"huge port", add + `,"port":1e30}`, CodeInvalid, "malformed request"},
		{"no version", `{"op":"fdb.show"}`, CodeVersion, `lacks the protocol version`},
		{"future version", `{"v":2,"op":"fdb.show"}`, CodeVersion, "unsupported protocol version 2"},
		{"no op", `{"v":1}`, CodeInvalid, `lacks "op"`},
		{"unknown op", `{"v":1,"op":"fdb.flush"}`, CodeInvalid, `unknown op "fdb.flush"`},
		{"no dev", `{"v":1,"op":"fdb.add","mac":"02:00:5e:10:00:09","dst":"192.0.2.9"}`, CodeInvalid, `lacks "dev"`},
		{"unknown dev", `{"v":1,"op":"fdb.add","dev":"vxl9","mac":"02:00:5e:10:00:09","dst":"192.0.2.9"}`, CodeNoDev, `no device "vxl9" on this socket (it serves vxl0, vxl1)`},
		{"unknown dev show", `{"v":1,"op":"fdb.show","dev":"vxl9"}`, CodeNoDev, `no device "vxl9"`},
		{"no mac", `{"v":1,"op":"fdb.add","dev":"vxl0","dst":"192.0.2.9"}`, CodeInvalid, `lacks "mac"`},
		{"bad mac", `{"v":1,"op":"fdb.add","dev":"vxl0","mac":"02:00:5e:10:00","dst":"192.0.2.9"}`, CodeInvalid, `invalid MAC address "02:00:5e:10:00"`},
		{"bad ip", `{"v":1,"op":"fdb.add","dev":"vxl0","mac":"02:00:5e:10:00:09","dst":"192.0.2.300"}`, CodeInvalid, `invalid dst "192.0.2.300"`},
		{"zoned ip", `{"v":1,"op":"fdb.add","dev":"vxl0","mac":"02:00:5e:10:00:09","dst":"fe80::1%eth0"}`, CodeInvalid, "zone"},
		{"unspecified ip", `{"v":1,"op":"fdb.add","dev":"vxl0","mac":"02:00:5e:10:00:09","dst":"0.0.0.0"}`, CodeInvalid, "not a remote address"},
		{"no dst", `{"v":1,"op":"fdb.append","dev":"vxl0","mac":"02:00:5e:10:00:09"}`, CodeInvalid, `fdb append: request lacks "dst"`},
		{"port too big", add + `,"port":65536}`, CodeInvalid, "port 65536 out of range 0-65535"},
		{"negative port", add + `,"port":-1}`, CodeInvalid, "port -1 out of range"},
		{"vni too big", add + `,"vni":16777216}`, CodeInvalid, "vni 16777216 out of range 0-16777215"},
		{"negative vni", add + `,"vni":-1}`, CodeInvalid, "vni -1 out of range"},
		{"bad state", add + `,"state":"sticky"}`, CodeInvalid, `unknown state "sticky"`},
		{"del port without dst", `{"v":1,"op":"fdb.del","dev":"vxl0","mac":"02:00:5e:10:00:01","vni":5}`, CodeInvalid, `"port" and "vni" need "dst"`},
		{"show with mac", `{"v":1,"op":"fdb.show","mac":"02:00:5e:10:00:01"}`, CodeInvalid, `takes only "dev"`},
		{"missing entry", `{"v":1,"op":"fdb.del","dev":"vxl0","mac":"02:00:5e:10:00:09"}`, CodeNotFound, "fdb del 02:00:5e:10:00:09 dev vxl0: entry not found"},
		{"existing entry", `{"v":1,"op":"fdb.add","dev":"vxl0","mac":"02-00-5E-10-00-01","dst":"192.0.2.9"}`, CodeExists, "entry exists"},
	}
	before := f.snapshot()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := roundTrip(t, path, []byte(tt.line+"\n"))
			if rep.OK || rep.Code != tt.code || !strings.Contains(rep.Error, tt.msg) {
				t.Errorf("reply ok=%v code=%q error=%q; want code %q, error containing %q", rep.OK, rep.Code, rep.Error, tt.code, tt.msg)
			}
			if after := f.snapshot(); after != before {
				t.Errorf("table changed:\n%s\nwant\n%s", after, before)
			}
			if _, err := c.FDBShow("vxl0"); err != nil {
				t.Errorf("server does not answer after the bad request: %v", err)
			}
		})
	}
}

func TestOversizedRequest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	f := newFake()
	startServer(t, path, nil, testDevice("vxl0", f))
	big := `{"v":1,"op":"fdb.add","dev":"vxl0","mac":"02:00:5e:10:00:09","dst":"192.0.2.9","state":"` +
		strings.Repeat("x", MaxRequestSize) + `"}` + "\n"
	rep := roundTrip(t, path, []byte(big))
	if rep.OK || rep.Code != CodeTooLarge || !strings.Contains(rep.Error, "request too large") {
		t.Fatalf("oversized request: %+v", rep)
	}
	// Without any newline at all.
	rep = roundTrip(t, path, []byte(strings.Repeat("\xff", 2*MaxRequestSize)))
	if rep.Code != CodeTooLarge {
		t.Fatalf("oversized garbage: %+v", rep)
	}
	if f.len() != 0 {
		t.Fatalf("table changed: %v", f.snapshot())
	}
	// Exactly at the limit is fine.
	line := `{"v":1,"op":"fdb.show"}`
	line += strings.Repeat(" ", MaxRequestSize-len(line)-1) + "\n"
	if rep := roundTrip(t, path, []byte(line)); !rep.OK {
		t.Fatalf("request of exactly MaxRequestSize bytes: %+v", rep)
	}
	if _, err := dial(t, path).FDBShow(""); err != nil {
		t.Fatalf("server does not answer: %v", err)
	}
}

func TestPanicRecovered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	startServer(t, path, nil, testDevice("vxl0", newFake()))
	c := dial(t, path)
	err := c.FDBAdd("vxl0", panicMAC, Remote{IP: ip2}, fdb.Permanent)
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeInternal || !strings.Contains(ce.Message, "boom") {
		t.Fatalf("panicking handler: %v, want an internal error", err)
	}
	if err := c.FDBAdd("vxl0", macA, Remote{IP: ip2}, fdb.Permanent); err != nil {
		t.Fatalf("server does not work after a panic: %v", err)
	}
}

func TestSeveralRequestsOnOneConnection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	f := newFake()
	startServer(t, path, nil, testDevice("vxl0", f))
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Three requests, the last without a newline before the half-close.
	reqs := `{"v":1,"op":"fdb.add","dev":"vxl0","mac":"02:00:5e:10:00:01","dst":"192.0.2.2"}` + "\n" +
		"not json\r\n" +
		`{"v":1,"op":"fdb.show","dev":"vxl0"}`
	if _, err := io.WriteString(conn, reqs); err != nil {
		t.Fatal(err)
	}
	conn.(*net.UnixConn).CloseWrite()
	sc := bufio.NewScanner(conn)
	var reps []reply
	for sc.Scan() {
		var r reply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("reply %q: %v", sc.Text(), err)
		}
		reps = append(reps, r)
	}
	if len(reps) != 3 || !reps[0].OK || reps[1].OK || !reps[2].OK || len(reps[2].Devs) != 1 || len(reps[2].Devs[0].FDB) != 1 {
		t.Fatalf("replies: %+v", reps)
	}
}

func TestIdleConnectionClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	startServer(t, path, func(s *Server) { s.readTimeout = 20 * time.Millisecond }, testDevice("vxl0", newFake()))
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, `{"v":1,`) // a request that never ends
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read on a stalled connection: n=%d err=%v, want EOF (server hangs up)", n, err)
	}
}

func TestConcurrentClients(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	f := newFake()
	startServer(t, path, nil, testDevice("vxl0", f))
	c := dial(t, path)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			mac := fdb.MAC{0x02, 0, 0, 0, 0, byte(i)}
			if err := c.FDBAdd("vxl0", mac, Remote{IP: ip2}, fdb.Static); err != nil {
				t.Errorf("add %s: %v", mac, err)
			}
			if _, err := c.FDBShow(""); err != nil {
				t.Errorf("show: %v", err)
			}
		})
	}
	wg.Wait()
	if len(f.Entries()) != 50 {
		t.Fatalf("%d entries, want 50", len(f.Entries()))
	}
}

func TestSeveralDevicesOnOneSocket(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(RunDirEnv, dir)
	f0, f1 := newFake(), newFake()
	d1 := testDevice("vxl1", f1)
	d1.VNI, d1.Port = 100, 8472
	d1.Stats = nil
	startServer(t, SocketPath("vxl0"), nil, testDevice("vxl0", f0), d1)

	// vxl1 has no socket of its own; DialDev finds the daemon serving it.
	c, err := DialDev("vxl1")
	if err != nil {
		t.Fatalf("DialDev(vxl1): %v", err)
	}
	if c.Path() != SocketPath("vxl0") {
		t.Errorf("DialDev(vxl1) path %s, want %s", c.Path(), SocketPath("vxl0"))
	}
	if err := c.FDBAdd("vxl1", macA, Remote{IP: ip2}, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if got := f1.get(macA).Dests; !equalDests(got, []fdb.Dest{{IP: ip2, Port: 8472, VNI: 100}}) {
		t.Fatalf("vxl1 entry %v: defaults not vxl1's", got)
	}
	if f0.len() != 0 {
		t.Fatalf("vxl0 changed: %v", f0.snapshot())
	}
	devs, err := c.FDBShow("")
	if err != nil || len(devs) != 2 || devs[0].Name != "vxl0" || devs[1].Name != "vxl1" || len(devs[1].Entries) != 1 {
		t.Fatalf("FDBShow(all) = %+v, %v", devs, err)
	}
	st, err := c.Stats("vxl1")
	if err != nil || len(st) != 1 || len(st[0].Stats) != 0 {
		t.Fatalf("Stats(vxl1) without a Stats func = %+v, %v", st, err)
	}
	if _, err := DialDev("vxl2"); err == nil || !strings.Contains(err.Error(), "no vxland serving dev vxl2") {
		t.Fatalf("DialDev(vxl2) = %v, want no vxland serving", err)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	// A daemon that died leaves its socket file behind.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	_, err = Dial(path)
	if err == nil || err.Error() != "no vxland serving dev vxl0 (socket "+path+"): is the daemon running? (the socket file is stale)" {
		t.Fatalf("Dial on a stale socket: %v", err)
	}
	startServer(t, path, nil, testDevice("vxl0", newFake()))
	if _, err := dial(t, path).FDBShow(""); err != nil {
		t.Fatalf("new server does not answer: %v", err)
	}
}

func TestListenRefusesLiveDaemon(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	f := newFake()
	first := startServer(t, path, nil, testDevice("vxl0", f))
	s, err := Listen(path, testDevice("vxl0", newFake()))
	if err == nil {
		s.Close()
		t.Fatal("second Listen on a live socket succeeded")
	}
	if want := "another vxland is serving " + path; !strings.Contains(err.Error(), want) {
		t.Fatalf("second Listen: %v, want %q", err, want)
	}
	// The first daemon is untouched.
	fi, err := os.Lstat(path)
	if err != nil || !os.SameFile(fi, first.sockFI) {
		t.Fatalf("socket file replaced: %v", err)
	}
	if err := dial(t, path).FDBAdd("vxl0", macA, Remote{IP: ip2}, fdb.Permanent); err != nil || f.len() != 1 {
		t.Fatalf("first daemon no longer answers: %v", err)
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(path, testDevice("vxl0", newFake()))
	if err == nil {
		s.Close()
		t.Fatal("Listen over a regular file succeeded")
	}
	if !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatalf("regular file clobbered: %q", b)
	}
}

func TestListenCreatesDirAndSocketModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "vxland")
	path := filepath.Join(dir, "vxl0.sock")
	startServer(t, path, nil, testDevice("vxl0", newFake()))
	di, err := os.Stat(dir)
	if err != nil || !di.IsDir() || di.Mode().Perm()&^0o755 != 0 {
		t.Fatalf("run dir: %v, %v", di.Mode(), err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want socket 0600", fi.Mode())
	}
	// No temporary names are left beside it.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("run dir holds %v, want only vxl0.sock", ents)
	}
}

func TestCloseRemovesSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	s, err := Listen(path, testDevice("vxl0", newFake()))
	if err != nil {
		t.Fatal(err)
	}
	s.Logger = quietLogger()
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	// An idle client connection must not hold Close up.
	idle, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := dial(t, path).FDBShow(""); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file still there after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err = Dial(path)
	if want := "no vxland serving dev vxl0 (socket " + path + "): is the daemon running?"; err == nil || err.Error() != want {
		t.Fatalf("Dial after Close: %v, want %q", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Dial error does not wrap fs.ErrNotExist: %#v", err)
	}
}

func TestCloseLeavesForeignSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	s, err := Listen(path, testDevice("vxl0", newFake()))
	if err != nil {
		t.Fatal(err)
	}
	// Someone removed our socket and put their own in its place.
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("Close removed a socket it did not create: %v", err)
	}
}

func TestListenArgs(t *testing.T) {
	dir := t.TempDir()
	good := func() *Device { return testDevice("vxl0", newFake()) }
	tests := []struct {
		name string
		path string
		devs []*Device
		msg  string
	}{
		{"no devices", "x.sock", nil, "no devices"},
		{"nil device", "x.sock", []*Device{nil}, "nil"},
		{"bad name", "x.sock", []*Device{{Name: "a/b", Port: 1, FDB: newFake()}}, "invalid device name"},
		{"long name", "x.sock", []*Device{{Name: "sixteen-chars-xx", Port: 1, FDB: newFake()}}, "too long"},
		{"duplicate", "x.sock", []*Device{good(), good()}, "given twice"},
		{"no fdb", "x.sock", []*Device{{Name: "vxl0", Port: 1}}, "no FDB"},
		{"vni", "x.sock", []*Device{{Name: "vxl0", Port: 1, VNI: 1 << 24, FDB: newFake()}}, "vni 16777216 out of range"},
		{"port", "x.sock", []*Device{{Name: "vxl0", FDB: newFake()}}, "port 0"},
		{"long path", strings.Repeat("d", 120) + ".sock", []*Device{good()}, "too long"},
	}
	for _, tt := range tests {
		s, err := Listen(filepath.Join(dir, tt.path), tt.devs...)
		if err == nil {
			s.Close()
			t.Errorf("%s: Listen succeeded", tt.name)
			continue
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.msg)
		}
	}
}

func TestListenDefaultPath(t *testing.T) {
	t.Setenv(RunDirEnv, filepath.Join(t.TempDir(), "rundir"))
	s := startServer(t, "", nil, testDevice("vxl7", newFake()))
	if want := SocketPath("vxl7"); s.Path() != want {
		t.Fatalf("Path() = %s, want %s", s.Path(), want)
	}
	c, err := DialDev("vxl7")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Devices(); err != nil {
		t.Fatal(err)
	}
	socks, err := FindSockets()
	if err != nil || len(socks) != 1 || socks[0] != s.Path() {
		t.Fatalf("FindSockets = %v, %v", socks, err)
	}
}
