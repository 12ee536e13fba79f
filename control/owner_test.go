package control

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vxland/vxland/fdb"
)

// TestOwnedEntries checks that entries a control plane installed are shown
// with their owner across the socket, in text and JSON, and that changes
// by hand are refused, except replace, which takes the entry over.
func TestOwnedEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vxl0.sock")
	tb := fdb.New(fdb.Options{})
	startServer(t, path, nil, testDevice("vxl0", tb))
	c := dial(t, path)
	if err := c.FDBAppend("vxl0", fdb.Zero, Remote{IP: ip2}, fdb.Permanent); err != nil {
		t.Fatal(err)
	}
	if err := tb.Sync("cluster", fdb.Zero, []fdb.Dest{{IP: ip3, Port: 4789, VNI: 42}}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	if err := tb.Sync("cluster", macA, []fdb.Dest{{IP: ip3, Port: 4789, VNI: 42}}, fdb.Static); err != nil {
		t.Fatal(err)
	}
	devs, err := c.FDBShow("vxl0")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := FormatFDB(&b, devs[0], false); err != nil {
		t.Fatal(err)
	}
	want := "00:00:00:00:00:00 dst 192.0.2.2 self permanent\n" +
		"00:00:00:00:00:00 dst 192.0.2.3 self extern_learn permanent owner cluster\n" +
		"02:00:5e:10:00:01 dst 192.0.2.3 self extern_learn static owner cluster\n"
	if b.String() != want {
		t.Errorf("show:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := WriteFDBJSON(&b, devs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"mac":"02:00:5e:10:00:01","ifname":"vxl0","dst":"192.0.2.3","port":4789,"vni":42,"flags":["self","extern_learn"],"state":"static","owner":"cluster"`) {
		t.Errorf("json: %s", b.String())
	}

	err = c.FDBDel("vxl0", macA, nil)
	var ce *Error
	if !errors.Is(err, fdb.ErrOwned) || !errors.As(err, &ce) || !strings.Contains(ce.Message, "cluster; replace takes it over") {
		t.Fatalf("del of an owned entry by hand: %v", err)
	}
	if err := c.FDBAppend("vxl0", macA, Remote{IP: ip2}, fdb.Static); !errors.Is(err, fdb.ErrOwned) {
		t.Fatalf("append to an owned entry by hand: %v", err)
	}
	if err := c.FDBReplace("vxl0", macA, Remote{IP: ip2}, fdb.Permanent); err != nil {
		t.Fatalf("replace by hand: %v", err)
	}
	if err := c.FDBDel("vxl0", macA, nil); err != nil {
		t.Fatalf("del after replace: %v", err)
	}
}
