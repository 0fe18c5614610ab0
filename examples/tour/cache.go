package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/rediscache"
	"github.com/girder-go/girder/shard"
)

func init() {
	register(chapter{
		name:  "cache",
		title: "a multi-level cache: memory, then Redis, then the database, with one load per key",
		run:   tourCache,
	})
}

// tourCacheProduct is what the chapter caches.
type tourCacheProduct struct {
	SKU   string `json:"sku"`
	Price int    `json:"price"`
}

// tourCacheDB is the store of record: a map that counts its queries and takes a millisecond.
type tourCacheDB struct {
	mu      sync.Mutex
	rows    map[string]tourCacheProduct
	queries atomic.Int64
}

func (d *tourCacheDB) Load(ctx context.Context, sku string) (tourCacheProduct, error) {
	d.queries.Add(1)
	select {
	case <-time.After(time.Millisecond):
	case <-ctx.Done():
		return tourCacheProduct{}, ctx.Err()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.rows[sku]
	if !ok {
		return p, fmt.Errorf("product %s: %w", sku, cache.ErrNotFound)
	}
	return p, nil
}

func (d *tourCacheDB) Write(_ context.Context, sku string, p tourCacheProduct) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rows[sku] = p
	return nil
}

func (d *tourCacheDB) Delete(_ context.Context, sku string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.rows, sku)
	return nil
}

// tourCacheInstance is one process of the application: its own memory level, the shared Redis
// level, and a broadcast channel for invalidations.
func tourCacheInstance(l2 cache.Store[string, tourCacheProduct], bus *redis.Client, db *tourCacheDB) (*cache.Cache[string, tourCacheProduct], func(), error) {
	l1, err := cache.NewMemory(cache.MemoryOptions[string, tourCacheProduct]{MaxSize: 10_000, RecordStats: true})
	if err != nil {
		return nil, nil, err
	}
	b, err := rediscache.NewBroadcast(rediscache.BroadcastOptions[string]{Client: bus, Channel: "products:invalidate"})
	if err != nil {
		return nil, nil, err
	}
	c, err := cache.New(cache.Options[string, tourCacheProduct]{
		Levels: []cache.Level[string, tourCacheProduct]{
			{Name: "memory", Store: l1, TTL: time.Minute, Jitter: 0.1},
			{Name: "redis", Store: l2, TTL: time.Hour, Jitter: 0.1},
		},
		Loader:      db,
		Writer:      db,
		NegativeTTL: time.Minute,
		Broadcast:   b,
	})
	if err != nil {
		return nil, nil, err
	}
	closeAll := func() { c.Close(); l1.Close() }
	// An instance takes no traffic before it hears the others' invalidations.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Subscribed(ctx); err != nil {
		closeAll()
		return nil, nil, err
	}
	return c, closeAll, nil
}

func tourCache(ctx context.Context, w io.Writer) error {
	// Two Redis nodes hold the shared level; a consistent-hash ring from the shard package says
	// which node holds which key. The cache only sees a pick function.
	var nodes []cache.Store[string, tourCacheProduct]
	var clients []*redis.Client
	for range 2 {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			return err
		}
		defer mr.Close()
		client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		defer client.Close()
		clients = append(clients, client)
		node, err := rediscache.New(rediscache.Options[string, tourCacheProduct]{Client: client, Prefix: "product:"})
		if err != nil {
			return err
		}
		nodes = append(nodes, node)
	}
	ring, err := shard.NewRing(shard.RingOptions[int]{})
	if err != nil {
		return err
	}
	if err := ring.Add(0, 1); err != nil {
		return err
	}
	l2, err := cache.NewSharded(nodes, func(sku string) int { n, _ := ring.Locate(sku); return n })
	if err != nil {
		return err
	}

	db := &tourCacheDB{rows: map[string]tourCacheProduct{}}
	for i := range 20 {
		sku := fmt.Sprintf("sku-%02d", i)
		db.rows[sku] = tourCacheProduct{SKU: sku, Price: 100 + i}
	}
	a, closeA, err := tourCacheInstance(l2, clients[0], db)
	if err != nil {
		return err
	}
	defer closeA()
	b, closeB, err := tourCacheInstance(l2, clients[0], db)
	if err != nil {
		return err
	}
	defer closeB()

	// A stampede: 200 requests for one product at once cost one query.
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() { a.Get(ctx, "sku-07") })
	}
	wg.Wait()
	fmt.Fprintf(w, "200 concurrent reads of sku-07 on instance A: %d database query\n", db.queries.Load())

	p, err := b.Get(ctx, "sku-07")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "instance B reads sku-07 from Redis (price %d): still %d query\n", p.Price, db.queries.Load())

	// Write-through: the database first, then every level; B hears of it over pub/sub.
	before := b.Stats().Invalidations
	if err := a.Set(ctx, "sku-07", tourCacheProduct{SKU: "sku-07", Price: 99}); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().Invalidations == before {
		if time.Now().After(deadline) {
			return errors.New("instance B never heard of the write")
		}
		time.Sleep(time.Millisecond)
	}
	p, err = b.Get(ctx, "sku-07")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "A writes price 99; B drops its copy and reads %d\n", p.Price)

	// Negative caching: a product that does not exist is asked for once.
	q := db.queries.Load()
	for range 3 {
		if _, err := a.Get(ctx, "sku-missing"); !errors.Is(err, cache.ErrNotFound) {
			return fmt.Errorf("want ErrNotFound, got %v", err)
		}
	}
	fmt.Fprintf(w, "3 reads of a missing product: %d query (the absence is cached)\n", db.queries.Load()-q)

	// GetMany: one pipelined read per Redis node, one query per missing product here.
	skus := []string{"sku-01", "sku-02", "sku-03", "sku-07"}
	got, err := b.GetMany(ctx, skus)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "B reads %d products at once: %d found\n", len(skus), len(got))

	// Redis down: reads fall through to the database, writes report the failed level.
	clients[0].Close()
	clients[1].Close()
	p, err = a.Get(ctx, "sku-11")
	fmt.Fprintf(w, "with Redis gone, A still reads sku-11 (price %d, err %v)\n", p.Price, err)
	for _, l := range a.Stats().Levels {
		fmt.Fprintf(w, "  A's %s level: %d hits, %d misses, %d errors\n", l.Name, l.Hits, l.Misses, l.Errors)
	}
	return nil
}
