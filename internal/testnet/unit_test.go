package testnet

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCheckAddr(t *testing.T) {
	ok := []string{
		"192.0.2.1", "192.0.2.1/24", "198.51.100.7/32", "203.0.113.2/24", "203.0.113.0/25",
		"2001:db8::1", "2001:db8::1/64", "2001:db8:ffff::1/48", "239.1.1.1", "239.0.0.0/8",
		"ff05::1:3", "ff02::1",
	}
	bad := []string{
		"10.0.0.1", "10.0.0.1/8", "192.168.1.1", "172.16.0.1", "127.0.0.1", "8.8.8.8",
		"192.0.2.1/16", "2001:db8::1/16", "2001:db9::1", "::1", "fe80::1", "224.0.0.1",
		"ff0e::1", "0.0.0.0", "0.0.0.0/0", "::/0", "", "not-an-ip", "192.0.2.1/33",
	}
	for _, a := range ok {
		if err := CheckAddr(a); err != nil {
			t.Errorf("CheckAddr(%q) = %v, want nil", a, err)
		}
	}
	for _, a := range bad {
		if err := CheckAddr(a); err == nil {
			t.Errorf("CheckAddr(%q) = nil, want an error", a)
		}
	}
	if err := CheckAddr("10.0.0.1"); err == nil || !strings.Contains(err.Error(), "documentation ranges") {
		t.Errorf("CheckAddr(10.0.0.1) = %v, want a message naming the documentation ranges", err)
	}
}

func TestUniqueIfName(t *testing.T) {
	seen := map[string]bool{}
	for _, prefix := range []string{"", "vx", "veth", "averyveryverylongprefix"} {
		for range 100 {
			name := UniqueIfName(prefix)
			if err := checkIfName(name); err != nil {
				t.Fatalf("UniqueIfName(%q) = %q: %v", prefix, name, err)
			}
			if seen[name] {
				t.Fatalf("UniqueIfName(%q) repeated %q", prefix, name)
			}
			seen[name] = true
		}
	}
	if name := UniqueIfName("vx"); !strings.HasPrefix(name, "vx") {
		t.Errorf("UniqueIfName(vx) = %q, want the prefix kept", name)
	}
}

func TestEventually(t *testing.T) {
	n := 0
	if err := poll(5*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil || n != 3 {
		t.Fatalf("poll: err %v after %d calls, want nil after 3", err, n)
	}
	err := poll(50*time.Millisecond, func() error { return errors.New("the port is not open") })
	if err == nil || !strings.Contains(err.Error(), "the port is not open") || !strings.Contains(err.Error(), "still not met") {
		t.Fatalf("poll timeout error = %v, want the last error and 'still not met'", err)
	}
	calls := 0
	err = poll(time.Minute, func() error { calls++; return Permanent(errors.New("process exited")) })
	if err == nil || calls != 1 || !strings.Contains(err.Error(), "can no longer be met") {
		t.Fatalf("poll with Permanent: err %v after %d calls, want a stop after 1", err, calls)
	}
}

func TestParseNstat(t *testing.T) {
	m, err := parseNstat("#kernel\nIpInReceives  12  0.0\nTcpInCsumErrors 0 0.0\n")
	if err != nil || m["IpInReceives"] != 12 || m["TcpInCsumErrors"] != 0 || len(m) != 2 {
		t.Fatalf("parseNstat = %v, %v", m, err)
	}
}

func TestParseLinkStats(t *testing.T) {
	s, err := parseLinkStats(`[{"ifname":"lo","mtu":65536,"operstate":"UNKNOWN","stats64":{"rx":{"bytes":3,"packets":2,"errors":1,"dropped":4},"tx":{"bytes":5,"packets":6,"errors":0,"dropped":7}}}]`)
	want := LinkStats{RxBytes: 3, RxPackets: 2, RxErrors: 1, RxDropped: 4, TxBytes: 5, TxPackets: 6, TxDropped: 7, MTU: 65536, OperState: "UNKNOWN"}
	if err != nil || s != want {
		t.Fatalf("parseLinkStats = %+v, %v; want %+v", s, err, want)
	}
}

// recordTB records whether Skip or Fatal ended the test.
type recordTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordTB) Helper()                   {}
func (r *recordTB) Skip(args ...any)          { r.skipped = fmt.Sprint(args...) }
func (r *recordTB) Fatalf(f string, a ...any) { r.failed = fmt.Sprintf(f, a...) }

func TestSkipOrFail(t *testing.T) {
	for _, tc := range []struct {
		env        string
		wantFailed bool
	}{{"", false}, {"0", false}, {"1", true}, {"yes", true}} {
		t.Setenv(RequireInteropEnv, tc.env)
		var r recordTB
		SkipOrFail(&r, "needs %s", "tcpdump")
		if tc.wantFailed {
			if r.failed == "" || r.skipped != "" || !strings.Contains(r.failed, "needs tcpdump") || !strings.Contains(r.failed, RequireInteropEnv) {
				t.Errorf("%s=%q: skipped %q failed %q, want a failure naming the reason and the variable", RequireInteropEnv, tc.env, r.skipped, r.failed)
			}
		} else if r.skipped != "needs tcpdump" || r.failed != "" {
			t.Errorf("%s=%q: skipped %q failed %q, want a skip", RequireInteropEnv, tc.env, r.skipped, r.failed)
		}
	}
}
