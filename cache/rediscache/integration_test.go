package rediscache

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/cachetest"
	"github.com/girder-go/girder/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIntegrationRedis runs against a real Redis in a container: the store contract, two
// instances invalidating each other (and how long another instance may serve the old value), and
// reads failing open while Redis is paused.
func TestIntegrationRedis(t *testing.T) {
	testenv.Require(t)
	node := testenv.StartRedis(t)
	client := node.Client(t)
	ctx := context.Background()

	t.Run("store contract", func(t *testing.T) {
		cachetest.StoreContract(t, func(t *testing.T) cache.Store[string, int] {
			require.NoError(t, client.FlushDB(ctx).Err())
			return newTestRedis(t, client)
		})
	})

	t.Run("many leases at once", func(t *testing.T) {
		require.NoError(t, client.FlushDB(ctx).Err())
		checkLeaseMany(t, newTestRedis(t, client), "", func() error { return client.ScriptFlush(ctx).Err() })
	})

	t.Run("instances invalidate each other", func(t *testing.T) {
		require.NoError(t, client.FlushDB(ctx).Err())
		d := newDB(map[string]int{"k": 0})
		l2 := newTestRedis(t, client)
		a, _ := instance(t, node.Client(t), l2, d)
		b, l1b := instance(t, node.Client(t), l2, d)
		waitSubscribed(t, client, 2)

		const writes = 50
		windows := make([]time.Duration, 0, writes)
		for i := 1; i <= writes; i++ {
			_, err := b.Get(ctx, "k") // b holds a copy in memory
			require.NoError(t, err)
			require.NoError(t, a.Set(ctx, "k", i))
			written := time.Now()
			// The staleness window: from a's write returning to b's copy being gone.
			for {
				if _, ok, _ := l1b.Get(ctx, "k"); !ok {
					break
				}
				require.Less(t, time.Since(written), 5*time.Second, "b never dropped its copy")
			}
			windows = append(windows, time.Since(written))
			v, err := b.Get(ctx, "k")
			require.NoError(t, err)
			require.Equal(t, i, v)
		}
		slices.Sort(windows)
		t.Logf("staleness window over %d writes: median %v, p90 %v, max %v",
			writes, windows[writes/2], windows[writes*9/10], windows[writes-1])
	})

	// Sharded pub/sub needs no cluster: a single Redis 7 carries it too.
	t.Run("sharded pub/sub on one server", func(t *testing.T) {
		require.NoError(t, client.FlushDB(ctx).Err())
		d := newDB(map[string]int{"k": 0})
		l2 := newTestRedis(t, client)
		mk := func() (*cache.Cache[string, int], *cache.Memory[string, int]) {
			c, l1 := instanceWith(t, BroadcastOptions[string]{Client: node.Client(t), Channel: "invalidate:sharded", PubSub: PubSubSharded},
				l2, d, cache.Hooks[string]{})
			require.NoError(t, c.Subscribed(ctx))
			return c, l1
		}
		a, _ := mk()
		b, l1b := mk()
		n, err := client.PubSubShardNumSub(ctx, "invalidate:sharded").Result()
		require.NoError(t, err)
		assert.Equal(t, map[string]int64{"invalidate:sharded": 2}, n, "both listen as sharded subscribers")
		for i := 1; i <= 10; i++ {
			_, err := b.Get(ctx, "k")
			require.NoError(t, err)
			require.NoError(t, a.Set(ctx, "k", i))
			require.Eventually(t, func() bool { _, ok, _ := l1b.Get(ctx, "k"); return !ok }, 5*time.Second, time.Millisecond)
			v, err := b.Get(ctx, "k")
			require.NoError(t, err)
			require.Equal(t, i, v)
		}
		assert.EqualValues(t, 10, b.Stats().Invalidations)
	})

	t.Run("paused redis fails open and recovers", func(t *testing.T) {
		require.NoError(t, client.FlushDB(ctx).Err())
		opts := node.Options()
		opts.ReadTimeout, opts.WriteTimeout, opts.DialTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
		short := redis.NewClient(opts)
		t.Cleanup(func() { short.Close() })
		d := newDB(map[string]int{"a": 1, "b": 2})
		c, err := cache.New(cache.Options[string, int]{
			Levels: []cache.Level[string, int]{{Store: newTestMemory(t), TTL: time.Minute}, {Name: "redis", Store: newTestRedis(t, short), TTL: time.Hour}},
			Loader: d, Writer: d,
		})
		require.NoError(t, err)
		defer c.Close()

		node.Pause(t)
		paused := true
		defer func() {
			if paused {
				node.Unpause(t)
			}
		}()
		start := time.Now()
		v, err := c.Get(ctx, "a")
		require.NoError(t, err, "reads fall through to the loader")
		assert.Equal(t, 1, v)
		t.Logf("read with Redis paused took %v", time.Since(start))
		assert.Positive(t, c.Stats().Levels[1].Errors)
		var le *cache.LevelError
		require.ErrorAs(t, c.Set(ctx, "b", 3), &le, "writes report the failed level")
		assert.Equal(t, 3, d.rows["b"])

		node.Unpause(t)
		paused = false
		require.Eventually(t, func() bool { return short.Ping(ctx).Err() == nil }, 10*time.Second, 50*time.Millisecond)
		require.NoError(t, c.Invalidate(ctx, "a"))
		v, err = c.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, 1, v)
		raw, err := client.Get(ctx, "test:a").Result()
		require.NoError(t, err, "after recovery the load fills Redis again")
		assert.Equal(t, "1", raw)
	})
}
