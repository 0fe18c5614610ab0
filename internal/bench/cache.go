package main

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	rediscache "github.com/go-redis/cache/v9"
	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"
	"github.com/viccon/sturdyc"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/girder-go/girder/cache"
	girderredis "github.com/girder-go/girder/cache/rediscache"
)

func init() { register(cacheRows) }

// cacheUser is the value every cache row stores: a small record, as a user service caches.
type cacheUser struct {
	ID   int    `json:"id" msgpack:"id"`
	Name string `json:"name" msgpack:"name"`
}

const cacheKeyCount = 1 << 10 // every row reads these keys round robin, all cached

func cacheKeys() []string {
	keys := make([]string, cacheKeyCount)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
	}
	return keys
}

func cacheLoad(_ context.Context, k string) (cacheUser, error) {
	return cacheUser{ID: len(k), Name: k}, nil
}

func cacheMust[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// cacheGirder returns a girder Cache over the given levels, with every key loaded, closed with b.
func cacheGirder(b *testing.B, levels ...cache.Level[string, cacheUser]) *cache.Cache[string, cacheUser] {
	return cacheGirderWith(b, cache.Options[string, cacheUser]{Levels: levels})
}

func cacheGirderWith(b *testing.B, opts cache.Options[string, cacheUser]) *cache.Cache[string, cacheUser] {
	opts.Loader = cache.LoaderFunc[string, cacheUser](cacheLoad)
	c := cacheMust(cache.New(opts))
	b.Cleanup(func() { c.Close() })
	for _, k := range cacheKeys() {
		cacheMust(c.Get(context.Background(), k))
	}
	return c
}

// cacheGirderL1 returns a girder Cache with a Memory level only. The stores and caches of every
// row are closed, so that no clock goroutine of an earlier row runs during a later one.
func cacheGirderL1(b *testing.B) *cache.Cache[string, cacheUser] {
	mem := cacheMust(cache.NewMemory(cache.MemoryOptions[string, cacheUser]{MaxSize: 10 * cacheKeyCount}))
	b.Cleanup(func() { mem.Close() })
	return cacheGirder(b, cache.Level[string, cacheUser]{Store: mem, TTL: time.Hour})
}

// cacheGirderL1Refresh is cacheGirderL1 with refresh-ahead, whose hit also reads the deadline.
func cacheGirderL1Refresh(b *testing.B) *cache.Cache[string, cacheUser] {
	mem := cacheMust(cache.NewMemory(cache.MemoryOptions[string, cacheUser]{MaxSize: 10 * cacheKeyCount}))
	b.Cleanup(func() { mem.Close() })
	return cacheGirderWith(b, cache.Options[string, cacheUser]{
		Levels:       []cache.Level[string, cacheUser]{{Store: mem, TTL: time.Hour}},
		RefreshAhead: time.Minute,
	})
}

func cacheGirderGet(newCache func(*testing.B) *cache.Cache[string, cacheUser]) func(*testing.B) {
	return func(b *testing.B) {
		c, keys, ctx := newCache(b), cacheKeys(), context.Background()
		i := 0
		for b.Loop() {
			if _, err := c.Get(ctx, keys[i&(cacheKeyCount-1)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
}

func cacheGirderGetParallel(b *testing.B) {
	c, keys, ctx := cacheGirderL1(b), cacheKeys(), context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			c.Get(ctx, keys[i&(cacheKeyCount-1)])
		}
	})
}

func cacheOtter(b *testing.B) *otter.Cache[string, cacheUser] {
	o := otter.Must(&otter.Options[string, cacheUser]{MaximumSize: 10 * cacheKeyCount, ExpiryCalculator: otter.ExpiryWriting[string, cacheUser](time.Hour)})
	b.Cleanup(func() { o.StopAllGoroutines() })
	for _, k := range cacheKeys() {
		v, _ := cacheLoad(context.Background(), k)
		o.Set(k, v)
	}
	return o
}

func cacheOtterGet(b *testing.B) {
	o, keys := cacheOtter(b), cacheKeys()
	i := 0
	for b.Loop() {
		if _, ok := o.GetIfPresent(keys[i&(cacheKeyCount-1)]); !ok {
			b.Fatal("miss")
		}
		i++
	}
}

func cacheOtterGetParallel(b *testing.B) {
	o, keys := cacheOtter(b), cacheKeys()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			o.GetIfPresent(keys[i&(cacheKeyCount-1)])
		}
	})
}

// cacheRedisCache returns go-redis/cache with its TinyLFU local cache (or none), every key set.
func cacheRedisCache(client *redis.Client, local bool) *rediscache.Cache {
	opts := &rediscache.Options{Redis: client}
	if local {
		opts.LocalCache = rediscache.NewTinyLFU(10*cacheKeyCount, time.Hour)
	}
	c := rediscache.New(opts)
	for _, k := range cacheKeys() {
		v, _ := cacheLoad(context.Background(), k)
		if err := c.Set(&rediscache.Item{Key: "grc:" + k, Value: v, TTL: time.Hour}); err != nil {
			panic(err)
		}
	}
	return c
}

func cacheRedisCacheGet(client *redis.Client, local bool) func(*testing.B) {
	return func(b *testing.B) {
		c, keys, ctx := cacheRedisCache(client, local), cacheKeys(), context.Background()
		i := 0
		for b.Loop() {
			var v cacheUser
			if err := c.Get(ctx, "grc:"+keys[i&(cacheKeyCount-1)], &v); err != nil {
				b.Fatal(err)
			}
			i++
		}
	}
}

func cacheSturdyc() *sturdyc.Client[cacheUser] {
	c := sturdyc.New[cacheUser](10*cacheKeyCount, 8, time.Hour, 10)
	for _, k := range cacheKeys() {
		v, _ := cacheLoad(context.Background(), k)
		c.Set(k, v)
	}
	return c
}

func cacheSturdycGetOrFetch(b *testing.B) {
	c, keys, ctx := cacheSturdyc(), cacheKeys(), context.Background()
	fetch := func(ctx context.Context) (cacheUser, error) { return cacheUser{}, nil }
	i := 0
	for b.Loop() {
		if _, err := c.GetOrFetch(ctx, keys[i&(cacheKeyCount-1)], fetch); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// cacheMsgpack is a cache.Codec with go-redis/cache's encoding, so that the Redis rows compare
// the caches rather than JSON with MessagePack.
type cacheMsgpack struct{}

func (cacheMsgpack) Marshal(v cacheUser) ([]byte, error) { return msgpack.Marshal(v) }

func (cacheMsgpack) Unmarshal(data []byte) (cacheUser, error) {
	var v cacheUser
	err := msgpack.Unmarshal(data, &v)
	return v, err
}

const cacheBatch = 100

func cacheGirderGetMany(b *testing.B) {
	c, keys, ctx := cacheGirderL1(b), cacheKeys(), context.Background()
	for b.Loop() {
		if m, err := c.GetMany(ctx, keys[:cacheBatch]); err != nil || len(m) != cacheBatch {
			b.Fatal(err)
		}
	}
}

func cacheSturdycGetOrFetchBatch(b *testing.B) {
	c, keys, ctx := cacheSturdyc(), cacheKeys(), context.Background()
	keyFn := func(id string) string { return id }
	fetch := func(context.Context, []string) (map[string]cacheUser, error) { return nil, nil }
	for b.Loop() {
		if m, err := c.GetOrFetchBatch(ctx, keys[:cacheBatch], keyFn, fetch); err != nil || len(m) != cacheBatch {
			b.Fatal(err)
		}
	}
}

// cacheLeaser is a Redis level without LeaseMany: GetMany takes its leases one per key,
// concurrently, as it did before ManyLeaser.
type cacheLeaser interface {
	cache.NegativeStore[string, cacheUser]
	cache.Leaser[string, cacheUser]
}

type cacheLeaseOneByOne struct{ cacheLeaser }

// cacheMissRound numbers the rounds of cacheGirderGetManyMisses across rows and runs, so that
// no round reads keys that an earlier one filled.
var cacheMissRound atomic.Int64

// cacheGirderGetManyMisses reads 100 keys that no level holds, through a Redis level with
// leases: the batch read, the leases, one BatchLoader call and the leased back-fills. Each
// round's keys are new, so every read misses.
func cacheGirderGetManyMisses(store cache.Store[string, cacheUser]) func(*testing.B) {
	return func(b *testing.B) {
		c := cacheMust(cache.New(cache.Options[string, cacheUser]{
			Levels: []cache.Level[string, cacheUser]{{Store: store, TTL: 10 * time.Second}},
			BatchLoader: cache.BatchLoaderFunc[string, cacheUser](func(ctx context.Context, keys []string) (map[string]cacheUser, error) {
				m := make(map[string]cacheUser, len(keys))
				for _, k := range keys {
					m[k], _ = cacheLoad(ctx, k)
				}
				return m, nil
			}),
		}))
		b.Cleanup(func() { c.Close() })
		ctx, keys := context.Background(), make([]string, cacheBatch)
		for b.Loop() {
			round := strconv.FormatInt(cacheMissRound.Add(1), 10)
			for i := range keys {
				keys[i] = "miss:" + round + ":" + strconv.Itoa(i)
			}
			if m, err := c.GetMany(ctx, keys); err != nil || len(m) != cacheBatch {
				b.Fatal(err)
			}
		}
	}
}

func cacheRows(env *Env) []Row {
	client := redis.NewClient(&redis.Options{Addr: env.RedisAddr})
	l2 := cacheMust(girderredis.New(girderredis.Options[string, cacheUser]{Client: client, Prefix: "girder:"}))
	l2mp := cacheMust(girderredis.New(girderredis.Options[string, cacheUser]{Client: client, Prefix: "girder-mp:", Codec: cacheMsgpack{}}))
	return []Row{
		{Package: "cache", Op: "L1 hit: Get", Girder: cacheGirderGet(cacheGirderL1),
			Peer: "otter/v2 v2.4.0 GetIfPresent (bare)", PeerFn: cacheOtterGet},
		{Package: "cache", Op: "L1 hit: Get", Girder: cacheGirderGet(cacheGirderL1),
			Peer: "go-redis/cache v9.0.0 local hit", PeerFn: cacheRedisCacheGet(client, true)},
		{Package: "cache", Op: "L1 hit: Get", Girder: cacheGirderGet(cacheGirderL1),
			Peer: "sturdyc v1.1.5 GetOrFetch hit", PeerFn: cacheSturdycGetOrFetch},
		{Package: "cache", Op: "L1 hit: Get, refresh-ahead on", Girder: cacheGirderGet(cacheGirderL1Refresh),
			Peer: "otter/v2 v2.4.0 GetIfPresent (bare)", PeerFn: cacheOtterGet},
		{Package: "cache", Op: "L1 hit: Get, parallel", Girder: cacheGirderGetParallel,
			Peer: "otter/v2 v2.4.0 GetIfPresent (bare)", PeerFn: cacheOtterGetParallel},
		{Package: "cache", Op: "L1 hit: GetMany 100 keys", Girder: cacheGirderGetMany,
			Peer: "sturdyc v1.1.5 GetOrFetchBatch hit", PeerFn: cacheSturdycGetOrFetchBatch},
		{Package: "cache", Op: "Redis miss: GetMany 100 keys, leased, loaded, back-filled", Girder: cacheGirderGetManyMisses(l2),
			Peer: "girder, one lease per key", PeerFn: cacheGirderGetManyMisses(cacheLeaseOneByOne{l2})},
		{Package: "cache", Op: "L2 (Redis) hit: Get, JSON", Girder: cacheGirderGet(func(b *testing.B) *cache.Cache[string, cacheUser] {
			return cacheGirder(b, cache.Level[string, cacheUser]{Store: l2, TTL: time.Hour})
		}),
			Peer: "go-redis/cache v9.0.0 Redis hit", PeerFn: cacheRedisCacheGet(client, false)},
		{Package: "cache", Op: "L2 (Redis) hit: Get, msgpack", Girder: cacheGirderGet(func(b *testing.B) *cache.Cache[string, cacheUser] {
			return cacheGirder(b, cache.Level[string, cacheUser]{Store: l2mp, TTL: time.Hour})
		}),
			Peer: "go-redis/cache v9.0.0 Redis hit", PeerFn: cacheRedisCacheGet(client, false)},
	}
}
