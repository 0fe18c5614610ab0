package shard

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHashRouterVectors pins the documented formula, shard = XXH64(key, seed 0) mod Shards, to
// published XXH64 test vectors so other languages can check their implementation against ours.
func TestHashRouterVectors(t *testing.T) {
	tests := []struct {
		key    string
		hash   uint64
		shards int
		shard  int
		tags   bool
	}{
		{key: "", hash: 0xef46db3751d8e999, shards: 10, shard: 1},
		{key: "abc", hash: 0x44bc2cf5ad770999, shards: 10, shard: 9},
		{key: "abc", hash: 0x44bc2cf5ad770999, shards: 1, shard: 0},
		{key: "user:{abc}:cart", hash: 0x44bc2cf5ad770999, shards: 10, shard: 9, tags: true},
		{key: "{}abc", hash: KeyHash("{}abc"), shards: 16, shard: int(KeyHash("{}abc") % 16), tags: true},
		{key: "no{tag", hash: KeyHash("no{tag"), shards: 16, shard: int(KeyHash("no{tag") % 16), tags: true},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			r, err := NewHashRouter(HashRouterOptions{Shards: tc.shards, HashTags: tc.tags})
			require.NoError(t, err)
			assert.Equal(t, tc.hash%uint64(tc.shards), uint64(tc.shard))
			assert.Equal(t, tc.shard, r.Shard(tc.key))
			assert.Equal(t, tc.shard, r.ShardBytes([]byte(tc.key)))
			assert.Equal(t, tc.shards, r.Shards())
		})
	}
	assert.Equal(t, uint64(0x44bc2cf5ad770999), KeyHash("abc"))
}

func TestHashRouterOptions(t *testing.T) {
	for _, n := range []int{0, -1} {
		_, err := NewHashRouter(HashRouterOptions{Shards: n})
		require.ErrorIs(t, err, ErrBadOptions)
	}
}

// FuzzHashRouter checks that Shard is in range, agrees with ShardBytes, and that keys sharing a
// hash tag share a shard.
func FuzzHashRouter(f *testing.F) {
	f.Add("user:{42}:cart", "x", uint16(16))
	f.Add("", "", uint16(1))
	f.Add("{", "}", uint16(3))
	f.Fuzz(func(t *testing.T, key, suffix string, n uint16) {
		if n == 0 {
			return
		}
		r, err := NewHashRouter(HashRouterOptions{Shards: int(n), HashTags: true})
		require.NoError(t, err)
		s := r.Shard(key)
		require.GreaterOrEqual(t, s, 0)
		require.Less(t, s, int(n))
		require.Equal(t, s, r.ShardBytes([]byte(key)))
		tagged := "{" + key + "}"
		if hashTag(tagged) == key && key != "" {
			require.Equal(t, r.Shard(tagged), r.Shard(tagged+suffix))
		}
	})
}

func BenchmarkHashRouterShard(b *testing.B) {
	r, err := NewHashRouter(HashRouterOptions{Shards: 64})
	require.NoError(b, err)
	keys := testKeys()[:1<<16]
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		r.Shard(keys[i&(1<<16-1)])
		i++
	}
}

func TestHashRouterAllocatesNothing(t *testing.T) {
	r, err := NewHashRouter(HashRouterOptions{Shards: 8, HashTags: true})
	require.NoError(t, err)
	key := []byte("user:{42}:cart")
	assert.Zero(t, testing.AllocsPerRun(100, func() {
		r.Shard("user:{42}:cart")
		r.ShardBytes(key)
	}))
}
