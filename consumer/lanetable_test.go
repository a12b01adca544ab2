package consumer

import (
	"math/rand/v2"
	"testing"
)

// TestLaneTable checks the ByKey lane table against a map under random
// adds and removes, with keys crowded into few home slots so that probes
// wrap and backward-shift deletion moves entries.
func TestLaneTable(t *testing.T) {
	var lt laneTable
	want := make(map[laneKey]*lane)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200_000 {
		k := laneKey(r.Uint64N(512)<<8 | r.Uint64N(4)) // many keys share low bits
		if k == 0 {
			k = 1
		}
		if l, ok := want[k]; ok {
			if got := lt.get(k); got != l {
				t.Fatalf("op %d: get(%#x) = %p, want %p", i, k, got, l)
			}
			if r.IntN(2) == 0 {
				lt.del(k)
				delete(want, k)
			}
			continue
		}
		if got := lt.get(k); got != nil {
			t.Fatalf("op %d: get(%#x) of a removed key = %p, want nil", i, k, got)
		}
		l := &lane{}
		lt.put(k, l)
		want[k] = l
	}
	if lt.n != len(want) {
		t.Fatalf("the table counts %d lanes, want %d", lt.n, len(want))
	}
	for k, l := range want {
		if got := lt.get(k); got != l {
			t.Fatalf("get(%#x) = %p, want %p", k, got, l)
		}
	}
}
