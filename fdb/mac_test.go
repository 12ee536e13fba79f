package fdb_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/vxland/vxland/fdb"
)

func TestParseMAC(t *testing.T) {
	want := fdb.MAC{0x02, 0x00, 0x5e, 0xab, 0xcd, 0xef}
	for _, s := range []string{"02:00:5e:ab:cd:ef", "02-00-5E-AB-CD-EF", "02:00:5E:ab:Cd:eF"} {
		got, err := fdb.ParseMAC(s)
		if err != nil || got != want {
			t.Errorf("ParseMAC(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got := want.String(); got != "02:00:5e:ab:cd:ef" {
		t.Errorf("String() = %q", got)
	}
	if got := fdb.Zero.String(); got != "00:00:00:00:00:00" {
		t.Errorf("Zero.String() = %q", got)
	}
	bc := fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if got, err := fdb.ParseMAC(bc.String()); err != nil || got != bc {
		t.Errorf("round trip of %v: %v, %v", bc, got, err)
	}
}

func TestParseMACErrors(t *testing.T) {
	for _, s := range []string{
		"",
		"02:00:5e:ab:cd",       // too short
		"02:00:5e:ab:cd:ef:01", // too long
		"02:00:5e:ab:cd:e",     // short last octet
		"2:0:5e:ab:cd:ef::",    // right length, wrong shape
		"02:00:5e:ab:cd:eg",    // bad hex
		"0x:00:5e:ab:cd:ef",    // bad hex
		" 02:00:5e:ab:cd:e",    // leading space
		"02.00.5e.ab.cd.ef",    // unsupported separator
		"02:00-5e:ab:cd:ef",    // mixed separators
		"02-00-5e-ab-cd:ef",    // mixed separators
		"0200.5eab.cdef",       // Cisco dotted form
		"02005eabcdef",         // no separators
		"02::005e:ab:cd:ef",    // separator in an octet
	} {
		if m, err := fdb.ParseMAC(s); err == nil {
			t.Errorf("ParseMAC(%q) = %v, want error", s, m)
		} else if !errors.Is(err, fdb.ErrInvalid) {
			t.Errorf("ParseMAC(%q) error %v does not wrap ErrInvalid", s, err)
		}
	}
}

func TestMACText(t *testing.T) {
	in := struct{ M fdb.MAC }{fdb.MAC{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"M":"aa:bb:cc:dd:ee:ff"}` {
		t.Fatalf("json = %s", b)
	}
	var out struct{ M fdb.MAC }
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("Unmarshal = %v, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"M":"aa:bb"}`), &out); err == nil {
		t.Fatal("Unmarshal of bad MAC succeeded")
	}
}
