package cacheprom_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/cacheprom"
	"github.com/girder-go/girder/cache/writebehind"
)

var errDown = errors.New("down")

// flaky is a level whose reads of the key "x" fail.
type flaky struct{ cache.Store[string, int] }

func (f flaky) Get(ctx context.Context, key string) (int, bool, error) {
	if key == "x" {
		return 0, false, errDown
	}
	return f.Store.Get(ctx, key)
}

// loader takes took to answer: ErrNotFound for "missing", errDown for "bad", len(key) otherwise.
func loader(took time.Duration) cache.LoaderFunc[string, int] {
	return func(_ context.Context, key string) (int, error) {
		time.Sleep(took)
		switch key {
		case "missing":
			return 0, cache.ErrNotFound
		case "bad":
			return 0, errDown
		}
		return len(key), nil
	}
}

func newMemory(t *testing.T, record bool) *cache.Memory[string, int] {
	t.Helper()
	m, err := cache.NewMemory(cache.MemoryOptions[string, int]{RecordStats: record, PreciseClock: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// TestCache drives a two-level cache through known reads and checks every scraped value: three
// hits on the first level, five misses there, a read of the second level that fails, and loads
// that succeed (three), answer not found (one) and fail (one), each taking 62.5 ms of the
// bubble's clock.
func TestCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		col, err := cacheprom.New(cacheprom.Options{Buckets: []float64{0.01, 0.1}})
		require.NoError(t, err)
		mem := newMemory(t, true)
		c, err := cache.New(cache.Options[string, int]{
			Levels: []cache.Level[string, int]{
				{Name: "mem", Store: mem},
				{Name: "l2", Store: flaky{newMemory(t, false)}},
			},
			Loader: loader(62500 * time.Microsecond),
			Hooks:  cacheprom.Hooks[string](col, "users"),
		})
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, col.Watch("users", c))
		require.NoError(t, col.WatchEntries("users", "mem", mem))

		ctx := context.Background()
		for _, key := range []string{"a", "a", "a", "a", "bb", "x"} {
			_, err := c.Get(ctx, key)
			require.NoError(t, err, key)
		}
		_, err = c.Get(ctx, "missing")
		require.ErrorIs(t, err, cache.ErrNotFound)
		_, err = c.Get(ctx, "bad")
		require.ErrorIs(t, err, errDown)

		want := `
# HELP girder_cache_absorbed_errors_total Failures the cache absorbed rather than returned, by kind (level, refresh, other).
# TYPE girder_cache_absorbed_errors_total counter
girder_cache_absorbed_errors_total{cache="users",kind="level"} 1
girder_cache_absorbed_errors_total{cache="users",kind="other"} 0
girder_cache_absorbed_errors_total{cache="users",kind="refresh"} 0
# HELP girder_cache_batch_load_duration_seconds Duration of the calls of the cache's BatchLoader, by result (success, error).
# TYPE girder_cache_batch_load_duration_seconds histogram
girder_cache_batch_load_duration_seconds_bucket{cache="users",result="error",le="0.01"} 0
girder_cache_batch_load_duration_seconds_bucket{cache="users",result="error",le="0.1"} 0
girder_cache_batch_load_duration_seconds_bucket{cache="users",result="error",le="+Inf"} 0
girder_cache_batch_load_duration_seconds_sum{cache="users",result="error"} 0
girder_cache_batch_load_duration_seconds_count{cache="users",result="error"} 0
girder_cache_batch_load_duration_seconds_bucket{cache="users",result="success",le="0.01"} 0
girder_cache_batch_load_duration_seconds_bucket{cache="users",result="success",le="0.1"} 0
girder_cache_batch_load_duration_seconds_bucket{cache="users",result="success",le="+Inf"} 0
girder_cache_batch_load_duration_seconds_sum{cache="users",result="success"} 0
girder_cache_batch_load_duration_seconds_count{cache="users",result="success"} 0
# HELP girder_cache_coalesced_reads_total Reads that waited for a load another read had started.
# TYPE girder_cache_coalesced_reads_total counter
girder_cache_coalesced_reads_total{cache="users"} 0
# HELP girder_cache_entries Entries a level of the cache holds (the store's estimate).
# TYPE girder_cache_entries gauge
girder_cache_entries{cache="users",level="mem"} 3
# HELP girder_cache_hits_total Reads a level of the cache answered (a remembered absence counts).
# TYPE girder_cache_hits_total counter
girder_cache_hits_total{cache="users",level="l2"} 0
girder_cache_hits_total{cache="users",level="mem"} 3
# HELP girder_cache_invalidations_total Keys dropped because another instance published them.
# TYPE girder_cache_invalidations_total counter
girder_cache_invalidations_total{cache="users"} 0
# HELP girder_cache_level_errors_total Failed reads and writes of a level of the cache.
# TYPE girder_cache_level_errors_total counter
girder_cache_level_errors_total{cache="users",level="l2"} 1
girder_cache_level_errors_total{cache="users",level="mem"} 0
# HELP girder_cache_load_duration_seconds Duration of the calls of the cache's Loader, by result (success, not_found, error).
# TYPE girder_cache_load_duration_seconds histogram
girder_cache_load_duration_seconds_bucket{cache="users",result="error",le="0.01"} 0
girder_cache_load_duration_seconds_bucket{cache="users",result="error",le="0.1"} 1
girder_cache_load_duration_seconds_bucket{cache="users",result="error",le="+Inf"} 1
girder_cache_load_duration_seconds_sum{cache="users",result="error"} 0.0625
girder_cache_load_duration_seconds_count{cache="users",result="error"} 1
girder_cache_load_duration_seconds_bucket{cache="users",result="not_found",le="0.01"} 0
girder_cache_load_duration_seconds_bucket{cache="users",result="not_found",le="0.1"} 1
girder_cache_load_duration_seconds_bucket{cache="users",result="not_found",le="+Inf"} 1
girder_cache_load_duration_seconds_sum{cache="users",result="not_found"} 0.0625
girder_cache_load_duration_seconds_count{cache="users",result="not_found"} 1
girder_cache_load_duration_seconds_bucket{cache="users",result="success",le="0.01"} 0
girder_cache_load_duration_seconds_bucket{cache="users",result="success",le="0.1"} 3
girder_cache_load_duration_seconds_bucket{cache="users",result="success",le="+Inf"} 3
girder_cache_load_duration_seconds_sum{cache="users",result="success"} 0.1875
girder_cache_load_duration_seconds_count{cache="users",result="success"} 3
# HELP girder_cache_load_errors_total Loads that failed other than with not found.
# TYPE girder_cache_load_errors_total counter
girder_cache_load_errors_total{cache="users"} 1
# HELP girder_cache_loads_not_found_total Loads that answered not found.
# TYPE girder_cache_loads_not_found_total counter
girder_cache_loads_not_found_total{cache="users"} 1
# HELP girder_cache_loads_total Keys the cache's Loader or BatchLoader was asked for.
# TYPE girder_cache_loads_total counter
girder_cache_loads_total{cache="users"} 5
# HELP girder_cache_misses_total Reads a level of the cache did not hold.
# TYPE girder_cache_misses_total counter
girder_cache_misses_total{cache="users",level="l2"} 4
girder_cache_misses_total{cache="users",level="mem"} 5
# HELP girder_cache_refreshes_skipped_total Background refreshes skipped because every slot was taken.
# TYPE girder_cache_refreshes_skipped_total counter
girder_cache_refreshes_skipped_total{cache="users"} 0
# HELP girder_cache_refreshes_total Background refreshes started.
# TYPE girder_cache_refreshes_total counter
girder_cache_refreshes_total{cache="users"} 0
`
		require.NoError(t, testutil.CollectAndCompare(col, strings.NewReader(want)))
		lint, err := testutil.CollectAndLint(col)
		require.NoError(t, err)
		assert.Empty(t, lint)

		col.Unwatch("users")
		assert.Equal(t, 0, testutil.CollectAndCount(col, "girder_cache_hits_total"), "unwatched: no Stats series")
		assert.Equal(t, 0, testutil.CollectAndCount(col, "girder_cache_entries"), "unwatched: no entries series")
		assert.Equal(t, 3, testutil.CollectAndCount(col, "girder_cache_load_duration_seconds"), "hook series stay")
	})
}

// TestBatchLoad checks the batch-load histogram after one BatchLoader call that succeeds and one
// that fails.
func TestBatchLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		col, err := cacheprom.New(cacheprom.Options{Buckets: []float64{0.1}})
		require.NoError(t, err)
		c, err := cache.New(cache.Options[string, int]{
			Levels: []cache.Level[string, int]{{Name: "mem", Store: newMemory(t, true)}},
			BatchLoader: cache.BatchLoaderFunc[string, int](func(_ context.Context, keys []string) (map[string]int, error) {
				time.Sleep(250 * time.Millisecond)
				if slices.Contains(keys, "bad") {
					return nil, errDown
				}
				m := map[string]int{}
				for _, k := range keys {
					m[k] = len(k)
				}
				return m, nil
			}),
			Hooks: cacheprom.Hooks[string](col, "users"),
		})
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, col.Watch("users", c))
		ctx := context.Background()
		_, err = c.GetMany(ctx, []string{"a", "bb", "ccc"})
		require.NoError(t, err)
		_, _ = c.GetMany(ctx, []string{"bad", "d"})

		want := `
# HELP girder_cache_batch_load_duration_seconds Duration of the calls of the cache's BatchLoader, by result (success, error).
# TYPE girder_cache_batch_load_duration_seconds histogram
girder_cache_batch_load_duration_seconds_bucket{cache="users",result="error",le="0.1"} 0
girder_cache_batch_load_duration_seconds_bucket{cache="users",result="error",le="+Inf"} 1
girder_cache_batch_load_duration_seconds_sum{cache="users",result="error"} 0.25
girder_cache_batch_load_duration_seconds_count{cache="users",result="error"} 1
girder_cache_batch_load_duration_seconds_bucket{cache="users",result="success",le="0.1"} 0
girder_cache_batch_load_duration_seconds_bucket{cache="users",result="success",le="+Inf"} 1
girder_cache_batch_load_duration_seconds_sum{cache="users",result="success"} 0.25
girder_cache_batch_load_duration_seconds_count{cache="users",result="success"} 1
# HELP girder_cache_load_errors_total Loads that failed other than with not found.
# TYPE girder_cache_load_errors_total counter
girder_cache_load_errors_total{cache="users"} 2
# HELP girder_cache_loads_total Keys the cache's Loader or BatchLoader was asked for.
# TYPE girder_cache_loads_total counter
girder_cache_loads_total{cache="users"} 5
`
		require.NoError(t, testutil.CollectAndCompare(col, strings.NewReader(want),
			"girder_cache_batch_load_duration_seconds", "girder_cache_loads_total", "girder_cache_load_errors_total"))
	})
}

// store is a store of record whose writes of the key "bad" fail.
type store struct {
	mu   sync.Mutex
	rows map[string]int
}

func (s *store) Write(_ context.Context, key string, value int) error {
	if key == "bad" {
		return errDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows[key] = value
	return nil
}

func (s *store) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rows, key)
	return nil
}

// TestWriteBehind flushes three good writes and one that fails its only attempt, and checks the
// flush counters and the queue gauge.
func TestWriteBehind(t *testing.T) {
	col, err := cacheprom.New(cacheprom.Options{})
	require.NoError(t, err)
	var dead []writebehind.FailedWrite[string, int]
	q, err := writebehind.New(writebehind.Options[string, int]{
		Store:      &store{rows: map[string]int{}},
		Delay:      time.Hour, // nothing flushes before Flush
		Retries:    -1,
		DeadLetter: func(f []writebehind.FailedWrite[string, int]) { dead = append(dead, f...) },
		Hooks:      col.WriteBehindHooks("orders"),
	})
	require.NoError(t, err)
	require.NoError(t, col.WatchQueue("orders", q))
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "bad"} {
		require.NoError(t, q.Write(ctx, k, 1))
	}
	assert.Equal(t, 4.0, gauge(t, col, "girder_cache_writebehind_queued_keys"))
	_ = q.Flush(ctx)
	require.NoError(t, q.Close(ctx))
	require.Len(t, dead, 1)

	assert.Equal(t, 0.0, gauge(t, col, "girder_cache_writebehind_queued_keys"))
	lint, err := testutil.CollectAndLint(col)
	require.NoError(t, err)
	assert.Empty(t, lint)
	// The store is no BatchWriter: each write is its own call.
	want := `
# HELP girder_cache_writebehind_flushes_total Calls of the store of record by the write-behind queue, by result (success, error).
# TYPE girder_cache_writebehind_flushes_total counter
girder_cache_writebehind_flushes_total{queue="orders",result="error"} 1
girder_cache_writebehind_flushes_total{queue="orders",result="success"} 3
# HELP girder_cache_writebehind_writes_total Writes the write-behind queue passed to the store of record, by result (success, error); a retried write counts at each attempt.
# TYPE girder_cache_writebehind_writes_total counter
girder_cache_writebehind_writes_total{queue="orders",result="error"} 1
girder_cache_writebehind_writes_total{queue="orders",result="success"} 3
`
	require.NoError(t, testutil.CollectAndCompare(col, strings.NewReader(want),
		"girder_cache_writebehind_flushes_total", "girder_cache_writebehind_writes_total"))
}

func gauge(t *testing.T, c prometheus.Collector, name string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			require.Len(t, f.GetMetric(), 1)
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s in the scrape", name)
	return 0
}

func TestOptions(t *testing.T) {
	_, err := cacheprom.New(cacheprom.Options{Buckets: []float64{1, 1}, ConstLabels: prometheus.Labels{"cache": "x", "env": "p"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cacheprom: Buckets[1]")
	assert.Contains(t, err.Error(), `cacheprom: ConstLabels: "cache"`)

	c, err := cacheprom.New(cacheprom.Options{})
	require.NoError(t, err)
	var nilCache *cache.Cache[string, int]
	assert.ErrorContains(t, c.Watch("", nilCache), "cacheprom: Watch: empty name")
	assert.ErrorContains(t, c.Watch("a", nilCache), "nil source")
	assert.ErrorContains(t, c.Watch("a", nil), "nil source")
	m, err := cache.New(cache.Options[string, int]{Loader: loader(0)})
	require.NoError(t, err)
	defer m.Close()
	require.NoError(t, c.Watch("a", m))
	assert.ErrorContains(t, c.Watch("a", m), "already watched")
	var nilQueue *writebehind.Queue[string, int]
	assert.ErrorContains(t, c.WatchQueue("q", nilQueue), "cacheprom: WatchQueue \"q\": nil source")
	assert.ErrorContains(t, c.WatchEntries("a", "", nilQueue), "empty level")
	var nilMemory *cache.Memory[string, int]
	assert.ErrorContains(t, c.WatchEntries("a", "mem", nilMemory), "nil source")
}

// TestRefreshError checks that a failed background refresh is counted as kind="refresh", and
// the refresh itself in girder_cache_refreshes_total.
func TestRefreshError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		col, err := cacheprom.New(cacheprom.Options{})
		require.NoError(t, err)
		calls := 0
		c, err := cache.New(cache.Options[string, int]{
			Levels: []cache.Level[string, int]{{Name: "mem", Store: newMemory(t, true), TTL: 10 * time.Second}},
			Loader: cache.LoaderFunc[string, int](func(context.Context, string) (int, error) {
				calls++
				if calls > 1 {
					return 0, errDown
				}
				return 1, nil
			}),
			RefreshAhead: 5 * time.Second,
			Hooks:        cacheprom.Hooks[string](col, "users"),
		})
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, col.Watch("users", c))
		ctx := context.Background()
		_, err = c.Get(ctx, "k")
		require.NoError(t, err)
		time.Sleep(6 * time.Second) // within RefreshAhead of expiry
		v, err := c.Get(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, 1, v)
		synctest.Wait() // the refresh ran and failed

		want := `
# HELP girder_cache_absorbed_errors_total Failures the cache absorbed rather than returned, by kind (level, refresh, other).
# TYPE girder_cache_absorbed_errors_total counter
girder_cache_absorbed_errors_total{cache="users",kind="level"} 0
girder_cache_absorbed_errors_total{cache="users",kind="other"} 0
girder_cache_absorbed_errors_total{cache="users",kind="refresh"} 1
# HELP girder_cache_refreshes_total Background refreshes started.
# TYPE girder_cache_refreshes_total counter
girder_cache_refreshes_total{cache="users"} 1
`
		require.NoError(t, testutil.CollectAndCompare(col, strings.NewReader(want),
			"girder_cache_absorbed_errors_total", "girder_cache_refreshes_total"))
	})
}
