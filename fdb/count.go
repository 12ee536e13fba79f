package fdb

// StateCounts returns how many entries the table holds in each state. Every
// State (Dynamic, Static, Permanent) has a key, counted zero or not. It
// takes no lock and copies no entry, so it is cheap to call for monitoring:
// each shard is counted as it is at one moment, and entries changed while
// the shards are walked may be counted in their old or new state. Dynamic
// entries past their ageing time count until Tick removes them, as they
// show in Entries.
func (t *Table) StateCounts() map[State]int {
	out := map[State]int{Dynamic: 0, Static: 0, Permanent: 0}
	for i := range t.shards {
		for _, e := range *t.shards[i].Load() {
			out[e.state]++
		}
	}
	return out
}
