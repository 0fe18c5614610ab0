package shard

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJumpHash(t *testing.T) {
	tests := []struct {
		key  uint64
		n    int
		want int
	}{
		{key: 0, n: 0, want: -1},
		{key: 123, n: -5, want: -1},
		{key: 0, n: 1, want: 0},
		{key: ^uint64(0), n: 1, want: 0},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, JumpHash(tc.key, tc.n), "JumpHash(%d, %d)", tc.key, tc.n)
	}
}

// FuzzJumpHash checks the property that makes jump hash consistent: growing from n to n+1
// buckets either leaves a key where it was or moves it to the new bucket.
func FuzzJumpHash(f *testing.F) {
	f.Add(uint64(0), uint16(1))
	f.Add(uint64(1)<<63, uint16(1000))
	f.Add(uint64(0xdeadbeef), uint16(7))
	f.Fuzz(func(t *testing.T, key uint64, n uint16) {
		if n == 0 {
			return
		}
		b := JumpHash(key, int(n))
		require.GreaterOrEqual(t, b, 0)
		require.Less(t, b, int(n))
		require.Contains(t, []int{b, int(n)}, JumpHash(key, int(n)+1))
	})
}

func TestJumpRemoveOnlyLast(t *testing.T) {
	j, err := NewJump(JumpOptions[string]{})
	require.NoError(t, err)
	require.NoError(t, j.Add("s0", "s1", "s2", "s3"))
	var ne *NodeError
	require.ErrorAs(t, j.Remove("s1"), &ne)
	assert.ErrorIs(t, ne, ErrNotLast)
	require.ErrorIs(t, j.Remove("s1", "s3"), ErrNotLast)
	require.NoError(t, j.Remove("s3", "s2"), "the last two, in any order")
	assert.Equal(t, []string{"s0", "s1"}, j.Nodes())
}

// TestJumpLocateNFailover checks LocateN's failover order on every removal Jump allows, from 10
// nodes down to 1, and the replica skew its doc states: node i is the second node of
// (H(n-1) − H(i))/n of the keys, plus 1/(n(n-1)) for i > 0 (the keys of node 0, whose chain ends
// at once).
func TestJumpLocateNFailover(t *testing.T) {
	j, err := NewJump(JumpOptions[string]{})
	require.NoError(t, err)
	names := nodeNames("s", 10)
	require.NoError(t, j.Add(names...))
	keys := testKeys()[:20_000]
	lists := make([][]string, len(keys))
	second := map[string]int{}
	for i, k := range keys {
		lists[i], err = j.LocateN(nil, k, len(names))
		require.NoError(t, err)
		second[lists[i][1]]++
	}
	harmonic := func(n int) float64 {
		h := 0.0
		for i := 1; i <= n; i++ {
			h += 1 / float64(i)
		}
		return h
	}
	for i, n := range names {
		want := (harmonic(9) - harmonic(i)) / 10
		if i > 0 {
			want += 1.0 / 90
		}
		assert.InDelta(t, want, float64(second[n])/float64(len(keys)), 0.012, "share of keys whose second node is %s", n)
	}
	for left := len(names) - 1; left >= 1; left-- {
		require.NoError(t, j.Remove(names[left]))
		left := names[:left]
		for i, k := range keys {
			owner, err := j.Locate(k)
			require.NoError(t, err)
			if want := lists[i][slices.IndexFunc(lists[i], func(n string) bool { return slices.Contains(left, n) })]; owner != want {
				t.Fatalf("%d nodes left, key %s: owner %s, want %s, the first of %v left", len(left), k, owner, want, lists[i])
			}
		}
	}
}

func BenchmarkJumpLocate(b *testing.B) {
	j, err := NewJump(JumpOptions[string]{})
	require.NoError(b, err)
	require.NoError(b, j.Add(nodeNames("cache", 10)...))
	keys := testKeys()[:1<<16]
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		j.Locate(keys[i&(1<<16-1)])
		i++
	}
}
