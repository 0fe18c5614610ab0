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
