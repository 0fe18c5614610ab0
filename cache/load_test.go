package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// 1,000 goroutines miss one key at once: one load, and every one of them gets its value after the
// levels are filled.
func TestStampedeLoadsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		d := newDB(map[string]int{"hot": 42})
		d.gate = make(chan struct{})
		c, l1, l2 := twoLevels(t, d, nil)
		const n = 1000
		var wg sync.WaitGroup
		var wrong atomic.Int64
		for range n {
			wg.Go(func() {
				v, err := c.Get(ctx, "hot")
				if err != nil || v != 42 {
					wrong.Add(1)
				}
				// The load has back-filled both levels before any reader returns.
				if _, ok, _ := l1.Get(ctx, "hot"); !ok {
					wrong.Add(1)
				}
				if _, ok, _ := l2.Get(ctx, "hot"); !ok {
					wrong.Add(1)
				}
			})
		}
		synctest.Wait()
		close(d.gate)
		wg.Wait()
		assert.EqualValues(t, 1, d.loads.Load())
		assert.Zero(t, wrong.Load())
		assert.EqualValues(t, n-1, c.Stats().Coalesced)
	})
}

func TestTTLPerLevelWithJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		d := newDB(map[string]int{})
		keys := make([]string, 200)
		for i := range keys {
			keys[i] = fmt.Sprint("k", i)
			d.rows[keys[i]] = i
		}
		c, l1, l2 := twoLevels(t, d, func(o *Options[string, int]) {
			o.Levels[0].TTL, o.Levels[0].Jitter = 10*time.Second, 0.5
			o.Levels[1].TTL = time.Minute
		})
		_, err := c.GetMany(ctx, keys)
		require.NoError(t, err)
		present := func(m *Memory[string, int]) int {
			res, err := m.GetMany(ctx, keys)
			require.NoError(t, err)
			n := 0
			for _, r := range res {
				if r.Hit {
					n++
				}
			}
			return n
		}
		time.Sleep(5*time.Second - time.Millisecond)
		assert.Equal(t, len(keys), present(l1), "no TTL is shortened by more than Jitter")
		time.Sleep(2500 * time.Millisecond)
		spread := present(l1)
		assert.Greater(t, spread, len(keys)/8, "jitter spreads expiry")
		assert.Less(t, spread, len(keys)*7/8, "jitter spreads expiry")
		// Past the longest TTL by more than the store's clock resolution (1 ms), by which an
		// entry may expire late.
		time.Sleep(2500*time.Millisecond + 2*time.Millisecond)
		assert.Zero(t, present(l1), "no TTL is longer than configured")
		assert.Equal(t, len(keys), present(l2), "each level has its own TTL")
		time.Sleep(time.Minute)
		assert.Zero(t, present(l2))
	})
}

func TestRefreshAheadServesOldValueWhileReloading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		d := newDB(map[string]int{"a": 1})
		c, l1, l2 := twoLevels(t, d, func(o *Options[string, int]) {
			o.Levels[0].TTL = 10 * time.Second
			o.RefreshAhead = 3 * time.Second
		})
		v, err := c.Get(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, 1, v)
		d.set("a", 2)

		time.Sleep(6 * time.Second) // fresh: no refresh
		v, _ = c.Get(ctx, "a")
		assert.Equal(t, 1, v)
		synctest.Wait()
		assert.EqualValues(t, 1, d.loads.Load())

		time.Sleep(2 * time.Second) // within 3 s of expiry: served, and reloaded once
		d.gate = make(chan struct{})
		for range 5 {
			v, _ = c.Get(ctx, "a")
			assert.Equal(t, 1, v, "the old value is served during the refresh")
		}
		close(d.gate)
		synctest.Wait()
		assert.EqualValues(t, 2, d.loads.Load(), "one refresh however many hits")
		v, _ = c.Get(ctx, "a")
		assert.Equal(t, 2, v)
		got, _, _ := l2.Get(ctx, "a")
		assert.Equal(t, 2, got, "the refresh fills every level")
		time.Sleep(9 * time.Second)
		_, ok, _ := l1.Get(ctx, "a")
		assert.True(t, ok, "the refreshed entry has a new TTL")
		assert.EqualValues(t, 1, c.Stats().Refreshes)
	})
}

func TestRefreshFailureKeepsValueAndIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		d := newDB(map[string]int{"a": 1})
		var reported atomic.Value
		c, _, _ := twoLevels(t, d, func(o *Options[string, int]) {
			o.Levels[0].TTL = 10 * time.Second
			o.RefreshAhead = 5 * time.Second
			o.Hooks.OnError = func(_ context.Context, i ErrorInfo[string]) { reported.Store(i.Err) }
		})
		_, err := c.Get(ctx, "a")
		require.NoError(t, err)
		time.Sleep(6 * time.Second)
		d.failing = errors.New("db down")
		v, err := c.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, 1, v)
		synctest.Wait()
		var rerr *RefreshError
		require.ErrorAs(t, reported.Load().(error), &rerr)
		assert.ErrorContains(t, rerr, "db down")
		v, err = c.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, 1, v, "the old value stays until it expires")
	})
}

func TestRefreshConcurrencyIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		d := newDB(map[string]int{"a": 1, "b": 2, "c": 3})
		c, _, _ := twoLevels(t, d, func(o *Options[string, int]) {
			o.Levels[0].TTL = 10 * time.Second
			o.RefreshAhead = 5 * time.Second
			o.RefreshConcurrency = 1
		})
		_, err := c.GetMany(ctx, []string{"a", "b", "c"})
		require.NoError(t, err)
		time.Sleep(6 * time.Second)
		d.gate = make(chan struct{})
		for _, k := range []string{"a", "b", "c"} {
			_, err := c.Get(ctx, k)
			require.NoError(t, err)
		}
		synctest.Wait()
		st := c.Stats()
		assert.EqualValues(t, 1, st.Refreshes)
		assert.EqualValues(t, 2, st.RefreshesSkipped)
		close(d.gate)
	})
}

func TestRefreshOfDeletedRowDropsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		d := newDB(map[string]int{"a": 1})
		c, l1, l2 := twoLevels(t, d, func(o *Options[string, int]) {
			o.Levels[0].TTL = 10 * time.Second
			o.RefreshAhead = 5 * time.Second
		})
		_, err := c.Get(ctx, "a")
		require.NoError(t, err)
		time.Sleep(6 * time.Second)
		d.mu.Lock()
		delete(d.rows, "a")
		d.mu.Unlock()
		_, err = c.Get(ctx, "a")
		require.NoError(t, err)
		synctest.Wait()
		for _, l := range []*Memory[string, int]{l1, l2} {
			_, ok, _ := l.Get(ctx, "a")
			assert.False(t, ok)
		}
		_, err = c.Get(ctx, "a")
		assert.ErrorIs(t, err, ErrNotFound)
	})
}
