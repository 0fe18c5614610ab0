package shard

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMaglevOptions(t *testing.T) {
	tests := []struct {
		size int
		ok   bool
	}{
		{0, true}, {3, true}, {7, true}, {65537, true}, {1000003, true},
		{1, false}, {2, false}, {4, false}, {65536, false}, {-7, false}, {1<<26 + 15, false},
	}
	for _, tc := range tests {
		_, err := NewMaglev(MaglevOptions[string]{TableSize: tc.size})
		assert.Equal(t, tc.ok, err == nil, "TableSize %d: %v", tc.size, err)
	}
}

// TestMaglevTable checks that the table is full, every node owns a share of the slots in
// proportion to its weight, and a table cannot hold more nodes than slots.
func TestMaglevTable(t *testing.T) {
	g, err := NewMaglev(MaglevOptions[string]{TableSize: 1009})
	require.NoError(t, err)
	require.NoError(t, g.Add(nodeNames("n", 9)...))
	require.NoError(t, g.AddWeighted(3, "big"))
	s := g.state.Load()
	count := make([]int, len(s.nodes))
	for _, o := range s.table {
		require.Less(t, int(o), len(s.nodes))
		count[o]++
	}
	big := slices.Index(s.nodes, "big")
	assert.InDelta(t, 3*1009/12.0, count[big], 2)
	assert.InDelta(t, 1009/12.0, count[(big+1)%len(count)], 2)

	small, err := NewMaglev(MaglevOptions[string]{TableSize: 3})
	require.NoError(t, err)
	require.NoError(t, small.Add("a", "b", "c"))
	require.ErrorIs(t, small.Add("d"), ErrBadOptions)
}

// TestMaglevTinyWeight checks that a node too light to own any slot still ends LocateN's list
// instead of making it search forever.
func TestMaglevTinyWeight(t *testing.T) {
	g, err := NewMaglev(MaglevOptions[string]{TableSize: 101})
	require.NoError(t, err)
	require.NoError(t, g.Add("a", "b"))
	require.NoError(t, g.AddWeighted(1e-9, "tiny"))
	all, err := g.LocateN(nil, "k", 5)
	require.NoError(t, err)
	assert.Equal(t, "tiny", all[2])
	assert.Len(t, all, 3)
}

// TestMaglevStrayMovement measures the keys that move between surviving nodes when a node is
// added or removed, which the doc quotes by node count, and holds each to its bound.
func TestMaglevStrayMovement(t *testing.T) {
	keys := testKeys()
	tests := []struct {
		nodes int
		bound float64 // the most keys, as a fraction, that may move between surviving nodes
	}{
		{10, 0.004},
		{30, 0.005},
		{100, 0.007},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.nodes), func(t *testing.T) {
			g, err := NewMaglev(MaglevOptions[string]{})
			require.NoError(t, err)
			require.NoError(t, g.Add(nodeNames("cache", tc.nodes)...))
			before := owners(t, g, keys)
			extra := fmt.Sprintf("cache-%d", tc.nodes)
			require.NoError(t, g.Add(extra))
			added := owners(t, g, keys)
			victim := "cache-3"
			require.NoError(t, g.Remove(victim))
			removed := owners(t, g, keys)
			_, strayAdd := movement(before, added, extra)
			_, strayDel := movement(added, removed, victim)
			add := float64(strayAdd) / float64(len(keys))
			del := float64(strayDel) / float64(len(keys))
			t.Logf("maglev, %d nodes, %d keys: between surviving nodes, %.3f%% moved on add, %.3f%% on remove", tc.nodes, len(keys), 100*add, 100*del)
			assert.LessOrEqual(t, add, tc.bound, "add")
			assert.LessOrEqual(t, del, tc.bound, "remove")
			assert.Positive(t, add+del, "Maglev moves some keys between surviving nodes, as its doc says")
		})
	}
}

func BenchmarkMaglevLocate(b *testing.B) {
	g, err := NewMaglev(MaglevOptions[string]{})
	require.NoError(b, err)
	require.NoError(b, g.Add(nodeNames("cache", 10)...))
	keys := testKeys()[:1<<16]
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		g.Locate(keys[i&(1<<16-1)])
		i++
	}
}

func BenchmarkMaglevBuild10(b *testing.B) {
	names := nodeNames("cache", 10)
	b.ReportAllocs()
	for b.Loop() {
		g, _ := NewMaglev(MaglevOptions[string]{})
		g.Add(names...)
	}
}
