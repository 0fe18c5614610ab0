package rediscache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/cachetest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// db is a store of record for tests: a map, a load counter, and optional failures.
type db struct {
	mu      sync.Mutex
	rows    map[string]int
	loads   atomic.Int64
	failing error         // returned by every load and write while set
	gate    chan struct{} // when set, loads wait for it to close
}

func newDB(rows map[string]int) *db { return &db{rows: rows} }

func (d *db) Load(ctx context.Context, key string) (int, error) {
	d.loads.Add(1)
	if d.gate != nil {
		select {
		case <-d.gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failing != nil {
		return 0, d.failing
	}
	v, ok := d.rows[key]
	if !ok {
		return 0, fmt.Errorf("row %q: %w", key, cache.ErrNotFound)
	}
	return v, nil
}

func (d *db) LoadMany(ctx context.Context, keys []string) (map[string]int, error) {
	d.loads.Add(1)
	if d.gate != nil {
		select {
		case <-d.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failing != nil {
		return nil, d.failing
	}
	m := make(map[string]int)
	for _, k := range keys {
		if v, ok := d.rows[k]; ok {
			m[k] = v
		}
	}
	return m, nil
}

func (d *db) Write(_ context.Context, key string, v int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failing != nil {
		return d.failing
	}
	d.rows[key] = v
	return nil
}

func (d *db) Delete(_ context.Context, key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failing != nil {
		return d.failing
	}
	delete(d.rows, key)
	return nil
}

func newTestMemory(t *testing.T) *cache.Memory[string, int] {
	t.Helper()
	m, err := cache.NewMemory(cache.MemoryOptions[string, int]{MaxSize: 1000, RecordStats: true})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func newMiniredis(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { client.Close() })
	return mr, client
}

func newTestRedis(t *testing.T, client redis.UniversalClient) *Store[string, int] {
	t.Helper()
	r, err := New(Options[string, int]{Client: client, Prefix: "test:"})
	require.NoError(t, err)
	return r
}

func TestStoreContract(t *testing.T) {
	cachetest.StoreContract(t, func(t *testing.T) cache.Store[string, int] {
		_, client := newMiniredis(t)
		return newTestRedis(t, client)
	})
}
