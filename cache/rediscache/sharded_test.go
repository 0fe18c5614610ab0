package rediscache

import (
	"context"
	"hash/fnv"
	"testing"

	"github.com/girder-go/girder/cache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestShardedL2PlacesKeysWithAPicker(t *testing.T) {
	ctx := context.Background()
	var nodes []cache.Store[string, int]
	var servers []interface{ Keys() []string }
	for range 3 {
		mr, client := newMiniredis(t)
		servers = append(servers, mr)
		nodes = append(nodes, newTestRedis(t, client))
	}
	// Any placement fits: a shard.Ring's lookup, jump hash, or this FNV modulo.
	pick := func(k string) int {
		h := fnv.New32a()
		h.Write([]byte(k))
		return int(h.Sum32() % 3)
	}
	l2, err := cache.NewSharded(nodes, pick)
	require.NoError(t, err)
	d := newDB(map[string]int{})
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for i, k := range keys {
		d.rows[k] = i
	}
	c, err := cache.New(cache.Options[string, int]{Levels: []cache.Level[string, int]{{Store: newTestMemory(t)}, {Store: l2}}, Loader: d, BatchLoader: d})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.GetMany(ctx, keys)
	require.NoError(t, err)
	for _, k := range keys {
		assert.Contains(t, servers[pick(k)].Keys(), "test:"+k, "key %s on the node its picker names", k)
	}

	bad, err := cache.NewSharded(nodes, func(string) int { return 3 })
	require.NoError(t, err)
	_, _, err = bad.Get(ctx, "x")
	assert.ErrorContains(t, err, "pick returned 3")
	_, err = cache.NewSharded[string, int](nil, nil)
	assert.ErrorContains(t, err, "no stores")
	assert.ErrorContains(t, err, "pick is nil")
}
