package ratelimit

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeyedTimeline(t *testing.T) {
	ms := time.Millisecond
	type kstep struct {
		at  time.Duration
		key string
		n   int
		ok  bool
	}
	tests := []struct {
		name  string
		limit Limit
		steps []kstep
	}{
		{"keys are independent", Limit{Rate: 10, Burst: 2}, []kstep{
			{0, "a", 2, true}, {0, "a", 1, false}, {0, "b", 2, true}, {0, "b", 1, false},
			{100 * ms, "a", 1, true}, {100 * ms, "c", 2, true},
		}},
		{"bad input", Limit{Rate: 10, Burst: 2}, []kstep{
			{0, "", 1, false}, {0, "a", -1, false}, {0, "a", 3, false}, {0, "a", 0, true}, {0, "a", 2, true},
		}},
		{"infinite", Limit{Rate: Inf}, []kstep{{0, "a", 100, true}, {0, "a", 100, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				k, err := NewKeyed(KeyedOptions{Limit: tt.limit})
				require.NoError(t, err)
				defer k.Close()
				start := time.Now()
				for i, s := range tt.steps {
					time.Sleep(s.at - time.Since(start))
					assert.Equal(t, s.ok, k.AllowN(s.key, s.n), "step %d: %+v", i, s)
				}
			})
		})
	}
}

func TestKeyedDecide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k, err := NewKeyed(KeyedOptions{Limit: PerMinute(3)})
		require.NoError(t, err)
		defer k.Close()
		ctx := t.Context()
		res, err := k.Decide(ctx, "ip", 1)
		require.NoError(t, err)
		assert.Equal(t, Result{Allowed: true, Limit: PerMinute(3), Remaining: 2, Reset: 20 * time.Second}, res)
		_, _ = k.Decide(ctx, "ip", 2)
		res, err = k.Decide(ctx, "ip", 1)
		require.NoError(t, err)
		assert.Equal(t, Result{Limit: PerMinute(3), RetryAfter: 20 * time.Second, Reset: time.Minute}, res)
		_, err = k.Decide(ctx, "", 1)
		assert.ErrorIs(t, err, ErrEmptyKey)
		_, err = k.Decide(ctx, "ip", -1)
		assert.ErrorIs(t, err, ErrInvalidN)
		_, err = k.Decide(ctx, "ip", 4)
		assert.ErrorIs(t, err, ErrExceedsBurst)
		k.Close()
		k.Close()
		_, err = k.Decide(ctx, "ip", 1)
		assert.ErrorIs(t, err, ErrClosed)
		assert.False(t, k.Allow("ip"))
	})
}

func TestKeyedSweepsIdleKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k, err := NewKeyed(KeyedOptions{Limit: Limit{Rate: 1, Burst: 2}, SweepInterval: time.Second})
		require.NoError(t, err)
		defer k.Close()
		for i := range 10 {
			require.True(t, k.Allow(strconv.Itoa(i)))
		}
		require.True(t, k.AllowN("busy", 2))
		assert.Equal(t, 11, k.Len())
		// After one second the single-token keys are full again; "busy" still owes a token.
		time.Sleep(time.Second + time.Millisecond)
		synctest.Wait()
		assert.Equal(t, 1, k.Len())
		// Forgetting "busy" too early would let it pass twice now; the sweep kept it.
		assert.True(t, k.Allow("busy"))
		assert.False(t, k.Allow("busy"))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		assert.Zero(t, k.Len())
	})
}

func TestKeyedMaxKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k, err := NewKeyed(KeyedOptions{Limit: Limit{Rate: 1, Burst: 1}, MaxKeys: 50, SweepInterval: -1})
		require.NoError(t, err)
		defer k.Close()
		for i := range 1000 {
			k.Allow(strconv.Itoa(i))
			require.LessOrEqual(t, k.Len(), 50)
		}
		assert.Equal(t, 50, k.Len())
		// A new key is never its own victim: it stays and is limited.
		assert.True(t, k.Allow("new"))
		assert.False(t, k.Allow("new"))
	})
}

func TestKeyedMaxKeysPrefersFullBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k, err := NewKeyed(KeyedOptions{Limit: Limit{Rate: 1, Burst: 1}, MaxKeys: 8, SweepInterval: -1})
		require.NoError(t, err)
		defer k.Close()
		for i := range 4 {
			k.Allow(fmt.Sprint("old", i))
		}
		time.Sleep(2 * time.Second) // the old keys are full again
		for i := range 4 {
			k.Allow(fmt.Sprint("hot", i))
		}
		for i := range 4 {
			k.Allow(fmt.Sprint("new", i))
		}
		for i := range 4 {
			assert.False(t, k.Allow(fmt.Sprint("hot", i)), "hot%d must keep its spent bucket", i)
		}
	})
}

func TestKeyedConcurrentBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		limit := Limit{Rate: 100, Burst: 10}
		// A sweeper running every millisecond races with decisions: the hot keys go idle (full)
		// every 20 steps, are swept, and are hit again at the same instant by three goroutines.
		k, err := NewKeyed(KeyedOptions{Limit: limit, SweepInterval: time.Millisecond})
		require.NoError(t, err)
		defer k.Close()
		start := time.Now()
		var mu sync.Mutex
		times := map[string][]time.Duration{}
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				key := strconv.Itoa(g % 2)
				for step := range 100 {
					for range 2 {
						if k.Allow(key) {
							mu.Lock()
							times[key] = append(times[key], time.Since(start))
							mu.Unlock()
						}
					}
					k.Allow(fmt.Sprint("noise", g, step))
					pause := time.Duration(1+g%3) * time.Millisecond
					if step%20 == 19 {
						pause = 150 * time.Millisecond
					}
					time.Sleep(pause)
				}
			})
		}
		wg.Wait()
		require.Len(t, times, 2)
		for _, ts := range times {
			checkBound(t, ts, limit, 0)
		}
	})
}

func TestKeyedOptionsValidate(t *testing.T) {
	_, err := NewKeyed(KeyedOptions{Limit: Limit{Rate: -1}, MaxKeys: -1})
	require.ErrorIs(t, err, ErrInvalidLimit)
	assert.ErrorContains(t, err, "MaxKeys -1")
	var nilK *Keyed
	assert.False(t, nilK.Allow("a"))
	assert.Zero(t, nilK.Len())
	nilK.Close()
	_, err = nilK.Decide(t.Context(), "a", 1)
	assert.ErrorIs(t, err, ErrInvalidLimit)
}

func TestKeyedAllocs(t *testing.T) {
	k, err := NewKeyed(KeyedOptions{Limit: Limit{Rate: 1e6, Burst: 100}, SweepInterval: -1})
	require.NoError(t, err)
	defer k.Close()
	k.Allow("client")
	assert.Zero(t, testing.AllocsPerRun(1000, func() { k.Allow("client") }))
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _, _ = k.Decide(t.Context(), "client", 1) }))
}

func BenchmarkKeyedAllow(b *testing.B) {
	k, _ := NewKeyed(KeyedOptions{Limit: Limit{Rate: 1e8, Burst: 1000}, SweepInterval: -1})
	defer k.Close()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "client-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k.Allow(keys[i&1023])
		i++
	}
}

func BenchmarkKeyedAllowParallel(b *testing.B) {
	k, _ := NewKeyed(KeyedOptions{Limit: Limit{Rate: 1e8, Burst: 1000}, SweepInterval: -1})
	defer k.Close()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "client-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k.Allow(keys[i&1023])
			i++
		}
	})
}

// FuzzKeyed feeds arbitrary keys and counts to a small keyed limiter: it must never panic,
// never hold more than MaxKeys keys, and never let one key pass more than its burst at once.
func FuzzKeyed(f *testing.F) {
	f.Add("a", "b", 1)
	f.Add("", "\x00", -1)
	f.Add("same", "same", 3)
	f.Fuzz(func(t *testing.T, k1, k2 string, n int) {
		k, err := NewKeyed(KeyedOptions{Limit: Limit{Rate: 1e-3, Burst: 3}, MaxKeys: 2, SweepInterval: -1})
		require.NoError(t, err)
		defer k.Close()
		passed := map[string]int{}
		for i, key := range []string{k1, k2, k1 + k2, k2, k1} {
			m := n%5 + i%2
			if k.AllowN(key, m) {
				require.NotEmpty(t, key)
				require.GreaterOrEqual(t, m, 0)
				passed[key] += m
			}
			require.LessOrEqual(t, k.Len(), 2)
		}
		for key, p := range passed {
			// Up to three keys compete for two slots, so a key may be evicted once and start
			// afresh (documented): at most two bursts.
			assert.LessOrEqual(t, p, 6, key)
		}
	})
}
