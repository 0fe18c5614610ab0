package shard

import (
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
