package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
		return 0, fmt.Errorf("row %q: %w", key, ErrNotFound)
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

func (d *db) set(key string, v int) {
	d.mu.Lock()
	d.rows[key] = v
	d.mu.Unlock()
}

// twoLevels returns a Cache over two Memory levels and d.
func twoLevels(t *testing.T, d *db, tune func(*Options[string, int])) (*Cache[string, int], *Memory[string, int], *Memory[string, int]) {
	t.Helper()
	l1, l2 := newTestMemory(t), newTestMemory(t)
	opts := Options[string, int]{
		Levels: []Level[string, int]{{Name: "l1", Store: l1, TTL: time.Minute}, {Name: "l2", Store: l2, TTL: time.Hour}},
		Loader: d,
		Writer: d,
	}
	if tune != nil {
		tune(&opts)
	}
	c, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, l1, l2
}

func TestNewReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name string
		opts Options[string, int]
		want []string
	}{
		{"nothing", Options[string, int]{}, []string{"no levels and no loader"}},
		{"bad level", Options[string, int]{Levels: []Level[string, int]{{TTL: -1, Jitter: 1}}}, []string{"Store is nil", "TTL -1ns is negative", "Jitter 1 is outside"}},
		{"bad durations", Options[string, int]{Loader: newDB(nil), NegativeTTL: -1, RefreshAhead: -1, RefreshConcurrency: -1}, []string{"NegativeTTL", "RefreshAhead", "RefreshConcurrency"}},
		{"nil funcs", Options[string, int]{Loader: LoaderFunc[string, int](nil), BatchLoader: BatchLoaderFunc[string, int](nil)}, []string{"nil LoaderFunc", "nil BatchLoaderFunc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			require.Error(t, err)
			assert.Nil(t, c)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Contains(t, err.Error(), "cache: ")
		})
	}
}

func TestGetReadsLevelsThenLoaderAndBackfills(t *testing.T) {
	ctx := context.Background()
	d := newDB(map[string]int{"a": 1})
	c, l1, l2 := twoLevels(t, d, nil)

	v, err := c.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	assert.EqualValues(t, 1, d.loads.Load())
	for _, l := range []*Memory[string, int]{l1, l2} {
		got, ok, err := l.Get(ctx, "a")
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, 1, got)
	}

	// L1 lost it: L2 answers and back-fills L1, no load.
	require.NoError(t, l1.Delete(ctx, "a"))
	v, err = c.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	assert.EqualValues(t, 1, d.loads.Load())
	_, ok, _ := l1.Get(ctx, "a")
	assert.True(t, ok)

	st := c.Stats()
	assert.EqualValues(t, 1, st.Loads)
	assert.Equal(t, "l2", st.Levels[1].Name)
	assert.EqualValues(t, 1, st.Levels[1].Hits)
	assert.EqualValues(t, 1, st.Levels[1].Misses)
}

func TestGetNotFound(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		negativeTTL time.Duration
		wantLoads   int64
	}{
		{"not cached", 0, 3},
		{"negative caching", time.Minute, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDB(map[string]int{})
			c, _, _ := twoLevels(t, d, func(o *Options[string, int]) { o.NegativeTTL = tt.negativeTTL })
			for range 3 {
				_, err := c.Get(ctx, "ghost")
				require.ErrorIs(t, err, ErrNotFound)
			}
			assert.Equal(t, tt.wantLoads, d.loads.Load())
		})
	}
}

func TestLoaderPanicReachesEveryWaiter(t *testing.T) {
	ctx := context.Background()
	gate := make(chan struct{})
	var loads atomic.Int64
	c, err := New(Options[string, int]{Loader: LoaderFunc[string, int](func(context.Context, string) (int, error) {
		loads.Add(1)
		<-gate
		panic("boom")
	})})
	require.NoError(t, err)
	defer c.Close()
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() { _, err := c.Get(ctx, "k"); errs <- err }()
	}
	require.Eventually(t, func() bool { return c.Stats().Coalesced == n-1 }, 5*time.Second, time.Millisecond)
	close(gate)
	for range n {
		var pe *PanicError
		require.ErrorAs(t, <-errs, &pe)
		assert.Equal(t, "boom", pe.Value)
	}
	assert.EqualValues(t, 1, loads.Load())
}

func TestGetWithoutLoader(t *testing.T) {
	c, err := New(Options[string, int]{Levels: []Level[string, int]{{Store: newTestMemory(t)}}})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Get(context.Background(), "x")
	assert.ErrorIs(t, err, ErrNoLoader)
}

func TestWaiterThatGivesUpDoesNotCancelTheLoad(t *testing.T) {
	d := newDB(map[string]int{"a": 1})
	d.gate = make(chan struct{})
	c, l1, _ := twoLevels(t, d, nil)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.Get(ctx, "a"); first <- err }()
	require.Eventually(t, func() bool { return d.loads.Load() == 1 }, 5*time.Second, time.Millisecond)
	second := make(chan int, 1)
	go func() { v, _ := c.Get(context.Background(), "a"); second <- v }()
	require.Eventually(t, func() bool { return c.Stats().Coalesced == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	assert.ErrorIs(t, <-first, context.Canceled)
	close(d.gate)
	assert.Equal(t, 1, <-second)
	_, ok, _ := l1.Get(context.Background(), "a")
	assert.True(t, ok)
}

func TestLastWaiterGivingUpCancelsTheLoad(t *testing.T) {
	d := newDB(map[string]int{"a": 1})
	d.gate = make(chan struct{}) // never opened: the load ends only when canceled
	c, l1, _ := twoLevels(t, d, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Get(ctx, "a"); done <- err }()
	require.Eventually(t, func() bool { return d.loads.Load() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)
	require.NoError(t, c.Close()) // waits for the canceled load
	_, ok, _ := l1.Get(context.Background(), "a")
	assert.False(t, ok)
}

func TestClosed(t *testing.T) {
	ctx := context.Background()
	d := newDB(map[string]int{"a": 1})
	c, _, _ := twoLevels(t, d, nil)
	_, err := c.Get(ctx, "a")
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close is idempotent")
	_, err = c.Get(ctx, "a")
	assert.ErrorIs(t, err, ErrClosed)
	_, err = c.GetMany(ctx, []string{"a"})
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, c.Set(ctx, "a", 2), ErrClosed)
	assert.ErrorIs(t, c.Delete(ctx, "a"), ErrClosed)
	assert.ErrorIs(t, c.Invalidate(ctx, "a"), ErrClosed)
	var nilCache *Cache[string, int]
	assert.NoError(t, nilCache.Close())
}

func TestErrorsAreMatchable(t *testing.T) {
	inner := errors.New("io")
	var err error = &LevelError{Level: "redis", Op: "get", Err: inner}
	assert.ErrorIs(t, err, inner)
	assert.Equal(t, "cache: level redis: get: io", err.Error())
	err = &PanicError{Value: inner}
	assert.ErrorIs(t, err, inner)
	assert.ErrorIs(t, &RefreshError{Err: ErrNotFound}, ErrNotFound)
}

func TestCloseDuringLoads(t *testing.T) {
	d := newDB(map[string]int{})
	d.gate = make(chan struct{}) // loads end only when canceled
	c, _, _ := twoLevels(t, d, func(o *Options[string, int]) { o.BatchLoader = d })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const n = 20
	errs := make(chan error, 2*n)
	for i := range n {
		go func() { _, err := c.Get(ctx, fmt.Sprint(i)); errs <- err }()
		go func() { _, err := c.GetMany(ctx, []string{fmt.Sprint("m", i)}); errs <- err }()
	}
	require.Eventually(t, func() bool { return d.loads.Load() > 0 }, 5*time.Second, time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not cancel the loads in flight")
	}
	for range 2 * n {
		assert.ErrorIs(t, <-errs, ErrClosed)
	}
}

// TestFlightCanceledAfterClose checks that a call registered after Close swept the flight
// starts canceled, so that Close never waits for a load that began during it.
func TestFlightCanceledAfterClose(t *testing.T) {
	f := flight[string, int]{calls: map[string]*call[int]{}, bg: context.Background()}
	before, leader := f.join(context.Background(), "a", true)
	require.True(t, leader)
	require.NoError(t, before.ctx.Err())
	f.cancelAll()
	assert.ErrorIs(t, before.ctx.Err(), context.Canceled)
	type key struct{}
	after, leader := f.join(context.WithValue(context.Background(), key{}, "v"), "b", true)
	require.True(t, leader)
	assert.ErrorIs(t, after.ctx.Err(), context.Canceled)
	assert.Equal(t, "v", after.ctx.Value(key{}), "the load keeps the reader's values")
}
