package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGetMany(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		batch     bool
		wantLoads int64 // loader calls for the three missing keys
	}{
		{"batch loader", true, 1},
		{"loader per key", false, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDB(map[string]int{"a": 1, "b": 2, "c": 3, "d": 4})
			c, l1, l2 := twoLevels(t, d, func(o *Options[string, int]) {
				if tt.batch {
					o.BatchLoader = d
				}
				o.NegativeTTL = time.Minute
			})
			require.NoError(t, l1.Set(ctx, "a", 1, 0)) // in L1
			require.NoError(t, l2.Set(ctx, "b", 2, 0)) // in L2 only
			got, err := c.GetMany(ctx, []string{"a", "b", "c", "d", "ghost", "a"})
			require.NoError(t, err)
			assert.Equal(t, map[string]int{"a": 1, "b": 2, "c": 3, "d": 4}, got)
			assert.Equal(t, tt.wantLoads, d.loads.Load())
			for _, k := range []string{"b", "c", "d"} {
				_, ok, _ := l1.Get(ctx, k)
				assert.True(t, ok, "%s back-filled into L1", k)
			}
			_, _, err = l2.Get(ctx, "ghost")
			assert.ErrorIs(t, err, ErrNotFound, "absence remembered")

			got, err = c.GetMany(ctx, []string{"a", "b", "c", "d", "ghost"})
			require.NoError(t, err)
			assert.Len(t, got, 4)
			assert.Equal(t, tt.wantLoads, d.loads.Load(), "second read is all hits")
		})
	}
}

func TestGetManyReportsFailuresAndKeepsValues(t *testing.T) {
	ctx := context.Background()
	d := newDB(map[string]int{"a": 1})
	c, l1, _ := twoLevels(t, d, func(o *Options[string, int]) { o.BatchLoader = d })
	require.NoError(t, l1.Set(ctx, "a", 1, 0))
	d.failing = errors.New("db down")
	got, err := c.GetMany(ctx, []string{"a", "b"})
	assert.ErrorContains(t, err, "db down")
	assert.ErrorContains(t, err, "key b")
	assert.Equal(t, map[string]int{"a": 1}, got)
}

func TestGetManyPanickingBatchLoader(t *testing.T) {
	ctx := context.Background()
	d := newDB(map[string]int{})
	c, _, _ := twoLevels(t, d, func(o *Options[string, int]) {
		o.BatchLoader = BatchLoaderFunc[string, int](func(context.Context, []string) (map[string]int, error) { panic("boom") })
	})
	_, err := c.GetMany(ctx, []string{"a"})
	var pe *PanicError
	require.ErrorAs(t, err, &pe)
}

// GetMany and Get of the same keys at once: every key is loaded once.
func TestGetManyCoalescesWithGet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		d := newDB(map[string]int{"a": 1, "b": 2})
		d.gate = make(chan struct{})
		var batchLoads atomic.Int64
		c, _, _ := twoLevels(t, d, func(o *Options[string, int]) {
			o.BatchLoader = BatchLoaderFunc[string, int](func(ctx context.Context, keys []string) (map[string]int, error) {
				batchLoads.Add(1)
				<-d.gate
				return d.LoadMany(ctx, keys)
			})
		})
		var wg sync.WaitGroup
		wg.Go(func() { // starts the load of a
			v, err := c.Get(ctx, "a")
			assert.NoError(t, err)
			assert.Equal(t, 1, v)
		})
		synctest.Wait()
		wg.Go(func() { // waits for a, batch-loads b
			got, err := c.GetMany(ctx, []string{"a", "b"})
			assert.NoError(t, err)
			assert.Equal(t, map[string]int{"a": 1, "b": 2}, got)
		})
		synctest.Wait()
		close(d.gate)
		wg.Wait()
		assert.EqualValues(t, 2, d.loads.Load(), "a loaded once by Get, b once by GetMany")
		assert.EqualValues(t, 1, batchLoads.Load(), "b loaded once by GetMany")
	})
}

func TestGetManyCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := newDB(map[string]int{"a": 1})
		d.gate = make(chan struct{}) // never opens
		c, _, _ := twoLevels(t, d, func(o *Options[string, int]) { o.BatchLoader = d })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := c.GetMany(ctx, []string{"a", "b"}); done <- err }()
		synctest.Wait()
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
	})
}

// brokenLeaser is a level that hands out leases and whose batch calls fail: LeaseMany as a whole
// or with fewer answers than keys, or, with leases granted, FillLeasedMany for every key or with
// fewer answers. Its single-key calls are never made by GetMany.
type brokenLeaser struct {
	*Memory[string, int]
	mode   string
	single atomic.Int64
}

var errUnreachable = errors.New("unreachable")

func (b *brokenLeaser) Lease(context.Context, string) (string, int, bool, error) {
	b.single.Add(1)
	return "", 0, false, errors.New("single lease")
}

func (b *brokenLeaser) FillLeased(context.Context, string, string, int, bool, time.Duration) (bool, error) {
	b.single.Add(1)
	return false, errors.New("single fill")
}

func (b *brokenLeaser) LeaseMany(_ context.Context, keys []string) ([]string, []Result[int], error) {
	switch b.mode {
	case "lease unreachable":
		return nil, nil, errUnreachable
	case "lease short":
		return make([]string, len(keys)-1), make([]Result[int], len(keys)-1), nil
	}
	tokens := make([]string, len(keys))
	for i := range tokens {
		tokens[i] = "token"
	}
	return tokens, make([]Result[int], len(keys)), nil
}

func (b *brokenLeaser) FillLeasedMany(_ context.Context, fills []LeasedFill[string, int]) ([]bool, []error) {
	switch b.mode {
	case "fill short":
		return make([]bool, len(fills)-1), make([]error, len(fills)-1)
	case "works":
		filled := make([]bool, len(fills))
		for i := range filled {
			filled[i] = true
		}
		return filled, make([]error, len(fills))
	}
	errs := make([]error, len(fills))
	for i := range errs {
		errs[i] = errUnreachable
	}
	return make([]bool, len(fills)), errs
}

// TestGetManyBatchLeaseFailures checks that a ManyLeaser's failures fail open, as a Lease's or a
// FillLeased's do: every key is reported as the level's error, loaded, and kept in no level (the
// Memory level above is not filled without the lease's back-fill).
func TestGetManyBatchLeaseFailures(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		mode, op, want string
	}{
		{"lease unreachable", "get", "unreachable"},
		{"lease short", "get", "LeaseMany returned 2 tokens and 2 results for 3 keys"},
		{"fill unreachable", "set", "unreachable"},
		{"fill short", "set", "FillLeasedMany returned 2 answers and 2 errors for 3 keys"},
		{"works", "", ""}, // the control: the same cache fills its Memory level when the leases hold
	} {
		t.Run(tt.mode, func(t *testing.T) {
			d := newDB(map[string]int{"a": 1, "b": 2, "c": 3})
			l1 := newTestMemory(t)
			l2 := &brokenLeaser{Memory: newTestMemory(t), mode: tt.mode}
			var mu sync.Mutex
			var reported []error
			c, err := New(Options[string, int]{
				Levels: []Level[string, int]{{Store: l1, TTL: time.Minute}, {Name: "redis", Store: l2, TTL: time.Minute}},
				Loader: d,
				Hooks: Hooks[string]{OnError: func(_ context.Context, e ErrorInfo[string]) {
					mu.Lock()
					defer mu.Unlock()
					reported = append(reported, e.Err)
				}},
			})
			require.NoError(t, err)
			defer c.Close()
			got, err := c.GetMany(ctx, []string{"a", "b", "c"})
			require.NoError(t, err)
			assert.Equal(t, map[string]int{"a": 1, "b": 2, "c": 3}, got)
			assert.Zero(t, l2.single.Load(), "no lease taken or filled one by one")
			mu.Lock()
			defer mu.Unlock()
			if tt.mode == "works" {
				assert.Empty(t, reported)
				for _, k := range []string{"a", "b", "c"} {
					_, ok, _ := l1.Get(ctx, k)
					assert.True(t, ok, "%s in memory after the leased back-fill", k)
				}
				return
			}
			require.Len(t, reported, 3, "one error per key")
			for _, e := range reported {
				var lerr *LevelError
				require.ErrorAs(t, e, &lerr)
				assert.Equal(t, "redis", lerr.Level)
				assert.Equal(t, tt.op, lerr.Op)
				assert.Contains(t, lerr.Error(), tt.want)
			}
			for _, k := range []string{"a", "b", "c"} {
				_, ok, _ := l2.Get(ctx, k)
				assert.False(t, ok, "%s not in the leased level", k)
				_, ok, _ = l1.Get(ctx, k)
				assert.False(t, ok, "%s not in memory without the leased back-fill", k)
			}
		})
	}
}
