package config

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error line names the
// source, and that what it accepts validates and has consistent endpoints.
func FuzzParse(f *testing.F) {
	for _, b := range tomlBlocks(f, docPath) {
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"version = 1\n[[vni]]\nid = 40\n",
		"version = 1\n[defaults]\nlocal = \"::\"\ntos = \"inherit\"\n[[vni]]\nid = 1\nremote = [\"2001:db8::2\"]\n[[vni]]\nid = 2\nremote = []\n",
		"version = 1\nvni = [{id = 1}, {id = 2, dstport = 8472, srcport = \"1-2\"}]\n",
		"version = 1\n[[vni]]\nid = 40\ngroup = \"239.1.1.1\"\ndev = \"ul0\"\n[[vni]]\nid = 40\nlocal = \"192.0.2.1\"\ntap = \"x\"\n",
		"version = 1\n[[vni]]\nid = \"x\"\nttl = 0\ntos = -1\nmac = \"01:00:00:00:00:00\"\naddr = [\"1.2.3.4\"]\nageing = -1\n",
		"version = 1\n[vni]\n",
		"version = 2\n",
		"version = 1\n[[vni]]\nid = 1\nremote = [\"fe80::1%a\\nb\"]\ncontrol = \"/a\\nb\"\n[[vni]]\nid = 2\ncontrol = \"/a\\nb\"\n\"x\\ny\" = 1\n",
		"version = 1\n[[vni]]\nid = 1\n[vni.x]\n[[vni.y]]\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		cfg, err := Parse([]byte(src), "f.toml")
		if err != nil {
			if cfg != nil {
				t.Fatal("a Config with an error")
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.toml: ") {
					t.Fatalf("error line %q does not start with the source", line)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects: %v", err)
		}
		seen := make([]int, len(cfg.VNIs))
		for _, ep := range cfg.Endpoints() {
			for _, i := range ep.VNIs {
				seen[i]++
				v := &cfg.VNIs[i]
				if v.Port != ep.Port || v.Dev != ep.Dev || v.V6() != ep.V6 || v.bindLocal() != ep.Local {
					t.Fatalf("vni entry %d in endpoint %+v", i+1, ep)
				}
			}
		}
		for i, n := range seen {
			if n != 1 {
				t.Fatalf("vni entry %d in %d endpoints", i+1, n)
			}
		}
	})
}
