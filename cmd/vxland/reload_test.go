package main

import (
	"testing"

	"github.com/vxland/vxland/config"
)

// TestHooksReloadInPlace: proxy, l2miss, l3miss and rsc are read per frame,
// so a reload changes them without re-creating the VNI; a change of
// another key still re-creates it.
func TestHooksReloadInPlace(t *testing.T) {
	old := config.NewVNI(42)
	for name, change := range map[string]func(*config.VNI){
		"proxy":  func(v *config.VNI) { v.Proxy = true },
		"l2miss": func(v *config.VNI) { v.L2Miss = true },
		"l3miss": func(v *config.VNI) { v.L3Miss = true },
		"rsc":    func(v *config.VNI) { v.RSC = true },
	} {
		v := old
		change(&v)
		if !sameButLive(old, v) {
			t.Errorf("a change of %s re-creates the VNI", name)
		}
		v.MTU = 1400
		if sameButLive(old, v) {
			t.Errorf("a change of %s and mtu is applied in place", name)
		}
	}
}
