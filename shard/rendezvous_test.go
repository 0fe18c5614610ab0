package shard

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRendezvousLocateNIsFailover checks that LocateN's order is the failover order: without the
// first k nodes, the key goes to the (k+1)th.
func TestRendezvousLocateNIsFailover(t *testing.T) {
	for _, weighted := range []bool{false, true} {
		r, err := NewRendezvous(RendezvousOptions[string]{})
		require.NoError(t, err)
		require.NoError(t, r.Add(nodeNames("n", 5)...))
		if weighted {
			require.NoError(t, r.AddWeighted(2.5, "heavy"))
		}
		n := len(r.Nodes())
		for _, k := range testKeys()[:200] {
			order, err := r.LocateN(nil, k, n)
			require.NoError(t, err)
			require.Len(t, uniq(order), n)
			for i := range n - 1 {
				require.NoError(t, r.Remove(order[i]))
				owner, err := r.Locate(k)
				require.NoError(t, err)
				assert.Equal(t, order[i+1], owner, "weighted %v, key %s", weighted, k)
			}
			for i := range n - 1 {
				require.NoError(t, r.AddWeighted(map[bool]float64{true: 2.5, false: 1}[order[i] == "heavy"], order[i]))
			}
		}
	}
}

func BenchmarkRendezvousLocate(b *testing.B) {
	r, err := NewRendezvous(RendezvousOptions[string]{})
	require.NoError(b, err)
	require.NoError(b, r.Add(nodeNames("cache", 10)...))
	keys := testKeys()[:1<<16]
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		r.Locate(keys[i&(1<<16-1)])
		i++
	}
}
