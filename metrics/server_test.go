package metrics_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vxland/vxland/metrics"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestServer(t *testing.T) {
	d := newFakeDev(t, 40)
	src := &fakeSource{}
	src.set([]metrics.Device{d.device("vx0", 40)}, nil)
	srv, err := metrics.Listen("127.0.0.1:0", metrics.NewRegistry(src), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	base := "http://" + srv.Addr().String()

	d.txFrames.Add(5)
	code, body := get(t, base+metrics.Path)
	if code != http.StatusOK || !strings.Contains(body, "\nvxland_tx_frames_total{dev=\"vx0\",vni=\"40\"} 5\n") {
		t.Fatalf("GET %s: %d\n%s", metrics.Path, code, body)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "vxland_build_info", "vxland_fdb_entries"} {
		if !strings.Contains(body, "\n"+name) {
			t.Errorf("scrape has no %s", name)
		}
	}
	d.txFrames.Add(2)
	if _, body := get(t, base+metrics.Path); !strings.Contains(body, "\nvxland_tx_frames_total{dev=\"vx0\",vni=\"40\"} 7\n") {
		t.Errorf("second scrape does not show the grown counter:\n%s", body)
	}
	if code, _ := get(t, base+"/nothing"); code != http.StatusNotFound {
		t.Errorf("GET /nothing: %d, want 404", code)
	}

	// The address is now taken: a second server says so in one line.
	_, err = metrics.Listen(srv.Addr().String(), metrics.NewRegistry(src), nil)
	if err == nil || err.Error() != "metrics: "+srv.Addr().String()+" is already in use" {
		t.Errorf("second Listen on %s: %v", srv.Addr(), err)
	}

	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if c, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("still accepting connections after Close")
	}
	if err := srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestListenErrors(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.77:9477", "metrics: cannot listen on 192.0.2.77:9477: cannot assign requested address"},
		{"127.0.0.1:99999", "metrics: cannot listen on 127.0.0.1:99999: "},
		{"no-such-host.invalid:9477", "metrics: cannot listen on no-such-host.invalid:9477: "},
	} {
		_, err := metrics.Listen(tc.addr, metrics.NewRegistry(&fakeSource{}), nil)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Listen(%s) = %v, want %q...", tc.addr, err, tc.want)
		}
	}
}

// TestCloseBeforeServe: a server closed before it served (the daemon failed
// right after Listen) releases its address, and Serve then returns at once.
func TestCloseBeforeServe(t *testing.T) {
	srv, err := metrics.Listen("127.0.0.1:0", metrics.NewRegistry(&fakeSource{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr().String()
	srv.Close()
	again, err := metrics.Listen(addr, metrics.NewRegistry(&fakeSource{}), nil)
	if err != nil {
		t.Fatalf("address not released by Close: %v", err)
	}
	again.Close()
	if err := srv.Serve(); err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
}
