package shard

import (
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
