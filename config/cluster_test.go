package config

import (
	"strings"
	"testing"
	"time"
)

func TestClusterTable(t *testing.T) {
	t.Setenv("VXLAND_RUNDIR", "/run/vxland-test")
	cfg, err := Parse([]byte(`version = 1
[etcd]
endpoints = ["http://192.0.2.254:2379,http://192.0.2.253:2379"]
[cluster]
lease_ttl = 4
[[vni]]
id = 40
local = "192.0.2.1"
[[vni]]
id = 41
local = "192.0.2.1"
learning = true
[[vni]]
id = 42
local = "192.0.2.1"
remote = ["192.0.2.2"]
`), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Cluster; c.LeaseTTL != 4*time.Second || !c.MembersOnly || cfg.Etcd.Prefix != DefaultClusterPrefix || !cfg.ClusterMode() {
		t.Fatalf("cluster %+v, etcd %+v", c, cfg.Etcd)
	}
	for i, want := range []struct{ in, learning bool }{{true, false}, {true, true}, {false, true}} {
		v := &cfg.VNIs[i]
		if cfg.InCluster(v) != want.in || v.Learning != want.learning {
			t.Errorf("vni %d: in cluster %v learning %v, want %v %v", v.ID, cfg.InCluster(v), v.Learning, want.in, want.learning)
		}
	}
	// Without endpoints: no cluster, learning as configured, defaults.
	cfg, err = Parse([]byte("version = 1\n[[vni]]\nid = 1\n"), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClusterMode() || cfg.InCluster(&cfg.VNIs[0]) || !cfg.VNIs[0].Learning || cfg.Cluster != NewCluster() {
		t.Errorf("no cluster: %+v %+v", cfg.Cluster, cfg.VNIs[0])
	}
}

func TestClusterRefused(t *testing.T) {
	const etcd = "[etcd]\nendpoints = [\"http://192.0.2.254:2379\"]\n"
	for name, tc := range map[string]struct{ file, want string }{
		"no local":  {etcd + "[[vni]]\nid = 1\n", "a VNI in the cluster needs its underlay address"},
		"any local": {etcd + "[[vni]]\nid = 1\nlocal = \"0.0.0.0\"\n", "a VNI in the cluster needs"},
		"ttl":       {"[cluster]\nlease_ttl = 0\n[[vni]]\nid = 1\n", "must be 1 to"},
		"unknown":   {"[cluster]\nendpoints = [\"http://192.0.2.254:2379\"]\n[[vni]]\nid = 1\n", "in [cluster]"},
	} {
		_, err := Parse([]byte("version = 1\n"+tc.file), "c.toml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}
