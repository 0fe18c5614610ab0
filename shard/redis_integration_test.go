package shard_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/internal/testenv"
	"github.com/girder-go/girder/shard"
)

// redisNode is a ring member: a name for hashing and the client that reaches it.
type redisNode struct {
	name   string
	client *redis.Client
}

// TestRedisCacheLosesOnlyTheStoppedNodesKeys spreads a cache over 3 real Redis servers through a
// ring, stops one server, removes it from the ring, and checks that exactly the keys it held miss
// while every other key is still found on the server the ring names.
func TestRedisCacheLosesOnlyTheStoppedNodesKeys(t *testing.T) {
	servers := testenv.StartRedisNodes(t, 3)
	ctx := context.Background()

	ring, err := shard.NewRing(shard.RingOptions[redisNode]{NodeKey: func(n redisNode) string { return n.name }})
	require.NoError(t, err)
	nodes := make([]redisNode, len(servers))
	for i, s := range servers {
		nodes[i] = redisNode{name: s.Alias(), client: s.Client(t)}
	}
	require.NoError(t, ring.Add(nodes...))

	keys := make([]string, 3000)
	for i := range keys {
		keys[i] = fmt.Sprintf("session:%d", i)
	}
	owner := map[string]string{}
	for _, k := range keys {
		n, err := ring.Locate(k)
		require.NoError(t, err)
		owner[k] = n.name
	}

	// Write: one pipeline per server, in parallel.
	_, err = shard.ScatterKeys(ctx, keys, ring.Locate, func(ctx context.Context, n redisNode, ks []string) (int, error) {
		_, err := n.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range ks {
				p.Set(ctx, k, "v-"+k, 0)
			}
			return nil
		})
		return len(ks), err
	}, shard.ScatterOptions[redisNode]{})
	require.NoError(t, err)
	for _, n := range nodes {
		size, err := n.client.DBSize(ctx).Result()
		require.NoError(t, err)
		assert.InDelta(t, 1000, size, 150, "%s holds about a third of the keys", n.name)
	}

	victim := nodes[1]
	servers[1].Stop(t)
	require.Error(t, victim.client.Ping(ctx).Err(), "the stopped server no longer answers")
	require.NoError(t, ring.Remove(victim))

	// Read: one MGET per surviving server.
	res, err := shard.ScatterKeys(ctx, keys, ring.Locate, func(ctx context.Context, n redisNode, ks []string) (map[string]bool, error) {
		vals, err := n.client.MGet(ctx, ks...).Result()
		hit := make(map[string]bool, len(ks))
		for i, v := range vals {
			hit[ks[i]] = v == "v-"+ks[i]
		}
		return hit, err
	}, shard.ScatterOptions[redisNode]{Policy: shard.Collect})
	require.NoError(t, err)
	require.Len(t, res, 2, "only the surviving servers are asked")

	misses, lost := 0, 0
	for _, r := range res {
		assert.NotEqual(t, victim.name, r.Shard.name)
		for k, hit := range r.Value {
			assert.Equal(t, owner[k] != victim.name, hit, "key %s (owned by %s before)", k, owner[k])
			if !hit {
				misses++
			}
		}
	}
	for _, k := range keys {
		if owner[k] == victim.name {
			lost++
		}
	}
	assert.Equal(t, lost, misses, "the misses are exactly the stopped server's keys")
	t.Logf("3 servers, %d keys: stopped %s, which held %d; %d misses, %d hits", len(keys), victim.name, lost, misses, len(keys)-misses)
}
